"""``pipeline-kit config show``: the effective config, and where each value came from."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pipeline_kit.errors import ExitCode, InputError

if TYPE_CHECKING:
    from pipeline_kit.config.loader import Config


@dataclass(frozen=True)
class ConfigShowOptions:
    config_path: Path | None
    cwd: Path
    format: str = "text"
    platform: str | None = None  # overrides the config's platform


def run(options: ConfigShowOptions, out: TextIO) -> int:
    from pipeline_kit.adapters.checkout import inside, repository_root
    from pipeline_kit.config.loader import load_config, schema
    from pipeline_kit.detect.layers import describe_layer, layers_for
    from pipeline_kit.dockerfile.platform import platform_of, platforms_of
    from pipeline_kit.dockerfile.stages import parse_dockerfile

    config = load_config(options.config_path, options.cwd).with_platform(options.platform)
    path = config.dockerfile_path
    try:
        root = repository_root(path) or config.root
        where = f"{config.where('dockerfile')}: dockerfile"
        text = inside(root, path, where).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(
            f"{config.where('dockerfile')}: dockerfile: {path} does not exist.",
            hint="Set `dockerfile` to the path of your Dockerfile, relative to the config file.",
        ) from None
    platform = platform_of(config)
    graph = parse_dockerfile(
        text, source=config.dockerfile, build_args=config.build_args, platform=platform
    )
    layer_map, target = layers_for(graph, config)

    entries: list[tuple[str, Any, str]] = [
        ("image", config.image, _origin(config, "image")),
        ("dockerfile", config.dockerfile, _origin(config, "dockerfile")),
        ("context", config.context, _origin(config, "context")),
        (
            "target",
            graph.stages[target].label,
            _origin(config, "target") if config.target else "default: the last stage",
        ),
        ("platform", str(platform), _platform_origin(config)),
        (
            "platforms",
            [str(p) for p in platforms_of(config)] if config.platforms else [],
            _origin(config, "platforms") if config.platforms else "default: one platform",
        ),
    ]
    for name, value in config.build_args.items():
        entries.append((f"build_args.{name}", value, _origin(config, f"build_args.{name}")))
    for layer in layer_map.layers:
        origin = (
            _origin(config, "layers", layer.name)
            if layer.origin == "config"
            else f"inferred: {layer.origin}"
        )
        entries.append((f"layers.{layer.name}", describe_layer(graph, target, layer), origin))
    entries.append(("lint.disable", list(config.lint_disable), _origin(config, "lint.disable")))
    entries.append(
        ("lint.max_file_mb", config.lint_max_file_mb, _origin(config, "lint.max_file_mb"))
    )
    spec = schema()
    for section, node in spec["properties"].items():
        if section not in _SHOWN_ABOVE:
            entries += _section_entries(config, node, config.data.get(section, _UNSET), [section])

    if options.format == "json":
        document = {
            "file": str(config.file) if config.file else None,
            "values": {key: {"value": value, "from": origin} for key, value, origin in entries},
        }
        out.write(json.dumps(document, indent=2) + "\n")
    else:
        source = config.display if config.file else "no config file: defaults only"
        out.write(f"# {source}\n")
        shown = ["null" if value is None else json.dumps(value) for _, value, _ in entries]
        width = max(len(key) for key, _, _ in entries)
        value_width = max(map(len, shown))
        for (key, _, origin), text in zip(entries, shown, strict=True):
            out.write(f"{key.ljust(width)}  {text.ljust(value_width)}  # {origin}\n")
    return ExitCode.OK


# Keys the entries above show with what the kit made of them (inferred layers, the target).
_SHOWN_ABOVE = frozenset(
    "image dockerfile context target platform platforms build_args layers lint".split()
)
_UNSET = object()


def _platform_origin(config: Config) -> str:
    if config.platform:
        return _origin(config, "platform")
    if config.platforms:
        return "the first of platforms: the Dockerfile is read for it"
    return "default: this machine's"


def _section_entries(
    config: Config, node: Mapping[str, Any], value: Any, path: list[str]
) -> list[tuple[str, Any, str]]:
    """Every key of a section, as the schema lays it out: the value the file gives (with its
    file:line:col) or the default the schema states; keys with neither are left out."""
    properties = node.get("properties")
    if isinstance(properties, Mapping):
        given = value if isinstance(value, Mapping) else {}
        out: list[tuple[str, Any, str]] = []
        for name, child in properties.items():
            out += _section_entries(config, child, given.get(name, _UNSET), [*path, name])
        return out
    if value is not _UNSET:
        if isinstance(node.get("additionalProperties"), Mapping) and isinstance(value, Mapping):
            return [
                (".".join([*path, str(key)]), item, config.where(*path, str(key)))
                for key, item in value.items()
            ]
        return [(".".join(path), value, config.where(*path))]
    if "default" in node:
        return [(".".join(path), node["default"], "default")]
    return []


def _origin(config: Config, *key_path: str) -> str:
    dotted = ".".join(key_path)
    origin = config.origins.get(dotted, "config")
    if origin == "config":
        parts: list[str | int] = []
        for part in key_path:
            parts.extend(part.split("."))
        return config.where(*parts)
    return str(origin)

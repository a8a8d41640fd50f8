"""``pipeline-kit.yaml``: read fast, validated by the shipped JSON Schema, explained on error.

The happy path reads YAML with PyYAML's libyaml loader. Only when something is wrong (or a
position is asked for) does ruamel.yaml parse the file again, to point at the line and column
of the offending key.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pipeline_kit.errors import ConfigError, InputError

CONFIG_NAME = "pipeline-kit.yaml"
SCHEMA_NAME = "pipeline-kit.schema.json"
# Shipped beside this module (package data, installed as a file): read directly, since
# importlib.resources brings tempfile, shutil and zipfile into every command's start-up.
SCHEMA_PATH = Path(__file__).with_name("schema") / SCHEMA_NAME
DEFAULTS: dict[str, Any] = {"dockerfile": "Dockerfile", "context": ".", "lint.max_file_mb": 50}
MAX_ERRORS = 5
# What a runner's environment may set for `build` over the file (docs/configuration.md): the
# repository to push to, and build arguments, one NAME=value a line; --build-arg wins.
IMAGE_VARIABLE = "PIPELINE_KIT_IMAGE_REPOSITORY"
BUILD_ARGS_VARIABLE = "PIPELINE_KIT_BUILD_ARGS"
# Keys whose values reach the runner's host (mounts, programs run, clusters, where requests and
# credentials go, which of the runner's secrets a build reads): in a pull request they are taken
# from the base commit's config.
HOST_KEYS: tuple[tuple[str, ...], ...] = (
    ("build", "buildah"),
    ("cache", "repository"),
    ("registry", "insecure"),
    ("smoke", "url"),
    ("preview", "provider"),
    ("preview", "weights"),
    ("preview", "local"),
    ("preview", "kubernetes", "context"),
    ("deploy", "context"),
    ("deploy", "url"),
    ("preview", "command"),
    ("kubernetes", "weights"),
    ("secrets",),
)
_ABSENT = object()


@dataclass(frozen=True)
class Config:
    file: Path | None  # None: no config file, defaults only
    display: str  # how messages name the file
    root: Path  # the directory relative paths start from
    image: str | None = None
    dockerfile: str = "Dockerfile"
    context: str = "."
    target: str | None = None
    platform: str | None = None  # None: the runner's platform
    platforms: tuple[str, ...] = ()  # a multi-platform image's; never together with platform
    build_args: Mapping[str, str] = field(default_factory=dict)
    layers: Mapping[str, str] | None = None
    lint_disable: tuple[str, ...] = ()
    lint_max_file_mb: float = 50
    origins: Mapping[str, str] = field(default_factory=dict)  # dotted key -> where it came from
    text: str = field(default="", repr=False)
    data: Mapping[str, Any] = field(default_factory=dict, repr=False)  # the validated document

    def section(self, name: str) -> Mapping[str, Any]:
        """A top-level section as validated (empty when absent).

        Each feature reads its own section and keeps its own defaults, so this module does
        not grow with every command.
        """
        value = self.data.get(name)
        return value if isinstance(value, Mapping) else {}

    @property
    def dockerfile_path(self) -> Path:
        return self.root / self.dockerfile

    @property
    def context_path(self) -> Path:
        return self.root / self.context

    def where(self, *key_path: str | int) -> str:
        """``file:line:col`` of a key (or the file alone when it has no position)."""
        position = _position(self.text, key_path) if self.text else None
        if position is None:
            return self.display
        return f"{self.display}:{position[0]}:{position[1]}"

    def build_inputs(self) -> tuple[str, ...]:
        """What this config adds to every build's RUN steps besides the Dockerfile and context:
        host mounts and a non-default isolation. Content keys cover them.

        A mount counts by where RUN sees it and how (``/etc/pip.conf:ro``), not by the host
        path it comes from, which differs between runners that build the same image.
        """
        buildah = self.section("build").get("buildah") or {}
        inputs = [
            f"buildah-volume {str(volume).partition(':')[2] or volume}"
            for volume in buildah.get("volumes", ())
        ]
        if buildah.get("isolation", "chroot") != "chroot":
            inputs.append(f"buildah-isolation {buildah['isolation']}")
        return tuple(inputs)

    def with_environ(self, environ: Mapping[str, str]) -> Config:
        """``PIPELINE_KIT_IMAGE_REPOSITORY`` and ``PIPELINE_KIT_BUILD_ARGS`` over the file: a
        runner that pushes elsewhere, or builds from other bases, without editing the file."""
        config = self
        image = environ.get(IMAGE_VARIABLE, "").strip()
        if image:
            origins = {**config.origins, "image": IMAGE_VARIABLE}
            config = dataclasses.replace(config, image=image, origins=origins)
        build_args: dict[str, str] = {}
        for number, line in enumerate(environ.get(BUILD_ARGS_VARIABLE, "").splitlines(), 1):
            if not line.strip():
                continue
            name, eq, value = line.partition("=")
            if not eq or not name.strip() or any(c.isspace() for c in name.strip()):
                # The line is not echoed: a value written without its name is still a value.
                raise ConfigError(
                    f"{BUILD_ARGS_VARIABLE}: line {number} is not NAME=value.",
                    hint="Write one build argument a line, NAME=value.",
                )
            build_args[name.strip()] = value
        if build_args:
            origins = dict(config.origins)
            origins.update({f"build_args.{k}": BUILD_ARGS_VARIABLE for k in build_args})
            merged = {**config.build_args, **build_args}
            config = dataclasses.replace(config, build_args=merged, origins=origins)
        return config

    def with_build_args(self, overrides: Mapping[str, str]) -> Config:
        if not overrides:
            return self
        origins = dict(self.origins)
        origins.update({f"build_args.{k}": "--build-arg" for k in overrides})
        merged = {**self.build_args, **overrides}
        return dataclasses.replace(self, build_args=merged, origins=origins)

    def with_platform(self, platform: str | None) -> Config:
        """``--platform`` over the config's ``platform`` (dockerfile.platform reads it).

        The config's ``platforms`` stay: a build of one of them is one child of the
        multi-platform image (``dockerfile.platform.child_of``)."""
        if platform is None:
            return self
        origins = {**self.origins, "platform": "--platform"}
        return dataclasses.replace(self, platform=platform, origins=origins)

    def with_platforms(self, platforms: Sequence[str]) -> Config:
        """``--platforms`` over the config's ``platform`` or ``platforms``."""
        if not platforms:
            return self
        origins = {**self.origins, "platforms": "--platforms", "platform": "default"}
        return dataclasses.replace(self, platform=None, platforms=tuple(platforms), origins=origins)


def schema() -> dict[str, Any]:
    text = SCHEMA_PATH.read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def load_config(path: Path | None, cwd: Path) -> Config:
    """The config at ``path`` (default: the nearest ``pipeline-kit.yaml``), validated."""
    if path is None:
        path = _find_config(cwd)
        if path is None:
            return _build(None, CONFIG_NAME, cwd, {}, "")
    display = _display(path, cwd)
    _check_inside(path, display)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{display}: no such file.",
            hint="Create it (see `pipeline-kit config schema`) or point --config at yours.",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{display}: cannot read it ({exc}).") from None
    spec_text = SCHEMA_PATH.read_bytes()
    marker = _validated_marker(text.encode() + b"\0" + spec_text)
    data = _remembered(marker)
    if data is None:
        data = _parse_yaml(text, display)
        _validate(data, text, display, spec_text)
        _check_layers(data, text, display)
        _check_platforms(data, text, display)
        _remember(marker, data)
    return _build(path, display, path.parent, data, text)


def for_run(config: Config, environ: Mapping[str, str], log: TextIO) -> Config:
    """``config`` as this run may use it: in a pull request the ``HOST_KEYS`` come from the
    base commit's config (a change to one is said on ``log``, and not used)."""
    from pipeline_kit.ci.context import from_environ

    trust = from_environ(environ).trust
    if not trust.pull_request or config.file is None:
        return config
    here = {key: _get(config.data, key) for key in HOST_KEYS}
    base = _base_document(config, trust.config_base)
    if base is None:
        return config  # the config file is not the checkout's (--config from elsewhere)
    if isinstance(base, str):
        set_here = [".".join(key) for key, value in here.items() if value is not _ABSENT]
        if not set_here:
            return config
        raise ConfigError(
            f"{config.display}: {', '.join(set_here)}: in a pull request these keys are taken "
            f"from the base commit's config, which cannot be read ({base}).",
            hint="Fetch the whole history (actions/checkout fetch-depth: 0, GIT_DEPTH: 0), or "
            "bring these keys in through the base branch first.",
        )
    data = json.loads(json.dumps(config.data))  # a deep copy of plain JSON data
    for key, mine in here.items():
        theirs = _get(base, key)
        if mine == theirs:
            continue
        log.write(
            f"pipeline-kit: {config.where(*key)}: {'.'.join(key)}: a pull request does not "
            f"change what reaches the runner; the base commit's value is used "
            f"({'unset' if theirs is _ABSENT else json.dumps(theirs)}).\n"
        )
        _put(data, key, theirs)
    return _build(config.file, config.display, config.root, data, config.text)


def _base_document(config: Config, base: str | None) -> dict[str, Any] | str | None:
    """The config at the base commit (empty when it has none): None when the config is not
    a file of the repository, a reason when the base cannot be read."""
    from pipeline_kit.adapters.git import Git

    assert config.file is not None
    try:
        opened = Git(config.root)
    except InputError:
        return "the config is not in a git repository"
    with opened as git:
        try:
            where = Path(os.path.realpath(config.file.parent)) / config.file.name
            rel = where.relative_to(git.root).as_posix()
        except ValueError:
            return None
        if base is None:
            return "the CI names no base commit"
        if git.resolve_commit(base) is None:
            return f"commit {base[:12]} is not in the clone"
        raw = git.read_blob(base, rel)
    if raw is None:
        return {}
    display = f"{rel} at {base[:12]}"
    try:
        data = _parse_yaml(raw.decode("utf-8", "replace"), display)
        _validate(data, raw.decode("utf-8", "replace"), display, SCHEMA_PATH.read_bytes())
    except ConfigError:
        return {}  # nothing the base says can be used: every host key unset
    return data


def _get(data: Mapping[str, Any], key: tuple[str, ...]) -> Any:
    node: Any = data
    for part in key:
        if not isinstance(node, Mapping) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def _put(data: dict[str, Any], key: tuple[str, ...], value: Any) -> None:
    node = data
    for part in key[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            if value is _ABSENT:
                return
            child = node[part] = {}
        node = child
    if value is _ABSENT:
        node.pop(key[-1], None)
    else:
        node[key[-1]] = value


def _find_config(cwd: Path) -> Path | None:
    """``pipeline-kit.yaml`` in ``cwd`` or a parent, up to the repository root, as git looks."""
    for directory in (cwd, *cwd.parents):
        candidate = directory / CONFIG_NAME
        if candidate.is_file() or candidate.is_symlink():
            return candidate
        if (directory / ".git").exists():
            return None
    return None


def _check_inside(path: Path, display: str) -> None:
    """A config file in a checkout may be reached through symlinks only inside the checkout:
    one pointing elsewhere (``/proc/self/environ``) would put that file in error messages."""
    from pipeline_kit.adapters.checkout import inside, repository_root

    directory = repository_root(path)
    if directory is None:
        return
    absolute = Path(os.path.abspath(path))
    below = absolute.relative_to(directory)
    if any((directory / p).is_symlink() for p in (below, *below.parents) if p.parts):
        inside(directory, absolute, display)


def _display(path: Path, cwd: Path) -> str:
    try:
        return str(path.resolve().relative_to(cwd.resolve()))
    except ValueError:
        return str(path)


def _parse_yaml(text: str, display: str) -> dict[str, Any]:
    import yaml

    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        loader = loader_class(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                _check_duplicate_keys(node, display)
            data = None if node is None else loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{display}:{mark.line + 1}:{mark.column + 1}" if mark else display
        raise ConfigError(
            f"{where}: not valid YAML: {exc.problem or exc.context}.",
            hint="Fix the syntax; `pipeline-kit config show` checks it.",
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{display}: not valid YAML: {exc}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{display}:1:1: the top level must be a mapping of keys (image, dockerfile, "
            f"layers, ...), not a {type(data).__name__}."
        )
    return data


def _check_duplicate_keys(root: Any, display: str) -> None:
    """YAML loaders keep the last of two equal keys and say nothing: the first is silently
    lost. Refuse it, naming both places."""
    import yaml

    todo = [root]
    while todo:
        node = todo.pop()
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen:
                        first = seen[key.value].start_mark
                        mark = key.start_mark
                        raise ConfigError(
                            f"{display}:{mark.line + 1}:{mark.column + 1}: {key.value}: the "
                            f"key is given twice (first at {display}:{first.line + 1}:"
                            f"{first.column + 1}); YAML would keep only the last.",
                            hint="Keep one of them.",
                        )
                    seen[key.value] = key
                todo.append(value)
        elif isinstance(node, yaml.SequenceNode):
            todo.extend(node.value)


def _check_layers(data: Mapping[str, Any], text: str, display: str) -> None:
    """Two layers cannot be one stage: a change to it would be reported twice, and the
    layers' order (the order stages change in) would mean nothing."""
    layers = data.get("layers")
    if not isinstance(layers, Mapping):
        return
    owner: dict[str, str] = {}
    for name, stage in layers.items():
        key = str(stage).lower()
        if key in owner:
            raise ConfigError(
                f"{_where(text, display, ['layers', name])}: layers.{name}: stage '{stage}' is "
                f"already layer '{owner[key]}' ({_where(text, display, ['layers', owner[key]])}).",
                hint="Map each layer to a stage of its own, or drop one of the two.",
            )
        owner[key] = str(name)


def _check_platforms(data: Mapping[str, Any], text: str, display: str) -> None:
    """One platform or a list of them: both would leave open which the build is for."""
    if "platform" in data and "platforms" in data:
        raise ConfigError(
            f"{_where(text, display, ['platforms'])}: platforms: `platform` is set too "
            f"({_where(text, display, ['platform'])}); give one or the other.",
            hint="For a multi-platform image list every platform under `platforms`.",
        )


def _validate(data: dict[str, Any], text: str, display: str, spec_text: bytes) -> None:
    from jsonschema import Draft202012Validator

    spec = json.loads(spec_text)
    errors = sorted(
        Draft202012Validator(spec).iter_errors(data), key=lambda e: list(map(str, e.path))
    )
    if not errors:
        return
    lines = []
    for error in errors[:MAX_ERRORS]:
        lines.append(_explain(error, spec, text, display))
    more = len(errors) - MAX_ERRORS
    if more > 0:
        lines.append(f"... and {more} more.")
    raise ConfigError("\n".join(lines))


def _remembered(marker: Path | None) -> dict[str, Any] | None:
    """The document a config with this exact content (and schema) was read as, if it passed.

    Importing jsonschema (and PyYAML) costs more than the rest of a ``detect`` call, and CI
    runs the kit many times per pipeline on the same file; a marker named by the digest of
    the config and the schema holds the validated document as JSON.
    """
    if marker is None:
        return None
    try:
        data = json.loads(marker.read_bytes())
    except (OSError, ValueError):
        return None  # not there yet, or written by an older kit (empty): read the YAML
    return data if isinstance(data, dict) else None


def _remember(marker: Path | None, data: dict[str, Any]) -> None:
    if marker is None:
        return
    try:
        text = json.dumps(data)
    except (TypeError, ValueError):
        return  # a YAML value JSON cannot hold (a date, say): read the YAML every time
    if json.loads(text) != data:
        return  # JSON would change it (a non-string key, say): read the YAML every time
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        partial = marker.with_name(f"{marker.name}.{os.getpid()}")
        partial.write_text(text)
        partial.replace(marker)  # whole or absent, never half-written
    except OSError:
        pass  # an unwritable cache only costs time


def _validated_marker(content: bytes) -> Path | None:
    import hashlib

    base = os.environ.get("XDG_CACHE_HOME") or (
        os.path.join(os.environ["HOME"], ".cache") if os.environ.get("HOME") else None
    )
    if base is None:
        return None
    digest = hashlib.sha256(content).hexdigest()
    return Path(base) / "pipeline-kit" / "valid-config" / digest


def _explain(error: Any, spec: dict[str, Any], text: str, display: str) -> str:
    path: list[str | int] = list(error.path)
    validator = error.validator
    if validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(_subschema(spec, path).get("properties", {}))
        unknown = [k for k in error.instance if k not in allowed]
        parts = []
        for key in unknown:
            where = _where(text, display, [*path, key])
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            parts.append(
                f"{where}: {_dotted([*path, key])}: unknown key.{hint} "
                f"Allowed here: {', '.join(allowed)}."
            )
        return "\n".join(parts)
    where = _where(text, display, path)
    name = _dotted(path) or "(top level)"
    if validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        got = type(error.instance).__name__
        return f"{where}: {name}: expected {expected}, got {got} {error.instance!r}."
    if validator == "pattern":
        if (path and path[-1] == "image") or path == ["image"]:
            return (
                f"{where}: image: {error.instance!r} is not an image repository: give "
                "registry/path without tag or digest, lowercase (e.g. "
                "registry.example.com/team/llm-service)."
            )
        return f"{where}: {name}: {error.instance!r} does not match {error.validator_value}."
    if validator == "propertyNames":
        return f"{where}: {name}: key {error.instance!r} is not allowed: {error.message}."
    if validator == "oneOf" and path[:1] == ["secrets"] and len(path) == 2:
        return (
            f"{where}: {name}: give exactly one of `env` (the variable that holds the value) "
            "or `file` (an absolute path to a file that holds it)."
        )
    if path[:2] == ["lint", "disable"] and len(path) == 3:
        return _unknown_rule(error.instance, spec, text, display)
    if validator == "enum":
        close = difflib.get_close_matches(str(error.instance), map(str, error.validator_value), 1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return f"{where}: {name}: {error.instance!r} is not one of {error.validator_value}.{hint}"
    return f"{where}: {name}: {error.message}."


def _unknown_rule(entry: Any, spec: dict[str, Any], text: str, display: str) -> str:
    """``lint.disable`` names a rule the kit does not have: say which it has (the schema's
    enum holds the ids, then the names, in the same order)."""
    items = spec["properties"]["lint"]["properties"]["disable"]["items"]
    known = [str(value) for value in items["anyOf"][0]["enum"]]
    ids, names = known[: len(known) // 2], known[len(known) // 2 :]
    close = difflib.get_close_matches(str(entry), known, 1, cutoff=0.5)
    close = close or difflib.get_close_matches(str(entry).upper(), known, 1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    rules = ", ".join(f"{rule} {name}" for rule, name in zip(ids, names, strict=True))
    where = _where(text, display, ["lint", "disable"])
    return f"{where}: lint.disable: unknown rule {entry!r}.{hint} Rules: {rules}."


def _subschema(spec: dict[str, Any], path: Sequence[str | int]) -> dict[str, Any]:
    node = spec
    for part in path:
        props = node.get("properties", {})
        if isinstance(part, str) and part in props:
            node = props[part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        elif "items" in node:
            node = node["items"]
    return node


def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _where(text: str, display: str, path: Sequence[str | int]) -> str:
    position = _position(text, path)
    return display if position is None else f"{display}:{position[0]}:{position[1]}"


def _position(text: str, path: Sequence[str | int]) -> tuple[int, int] | None:
    """1-based (line, column) of the key at ``path``, or of the nearest parent that has one."""
    node: Any = _positioned(text)
    if node is None:
        return None
    best: tuple[int, int] | None = None
    for part in path:
        try:
            if isinstance(part, int):
                line, col = node.lc.item(part)
            else:
                line, col = node.lc.key(part)
            best = (line + 1, col + 1)
            node = node[part]
        except (AttributeError, KeyError, IndexError, TypeError):
            break
    return best or (1, 1)


@functools.lru_cache(maxsize=4)
def _positioned(text: str) -> Any:
    """The document as ruamel.yaml reads it, with line and column on every key.

    Read once per text: ``config show`` asks for the position of every value.
    """
    from ruamel.yaml import YAML

    try:
        return YAML(typ="rt").load(text)
    except Exception:  # positions are a courtesy; PyYAML already accepted the text
        return None


def _build(path: Path | None, display: str, root: Path, data: dict[str, Any], text: str) -> Config:
    origins: dict[str, str] = {}

    def take(key: str, default: Any) -> Any:
        if key in data:
            origins[key] = "config"
            return data[key]
        origins[key] = "default"
        return default

    lint = data.get("lint") or {}
    build_args = {str(k): _arg_text(v) for k, v in (data.get("build_args") or {}).items()}
    origins.update({f"build_args.{k}": "config" for k in build_args})
    origins["lint.disable"] = "config" if "disable" in lint else "default"
    origins["lint.max_file_mb"] = "config" if "max_file_mb" in lint else "default"
    return Config(
        file=path,
        display=display,
        root=root,
        image=take("image", None),
        dockerfile=take("dockerfile", DEFAULTS["dockerfile"]),
        context=take("context", DEFAULTS["context"]),
        target=take("target", None),
        platform=take("platform", None),
        platforms=tuple(str(p) for p in take("platforms", ())),
        build_args=build_args,
        layers=dict(data["layers"]) if "layers" in data else None,
        lint_disable=tuple(lint.get("disable", ())),
        lint_max_file_mb=float(lint.get("max_file_mb", DEFAULTS["lint.max_file_mb"])),
        origins=origins,
        text=text,
        data=data,
    )


def _arg_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)

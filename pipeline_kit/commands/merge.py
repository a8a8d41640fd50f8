"""``pipeline-kit merge``: per-platform images into one multi-platform index, by registry
operations only, pushed under the build's tags."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pipeline_kit.ci.context import DEFAULT_DOTENV
from pipeline_kit.errors import ExitCode, InputError

if TYPE_CHECKING:
    from pipeline_kit.adapters.registry.references import ImageRef
    from pipeline_kit.config.loader import Config
    from pipeline_kit.publish.index import Child


@dataclass(frozen=True)
class MergeOptions:
    config_path: Path | None
    cwd: Path
    children: tuple[str, ...] = ()  # PLATFORM=REFERENCE; none: the config's platforms
    head: str | None = None  # the commit the tags are for (default: the CI's, else HEAD)
    extra_tags: tuple[str, ...] = ()
    insecure_registries: tuple[str, ...] = ()
    format: str = "text"
    dotenv: Path = DEFAULT_DOTENV
    environ: Mapping[str, str] = field(default_factory=dict)


def run(options: MergeOptions, out: TextIO, log: TextIO = sys.stderr) -> int:
    from pipeline_kit.adapters.registry.client import RegistryClient, is_plain_http
    from pipeline_kit.adapters.registry.references import ImageRef
    from pipeline_kit.attest.attach import AttestSettings, attest, now
    from pipeline_kit.attest.provenance import BuildFacts
    from pipeline_kit.ci.context import resolve_context
    from pipeline_kit.config.loader import for_run, load_config
    from pipeline_kit.publish.index import merge_index, parse_child
    from pipeline_kit.publish.tags import compute_tags, rules_from_section
    from pipeline_kit.report import merge as report
    from pipeline_kit.report.outputs import check_destination, export

    check_destination(options.format, options.environ)
    config = for_run(load_config(options.config_path, options.cwd), options.environ, log)
    if not config.image:
        raise InputError(
            f"{config.display}: no `image` to merge into.",
            hint="Set `image: registry.example.com/team/service` in the config.",
        )
    image = ImageRef.parse(config.image)
    ci = resolve_context(config.root, options.environ, options.head)
    tags = [tag.name for tag in compute_tags(ci, rules_from_section(config.section("tags")))]
    tags += [tag for tag in options.extra_tags if tag not in tags]
    if options.children:
        children = [parse_child(text, image) for text in options.children]
    else:
        children = _children_by_tag(config, image, tags)
    insecure = set(config.section("registry").get("insecure", ())) | set(
        options.insecure_registries
    )
    if is_plain_http(image.registry, insecure):
        insecure.add(image.registry)
    client = RegistryClient.connect(image.registry, options.environ, insecure, log)
    started = now()
    merged = merge_index(client, image, children, tags)
    record: dict[str, Any] = {
        "image": f"{image.registry}/{image.repository}",
        "digest": merged.digest,
        "tags": tags,
        "references": [str(image.with_tag(tag)) for tag in tags],
        "children": dict(merged.children),
    }
    settings = AttestSettings.from_section(config.section("attest"))
    if settings.any:  # the index's provenance; each platform's image has its own from its build
        facts = BuildFacts(
            image=record["image"], strategy="merge", started=started, finished=now(),
            revision=ci.sha or None, run_url=ci.run_url or None,
        )  # fmt: skip
        attested = attest(client, image.repository, merged.digest, facts, settings)
        record["attestations"] = attested.to_json()
        if attested.no_sbom:
            log.write(f"pipeline-kit: warning: without an SBOM: {attested.no_sbom}\n")
    if options.format == "json":
        out.write(json.dumps(record, indent=2) + "\n")
        return ExitCode.OK
    export(
        options.format,
        report.outputs(record),
        environ=options.environ,
        dotenv=options.cwd / options.dotenv,
    )
    out.write(report.as_text(record))
    return ExitCode.OK


def _children_by_tag(config: Config, image: ImageRef, tags: list[str]) -> list[Child]:
    """Each of the config's platforms under the build's first tag with its suffix, as a build
    of that one platform (``build --platform``) pushed it."""
    from pipeline_kit.dockerfile.platform import platforms_of, tag_suffix
    from pipeline_kit.publish.index import Child

    if not config.platforms:
        raise InputError(
            f"{config.display}: no `platforms` to merge, and no children named.",
            hint="List the platforms in the config (platforms: [linux/amd64, linux/arm64]), or "
            "name each child as PLATFORM=REFERENCE.",
        )
    if not tags:
        raise InputError(
            "merge: this build has no tags to find the children under.",
            hint="Name each child as PLATFORM=REFERENCE, or give --tag.",
        )
    return [Child(p, image.with_tag(f"{tags[0]}{tag_suffix(p)}")) for p in platforms_of(config)]

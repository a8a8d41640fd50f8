"""``pipeline-kit cache gc``: delete cache entries past the TTL, beyond the newest ``keep``."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pipeline_kit.errors import ExitCode, InputError

if TYPE_CHECKING:
    from pipeline_kit.adapters.registry.client import RegistryClient
    from pipeline_kit.publish.cache_gc import CacheEntry

DEFAULT_KEEP = 50


@dataclass(frozen=True)
class CacheGcOptions:
    config_path: Path | None
    cwd: Path
    repository: str | None = None
    ttl: str | None = None
    keep: int | None = None
    dry_run: bool | None = None  # None: dry run when interactive
    interactive: bool = False
    insecure_registries: tuple[str, ...] = ()
    format: str = "text"
    environ: Mapping[str, str] = field(default_factory=dict)
    now: datetime | None = None


def run(options: CacheGcOptions, out: TextIO, log: TextIO = sys.stderr) -> int:
    from pipeline_kit.adapters.registry.client import RegistryClient
    from pipeline_kit.adapters.registry.references import ImageRef
    from pipeline_kit.config.durations import parse_duration
    from pipeline_kit.config.loader import for_run, load_config
    from pipeline_kit.publish.cache_gc import plan_gc

    config = for_run(load_config(options.config_path, options.cwd), options.environ, log)
    section = config.section("cache")
    repository = options.repository or section.get("repository")
    if not repository:
        if not config.image:
            raise InputError(
                "No cache repository: give --repository, or `image` (or cache.repository) "
                "in the config.",
                hint="The default cache repository is <image>/cache.",
            )
        repository = f"{config.image}/cache"
    ttl_text = options.ttl or str(section.get("ttl", "14d"))
    ttl = parse_duration(ttl_text, what="--ttl" if options.ttl else "cache.ttl")
    keep = options.keep if options.keep is not None else int(section.get("keep", DEFAULT_KEEP))
    dry_run = options.interactive if options.dry_run is None else options.dry_run
    insecure = (*config.section("registry").get("insecure", ()), *options.insecure_registries)

    ref = ImageRef.parse(str(repository))
    client = RegistryClient.connect(ref.registry, options.environ, insecure, log)
    entries = _read_entries(client, ref.repository, log)
    plan = plan_gc(entries, options.now or datetime.now(timezone.utc), ttl, keep)
    if not dry_run:
        for digest in dict.fromkeys(e.digest for e in plan.delete):
            client.delete_manifest(ref.repository, digest)
    report: dict[str, Any] = {
        "repository": str(ref),
        "dry_run": dry_run,
        "ttl_seconds": ttl,
        "keep": keep,
        "entries": len(entries),
        "kept": len(plan.keep),
        "deleted": [e.tag for e in plan.delete],
        "bytes_freed": plan.bytes_freed,
    }
    if options.format == "json":
        out.write(json.dumps(report, indent=2) + "\n")
    else:
        verb = "would delete" if dry_run else "deleted"
        out.write(
            f"{ref}: {len(entries)} entries, kept {len(plan.keep)}, {verb} "
            f"{len(plan.delete)} ({plan.bytes_freed / 1e6:.1f} MB of layers)\n"
        )
        for entry in plan.delete:
            when = entry.created.isoformat() if entry.created else "?"
            out.write(f"  {verb} {entry.tag} ({when})\n")
        if dry_run and plan.delete:
            out.write("Nothing was deleted: run with --delete to delete.\n")
    return ExitCode.OK


def _read_entries(client: RegistryClient, repo: str, log: TextIO) -> list[CacheEntry]:
    from pipeline_kit.publish.cache_gc import CacheEntry

    tags = client.list_tags(repo)
    entries: list[CacheEntry] = []
    configs: dict[str, datetime | None] = {}
    for number, tag in enumerate(tags, 1):
        if number % 50 == 0:
            log.write(f"pipeline-kit: read {number}/{len(tags)} cache entries\n")
        manifest = client.get_manifest(repo, tag)
        body = json.loads(manifest.raw)
        config_digest = (body.get("config") or {}).get("digest")
        if config_digest and config_digest not in configs:
            configs[config_digest] = _created(client.get_blob(repo, config_digest))
        created = configs.get(config_digest) if config_digest else None
        if created is None:
            created = _parse_time(
                (body.get("annotations") or {}).get("org.opencontainers.image.created")
            )
        layers = frozenset(
            (layer["digest"], int(layer.get("size", 0))) for layer in body.get("layers", [])
        )
        children = frozenset(
            str(entry["digest"]) for entry in body.get("manifests", []) if manifest.is_index
        )
        entries.append(CacheEntry(tag, manifest.digest, created, layers, children))
    return entries


def _created(config_blob: bytes) -> datetime | None:
    try:
        value = json.loads(config_blob).get("created")
    except ValueError:
        return None
    return _parse_time(value)


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    # Go writes nanoseconds; Python takes at most microseconds.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)

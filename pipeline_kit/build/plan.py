"""From a detection to a build plan: retag what exists, otherwise a builder with fitting flags.

An image is named by its content key (the target stage's key). Every image the kit publishes
also gets the tag ``pk-<key>``; when that tag already exists the same content was built before
(on this branch or any other), so the new tags point at that digest and no builder runs.

Only a trusted run (``pipeline_kit.ci.trust``) writes ``pk-`` records, and a record is believed
only when its image's ``dev.pipeline-kit.trust`` label says a protected ref built it; an
untrusted run keeps its records under ``pkx-<scope>-`` and reads the builders' cache without
writing it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from pipeline_kit.build.builders.base import BuildRequest
from pipeline_kit.ci.context import CIContext
from pipeline_kit.ci.trust import PROTECTED, TRUST_LABEL, TRUSTED, Trust
from pipeline_kit.config.durations import go_duration, parse_duration
from pipeline_kit.config.loader import Config
from pipeline_kit.detect.changes import Detection
from pipeline_kit.detect.records import key_tag, on_tags
from pipeline_kit.dockerfile.platform import platforms_of
from pipeline_kit.errors import InputError

LABEL_PREFIX = "dev.pipeline-kit"
DEFAULT_CACHE_TTL = "14d"
DEFAULT_LARGE_LAYER_MB = 1024


@dataclass(frozen=True)
class BuildSettings:
    """The ``build`` and ``cache`` config sections with flags applied, defaults filled in."""

    builder: str = "auto"
    strategy: str = "auto"
    cache_repo: str = ""
    cache_ttl_seconds: int = 14 * 86400
    large_layer_mb: int = DEFAULT_LARGE_LAYER_MB
    cache_copy_layers: bool = True
    push_retry: int = 3
    download_retry: int = 3
    volumes: tuple[str, ...] = ()
    storage: Mapping[str, str] = field(default_factory=dict)
    isolation: str = "chroot"
    insecure_hosts: frozenset[str] = frozenset()
    push_cache: bool = True  # an untrusted run reads the builders' cache and writes none
    rebase: bool = False  # a base's new content published under the image by registry operations

    @classmethod
    def from_config(
        cls,
        config: Config,
        image: str,
        *,
        builder: str | None = None,
        strategy: str | None = None,
        cache_repo: str | None = None,
        insecure: Sequence[str] = (),
        trust: Trust = TRUSTED,
    ) -> BuildSettings:
        build, cache = config.section("build"), config.section("cache")
        buildah = build.get("buildah") or {}
        storage = {
            "storage-driver": buildah.get("storage_driver"),
            "root": _path(config, buildah.get("root")),
            "runroot": _path(config, buildah.get("runroot")),
        }
        ttl = str(cache.get("ttl", DEFAULT_CACHE_TTL))
        try:
            ttl_seconds = parse_duration(ttl, what="cache.ttl")
        except InputError:
            # Only now find the key's line: reading positions loads a second YAML parser.
            ttl_seconds = parse_duration(ttl, what=f"{config.where('cache', 'ttl')}: cache.ttl")
        return cls(
            builder=builder or str(build.get("builder", "auto")),
            strategy=strategy or str(build.get("strategy", "auto")),
            cache_repo=cache_repo or str(cache.get("repository") or f"{image}/cache"),
            cache_ttl_seconds=ttl_seconds,
            large_layer_mb=int(build.get("large_layer_mb", DEFAULT_LARGE_LAYER_MB)),
            cache_copy_layers=bool(build.get("cache_copy_layers", True)),
            push_retry=int(build.get("push_retry", 3)),
            download_retry=int(build.get("download_retry", 3)),
            volumes=tuple(buildah.get("volumes", ())),
            storage={k: v for k, v in storage.items() if v},
            isolation=str(buildah.get("isolation", "chroot")),
            push_cache=trust.trusted,
            rebase=bool(build.get("rebase", False)),
            insecure_hosts=frozenset(config.section("registry").get("insecure", ()))
            | set(insecure),
        )


def _path(config: Config, value: object) -> str | None:
    return str((config.root / str(value)).resolve()) if value else None


def image_labels(detection: Detection, ci: CIContext, created: str) -> dict[str, str]:
    """OCI annotations plus the layer keys, so any image says what content it holds.

    With the chain's instruction keys (a build), also the provenance that lets a later
    build append to this image. The trust label says whether a protected ref built it.
    """
    labels = {
        "org.opencontainers.image.revision": ci.sha or detection.range.head,
        "org.opencontainers.image.created": created,
        f"{LABEL_PREFIX}.image-key": detection.image_key,
        TRUST_LABEL: trust_label(ci.trust),
    }
    if ci.repository_url:
        labels["org.opencontainers.image.source"] = ci.repository_url
    for layer in detection.layers:
        labels[f"{LABEL_PREFIX}.layer.{layer.name}.key"] = layer.key
    if detection.chain is not None:
        from pipeline_kit.detect.provenance import PROVENANCE_LABEL, Provenance

        provenance = Provenance.of(detection.chain, detection.chain_stages)
        labels[PROVENANCE_LABEL] = provenance.to_label()
    return labels


class CheckoutPaths(NamedTuple):
    """The Dockerfile and context a build reads, resolved inside the repository."""

    dockerfile: Path
    context: Path

    @classmethod
    def of(cls, config: Config, root: Path) -> CheckoutPaths:
        return cls(
            _inside(root, config.dockerfile_path, config, "dockerfile"),
            _inside(root, config.context_path, config, "context"),
        )


def _inside(root: Path, path: Path, config: Config, key: str) -> Path:
    """``path`` inside ``root``; an error names the config line of ``key`` (found only then: a
    position costs a second, line-keeping read of the config)."""
    from pipeline_kit.adapters.checkout import inside

    try:
        return inside(root, path, key)
    except InputError as exc:
        raise type(exc)(f"{config.where(key)}: {exc.message}", hint=exc.hint) from None


def trust_label(trust: Trust) -> str:
    return PROTECTED if trust.trusted else f"untrusted ({trust.why})"


@dataclass(frozen=True)
class BuildPlan:
    strategy: str  # "retag", "rebase", "append" or "builder"
    reason: str
    request: BuildRequest
    retag_from: str | None = None  # repo@digest of the image with the same content key
    fallback: str | None = None  # why append could not publish this change (builder only)


def build_request(
    detection: Detection,
    config: Config,
    settings: BuildSettings,
    *,
    image: str,
    tags: Sequence[str],
    labels: Mapping[str, str],
    largest_previous_layer: int | None,
    paths: CheckoutPaths,
    trust: Trust = TRUSTED,
) -> BuildRequest:
    prefix = trust.key_prefix
    records = [key_tag(detection.image_key, prefix), *on_tags(detection, prefix)]
    all_tags = list(dict.fromkeys([*tags, *records]))
    large = largest_previous_layer is None or largest_previous_layer > settings.large_layer_mb << 20
    return BuildRequest(
        image=image,
        dockerfile=paths.dockerfile,
        context=paths.context,
        target=config.target,
        build_args=dict(config.build_args),
        labels=dict(labels),
        tags=tuple(all_tags),
        cache_repo=settings.cache_repo,
        cache_ttl=go_duration(settings.cache_ttl_seconds),
        push_cache=settings.push_cache,
        insecure_hosts=settings.insecure_hosts,
        compressed_caching=not large,
        cache_copy_layers=settings.cache_copy_layers,
        push_retry=settings.push_retry,
        download_retry=settings.download_retry,
        volumes=settings.volumes,
        storage=settings.storage,
        isolation=settings.isolation,
        **_platforms(config),
    )


def _platforms(config: Config) -> dict[str, Any]:
    """``platform`` for one chosen platform, ``platforms`` for several; neither: the runner's."""
    if config.platform is None and not config.platforms:
        return {}
    platforms = platforms_of(config)
    if len(platforms) == 1:
        return {"platform": str(platforms[0])}
    return {"platforms": tuple(map(str, platforms))}


def plan_build(
    detection: Detection,
    request: BuildRequest,
    recorded_digest: str | None,
    *,
    strategy: str = "auto",
    appended_to: str | None = None,
    append_refused: str | None = None,
    recorded_tag: str | None = None,
    rebased: tuple[str, str] | None = None,
) -> BuildPlan:
    """retag > append > builder; ``strategy`` "builder" forces the builder.

    ``recorded_digest``: what ``recorded_tag`` (``pk-<image key>``, or the run's own record)
    points at in the registry, if anything.
    ``appended_to``: the previous image an append plan was made against; ``append_refused``:
    why none could be made (then the builder runs, and the record says why).
    ``rebased``: the base reference and the digest it names now, when a rebase plan puts the
    recorded image on it.
    """
    if rebased is not None and recorded_digest is not None and strategy != "builder":
        return BuildPlan(
            "rebase",
            f"only the base image's content changed: {rebased[0]} is now {rebased[1][:19]}; "
            f"{recorded_tag or key_tag(detection.image_key)} ({recorded_digest[:19]}) is put on "
            "its layers",
            request,
            retag_from=f"{request.image}@{recorded_digest}",
        )
    if recorded_digest is not None and strategy != "builder":
        why = (
            "nothing that goes into the image changed"
            if not detection.image_changed
            else "an image with the same content key was built before"
        )
        return BuildPlan(
            "retag",
            f"{why}: {recorded_tag or key_tag(detection.image_key)} is {recorded_digest[:19]}",
            request,
            retag_from=f"{request.image}@{recorded_digest}",
        )
    if appended_to is not None and strategy != "builder":
        return BuildPlan(
            "append",
            f"only COPY/ADD and metadata changed: appending to {appended_to.split('@')[-1][:19]}",
            request,
        )
    if detection.range.fail_safe:
        reason = f"rebuilding everything: {detection.range.fail_safe}"
    elif not detection.image_changed:
        reason = f"no image recorded under {key_tag(detection.image_key)[:15]}…: building it"
    else:
        reason = f"rebuild from {detection.rebuild_from}"
        point = detection.rebuild_point
        if point is not None:
            reason += f" at {point.file}:{point.line} {point.text}"
    if strategy == "builder":
        reason += " (--strategy builder)"
    return BuildPlan("builder", reason, request, fallback=append_refused)

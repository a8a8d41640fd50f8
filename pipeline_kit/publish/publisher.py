"""Registry side of a build: find images by content key, retag, push a builder's OCI layout.

One ``Publisher`` per build; it holds the registry client of the image's registry, so every
request of the build shares its token cache and retry policy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

from pipeline_kit.adapters.registry.client import (
    IN_FLIGHT,
    Manifest,
    RegistryClient,
    in_parallel,
    started,
)
from pipeline_kit.adapters.registry.credentials import resolve_credential, write_docker_config
from pipeline_kit.adapters.registry.references import (
    ImageRef,
    is_attestation,
    platform_entries,
    platform_name,
)
from pipeline_kit.build.builders.base import BuildRequest
from pipeline_kit.build.plan import BuildPlan
from pipeline_kit.ci.trust import TRUSTED, Trust, vouched
from pipeline_kit.detect.records import key_tag, read_prefixes
from pipeline_kit.dockerfile.pulls import pulled_images
from pipeline_kit.dockerfile.stages import parse_dockerfile
from pipeline_kit.errors import InputError
from pipeline_kit.publish.layout import push_layout_counted
from pipeline_kit.publish.retag import point_tags

if TYPE_CHECKING:
    from pipeline_kit.append.planner import AppendPlan, IndexAppendPlan
    from pipeline_kit.append.remote import AppendRemote
    from pipeline_kit.rebase.planner import RebasePlan
    from pipeline_kit.rebase.remote import RebaseRemote


class Recorded(NamedTuple):
    """An image recorded under a content key: the record's tag and the digest it holds."""

    tag: str
    digest: str


class Publisher:
    def __init__(
        self,
        image: str,
        insecure_hosts: Collection[str],
        environ: Mapping[str, str],
        progress: TextIO,
    ) -> None:
        self.ref = ImageRef.parse(image)
        self.insecure_hosts = frozenset(insecure_hosts)
        self.environ = environ
        self.progress = progress
        self.client = RegistryClient.connect(
            self.ref.registry, environ, self.insecure_hosts, progress
        )
        self._warming: Callable[[], None] | None = None

    def warm_up(self) -> None:
        """Start the registry's connection and token (``RegistryClient.warm_up``) beside
        whatever the caller does next; the first lookup waits for it to be done."""
        self._warming = started(partial(self.client.warm_up, self.ref.repository))

    def _say(self, message: str) -> None:
        self.progress.write(f"pipeline-kit: {message}\n")
        self.progress.flush()

    def lookup(
        self,
        image_key: str,
        candidates: Sequence[str],
        trust: Trust = TRUSTED,
        *,
        preconnect: bool = False,
    ) -> tuple[Recorded | None, dict[str, Manifest | None]]:
        """In one round of requests: the record of ``image_key`` this run believes (None:
        never built), and the manifest under each candidate tag of a previous image.
        ``preconnect``: a publish follows at once (a retag, an append), and the connections
        its widest round will want (its tags, its attestations) are opened beside."""
        warming, self._warming = self._warming, None
        if warming is not None:
            warming()
        repo = self.ref.repository
        if preconnect:
            started(partial(self.client.preconnect, repo, IN_FLIGHT))
        records = [key_tag(image_key, prefix) for prefix in read_prefixes(trust)]
        calls: list[Callable[[], Any]] = [
            partial(self.client.head_manifest, repo, tag) for tag in records
        ]
        calls += [partial(self.client.find_manifest, repo, tag) for tag in candidates]
        found = in_parallel(calls)
        for tag, manifest in zip(records, found[: len(records)], strict=True):
            if manifest is not None and self._vouched(tag, manifest.digest):
                previous = dict(zip(candidates, found[len(records) :], strict=True))
                return Recorded(tag, manifest.digest), previous
        return None, dict(zip(candidates, found[len(records) :], strict=True))

    def _vouched(self, tag: str, digest: str) -> bool:
        """Whether the image under a record may be reused (``pipeline_kit.ci.trust.vouched``)."""
        if vouched(tag, None):
            return True
        manifest = self.client.get_manifest(self.ref.repository, digest)
        labels = None
        if manifest.is_index:  # a multi-platform image: its children carry the same labels
            entries = json.loads(manifest.raw).get("manifests", [])
            first = next((e for e in entries if not is_attestation(e)), None)
            if first is not None:
                manifest = self.client.get_manifest(self.ref.repository, first["digest"])
        if not manifest.is_index:
            config_digest = json.loads(manifest.raw)["config"]["digest"]
            config = json.loads(self.client.get_blob(self.ref.repository, config_digest))
            labels = (config.get("config") or {}).get("Labels")
        if vouched(tag, labels):
            return True
        self._say(f"{tag} holds {digest[:19]}, which no protected ref built: not reused")
        return False

    def largest_layer(self, image_key: str | None) -> int | None:
        """The largest layer (bytes) of the image recorded for ``image_key``, if there is one."""
        if image_key is None:
            return None
        tag = key_tag(image_key)
        if self.client.head_manifest(self.ref.repository, tag) is None:
            return None
        manifest = json.loads(self.client.get_manifest(self.ref.repository, tag).raw)
        if "manifests" in manifest:  # an index: look at its first image
            first = manifest["manifests"][0]["digest"]
            manifest = json.loads(self.client.get_manifest(self.ref.repository, first).raw)
        sizes = [int(layer.get("size", 0)) for layer in manifest.get("layers", [])]
        return max(sizes, default=0)

    def children(self, digest: str) -> dict[str, str] | None:
        """Each platform's image digest when ``digest`` is an index (None: an image)."""
        manifest = self.client.get_manifest(self.ref.repository, digest)
        if not manifest.is_index:
            return None
        return {
            platform_name(entry.get("platform") or {}): str(entry["digest"])
            for entry in platform_entries(json.loads(manifest.raw))
        }

    def retag(self, source: str, tags: Sequence[str]) -> str:
        targets = [ImageRef.parse(f"{self.ref.registry}/{self.ref.repository}:{t}") for t in tags]
        return point_tags(self.client, ImageRef.parse(source), targets)

    def push_layout(self, layout: Path, tags: Sequence[str]) -> tuple[str, int]:
        """The pushed digest and the bytes uploaded."""
        return push_layout_counted(
            self.client, layout, self.ref.repository, list(tags), progress=self._say
        )

    def append_remote(self) -> AppendRemote:
        from pipeline_kit.append.remote import AppendRemote

        return AppendRemote(self.client, self.ref.repository, self.environ, self.insecure_hosts)

    def publish_append(
        self,
        plan: AppendPlan | IndexAppendPlan,
        tags: Sequence[str],
        on_manifest: Callable[[], None] | None = None,
    ) -> tuple[str, int]:
        """Publish an append plan: the digest and the bytes uploaded (``on_manifest``:
        ``AppendRemote.publish``)."""
        digest, sent = self.append_remote().publish(plan, tags, on_manifest)
        self._say(f"{self.ref.repository}@{digest}: {sent / 1e6:.3f} MB uploaded, {len(tags)} tags")
        return digest, sent

    def rebase_remote(self) -> RebaseRemote:
        from pipeline_kit.rebase.remote import RebaseRemote

        return RebaseRemote(self.client, self.ref.repository, self.environ, self.insecure_hosts)

    def publish_rebase(self, plan: RebasePlan, tags: Sequence[str]) -> tuple[str, int]:
        """Publish a rebase plan: the digest and the bytes uploaded."""
        digest, sent = self.rebase_remote().publish(plan, tags)
        self._say(f"{self.ref.repository}@{digest}: rebased, {sent / 1e6:.3f} MB uploaded")
        return digest, sent

    def docker_config(self, directory: Path, request: BuildRequest) -> Path | None:
        """A 0600 docker config with the credentials the builder needs (None: there are none).

        The registries the build touches, each once: the image's, the cache repository's and
        every registry the Dockerfile pulls from (``build_registries``). Only hosts a credential
        is bound to get an entry (``resolve_credential``, which asks a credential helper the
        runner set up for the host): any other gets none, and the builder talks to it
        anonymously. Helpers' answers are written as values, so the builder needs no helper.
        """
        hosts = build_registries(request)
        entries = {h: c for h in hosts if (c := resolve_credential(h, self.environ))}
        if not entries:
            return None
        write_docker_config(directory, entries)
        return directory

    def describe(self, plan: BuildPlan) -> list[str]:
        """The registry operations a plan implies (for --dry-run)."""
        repo = f"{self.ref.registry}/{self.ref.repository}"
        tags = ", ".join(plan.request.tags)
        if plan.strategy == "retag":
            return [f"GET manifest {plan.retag_from}", f"PUT manifest {repo} tags {tags}"]
        if plan.strategy == "rebase":
            return [
                f"GET manifest {plan.retag_from} and the base image's",
                f"mount or copy the base's new layers into {repo}, upload the config",
                f"PUT manifest by digest, then tags {tags}",
            ]
        if plan.strategy == "append":
            return [
                f"upload the new layers and the config to {repo} (those it lacks)",
                f"PUT manifest by digest, then tags {tags}",
            ]
        return [f"upload missing blobs to {repo}", f"PUT manifest by digest, then tags {tags}"]


def build_registries(request: BuildRequest) -> list[str]:
    """The registries a build of ``request`` talks to, sorted: the image's, the cache
    repository's, and those of the images its Dockerfile pulls (a reference that does not
    parse is left to the builder, which says what is wrong with it)."""
    hosts = {ImageRef.parse(request.image).registry, ImageRef.parse(request.cache_repo).registry}
    graph = parse_dockerfile(
        request.dockerfile.read_text(encoding="utf-8"),
        source=os.path.relpath(request.dockerfile, request.context),
        build_args=request.build_args,
        platform=request.platform,
    )
    for reference in pulled_images(graph, request.target):
        try:
            hosts.add(ImageRef.parse(reference).registry)
        except InputError:
            continue
    return sorted(hosts)

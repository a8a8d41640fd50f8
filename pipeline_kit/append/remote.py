"""The registry side of append: find the previous image by key, read it, publish the new one.

Reads: a manifest HEAD per candidate tag, the manifest and config of each candidate found,
the base image's manifest and config (once), and only the replaced layers a new layer needs
(``parents``). Writes: the blobs the registry lacks (HEAD first), the config, the manifest by
digest, then the tags; so no tag ever points at an incomplete image.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from functools import partial
from typing import Any

from pipeline_kit.adapters.registry.client import (
    HELD_LIMIT,
    Manifest,
    RegistryClient,
    in_parallel,
    started,
)
from pipeline_kit.adapters.registry.references import ImageRef, platform_entries, sha256_digest
from pipeline_kit.append import CannotAppend
from pipeline_kit.append.layer_tar import LayerBlob
from pipeline_kit.append.planner import AppendPlan, BaseImage, IndexAppendPlan, PreviousImage
from pipeline_kit.ci.trust import vouched
from pipeline_kit.detect.provenance import Provenance
from pipeline_kit.errors import KitError

SCRATCH = "scratch"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


class AppendRemote:
    def __init__(
        self,
        client: RegistryClient,
        repository: str,
        environ: Mapping[str, str],
        insecure_hosts: Collection[str],
    ) -> None:
        self.client = client
        self.repository = repository
        self.environ = environ
        self.insecure_hosts = insecure_hosts
        self._reading: dict[str, Callable[[], bytes]] = {}  # layers read ahead, by digest

    def find_previous(
        self,
        tags: Sequence[str],
        mine: Provenance,
        good_enough: int,
        manifests: Mapping[str, Manifest | None] | None = None,
        on_candidate: Callable[[str], None] | None = None,
    ) -> PreviousImage:
        """The recorded image sharing the longest prefix with ``mine``, among ``tags``.

        Candidates are tried in order; one that agrees on at least ``good_enough``
        instructions (all those below the target stage) ends the search. ``manifests``: what
        each tag holds, when already fetched. ``on_candidate`` hears of each candidate
        (``repository@digest``) before it is read.
        """
        if manifests is None:
            found_manifests = in_parallel(
                [partial(self.client.find_manifest, self.repository, tag) for tag in tags]
            )
            manifests = dict(zip(tags, found_manifests, strict=True))
        found: list[PreviousImage] = []
        seen: set[str] = set()
        refused: list[str] = []
        for tag in tags:
            manifest = manifests.get(tag)
            if manifest is None or manifest.digest in seen:
                continue
            seen.add(manifest.digest)
            if on_candidate is not None:
                on_candidate(f"{self.repository}@{manifest.digest}")
            previous = self._previous(tag, manifest)
            if isinstance(previous, str):
                refused.append(previous)
                continue
            found.append(previous)
            if mine.first_difference(previous.provenance) >= good_enough:
                break
        if not found:
            if refused:
                raise CannotAppend("no previous image to append to: " + "; ".join(refused))
            shown = ", ".join(tag[:15] + "…" for tag in tags) or "none"
            raise CannotAppend(f"no previous image recorded by pipeline-kit (looked for {shown})")
        return max(found, key=lambda image: mine.first_difference(image.provenance))

    def _previous(self, tag: str, manifest: Manifest) -> PreviousImage | str:
        """The image (or index) under ``tag`` as append reads it, or why it cannot be used."""
        if not manifest.is_index:
            return self._image(tag, manifest.digest, manifest)
        index = json.loads(manifest.raw)
        children: list[PreviousImage] = []
        for entry in platform_entries(index):
            child = self.client.get_manifest(self.repository, str(entry["digest"]))
            if child.is_index:
                return f"{self.repository}:{tag} is an index of indexes"
            image = self._image(tag, child.digest, child)
            if isinstance(image, str):
                return image
            children.append(image)
        if not children:
            return f"{self.repository}:{tag} is an index without images"
        first = children[0]
        return first._replace(digest=manifest.digest, index_body=index, children=tuple(children))

    def _image(self, tag: str, digest: str, manifest: Manifest) -> PreviousImage | str:
        body = json.loads(manifest.raw)
        body.setdefault("mediaType", manifest.media_type)
        self._read_ahead(body.get("layers") or [])
        config = json.loads(self.client.get_blob(self.repository, body["config"]["digest"]))
        labels = (config.get("config") or {}).get("Labels")
        if not vouched(tag, labels):
            return f"{tag} ({digest[:19]}) was not built by a protected ref"
        recorded = Provenance.from_labels(labels)
        if isinstance(recorded, str):
            return f"{tag} ({digest[:19]}): {recorded}"
        return PreviousImage(self.repository, digest, body, config, recorded)

    def base_image(self, reference: str, platform: Mapping[str, Any]) -> BaseImage:
        if reference == SCRATCH:
            return BaseImage(reference, None)
        ref = ImageRef.parse(reference)
        client = self.client
        if ref.registry != self.client.host:
            client = RegistryClient.connect(ref.registry, self.environ, self.insecure_hosts)
        try:
            manifest = client.get_manifest(ref.repository, ref.reference)
            body = json.loads(manifest.raw)
            if manifest.is_index:
                body = json.loads(
                    client.get_manifest(ref.repository, _platform_digest(body, platform)).raw
                )
            config = json.loads(client.get_blob(ref.repository, body["config"]["digest"]))
        except KitError as exc:
            raise CannotAppend(f"cannot read the base image {reference}: {exc.message}") from None
        rootfs = config.get("rootfs") or {}
        return BaseImage(
            reference,
            config,
            tuple(rootfs.get("diff_ids") or ()),
            len(config.get("history") or ()),
        )

    def _read_ahead(self, layers: Sequence[Mapping[str, Any]]) -> None:
        """Start reading the image's last layer beside its config: the plan reads the layers
        an append replaces, and an append replaces the last one (a round trip fewer in a row
        on a registry a network away). Only a small one: a layer read whole is in memory."""
        if not layers:
            return
        digest, size = str(layers[-1].get("digest", "")), int(layers[-1].get("size") or 0)
        if digest not in self._reading and 0 < size <= HELD_LIMIT:
            self._reading[digest] = started(partial(self.client.get_blob, self.repository, digest))

    def read_layers(self, descriptors: Sequence[Mapping[str, Any]]) -> list[bytes]:
        def read(digest: str) -> bytes:
            reading = self._reading.get(digest)
            return reading() if reading else self.client.get_blob(self.repository, digest)

        return in_parallel([partial(read, str(d["digest"])) for d in descriptors])

    def publish(
        self,
        plan: AppendPlan | IndexAppendPlan,
        tags: Sequence[str],
        on_manifest: Callable[[], None] | None = None,
    ) -> tuple[str, int]:
        """Upload what is missing, then the manifest by digest, then the tags.

        The blobs go up side by side, and so do the tags once the manifest is in: each
        request is a round trip of its own, and a code change has several tags. An index's
        layers go up once for all its platforms, then each platform's manifest, then the
        index. ``on_manifest`` is called once the image is in by digest, before its tags
        (whatever refers to the image, its attestations, may go up from then on).
        """
        plans = plan.children if isinstance(plan, IndexAppendPlan) else [plan]

        def upload_layer(layer: LayerBlob) -> int:
            sent = self.client.upload_missing_blob(
                self.repository, layer.spool.body(), layer.digest
            )
            return layer.size if sent else 0

        def upload_config(one: AppendPlan) -> int:  # new every time (it holds the creation time)
            self.client.upload_blob(
                self.repository, one.config_blob, one.manifest["config"]["digest"]
            )
            return len(one.config_blob)

        uploads: list[Callable[[], int]] = [partial(upload_config, one) for one in plans]
        uploads += [partial(upload_layer, layer) for layer in plan.new_layers]
        sent = sum(in_parallel(uploads))
        manifests = written(plan)
        for manifest in manifests:  # each platform's image before the index naming them
            self.client.put_manifest(
                self.repository, manifest.digest, manifest.raw, manifest.media_type
            )
            sent += len(manifest.raw)
        if on_manifest is not None:
            on_manifest()
        image = manifests[-1]
        in_parallel(
            [
                partial(self.client.put_manifest, self.repository, tag, image.raw, image.media_type)
                for tag in tags
            ]
        )
        return image.digest, sent + len(image.raw) * len(tags)


def written(plan: AppendPlan | IndexAppendPlan) -> list[Manifest]:
    """The manifests an append writes, in the order it writes them: the image's, or each
    platform's and then the new index (last: the one its tags name). Known before anything
    is sent, so what refers to the image can be made while it goes up."""
    plans = plan.children if isinstance(plan, IndexAppendPlan) else [plan]
    manifests = []
    for one in plans:
        raw = json.dumps(one.manifest, separators=(",", ":")).encode()
        media_type = str(one.manifest.get("mediaType") or OCI_MANIFEST)
        manifests.append(Manifest(media_type, sha256_digest(raw), raw))
    if isinstance(plan, IndexAppendPlan):
        raw, media_type = _new_index(plan, [(m.raw, m.media_type) for m in manifests])
        manifests.append(Manifest(media_type, sha256_digest(raw), raw))
    return manifests


def _new_index(plan: IndexAppendPlan, manifests: Sequence[tuple[bytes, str]]) -> tuple[bytes, str]:
    """The previous index with each platform's new manifest in its entry; its attestations,
    which describe the previous build, are left out."""
    assert plan.previous.index_body is not None
    index = dict(plan.previous.index_body)
    entries = []
    for entry, (raw, media_type) in zip(
        platform_entries(plan.previous.index_body), manifests, strict=True
    ):
        entries.append(
            {**entry, "mediaType": media_type, "digest": sha256_digest(raw), "size": len(raw)}
        )
    index["manifests"] = entries
    media_type = str(index.get("mediaType") or OCI_INDEX)
    return json.dumps(index, separators=(",", ":")).encode(), media_type


def _platform_digest(index: Mapping[str, Any], platform: Mapping[str, Any]) -> str:
    wanted = {k: platform.get(k) for k in ("os", "architecture") if platform.get(k)}
    for entry in index.get("manifests") or []:
        have = entry.get("platform") or {}
        if all(have.get(k) == v for k, v in wanted.items()) and (
            not platform.get("variant") or have.get("variant") == platform.get("variant")
        ):
            return str(entry["digest"])
    raise CannotAppend(f"the base image has no manifest for {wanted or 'this platform'}")

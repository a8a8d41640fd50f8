"""The registry side of rebase: read the image and the base as it is now, publish the result.

Reads: the image's manifest and config, the base reference's manifest (and the platform's, for
an index) and config. Writes: the base's new layers into the image's repository (mounted from
the base's repository on the same registry; copied from another registry, once), the config,
the manifest by digest, then the tags.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from functools import partial
from typing import Any

from pipeline_kit.adapters.registry.client import RegistryClient, in_parallel
from pipeline_kit.adapters.registry.references import ImageRef, sha256_digest
from pipeline_kit.errors import KitError
from pipeline_kit.rebase import CannotRebase
from pipeline_kit.rebase.planner import Image, NewBase, RebasePlan

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class RebaseRemote:
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

    def image(self, digest: str) -> Image:
        manifest = self.client.get_manifest(self.repository, digest)
        if manifest.is_index:
            raise CannotRebase(f"{self.repository}@{digest[:19]} is a multi-platform index")
        body = json.loads(manifest.raw)
        body.setdefault("mediaType", manifest.media_type)
        config = json.loads(self.client.get_blob(self.repository, body["config"]["digest"]))
        return Image(f"{self.repository}@{digest}", body, config)

    def _client_for(self, ref: ImageRef) -> RegistryClient:
        if ref.registry == self.client.host:
            return self.client
        return RegistryClient.connect(ref.registry, self.environ, self.insecure_hosts)

    def base(self, reference: str, platform: Mapping[str, Any]) -> NewBase:
        ref = ImageRef.parse(reference)
        client = self._client_for(ref)
        try:
            top = client.get_manifest(ref.repository, ref.reference)
            body = json.loads(top.raw)
            if top.is_index:
                child = _platform_digest(body, platform, reference)
                body = json.loads(client.get_manifest(ref.repository, child).raw)
            config = json.loads(client.get_blob(ref.repository, body["config"]["digest"]))
        except KitError as exc:
            raise CannotRebase(f"cannot read the base image {reference}: {exc.message}") from None
        return NewBase(reference, top.digest, body, config)

    def publish(self, plan: RebasePlan, tags: Sequence[str]) -> tuple[str, int]:
        """The base's layers first, then the config, the manifest by digest and the tags."""
        source = ImageRef.parse(plan.base.reference)
        base_client = self._client_for(source)

        def bring(layer: Mapping[str, Any]) -> int:
            digest = str(layer["digest"])
            if self.client.blob_exists(self.repository, digest):
                return 0
            if base_client is self.client and self.client.mount_blob(
                self.repository, digest, source.repository
            ):
                return 0
            data = base_client.get_blob(source.repository, digest)
            self.client.upload_blob(self.repository, data, digest)
            return len(data)

        def upload_config() -> int:
            config_digest = plan.manifest["config"]["digest"]
            self.client.upload_blob(self.repository, plan.config_blob, config_digest)
            return len(plan.config_blob)

        uploads: list[Callable[[], int]] = [upload_config]
        uploads += [partial(bring, layer) for layer in plan.base_layers]
        sent = sum(in_parallel(uploads))
        raw = json.dumps(plan.manifest, separators=(",", ":")).encode()
        media_type = str(plan.manifest.get("mediaType") or OCI_MANIFEST)
        digest = self.client.put_manifest(self.repository, sha256_digest(raw), raw, media_type)
        in_parallel(
            [partial(self.client.put_manifest, self.repository, t, raw, media_type) for t in tags]
        )
        return digest, sent + len(raw) * (1 + len(tags))


def _platform_digest(index: Mapping[str, Any], platform: Mapping[str, Any], reference: str) -> str:
    wanted = {k: platform.get(k) for k in ("os", "architecture", "variant") if platform.get(k)}
    for entry in index.get("manifests") or []:
        have = entry.get("platform") or {}
        if all(have.get(k) == v for k, v in wanted.items()):
            return str(entry["digest"])
    raise CannotRebase(f"the base image {reference} has no manifest for {wanted}")

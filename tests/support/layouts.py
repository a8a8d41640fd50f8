"""OCI image layouts as a builder leaves them, and registry clients for the tests."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipeline_kit.adapters.registry.client import RegistryClient, RetryPolicy
from pipeline_kit.adapters.registry.credentials import Credential
from tests.support.services.registry import RegistryServer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_layout(path: Path, layers: int = 4, size: int = 200_000, created: str = "") -> Path:
    """An OCI image layout with random layers, as a builder would leave it."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def blob(data: bytes) -> dict[str, Any]:
        digest = digest_of(data)
        (blobs / digest.split(":")[1]).write_bytes(data)
        return {"digest": digest, "size": len(data)}

    layer_descs = [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **blob(os.urandom(size))}
        for _ in range(layers)
    ]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": created or datetime.now(timezone.utc).isoformat(),
        "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in layer_descs]},
    }
    config_desc = {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        **blob(json.dumps(config).encode()),
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc,
        "layers": layer_descs,
    }
    raw = json.dumps(manifest).encode()
    desc = {"mediaType": OCI_MANIFEST, **blob(raw)}
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))
    return path


def client_for(
    server: RegistryServer | str, credential: Credential | None = None
) -> RegistryClient:
    host = server if isinstance(server, str) else server.host
    return RegistryClient(host, credential=credential, retry=RetryPolicy(base_delay=0.01))

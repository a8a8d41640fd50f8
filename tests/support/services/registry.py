"""A real OCI registry (Debian's docker-registry, CNCF distribution 2.8) on a free loopback port.

The registry is started with a config written for it (filesystem storage in a temp dir, deletes
enabled, optional auth section) and is ready when `GET /v2/` answers. Nothing is mocked.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.services import stop_process

READY_TIMEOUT_S = 20.0
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RegistryServer:
    """One registry process. `host` is `127.0.0.1:PORT`, the form image references use."""

    workdir: Path
    auth: dict[str, Any] | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "registry.log"

    def start(self) -> RegistryServer:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise RuntimeError(
                "docker-registry is not installed; run scripts/system-packages "
                "(apt-get install docker-registry)"
            )
        storage = self.workdir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(storage)},
                "delete": {"enabled": True},
            },
            "http": {"addr": self.host},
        }
        if self.auth:
            config["auth"] = self.auth
        config_path = self.workdir / "config.yml"
        # JSON is YAML: no YAML writer needed.
        config_path.write_text(json.dumps(config))
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [binary, "serve", str(config_path)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        delay = 0.02
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"docker-registry exited with {self.process.returncode}:\n"
                    + self.log_path.read_text(errors="replace")[-2000:]
                )
            try:
                urllib.request.urlopen(f"{self.url}/v2/", timeout=2).close()
                return
            except urllib.error.HTTPError as error:
                if error.code == 401:  # auth configured: up and answering
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"docker-registry did not answer on {self.url} in time")
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def has_manifest(self, repository: str, reference: str) -> bool:
        """Whether ``repository:reference`` exists (an anonymous HEAD)."""
        request = urllib.request.Request(
            f"{self.url}/v2/{repository}/manifests/{reference}",
            method="HEAD",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return False
            raise
        return True

    def stored_files(self) -> Iterator[tuple[Path, bytes]]:
        """Every file the registry keeps, gzip streams decompressed as far as they go.

        The registry is shared by a test session, so its ``_uploads`` may hold an upload that
        another test cut off on purpose: a gzip stream without its end. What such a part holds
        reached the registry all the same, so it is read up to where it stops, not skipped.
        """
        for path in sorted(self.workdir.rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                if data[:2] == b"\x1f\x8b":
                    data = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16).decompress(data)
                yield path, data

    def stop(self) -> None:
        stop_process(self.process, timeout=10)
        self.process = None


@contextlib.contextmanager
def running_registry(workdir: Path, auth: dict[str, Any] | None = None) -> Iterator[RegistryServer]:
    server = RegistryServer(workdir=workdir, auth=auth).start()
    try:
        yield server
    finally:
        server.stop()

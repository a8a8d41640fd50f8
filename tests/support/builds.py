"""Small busybox images the build tests share, and what they read back from the registry."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.support.gitrepo import GitRepo
from tests.support.services.registry import RegistryServer

BUSYBOX = Path("/usr/bin/busybox")

DOCKERFILE = """\
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN cat /proc/sys/kernel/random/uuid > /base-built

FROM base AS deps
COPY requirements.txt /app/requirements.txt
RUN cp /app/requirements.txt /deps-installed && cat /proc/sys/kernel/random/uuid > /deps-built

FROM deps AS code
COPY app/ /app/
CMD ["/bin/sh", "-c", "cat /app/main.txt"]
"""


# The smallest service append works on: busybox below, one `COPY app/` on top.
TWO_STAGES = """\
FROM scratch AS base
COPY busybox /bin/busybox

FROM base AS code
WORKDIR /srv
COPY app/ /srv/app/
CMD ["/bin/cat", "/srv/app/main.txt"]
"""


def busybox_repo(path: Path, files: Mapping[str, str]) -> GitRepo:
    """A git repository at ``path`` whose first commit holds busybox (for `COPY busybox`)
    and ``files``."""
    repo = GitRepo.init(path)
    shutil.copy(BUSYBOX, repo.path / "busybox")
    repo.commit(files)
    return repo


def manifest(registry: RegistryServer, repo: str, ref: str) -> dict[str, Any]:
    import urllib.request

    request = urllib.request.Request(
        f"{registry.url}/v2/{repo}/manifests/{ref}",
        headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json,"
            "application/vnd.docker.distribution.manifest.v2+json"
        },
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        data: dict[str, Any] = json.load(answer)
        data["_digest"] = answer.headers["Docker-Content-Digest"]
        return data


def layer_digests(registry: RegistryServer, repo: str, ref: str) -> list[str]:
    return [layer["digest"] for layer in manifest(registry, repo, ref)["layers"]]


def make_service(path: Path, registry: RegistryServer, repo: str, storage: Path) -> GitRepo:
    repo_dir = GitRepo.init(path)
    config = (
        f"image: {registry.host}/{repo}\n"
        "build:\n"
        "  builder: buildah\n"
        "  buildah:\n"
        "    storage_driver: vfs\n"
        f"    root: {storage}/root\n"
        f"    runroot: {storage}/runroot\n"
    )
    repo_dir.commit(
        {
            "pipeline-kit.yaml": config,
            "Dockerfile": DOCKERFILE,
            ".dockerignore": "docs/\n",
            "requirements.txt": "numpy==2.1.3\n",
            "app/main.txt": "hello v1\n",
            "docs/index.md": "# docs\n",
        },
        message="service",
    )
    shutil.copy(BUSYBOX, repo_dir.path / "busybox")
    repo_dir.commit(message="busybox")
    return repo_dir


# Two stages that do not build on each other: Kaniko deletes its root filesystem in between.
MULTI_STAGE = """\
FROM scratch AS tools
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "echo built > /tool"]

FROM scratch AS code
COPY busybox /bin/busybox
COPY --from=tools /tool /tool
COPY app/ /app/
"""

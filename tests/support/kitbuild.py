"""``pipeline-kit build`` on the busybox service, in-process with a chosen builder or as the CLI.

In-process builds go through ``commands.build.run`` unchanged, with one entry of ``BUILDERS``
replaced (the sandboxed Kaniko: the kit cannot start a Kaniko executor on this machine itself).
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from pipeline_kit.build.builders import BUILDERS
from pipeline_kit.build.builders.base import Builder
from pipeline_kit.commands.build import BuildOptions, run
from tests.support.builds import BUSYBOX, DOCKERFILE
from tests.support.gitrepo import GitRepo, cli
from tests.support.services.registry import RegistryServer


def busybox_service(
    path: Path,
    image: str,
    builder: str,
    *,
    dockerfile: str = DOCKERFILE,
    config: str = "",
    files: Mapping[str, str] | None = None,
) -> GitRepo:
    """The base/deps/code busybox service of tests/support/builds.py, committed, for ``builder``."""
    repo = GitRepo.init(path)
    shutil.copy(BUSYBOX, repo.path / "busybox")
    repo.commit(
        {
            "pipeline-kit.yaml": f"image: {image}\nbuild:\n  builder: {builder}\n{config}",
            "Dockerfile": dockerfile,
            ".dockerignore": "docs/\npk-*.yaml\n",
            "requirements.txt": "numpy==2.1.3\n",
            "app/main.txt": "hello v1\n",
            "docs/index.md": "# docs\n",
            **(files or {}),
        },
        message="service",
    )
    return repo


def build_in_process(
    repo: GitRepo,
    builder: Builder,
    *args: str,
    environ: Mapping[str, str] | None = None,
    config: Path | None = None,
) -> dict[str, Any]:
    """``build --format json`` through ``commands.build.run`` with ``builder`` for its name."""
    options: dict[str, Any] = {"extra_tags": (), "base": None}
    rest = list(args)
    while rest:
        flag = rest.pop(0)
        if flag == "--tag":
            options["extra_tags"] += (rest.pop(0),)
        elif flag == "--base":
            options["base"] = rest.pop(0)
        elif flag == "--strategy":
            options["strategy"] = rest.pop(0)
        elif flag == "--platform":
            options["platform"] = rest.pop(0)
        else:
            raise ValueError(f"build_in_process: unsupported flag {flag}")
    home = repo.path.parent / f"{repo.path.name}-home"
    home.mkdir(exist_ok=True)
    out, log = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(BUILDERS, builder.name, builder)
        code = run(
            BuildOptions(
                config_path=config,
                cwd=repo.path,
                format="json",
                environ={"HOME": str(home), **(environ or {})},
                **options,
            ),
            out,
            log,
        )
    assert code == 0, log.getvalue()[-3000:]
    record: dict[str, Any] = json.loads(out.getvalue())
    record["_stderr"] = log.getvalue()
    return record


def build_cli(
    repo: GitRepo, *args: str, env: Mapping[str, str] | None = None, config: str | None = None
) -> dict[str, Any]:
    """``pipeline-kit [--config FILE] build --format json`` as a separate process."""
    home = repo.path.parent / f"{repo.path.name}-home"
    home.mkdir(exist_ok=True)
    head = ("--config", config) if config else ()
    result = cli(
        *head,
        "build",
        "--format",
        "json",
        *args,
        cwd=repo.path,
        env={"HOME": str(home), **(env or {})},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record: dict[str, Any] = json.loads(result.stdout)
    record["_stderr"] = result.stderr
    return record


def manifest_with_auth(server: RegistryServer, repo: str, digest: str, password: str) -> bool:
    """Whether ``repo@digest`` is in the basic-auth registry (as user ``builder``)."""
    import base64
    import urllib.request

    token = base64.b64encode(f"builder:{password}".encode()).decode()
    request = urllib.request.Request(
        f"{server.url}/v2/{repo}/manifests/{digest}",
        headers={
            "Authorization": f"Basic {token}",
            "Accept": "application/vnd.oci.image.manifest.v1+json,"
            "application/vnd.docker.distribution.manifest.v2+json",
        },
        method="HEAD",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return bool(answer.headers["Docker-Content-Digest"] == digest)

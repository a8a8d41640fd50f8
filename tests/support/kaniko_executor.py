"""A Kaniko build request and stand-in executors for the Kaniko builder's unit tests: shell
scripts that leave a marker file when they run (no real executor runs outside its sandbox)."""

from __future__ import annotations

from pathlib import Path

from pipeline_kit.build.builders.base import BuildRequest

DIGEST = "sha256:" + "ab" * 32


def request(tmp_path: Path) -> BuildRequest:
    context = tmp_path / "context"
    context.mkdir(exist_ok=True)
    (context / "Dockerfile").write_text("FROM scratch\n")
    return BuildRequest(
        image="127.0.0.1:5000/kaniko/app",
        dockerfile=context / "Dockerfile",
        context=context,
        target=None,
        build_args={},
        labels={},
        tags=("v1",),
        cache_repo="127.0.0.1:5000/kaniko/app/cache",
        cache_ttl="336h",
    )


def script(path: Path, body: str) -> Path:
    """An executable shell script at ``path`` that writes its arguments to ``path.ran`` first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\necho "$@" > "{path}.ran"\n{body}\n')
    path.chmod(0o755)
    return path

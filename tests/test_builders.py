"""Builder command lines as tables of (config + change -> argv).

Kaniko's flag names are checked against the executor binary itself (its flag names are string
constants inside it; the binary is read, never run here). The buildah argv is run for real in
tests/test_build.py.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from pipeline_kit.builders import BUILDERS, choose_builder
from pipeline_kit.builders.base import BuildRequest
from pipeline_kit.builders.buildah import bud_argv, push_argv
from pipeline_kit.builders.kaniko import executor_argv
from pipeline_kit.errors import InputError

REQUEST = BuildRequest(
    image="registry.example.com/ml/llm",
    dockerfile=Path("/src/Dockerfile"),
    context=Path("/src"),
    target="code",
    build_args={"BASE_IMAGE": "nvidia/cuda:12.4.1-runtime-ubuntu22.04", "A": "1"},
    labels={"org.opencontainers.image.revision": "abc123", "dev.pipeline-kit.image-key": "k"},
    tags=("sha-abc1234", "pk-k"),
    cache_repo="registry.example.com/ml/llm/cache",
    cache_ttl="336h",
)


def kaniko_executor() -> Path:
    configured = os.environ.get("KANIKO_EXECUTOR")
    shared = Path(__file__).resolve().parents[2] / "shared" / "bin" / "kaniko" / "executor"
    path = Path(configured) if configured else shared
    if not path.is_file():
        pytest.skip(f"no Kaniko executor at {path} (set KANIKO_EXECUTOR)")
    return path


def test_kaniko_code_change_argv() -> None:
    argv = executor_argv(REQUEST, Path("/kaniko/work/digest"), "/kaniko/executor")
    assert argv == [
        "/kaniko/executor",
        "--context=dir:///src",
        "--dockerfile=/src/Dockerfile",
        "--destination=registry.example.com/ml/llm:sha-abc1234",
        "--destination=registry.example.com/ml/llm:pk-k",
        "--cache=true",
        "--cache-repo=registry.example.com/ml/llm/cache",
        "--cache-ttl=336h",
        "--cache-copy-layers=true",
        "--snapshot-mode=redo",
        "--skip-unused-stages=true",
        "--target=code",
        "--build-arg=A=1",
        "--build-arg=BASE_IMAGE=nvidia/cuda:12.4.1-runtime-ubuntu22.04",
        "--label=dev.pipeline-kit.image-key=k",
        "--label=org.opencontainers.image.revision=abc123",
        "--digest-file=/kaniko/work/digest",
        "--push-retry=3",
        "--image-download-retry=3",
    ]


@pytest.mark.parametrize(
    ("change", "present", "absent"),
    [
        (
            {"compressed_caching": False},
            ["--compressed-caching=false"],
            [],
        ),
        ({"cache_copy_layers": False}, ["--cache-copy-layers=false"], ["--cache-copy-layers=true"]),
        ({"target": None}, [], ["--target=code"]),
        (
            {"insecure_hosts": frozenset({"registry.example.com", "mirror.lan:5000"})},
            [
                "--insecure",
                "--insecure-pull",
                "--insecure-registry=mirror.lan:5000",
                "--insecure-registry=registry.example.com",
            ],
            [],
        ),
        (
            {"insecure_hosts": frozenset({"mirror.lan:5000"})},
            ["--insecure-registry=mirror.lan:5000"],
            ["--insecure", "--insecure-pull"],
        ),
        (
            {"push_retry": 5, "download_retry": 0},
            ["--push-retry=5", "--image-download-retry=0"],
            [],
        ),
    ],
)
def test_kaniko_argv_follows_the_request(
    change: dict[str, object], present: list[str], absent: list[str]
) -> None:
    import dataclasses

    argv = executor_argv(dataclasses.replace(REQUEST, **change), Path("/d"))  # type: ignore[arg-type]
    for flag in present:
        assert flag in argv
    for flag in absent:
        assert flag not in argv


def test_every_kaniko_flag_exists_in_the_executor() -> None:
    """Each flag name the kit can emit is compiled into the real executor (read, not run)."""
    import dataclasses

    binary = kaniko_executor().read_bytes()
    everything = dataclasses.replace(
        REQUEST,
        compressed_caching=False,
        cache_copy_layers=True,
        insecure_hosts=frozenset({"registry.example.com"}),
    )
    names = {
        re.match(r"--([a-z-]+)", arg).group(1) for arg in executor_argv(everything, Path("/d"))[1:]
    }  # type: ignore[union-attr]
    assert len(names) >= 18
    missing = sorted(name for name in names if name.encode() not in binary)
    assert missing == []
    assert b"no-such-flag-in-kaniko" not in binary  # the check can fail


def test_buildah_argv() -> None:
    import dataclasses

    request = dataclasses.replace(
        REQUEST,
        insecure_hosts=frozenset({"registry.example.com"}),
        volumes=("/etc/pip.conf:/etc/pip.conf:ro",),
        storage={"storage-driver": "vfs", "root": "/tmp/r", "runroot": "/tmp/rr"},
    )
    assert bud_argv(request, Path("/w/docker/config.json")) == [
        "buildah",
        "--storage-driver=vfs",
        "--root=/tmp/r",
        "--runroot=/tmp/rr",
        "bud",
        "--layers",
        "--isolation=chroot",
        "--file=/src/Dockerfile",
        "--target=code",
        "--build-arg=A=1",
        "--build-arg=BASE_IMAGE=nvidia/cuda:12.4.1-runtime-ubuntu22.04",
        "--label=dev.pipeline-kit.image-key=k",
        "--label=org.opencontainers.image.revision=abc123",
        "--cache-from=registry.example.com/ml/llm/cache",
        "--cache-to=registry.example.com/ml/llm/cache",
        "--tls-verify=false",
        "--volume=/etc/pip.conf:/etc/pip.conf:ro",
        "--authfile=/w/docker/config.json",
        "--tag=localhost/pipeline-kit/build:pk-k",
        "/src",
    ]
    assert push_argv(request, Path("/w/layout"), Path("/w/digest")) == [
        "buildah",
        "--storage-driver=vfs",
        "--root=/tmp/r",
        "--runroot=/tmp/rr",
        "push",
        "--digestfile=/w/digest",
        "localhost/pipeline-kit/build:pk-k",
        "oci:/w/layout",
    ]


def test_builders_registry() -> None:
    assert set(BUILDERS) == {"kaniko", "buildah"}
    assert choose_builder("buildah").name == "buildah"
    with pytest.raises(InputError, match="--builder docker: unknown builder"):
        choose_builder("docker")

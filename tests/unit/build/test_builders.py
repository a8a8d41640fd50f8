"""Builder command lines as tables of (config + change -> argv).

Kaniko's flags are checked against what the real executor's ``--help`` lists in
tests/integration/build/test_kaniko.py. The buildah argv is run for real in
tests/integration/build/test_build.py.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from pipeline_kit.build.builders import BUILDERS, choose_builder
from pipeline_kit.build.builders.base import BuildRequest
from pipeline_kit.build.builders.buildah import bud_argv, push_argv
from pipeline_kit.build.builders.kaniko import executor_argv
from pipeline_kit.errors import InputError
from tests.support.docs import doc

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
        ({"platform": "linux/arm64"}, ["--custom-platform=linux/arm64"], []),
        ({}, [], ["--custom-platform=linux/arm64"]),
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


def test_a_chosen_platform_reaches_every_builder() -> None:
    """The platform the kit expanded the Dockerfile for is the one the builder builds."""
    import dataclasses

    from pipeline_kit.build.builders.buildkit import buildctl_argv, buildx_argv

    chosen = dataclasses.replace(REQUEST, platform="linux/arm/v7")
    assert "--opt=platform=linux/arm/v7" in buildctl_argv(chosen, Path("/m"))
    assert "--platform=linux/arm/v7" in buildx_argv(chosen, Path("/m"))
    assert "--platform=linux/arm/v7" in bud_argv(chosen, None)
    for argv in (
        buildctl_argv(REQUEST, Path("/m")),
        buildx_argv(REQUEST, Path("/m")),
        bud_argv(REQUEST, None),
        executor_argv(REQUEST, Path("/d")),
    ):
        assert not any("platform" in arg for arg in argv)


def test_builders_registry() -> None:
    assert set(BUILDERS) == {"kaniko", "buildkit", "buildah"}
    assert choose_builder("buildah").name == "buildah"
    with pytest.raises(InputError, match="--builder docker: unknown builder"):
        choose_builder("docker")


def test_buildctl_argv() -> None:
    import dataclasses

    from pipeline_kit.build.builders.buildkit import buildctl_argv

    assert buildctl_argv(REQUEST, Path("/w/metadata.json")) == [
        "buildctl",
        "build",
        "--progress=plain",
        "--frontend=dockerfile.v0",
        "--local=context=/src",
        "--local=dockerfile=/src",
        "--opt=filename=Dockerfile",
        "--opt=target=code",
        "--opt=build-arg:A=1",
        "--opt=build-arg:BASE_IMAGE=nvidia/cuda:12.4.1-runtime-ubuntu22.04",
        "--opt=label:dev.pipeline-kit.image-key=k",
        "--opt=label:org.opencontainers.image.revision=abc123",
        '--output=type=image,"name=registry.example.com/ml/llm:sha-abc1234,'
        'registry.example.com/ml/llm:pk-k",push=true',
        "--import-cache=type=registry,ref=registry.example.com/ml/llm/cache:buildkit-code",
        "--export-cache=type=registry,ref=registry.example.com/ml/llm/cache:buildkit-code,mode=max",
        "--metadata-file=/w/metadata.json",
    ]
    plain = dataclasses.replace(
        REQUEST,
        target=None,
        dockerfile=Path("/src/docker/Dockerfile.gpu"),
        insecure_hosts=frozenset({"registry.example.com"}),
    )
    argv = buildctl_argv(plain, Path("/m"))
    assert "--local=dockerfile=/src/docker" in argv and "--opt=filename=Dockerfile.gpu" in argv
    assert not [arg for arg in argv if "target" in arg]
    assert argv[-4].endswith(",push=true,registry.insecure=true")
    assert argv[-3] == (
        "--import-cache=type=registry,ref=registry.example.com/ml/llm/cache:buildkit,"
        "registry.insecure=true"
    )
    assert argv[-2].endswith(",mode=max,registry.insecure=true")


@pytest.mark.parametrize(
    ("insecure", "image_insecure", "cache_insecure"),
    [
        ({"registry.example.com"}, True, False),
        ({"cache.lan:5000"}, False, True),
        (set(), False, False),
    ],
)
def test_buildkit_insecure_is_per_registry(
    insecure: set[str], image_insecure: bool, cache_insecure: bool
) -> None:
    import dataclasses

    from pipeline_kit.build.builders.buildkit import cache_specs, output_spec

    request = dataclasses.replace(
        REQUEST, cache_repo="cache.lan:5000/ml/llm-cache", insecure_hosts=frozenset(insecure)
    )
    assert output_spec(request).endswith("registry.insecure=true") is image_insecure
    assert all(s.endswith("registry.insecure=true") is cache_insecure for s in cache_specs(request))


# `docker buildx build` options, from docker/buildx docs/reference/buildx_build.md (the table
# its docs generator writes). No buildx can run here: the argv is checked against this list.
BUILDX_BUILD_FLAGS = frozenset(
    "add-host allow annotation attest build-arg build-context builder cache-from cache-to call "
    "cgroup-parent check debug detach file iidfile label load metadata-file network no-cache "
    "no-cache-filter output platform progress provenance pull push quiet root sbom secret "
    "server-config shm-size ssh tag target ulimit".split()
)


def test_buildx_argv_uses_only_documented_flags() -> None:
    from pipeline_kit.build.builders.buildkit import buildx_argv

    argv = buildx_argv(REQUEST, Path("/w/metadata.json"))
    assert argv[:3] == ["docker", "buildx", "build"] and argv[-1] == "/src"
    assert argv[3:-1] == [
        "--progress=plain",
        "--file=/src/Dockerfile",
        "--target=code",
        "--build-arg=A=1",
        "--build-arg=BASE_IMAGE=nvidia/cuda:12.4.1-runtime-ubuntu22.04",
        "--label=dev.pipeline-kit.image-key=k",
        "--label=org.opencontainers.image.revision=abc123",
        '--output=type=image,"name=registry.example.com/ml/llm:sha-abc1234,'
        'registry.example.com/ml/llm:pk-k",push=true',
        "--cache-from=type=registry,ref=registry.example.com/ml/llm/cache:buildkit-code",
        "--cache-to=type=registry,ref=registry.example.com/ml/llm/cache:buildkit-code,mode=max",
        "--metadata-file=/w/metadata.json",
        "--provenance=false",
    ]
    used = {re.match(r"--([a-z-]+)", arg).group(1) for arg in argv[3:-1]}  # type: ignore[union-attr]
    assert used <= BUILDX_BUILD_FLAGS
    assert "no-such-flag" not in BUILDX_BUILD_FLAGS  # the check can fail


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"HOME": "/home/runner"}, "/home/runner/.docker/buildx"),
        ({"HOME": "/h", "DOCKER_CONFIG": "/etc/docker-cfg"}, "/etc/docker-cfg/buildx"),
        ({"HOME": "/h", "BUILDX_CONFIG": "/opt/buildx"}, "/opt/buildx"),
    ],
)
def test_buildx_keeps_the_users_builders(environ: dict[str, str], expected: str) -> None:
    """The kit's DOCKER_CONFIG carries credentials; buildx state stays where the user has it."""
    from pipeline_kit.build.builders.buildkit import buildx_env

    env = buildx_env(Path("/tmp/pk/docker"), environ)
    assert env == {"DOCKER_CONFIG": "/tmp/pk/docker", "BUILDX_CONFIG": expected}
    assert buildx_env(None, environ) == {}


def test_every_buildctl_flag_exists_in_buildctl() -> None:
    """Each flag of the argv is in the real ``buildctl build --help`` (run: it is safe)."""
    import subprocess

    from pipeline_kit.build.builders.buildkit import buildctl_argv

    bin_dir = os.environ.get("BUILDKIT_BIN")
    if not bin_dir:
        pytest.skip("BUILDKIT_BIN is not set: no buildctl to ask (.ci/run sets it)")
    helptext = subprocess.run(
        [str(Path(bin_dir) / "buildctl"), "build", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    documented = set(re.findall(r"--([a-z][a-z-]+)", helptext))
    used = {
        re.match(r"--([a-z-]+)", arg).group(1)  # type: ignore[union-attr]
        for arg in buildctl_argv(REQUEST, Path("/m"))[2:]
    }
    assert len(used) == 8
    assert used <= documented
    assert "no-such-flag" not in documented


def test_the_flag_table_has_a_column_per_executor() -> None:
    text = doc("docs/build-strategies.md")
    header = next(line for line in text.splitlines() if line.startswith("| change (from"))
    assert "| Kaniko flags that matter |" in header and "| BuildKit flags that matter |" in header
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    start = rows.index(header)
    table = rows[start + 1 : start + 7]
    strategies = [row.split("|")[2].strip() for row in table]
    assert strategies[:2] == ["retag", "append"] and strategies[2:5] == ["builder"] * 3
    assert strategies[5].endswith("else builder")
    assert all(len(row.split("|")) == len(header.split("|")) for row in table)


def test_buildx_still_finds_user_installed_plugins(tmp_path: Path) -> None:
    from pipeline_kit.build.builders.buildkit import link_cli_plugins

    user = tmp_path / "home" / ".docker"
    (user / "cli-plugins").mkdir(parents=True)
    (user / "cli-plugins" / "docker-buildx").write_text("plugin")
    kit = tmp_path / "kit-docker"
    kit.mkdir()
    link_cli_plugins(kit, {"HOME": str(tmp_path / "home")})
    assert (kit / "cli-plugins" / "docker-buildx").read_text() == "plugin"
    link_cli_plugins(kit, {"HOME": str(tmp_path / "home")})  # twice is fine
    bare = tmp_path / "bare"
    bare.mkdir()
    link_cli_plugins(bare, {"HOME": str(tmp_path / "nobody")})
    assert not (bare / "cli-plugins").exists()

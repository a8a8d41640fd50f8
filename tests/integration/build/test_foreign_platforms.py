"""A RUN step of another architecture, on a machine that cannot run it, is refused before the
build: buildah, Kaniko and BuildKit would each fail at that step with ``exec format error``,
after building and pulling what comes before it.

This machine runs linux/amd64 and linux/386 programs and no emulator is registered (no
binfmt_misc handler), so linux/arm64 RUN steps cannot run here: the real buildah and the real
buildkitd (whose workers list linux/amd64 and linux/386 only) are asked to build Debian's arm64
busybox-static. A stage that starts ``FROM --platform=$BUILDPLATFORM`` runs natively, so the
same arm64 image built that way is not refused, and builds. The Kaniko case stops in the
kit before the executor is looked for, so it needs no sandbox.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pipeline_kit.adapters.emulator import probe_program, runs_programs_of
from pipeline_kit.adapters.registry.client import RegistryClient
from pipeline_kit.errors import ExitCode
from tests.support.builder_image import repository_copy
from tests.support.builds import BUSYBOX
from tests.support.example_image import CACHE
from tests.support.gitrepo import GitRepo, cli
from tests.support.kitbuild import build_cli
from tests.support.services.buildkitd import BuildkitDaemon
from tests.support.services.registry import RegistryServer

BUSYBOX_ARM64 = CACHE / "busybox-arm64"
# The arm64 image runs its own busybox: a RUN step as linux/arm64.
RUNS_TARGET = """\
FROM scratch
ARG TARGETARCH
COPY busybox-${TARGETARCH} /bin/busybox
RUN ["/bin/busybox", "mkdir", "/srv"]
"""
# The RUN step is in a stage of the build platform; the arm64 image only copies its output.
RUNS_NATIVELY = """\
FROM --platform=$BUILDPLATFORM scratch AS made
ARG BUILDARCH
COPY busybox-${BUILDARCH} /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "echo made on $BUILDARCH > /made.txt"]

FROM scratch
ARG TARGETARCH
COPY busybox-${TARGETARCH} /bin/busybox
COPY --from=made /made.txt /srv/made.txt
"""


def _registered_emulator(arch: str) -> bool:
    """Whether binfmt_misc has a handler for ``arch`` here (qemu-user-static names them
    qemu-<machine>)."""
    machine = {"arm64": "aarch64", "arm": "arm", "riscv64": "riscv64"}[arch]
    return Path(f"/proc/sys/fs/binfmt_misc/qemu-{machine}").exists()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer) -> dict[str, Any]:
    if not BUSYBOX_ARM64.is_file():
        pytest.fail(f"{BUSYBOX_ARM64} is missing: run scripts/test-images once (scripts/test does)")
    if _registered_emulator("arm64"):
        pytest.fail("an arm64 emulator is registered here: these tests need a machine without")
    root = tmp_path_factory.mktemp("foreign")
    storage = root / "storage"
    repo = GitRepo.init(root / "repo")
    for arch, binary in (("amd64", BUSYBOX), ("arm64", BUSYBOX_ARM64)):
        (repo.path / f"busybox-{arch}").write_bytes(binary.read_bytes())
        (repo.path / f"busybox-{arch}").chmod(0o755)
    buildah = (
        f"  builder: buildah\n  buildah:\n    storage_driver: vfs\n"
        f"    root: {storage}/root\n    runroot: {storage}/run\n"
    )
    files = {"Dockerfile": RUNS_TARGET, "native.Dockerfile": RUNS_NATIVELY}
    for name, builder in (("buildah", buildah), ("buildkit", "  builder: buildkit\n")):
        for case, dockerfile in (("runs", "Dockerfile"), ("native", "native.Dockerfile")):
            files[f"ci/{name}-{case}.yaml"] = (
                f"image: {registry.host}/foreign/{name}-{case}\n"
                f"dockerfile: ../{dockerfile}\ncontext: ..\nbuild:\n{builder}"
            )
    files["ci/kaniko-runs.yaml"] = (
        f"image: {registry.host}/foreign/kaniko-runs\ndockerfile: ../Dockerfile\ncontext: ..\n"
        "build:\n  builder: kaniko\n"
    )
    repo.commit({**files, ".dockerignore": "ci/\n"}, message="an image that runs its busybox")
    return {"repo": repo, "registry": registry, "client": RegistryClient(registry.host)}


def _refused(
    service: dict[str, Any], config: str, *args: str, env: dict[str, str] | None = None
) -> str:
    repo: GitRepo = service["repo"]
    result = cli("--config", config, "build", *args, cwd=repo.path, env=env or {})
    assert result.returncode == ExitCode.INFRA, result.stderr[-3000:]
    return result.stderr


# Go/OCI architecture -> qemu-user's program for it (Debian's qemu-user, scripts/system-packages)
QEMU = {
    "amd64": "qemu-x86_64",
    "386": "qemu-i386",
    "arm64": "qemu-aarch64",
    "arm": "qemu-arm",
    "riscv64": "qemu-riscv64",
    "ppc64le": "qemu-ppc64le",
    "s390x": "qemu-s390x",
}


@pytest.mark.parametrize("arch", sorted(QEMU))
def test_each_probe_is_a_program_of_its_architecture(arch: str, tmp_path: Path) -> None:
    """Each probe, run by qemu-user for its architecture (called by name: nothing is
    registered with the kernel), exits with the status it was made with; qemu refuses the
    program for any other architecture. ``file``'s magic would only read the header."""
    emulator = shutil.which(QEMU[arch])
    assert emulator, f"{QEMU[arch]} is missing: scripts/system-packages installs qemu-user"
    for status in (0, 42):
        program = tmp_path / f"exit-{arch}-{status}"
        program.write_bytes(probe_program(arch, status) or b"")
        program.chmod(0o755)
        assert subprocess.run([emulator, str(program)], timeout=30).returncode == status
    other = next(name for name in QEMU if name not in (arch, "386", "amd64"))
    assert (
        subprocess.run(
            [shutil.which(QEMU[other]) or "", str(program)], capture_output=True, timeout=30
        ).returncode
        != status
    )


def test_the_probe_answers_what_the_kernel_runs_here() -> None:
    """amd64 and 386 run natively on this machine; arm64 runs only through a registered
    emulator, and none is (the module's fixture checks that for the builds below)."""
    assert runs_programs_of("amd64") is True
    assert runs_programs_of("386") is True
    assert runs_programs_of("arm64") is _registered_emulator("arm64")
    assert runs_programs_of("mips64le") is None  # no probe for it: the build finds out


def test_buildah_refuses_an_arm64_run_step_before_building(service: dict[str, Any]) -> None:
    stderr = _refused(service, "ci/buildah-runs.yaml", "--platform", "linux/arm64")
    assert (
        "Dockerfile:4: RUN as linux/arm64: this machine does not run linux/arm64 programs" in stderr
    )
    assert "buildah would fail at this step with `exec format error`" in stderr
    assert "tonistiigi/binfmt --install arm64" in stderr
    assert "FROM --platform=$BUILDPLATFORM" in stderr
    assert "buildah: build" not in stderr  # the builder never started
    assert service["client"].list_tags("foreign/buildah-runs") == []


def test_buildah_builds_the_native_platform_of_the_same_dockerfile(service: dict[str, Any]) -> None:
    record = build_cli(service["repo"], config="ci/buildah-runs.yaml")
    assert record["strategy"] == "builder"


def test_buildah_builds_arm64_when_the_run_step_runs_natively(service: dict[str, Any]) -> None:
    record = build_cli(
        service["repo"], "--platform", "linux/arm64", config="ci/buildah-native.yaml"
    )
    config = _config(service, "foreign/buildah-native", record["digest"])
    assert config["architecture"] == "arm64"


def test_buildkit_refuses_a_platform_its_workers_do_not_list(
    service: dict[str, Any], buildkitd: BuildkitDaemon
) -> None:
    before = buildkitd.build_count()
    stderr = _refused(
        service,
        "ci/buildkit-runs.yaml",
        "--platforms",
        "linux/amd64,linux/arm64",
        env=buildkitd.env,
    )
    assert (
        "Dockerfile:4: RUN as linux/arm64: the BuildKit daemon does not run linux/arm64 programs"
        in stderr
    )
    assert buildkitd.build_count() == before  # the daemon was asked nothing but its workers


def test_buildkit_builds_both_when_the_run_step_runs_natively(
    service: dict[str, Any], buildkitd: BuildkitDaemon
) -> None:
    record = build_cli(
        service["repo"], "--platforms", "linux/amd64,linux/arm64",
        config="ci/buildkit-native.yaml", env=buildkitd.env,
    )  # fmt: skip
    assert sorted(record["children"]) == ["linux/amd64", "linux/arm64"]


def test_kaniko_refuses_an_arm64_run_step_before_the_executor(service: dict[str, Any]) -> None:
    stderr = _refused(service, "ci/kaniko-runs.yaml", "--platform", "linux/arm64")
    said = "Dockerfile:4: RUN as linux/arm64: this machine does not run linux/arm64 programs"
    assert f"{said}, so Kaniko would fail at this step" in stderr


def _config(service: dict[str, Any], repo: str, digest: str) -> dict[str, Any]:
    client: RegistryClient = service["client"]
    manifest = json.loads(client.get_manifest(repo, digest).raw)
    config: dict[str, Any] = json.loads(client.get_blob(repo, manifest["config"]["digest"]))
    return config


def test_the_builder_image_for_arm64_is_refused_here(
    tmp_path: Path, registry: RegistryServer
) -> None:
    """The Kaniko builder image bundles an interpreter and git of the platform it is for, so
    its base stage runs apt and pip as that platform: an arm64 builder image is made on an arm64
    runner or with an emulator, and here, with neither, the kit says so before building."""
    repo = repository_copy(tmp_path / "repo")
    config = repo.path / "images" / "kaniko" / "pipeline-kit.yaml"
    config.write_text(
        config.read_text().replace(
            "image: ghcr.io/pipeline-kit/kaniko", f"image: {registry.host}/kaniko"
        )
    )
    repo.commit(message="the builder image")
    dockerfile = (repo.path / "images" / "kaniko" / "Dockerfile").read_text().splitlines()
    first_run = next(n for n, line in enumerate(dockerfile, 1) if line.startswith("RUN "))
    result = cli(
        "--config", "images/kaniko/pipeline-kit.yaml", "build", "--platform", "linux/arm64",
        "--builder", "buildah", "--dry-run", cwd=repo.path,
    )  # fmt: skip
    assert result.returncode == ExitCode.INFRA, result.stderr[-3000:]
    assert (
        f"images/kaniko/Dockerfile:{first_run}: RUN as linux/arm64: this machine does not run "
        "linux/arm64 programs" in result.stderr
    )

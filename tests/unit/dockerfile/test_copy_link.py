"""``COPY --link``: Debian's buildah rejects it, so the kit refuses before buildah starts;
BuildKit and Kaniko build it. Real buildah, buildkitd and Kaniko executor throughout."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import urllib.error
from pathlib import Path
from typing import Any

import pytest

from pipeline_kit.build.builders.base import BuildRequest
from pipeline_kit.build.builders.buildah import BuildahBuilder, parse_version
from pipeline_kit.errors import InputError
from tests.support.builds import BUSYBOX, DOCKERFILE, manifest
from tests.support.gitrepo import GitRepo, cli
from tests.support.images import ImageReader, config_fields, image_config
from tests.support.kitbuild import build_cli, build_in_process, busybox_service
from tests.support.services.buildkitd import BuildkitDaemon
from tests.support.services.kaniko import KanikoSandbox
from tests.support.services.registry import RegistryServer

LINKED = DOCKERFILE.replace("COPY app/ /app/", "COPY --link app/ /app/")
LINK_LINE = LINKED.splitlines().index("COPY --link app/ /app/") + 1


def _buildah_config(storage: Path) -> str:
    return f"  buildah: {{storage_driver: vfs, root: {storage}/root, runroot: {storage}/run}}\n"


@pytest.mark.parametrize(
    "instruction",
    ["COPY --link busybox /bin/busybox", "COPY --link=false busybox /b", "ADD --link busybox /b"],
)
def test_debian_buildah_rejects_any_link_flag(tmp_path: Path, instruction: str) -> None:
    """The premise of the pre-check, on the buildah this machine has (1.28)."""
    assert BuildahBuilder().version() < (1, 41)  # type: ignore[operator]
    shutil.copy(BUSYBOX, tmp_path / "busybox")
    (tmp_path / "Dockerfile").write_text(f"FROM scratch\n{instruction}\n")
    storage = ["--storage-driver=vfs", f"--root={tmp_path}/s", f"--runroot={tmp_path}/r"]
    proc = subprocess.run(
        ["buildah", *storage, "bud", "--isolation=chroot", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "only supports the --chmod=<permissions>" in proc.stderr


def test_build_refuses_link_before_buildah_runs(tmp_path: Path, registry: RegistryServer) -> None:
    storage = tmp_path / "storage"
    repo = busybox_service(
        tmp_path / "repo",
        f"{registry.host}/link/refused",
        "buildah",
        dockerfile=LINKED,
        config=_buildah_config(storage),
    )
    for args in ([], ["--dry-run"]):
        result = cli("build", *args, cwd=repo.path)
        assert result.returncode == 2, result.stderr
        assert f"Dockerfile:{LINK_LINE}: COPY --link: buildah 1.28" in result.stderr
        assert "Build with --builder buildkit or kaniko" in result.stderr
        assert "Traceback" not in result.stderr
    assert not storage.exists()  # buildah never started
    with pytest.raises(urllib.error.HTTPError, match="404"):
        manifest(registry, "link/refused", "main")


def test_link_only_in_a_stage_the_target_skips_builds(
    tmp_path: Path, registry: RegistryServer
) -> None:
    image = f"{registry.host}/link/unused"
    config = f"image: {image}\ntarget: code\nbuild:\n  builder: buildah\n"
    repo = busybox_service(
        tmp_path / "repo",
        image,
        "buildah",
        dockerfile="FROM scratch AS code\nCOPY app/ /app/\n\nFROM code AS debug\n"
        "COPY --link app/ /debug/\n",
        files={"pipeline-kit.yaml": config + _buildah_config(tmp_path / "storage")},
    )
    record = build_cli(repo)
    assert record["builder"] == "buildah" and record["digest"].startswith("sha256:")


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("buildah version 1.28.2 (image-spec 1.1.0-rc2, runtime-spec 1.0.2-dev)\n", (1, 28, 2)),
        ("buildah version 1.41.0 (image-spec 1.1.1, runtime-spec 1.2.1)", (1, 41, 0)),
        ("buildah version 1.42", (1, 42)),
        ("no version here", None),
    ],
)
def test_parse_buildah_version(text: str, version: tuple[int, ...] | None) -> None:
    assert parse_version(text) == version


def test_a_buildah_that_accepts_link_is_not_stopped(tmp_path: Path) -> None:
    """The gate is the version: 1.41 passes, 1.40 does not (the probe itself runs above)."""

    class Buildah(BuildahBuilder):
        def __init__(self, version: tuple[int, ...]) -> None:
            self._version = version

        def version(self) -> tuple[int, ...] | None:
            return self._version

    (tmp_path / "Dockerfile").write_text(LINKED)
    request = BuildRequest(
        image="r/x",
        dockerfile=tmp_path / "Dockerfile",
        context=tmp_path,
        target=None,
        build_args={},
        labels={},
        tags=("t",),
        cache_repo="r/x/cache",
        cache_ttl="1h",
    )
    Buildah((1, 41, 0)).preflight(request)
    with pytest.raises(InputError, match=f"Dockerfile:{LINK_LINE}: COPY --link: buildah 1.40.9"):
        Buildah((1, 40, 9)).preflight(request)
    Buildah((1, 28, 2)).preflight(dataclasses.replace(request, target="deps"))  # code not built


def test_buildkit_and_kaniko_build_copy_link(
    tmp_path: Path, registry: RegistryServer, buildkitd: BuildkitDaemon, kaniko: KanikoSandbox
) -> None:
    for builder in ("buildkit", "kaniko"):
        repo = busybox_service(
            tmp_path / builder, f"{registry.host}/link/{builder}", builder, dockerfile=LINKED
        )
        if builder == "buildkit":
            record = build_cli(repo, env=buildkitd.env)
        else:
            record = build_in_process(repo, kaniko.builder())
        assert manifest(registry, f"link/{builder}", "main")["_digest"] == record["digest"]


def test_append_treats_copy_link_as_each_builder_built_it(
    tmp_path: Path, registry: RegistryServer, buildkitd: BuildkitDaemon, kaniko: KanikoSandbox
) -> None:
    """A code change under ``COPY --link``, appended onto a BuildKit and a Kaniko image, equals
    that builder's own build of the same commit: files, owners, modes and config."""
    reader = ImageReader(tmp_path / "reader")

    def build(builder: str, repo: GitRepo, *args: str) -> dict[str, Any]:
        if builder == "buildkit":
            return build_cli(repo, *args, env=buildkitd.env)
        return build_in_process(repo, kaniko.builder(), *args)

    for builder in ("buildkit", "kaniko"):
        name = f"link/append-{builder}"
        repo = busybox_service(
            tmp_path / builder, f"{registry.host}/{name}", builder, dockerfile=LINKED
        )
        build(builder, repo)
        repo.commit({"app/main.txt": "hello v2\n", "app/new/deep.txt": "new\n"}, message="code")
        appended = build(builder, repo, "--strategy", "append")
        built = build(builder, repo, "--strategy", "builder")
        assert appended["strategy"] == "append" and built["strategy"] == "builder"
        images = [
            (
                reader.filesystem(f"{registry.host}/{name}@{record['digest']}"),
                config_fields(
                    image_config(registry.url, name, record["digest"]),
                    ("org.opencontainers.image.created",),
                ),
            )
            for record in (appended, built)
        ]
        assert images[0] == images[1], builder
        assert images[0][0]["/app/new/deep.txt"].kind == "file"

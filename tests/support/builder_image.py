"""The Kaniko builder image (images/kaniko), built by the kit once per session from stand-ins.

No Kaniko image can be pulled here, so the image is built FROM two stand-ins made offline:

- a Kaniko debug image: ``FROM scratch``, busybox-static in ``/busybox`` with its applets, the
  real executor from ``$KANIKO_EXECUTOR`` at ``/kaniko/executor`` (only a file in buildah's
  storage: nothing runs it there), the CA bundle, and the environment, volume, working directory
  and entrypoint of osscontainertools/kaniko's ``deploy/Dockerfile`` debug stage; like that
  image, no ``/tmp`` and no libc;
- a Debian bookworm Python: the mmdebstrap root filesystem of scripts/test-images with this
  machine's git added with its HTTP(S) transport and libcurl (a bookworm build),
  pushed as ``PYTHON_BASE`` (the container-job tests run the template's Python jobs in it);
  or, given an apt mirror, the bare bookworm root of scripts/test-images (no python3, no git)
  with an ``/etc/apt/sources.list`` that names the mirror and the ``/etc/pip.conf`` below,
  pushed as ``BARE_BASE``: the Dockerfile then installs git, python3 and python3-venv with apt,
  as on ``debian:bookworm-slim``, and the base carries its mirrors' settings as a user's would.

``pipeline-kit build`` builds images/kaniko with buildah from a copy of this repository, with
images/kaniko/pipeline-kit.yaml pointed at the test registry, and pip in the build reads the
wheelhouse scripts/test-images prepared from a package index on loopback (``index-url`` in
/etc/pip.conf: mounted into the RUN steps by ``build.buildah.volumes``, or in the bare base),
as it would read PyPI or a mirror of it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

from tests.support import REPO
from tests.support.builds import BUSYBOX
from tests.support.example_image import (
    BASE_TAR,
    CACHE,
    MissingTestImages,
    _buildah,
    fast_storage_driver,
    push_base,
    remove_storage,
)
from tests.support.gitrepo import GitRepo, cli
from tests.support.images import ImageReader, image_config, image_manifest
from tests.support.services.apt_mirror import AptMirror
from tests.support.services.kaniko import IMAGE_ENV
from tests.support.services.package_index import PackageIndex, make_index, project_name
from tests.support.services.registry import RegistryServer

IMAGE_DIR = REPO / "images" / "kaniko"
WHEELHOUSE = CACHE / "builder-wheelhouse"
BARE_TAR = CACHE / "bookworm-bare.tar"  # mmdebstrap minbase: apt, no python3, no git
DEBS = CACHE / "builder-debs"  # what apt installs on it for the Dockerfile
BUILD_TIMEOUT_S = 900
REPOSITORY = "pipeline-kit/kaniko"
KANIKO_BASE = "standin/kaniko:v1.28.3-debug"
PYTHON_BASE = "standin/python:bookworm-git"
BARE_BASE = "standin/debian:bookworm-mirror"

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
    python_base: str  # registry/standin/python:bookworm-git, the Python stand-in
    kaniko_dir: Path  # the image's /kaniko, copied out
    env: dict[str, str]  # the image's Env
    config: dict[str, Any]  # the image's config blob
    layers: list[dict[str, Any]]  # the manifest's layers
    standin_layers: int  # how many of them the stand-in Kaniko image has
    index_requested: list[str]  # the paths pip asked the package index for
    log: str  # pipeline-kit build's stderr: the builder's output


def pinned(*files: str) -> dict[str, str]:
    """Normalized project name -> version of the pins in images/kaniko's requirement ``files``."""
    pins = {}
    for name in files:
        for line in (IMAGE_DIR / name).read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                project, version = line.split("==")
                pins[re.sub(r"[-_.]+", "-", project).lower()] = version.strip()
    return pins


def wheels_fetched(requested: list[str]) -> dict[str, str]:
    """Normalized project name -> version of the wheels pip fetched from the package index."""
    names = (unquote(path).rsplit("/", 1)[-1] for path in requested if path.startswith("/files/"))
    return {project_name(name): name.split("-")[1] for name in names if name.endswith(".whl")}


def bundled(kaniko_dir: Path) -> dict[str, str]:
    """Normalized project name -> version of the packages in the image's deps/."""
    found = {}
    for info in (kaniko_dir / "pipeline-kit" / "deps").glob("*.dist-info"):
        project, version = info.name.removesuffix(".dist-info").split("-")
        found[re.sub(r"[-_.]+", "-", project).lower()] = version
    return found


def standin_kaniko(
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
    reference = f"{registry.host}/{KANIKO_BASE}"
    push = ("push", "--quiet", "--tls-verify=false", "localhost/standin-kaniko", reference)
    _buildah(storage, *push, driver=driver)
    return reference


def repository_copy(path: Path) -> GitRepo:
    """This repository's files as git sees them (committed or not, ignored ones left out)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    repo = GitRepo.init(path)
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, path / name)
    return repo


def _point_config_at(
    repo: GitRepo, registry: RegistryServer, storage: Path, driver: str, pip: Path | None
) -> None:
    """images/kaniko/pipeline-kit.yaml as it is, but for the test registry and buildah here."""
    path = repo.path / "images" / "kaniko" / "pipeline-kit.yaml"
    config = yaml.safe_load(path.read_text())
    config["image"] = f"{registry.host}/{REPOSITORY}"
    config["build"] = {
        "builder": "buildah",
        "buildah": {
            "storage_driver": driver,
            "root": str(storage / "root"),
            "runroot": str(storage / "run"),
            "volumes": [f"{pip}:/etc/pip.conf:ro"] if pip else [],
        },
    }
    path.write_text(yaml.safe_dump(config))


def git_files() -> dict[str, Path]:
    """This machine's git (a bookworm build) with its HTTP(S) transport and the libraries
    that needs (libcurl and the rest, which the mmdebstrap root lacks), as Debian's git
    package installs them; paths under /usr (bookworm's /lib is a link to usr/lib)."""
    git = Path(os.path.realpath(shutil.which("git") or "git"))
    remote_http = Path("/usr/lib/git-core/git-remote-http")
    files = {"/usr/bin/git": git, str(remote_http): remote_http}
    listed = subprocess.run(["ldd", str(remote_http)], capture_output=True, text=True, check=True)
    for path in re.findall(r"=> (/\S+) \(0x", listed.stdout):
        if not Path(path).name.startswith(("libc.so", "ld-linux")):
            target = "/usr" + path if path.startswith("/lib/") else path
            files[target] = Path(os.path.realpath(path))
    return files


def _bare_base(workdir: Path, registry: RegistryServer, mirror: AptMirror, pip: Path) -> str:
    """The bare bookworm root in ``registry``, its apt sources naming ``mirror`` alone, and
    ``pip`` as its /etc/pip.conf."""
    sources = workdir / "sources.list"
    sources.write_text(mirror.sources_line())
    files = {"/etc/apt/sources.list": sources, "/etc/pip.conf": pip}
    # Tagged with the mirror's port: a base pushed for another mirror names that one.
    return push_base(workdir, registry, f"{BARE_BASE}-{mirror.port}", files, BARE_TAR)


def offline_pip_files(workdir: Path) -> dict[str, Path]:
    """A pip configuration that installs from the builder wheelhouse alone, and the wheels:
    the files (path in the image -> file here) a Python stand-in carries for a builder that
    mounts nothing into RUN steps (BuildKit)."""
    (workdir / "pip.conf").write_text("[global]\nno-index = true\nfind-links = /wheels\n")
    wheels = {f"/wheels/{path.name}": path for path in sorted(WHEELHOUSE.glob("*.whl"))}
    return {"/etc/pip.conf": workdir / "pip.conf", **wheels}


@contextmanager
def standin_bases(
    workdir: Path, registry: RegistryServer, executor: Path, python: str, offline_pip: bool
) -> Iterator[tuple[str, str]]:
    """The two stand-ins in ``registry``: (Kaniko debug image, Python as ``python``), for the
    build arguments KANIKO_IMAGE and PYTHON_IMAGE. ``offline_pip``: the Python stand-in
    installs from the builder wheelhouse by itself (``offline_pip_files``)."""
    if not BASE_TAR.is_file() or not (WHEELHOUSE / ".requirements.sha256").is_file():
        raise MissingTestImages(
            f"no base root filesystem or builder wheelhouse in {CACHE}: run scripts/test-images"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    storage, driver = workdir / "storage", fast_storage_driver()
    try:
        kaniko_base = standin_kaniko(storage, driver, workdir, executor, registry)
        files = {**git_files(), **(offline_pip_files(workdir) if offline_pip else {})}
        yield kaniko_base, push_base(workdir, registry, python, files)
    finally:
        _buildah(storage, "rm", "--all", driver=driver)
        remove_storage(storage)


@contextmanager
def built_builder_image(
    workdir: Path, registry: RegistryServer, executor: Path, apt_mirror: AptMirror | None = None
) -> Iterator[BuiltBuilder]:
    """Build images/kaniko with the kit into ``registry``; its /kaniko copied out to
    ``workdir`` until the context ends. With ``apt_mirror``, FROM the bare base that installs
    python3 and git from it."""
    if not BASE_TAR.is_file() or not (WHEELHOUSE / ".requirements.sha256").is_file():
        raise MissingTestImages(
            f"no base root filesystem or builder wheelhouse in {CACHE}: run scripts/test-images"
        )
    if apt_mirror and not (BARE_TAR.is_file() and (DEBS / ".request.sha256").is_file()):
        raise MissingTestImages(
            f"no bare root filesystem or builder .debs in {CACHE}: run scripts/test-images"
        )
    index = PackageIndex(make_index(workdir / "index", sorted(WHEELHOUSE.glob("*.whl")))).start()
    # One storage for the stand-ins, the kit's build and the copy out: layers pushed from it
    # are not pulled into it again.
    workdir.mkdir(parents=True, exist_ok=True)
    storage, driver = workdir / "storage", fast_storage_driver()
    try:
        kaniko_base = standin_kaniko(storage, driver, workdir, executor, registry)
        pip = workdir / "pip.conf"
        pip.write_text(f"[global]\nindex-url = {index.url}\n")
        if apt_mirror:
            python_base = _bare_base(workdir, registry, apt_mirror, pip)
        else:
            python_base = push_base(workdir, registry, PYTHON_BASE, git_files())
        repo = repository_copy(workdir / "repo")
        _point_config_at(repo, registry, storage, driver, None if apt_mirror else pip)
        repo.commit(message="pipeline-kit")
        result = cli(
            "--config", "images/kaniko/pipeline-kit.yaml", "build", "--format", "json",
            "--build-arg", f"KANIKO_IMAGE={kaniko_base}",
            "--build-arg", f"PYTHON_IMAGE={python_base}",
            cwd=repo.path, timeout=BUILD_TIMEOUT_S,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-4000:]
        record = json.loads(result.stdout)
        reference = f"{registry.host}/{REPOSITORY}@{record['digest']}"
        kaniko_dir = workdir / "image-kaniko"
        ImageReader(storage, driver).copy_out(reference, "/kaniko", kaniko_dir)
        config = image_config(registry.url, REPOSITORY, record["digest"])
        env = dict(item.split("=", 1) for item in config["config"]["Env"])
        standin = image_manifest(registry.url, *KANIKO_BASE.split(":"))
        yield BuiltBuilder(
            record=record,
            reference=reference,
            python_base=python_base,
            kaniko_dir=kaniko_dir,
            env=env,
            config=config,
            layers=image_manifest(registry.url, REPOSITORY, record["digest"])["layers"],
            standin_layers=len(standin["layers"]),
            index_requested=index.requested,
            log=result.stderr,
        )
    finally:
        index.stop()
        _buildah(storage, "rm", "--all", driver=driver)  # no container left mounted
        remove_storage(storage)

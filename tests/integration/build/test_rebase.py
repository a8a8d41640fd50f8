"""rebase against the real builder: a base image rebuilt behind its tag, published without a build.

A small base image (busybox and a file that says its patch level) is pushed under a tag; a
service builds on it with buildah. The base is then rebuilt with the next patch level and
pushed under the same tag (a new digest, the same instructions). With ``build.rebase`` on,
the next build of the same commit publishes the image on the new base by registry operations
alone; buildah's full rebuild of the same commit (``--strategy builder``) must give the same
filesystem, read back through buildah's own extraction. Each refusal (the environment the
instructions ran with, another architecture, another history shape) is planned with
``--dry-run`` and names its reason; rebase off, a moved tag is retagged as before.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.builds import BUSYBOX
from tests.support.gitrepo import GitRepo, cli
from tests.support.images import ImageReader, image_config, image_manifest
from tests.support.services.registry import RegistryServer

BASE_REPO = "bases/tiny"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DOCKERFILE = """\
FROM {registry}/bases/tiny:stable
ENV APP_HOME=/srv/app
RUN echo built > /built && mkdir -p /srv/data
COPY app/ /srv/app/
CMD ["/bin/sh", "-c", "cat /srv/app/main.txt /etc/patch-level"]
"""


# -- base images, pushed as a registry has them ------------------------------------------------


def _tar(files: dict[str, bytes | str], links: dict[str, str] | None = None) -> bytes:
    """A layer: regular files (bytes, mode 755 for /bin) and symlinks, fixed times."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in sorted({str(Path(p).parent) for p in [*files, *(links or {})]}):
            info = tarfile.TarInfo(directory.lstrip("/"))
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(data), 0o755 if path.startswith("/bin/") else 0o644
            tar.addfile(info, io.BytesIO(data))
        for path, target in (links or {}).items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return out.getvalue()


def _send(method: str, url: str, data: bytes = b"", headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, data=data or None, method=method, headers=headers or {})
    return urllib.request.urlopen(request, timeout=30)


def _blob(registry: RegistryServer, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    location = _send("POST", f"{registry.url}/v2/{BASE_REPO}/blobs/uploads/").headers["Location"]
    location = location if "://" in location else registry.url + location
    joiner = "&" if "?" in location else "?"
    _send("PUT", f"{location}{joiner}digest={digest}", data,
          {"Content-Type": "application/octet-stream"})  # fmt: skip
    return digest


def push_base(
    registry: RegistryServer,
    patch: str,
    *,
    env: tuple[str, ...] = ("BASE_VERSION=1",),
    architecture: str = "amd64",
    extra_entry: bool = False,
) -> str:
    """The base under ``bases/tiny:stable``: busybox, then ``/etc/patch-level``; its digest."""
    tars = [
        _tar({"/bin/busybox": BUSYBOX.read_bytes()}, {"/bin/sh": "busybox"}),
        _tar({"/etc/patch-level": f"{patch}\n"}),
    ]
    history = [
        {"created_by": "/bin/sh -c #(nop) ADD file:busybox in / "},
        # A rebuilt base names its new file in the text: only the shape stays the same.
        {"created_by": f"/bin/sh -c #(nop) ADD file:{hashlib.sha256(tars[1]).hexdigest()} in /"},
        {"created_by": '/bin/sh -c #(nop)  CMD ["/bin/sh"]', "empty_layer": True},
    ]  # fmt: skip
    if extra_entry:
        history.insert(2, {"created_by": "/bin/sh -c #(nop)  LABEL extra=1", "empty_layer": True})
    config = {
        "architecture": architecture,
        "os": "linux",
        "config": {"Env": [PATH_ENV, *env], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(t).hexdigest()
                                                  for t in tars]},
        "history": history,
    }  # fmt: skip
    layers = []
    for data in tars:
        gz = gzip.compress(data, mtime=0)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                       "digest": _blob(registry, gz), "size": len(gz)})  # fmt: skip
    config_data = json.dumps(config).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": _blob(registry, config_data), "size": len(config_data)},
        "layers": layers,
    }).encode()  # fmt: skip
    _send("PUT", f"{registry.url}/v2/{BASE_REPO}/manifests/stable", manifest,
          {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})  # fmt: skip
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


# -- the service ----------------------------------------------------------------------------


def build(repo: GitRepo, *args: str) -> dict[str, Any]:
    result = cli("build", "--format", "json", *args, cwd=repo.path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    record: dict[str, Any] = json.loads(result.stdout)
    record["_log"] = result.stderr
    return record


@dataclass(frozen=True)
class Rebased:
    registry: RegistryServer
    repo: GitRepo
    image: str  # registry/repository, no tag
    first: dict[str, Any]  # buildah's build on patch 1
    rebased: dict[str, Any]  # the same commit on patch 2, by rebase
    rebuilt: dict[str, Any]  # the same commit on patch 2, by buildah
    new_base: str  # patch 2's digest
    reader: ImageReader


@pytest.fixture(scope="module")
def rebased(registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> Rebased:
    work = tmp_path_factory.mktemp("rebase")
    storage = work / "storage"
    push_base(registry, "patch 1")
    repo = GitRepo.init(work / "service")
    repository = "rebase/service"
    repo.commit({
        "pipeline-kit.yaml": (
            f"image: {registry.host}/{repository}\nbuild:\n  builder: buildah\n  rebase: true\n"
            f"  buildah:\n    storage_driver: vfs\n    root: {storage}/root\n"
            f"    runroot: {storage}/run\n"
        ),
        "Dockerfile": DOCKERFILE.format(registry=registry.host),
        "app/main.txt": "hello\n",
    })  # fmt: skip
    first = build(repo)
    assert first["strategy"] == "builder", first["reason"]
    new_base = push_base(registry, "patch 2")
    again = build(repo)
    rebuilt = build(repo, "--strategy", "builder")
    reader = ImageReader(work / "reader")
    return Rebased(registry, repo, f"{registry.host}/{repository}", first, again, rebuilt,
                   new_base, reader)  # fmt: skip


def test_a_rebuilt_base_is_published_under_the_image_by_registry_operations(
    rebased: Rebased,
) -> None:
    record, registry = rebased.rebased, rebased.registry
    assert record["strategy"] == "rebase", record["reason"] + record["_log"]
    assert f"{registry.host}/bases/tiny:stable is now {rebased.new_base[:19]}" in record["reason"]
    assert record["builder"] is None and "buildah" not in record["_log"]
    assert record["rebase"]["replaced_layers"] == 2 and record["rebase"]["base_layers"] == 2
    # Nothing of the image was sent again: the base's layers were mounted, the rest kept.
    assert record["bytes_uploaded"] < 16_000
    before = image_manifest(registry.url, "rebase/service", rebased.first["digest"])
    after = image_manifest(registry.url, "rebase/service", record["digest"])
    base = image_manifest(registry.url, "bases/tiny", rebased.new_base)
    assert [x["digest"] for x in after["layers"][:2]] == [x["digest"] for x in base["layers"]]
    assert after["layers"][2:] == before["layers"][2:]
    config = image_config(registry.url, "rebase/service", record["digest"])
    labels = config["config"]["Labels"]
    assert labels["org.opencontainers.image.base.name"] == f"{registry.host}/bases/tiny:stable"
    assert labels["org.opencontainers.image.base.digest"] == rebased.new_base
    assert after["annotations"]["org.opencontainers.image.base.digest"] == rebased.new_base
    old_config = image_config(registry.url, "rebase/service", rebased.first["digest"])
    base_config = image_config(registry.url, "bases/tiny", rebased.new_base)
    diff_ids = config["rootfs"]["diff_ids"]
    assert diff_ids[:2] == base_config["rootfs"]["diff_ids"]
    assert diff_ids[2:] == old_config["rootfs"]["diff_ids"][2:]
    assert config["history"][:3] == base_config["history"]
    assert config["history"][3:] == old_config["history"][3:]
    assert config["config"]["Env"] == old_config["config"]["Env"]


def test_the_rebased_filesystem_is_what_a_full_rebuild_makes(rebased: Rebased) -> None:
    image = rebased.image
    rebased_fs = rebased.reader.filesystem(f"{image}@{rebased.rebased['digest']}")
    rebuilt_fs = rebased.reader.filesystem(f"{image}@{rebased.rebuilt['digest']}")
    assert rebased.rebuilt["strategy"] == "builder"
    assert rebased.rebased["digest"] != rebased.rebuilt["digest"]  # a clock in the RUN layer
    assert rebased_fs == rebuilt_fs
    before = rebased.reader.filesystem(f"{image}@{rebased.first['digest']}")
    assert before["/etc/patch-level"] != rebased_fs["/etc/patch-level"]  # the patch is in


def test_an_unmoved_base_is_retagged_as_before(rebased: Rebased) -> None:
    record = build(rebased.repo)
    assert record["strategy"] == "retag"
    assert record["digest"] == rebased.rebuilt["digest"]


@pytest.mark.parametrize(
    ("base", "reason"),
    [
        ({"env": ("BASE_VERSION=2",)},
         "changes what the Dockerfile's instructions ran with: BASE_VERSION=2 (the image has 1)"),
        ({"architecture": "arm64"}, "is architecture 'arm64', the image 'amd64'"),
        ({"extra_entry": True},
         "history (4 entries) does not have the shape of the base the image was built on"),
    ],
)  # fmt: skip
def test_a_base_that_changed_more_than_its_content_is_built(
    rebased: Rebased, base: dict[str, Any], reason: str
) -> None:
    push_base(rebased.registry, "patch 3", **base)
    try:
        record = build(rebased.repo, "--dry-run")
    finally:
        push_base(rebased.registry, "patch 2")  # back to what the other tests expect
    assert record["strategy"] == "builder"
    assert record["fallback"].startswith("not rebased: ")
    assert reason in record["fallback"], record["fallback"]
    assert f"pipeline-kit: {record['fallback']}" in record["_log"]


def test_with_rebase_off_a_moved_base_tag_is_retagged(rebased: Rebased) -> None:
    config = (rebased.repo.path / "pipeline-kit.yaml").read_text()
    rebased.repo.commit({"pipeline-kit.yaml": config.replace("  rebase: true\n", "")})
    push_base(rebased.registry, "patch 3")
    try:
        record = build(rebased.repo, "--dry-run")
    finally:
        push_base(rebased.registry, "patch 2")
    assert record["strategy"] == "retag"


def test_podman_runs_the_rebased_image_on_the_patched_base(
    rebased: Rebased, tmp_path: Path
) -> None:
    """podman (runc, vfs, a private root; environment.md) pulls the rebased image into an
    empty store and runs it: the CMD reads the app and the patched file."""
    conf = tmp_path / "containers.conf"
    conf.write_text('[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\n')
    runroot = Path(tempfile.mkdtemp(prefix="pk-run-"))  # podman wants it under 50 characters
    argv = [
        "podman", f"--root={tmp_path / 'root'}", f"--runroot={runroot}",
        "--storage-driver=vfs", "--runtime=runc", "run", "--rm", "--network=host",
        "--tls-verify=false", f"{rebased.image}@{rebased.rebased['digest']}",
    ]  # fmt: skip
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "CONTAINERS_CONF": str(conf)})  # fmt: skip
    finally:
        shutil.rmtree(runroot, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == ["hello", "patch 2"]

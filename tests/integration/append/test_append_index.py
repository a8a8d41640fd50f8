"""append where an index is involved: a multi-platform base image, and a previous image that is
itself an index.

The base is an OCI image index in the test registry with two children, arm64 listed first and
amd64 second, each one layer and a config of its platform (the arm64 child is never run). A
service ``FROM`` that index is built by buildah (which takes the amd64 child on this machine),
then a code change is appended: append must read the base through the child of the previous
image's platform, not the first one listed. A base index with no child for that platform goes to
the builder, and the build says why. A previous image recorded as an index is appended to per
platform, into a new index; one whose other platform's image does not sit on that platform's
base goes to the builder, naming the platform.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from pipeline_kit.adapters.registry.client import RegistryClient
from pipeline_kit.adapters.registry.references import sha256_digest
from tests.support.gitrepo import GitRepo, cli
from tests.support.images import image_config, image_manifest
from tests.support.services.registry import RegistryServer

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

DOCKERFILE = """\
FROM {base} AS code
WORKDIR /srv
COPY app/ /srv/app/
CMD ["/bin/cat", "/srv/app/main.txt"]
"""


class Child:
    """One platform's image of the base index, as pushed."""

    def __init__(self, client: RegistryClient, repo: str, architecture: str) -> None:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as archive:
            for name, data in {"etc/arch": f"{architecture}\n".encode()}.items():
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
                archive.addfile(info, io.BytesIO(data))
        layer = gzip.compress(raw.getvalue(), mtime=0)
        self.diff_id = sha256_digest(raw.getvalue())
        self.layer_digest = sha256_digest(layer)
        config = {
            "architecture": architecture,
            "os": "linux",
            "config": {"Env": ["PATH=/usr/bin:/bin"], "Labels": {"base.arch": architecture}},
            "rootfs": {"type": "layers", "diff_ids": [self.diff_id]},
            "history": [{"created_by": f"the {architecture} base layer"}],
        }
        raw_config = json.dumps(config).encode()
        client.upload_blob(repo, layer, self.layer_digest)
        client.upload_blob(repo, raw_config, sha256_digest(raw_config))
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": sha256_digest(raw_config),
                "size": len(raw_config),
            },
            "layers": [{"mediaType": OCI_LAYER, "digest": self.layer_digest, "size": len(layer)}],
        }
        raw_manifest = json.dumps(manifest).encode()
        self.digest = client.put_manifest(
            repo, sha256_digest(raw_manifest), raw_manifest, OCI_MANIFEST
        )
        self.descriptor = {
            "mediaType": OCI_MANIFEST,
            "digest": self.digest,
            "size": len(raw_manifest),
            "platform": {"architecture": architecture, "os": "linux"},
        }


def push_index(client: RegistryClient, repo: str, tag: str, children: list[Child]) -> str:
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [child.descriptor for child in children],
    }
    raw = json.dumps(index).encode()
    return client.put_manifest(repo, tag, raw, OCI_INDEX)


def wrap_in_index(
    client: RegistryClient,
    source: str,
    digest: str,
    target: str,
    tags: list[str],
    *,
    posing_as_arm64: bool = False,
) -> None:
    """Copy ``source@digest`` into ``target`` as the only child of an index pushed under ``tags``
    (what a multi-platform build of the same Dockerfile would have recorded). ``posing_as_arm64``
    adds a second child: the same image with a config that says arm64, which does not sit on
    the base's arm64 image."""
    manifest = json.loads(client.get_manifest(source, digest).raw)
    for blob in [manifest["config"], *manifest["layers"]]:
        assert client.mount_blob(target, blob["digest"], source)
    raw = client.get_manifest(source, digest).raw
    child = client.put_manifest(target, digest, raw, manifest["mediaType"])
    entries = [
        {
            "mediaType": manifest["mediaType"],
            "digest": child,
            "size": len(raw),
            "platform": {"architecture": "amd64", "os": "linux"},
        }
    ]
    if posing_as_arm64:
        config = json.loads(client.get_blob(source, manifest["config"]["digest"]))
        raw_config = json.dumps({**config, "architecture": "arm64"}).encode()
        client.upload_blob(target, raw_config, sha256_digest(raw_config))
        arm_manifest = {
            **manifest,
            "config": {
                **manifest["config"],
                "digest": sha256_digest(raw_config),
                "size": len(raw_config),
            },
        }
        raw_arm = json.dumps(arm_manifest).encode()
        arm = client.put_manifest(target, sha256_digest(raw_arm), raw_arm, manifest["mediaType"])
        entries.append(
            {
                "mediaType": manifest["mediaType"],
                "digest": arm,
                "size": len(raw_arm),
                "platform": {"architecture": "arm64", "os": "linux"},
            }
        )
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    raw_index = json.dumps(index).encode()
    for tag in tags:
        client.put_manifest(target, tag, raw_index, OCI_INDEX)


def _config(registry: RegistryServer, repo: str, storage: Path, relative: bool) -> str:
    paths = "dockerfile: ../Dockerfile\ncontext: ..\n" if relative else ""
    return (
        f"image: {registry.host}/{repo}\n{paths}"
        f"build:\n  builder: buildah\n  buildah:\n    storage_driver: vfs\n"
        f"    root: {storage}/root\n    runroot: {storage}/run\n"
    )


def _build(repo: GitRepo, *args: str) -> dict[str, Any]:
    result = cli(*args, "build", "--format", "json", cwd=repo.path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    record: dict[str, Any] = json.loads(result.stdout)
    record["_stderr"] = result.stderr
    return record


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("append-index")
    storage = root / "storage"
    client = RegistryClient(registry.host)
    arm64 = Child(client, "mp/base", "arm64")
    amd64 = Child(client, "mp/base", "amd64")
    index = push_index(client, "mp/base", "multi", [arm64, amd64])
    # The same amd64 child is not in this one: only arm64 and s390x.
    s390x = Child(client, "mp/base", "s390x")
    push_index(client, "mp/base", "elsewhere", [arm64, s390x])

    repo = GitRepo.init(root / "repo")
    repo.commit(
        {
            "Dockerfile": DOCKERFILE.format(base=f"{registry.host}/mp/base:multi"),
            ".dockerignore": "ci/\n",
            "app/main.txt": "v1\n",
            "pipeline-kit.yaml": _config(registry, "mp/svc", storage, False),
            "ci/wrapped.yaml": _config(registry, "mp/wrapped", storage, True),
            "ci/posing.yaml": _config(registry, "mp/posing", storage, True),
        },
        message="service",
    )
    start = repo.head()
    cold = _build(repo)
    recorded = [tag for tag in cold["tags"] if tag.startswith("pk-")]
    wrap_in_index(client, "mp/svc", cold["digest"], "mp/wrapped", recorded)
    wrap_in_index(client, "mp/svc", cold["digest"], "mp/posing", recorded, posing_as_arm64=True)
    return {
        "repo": repo,
        "start": start,
        "cold": cold,
        "index": index,
        "amd64": amd64,
        "arm64": arm64,
        "registry": registry,
    }


def _branch(service: dict[str, Any], name: str, files: dict[str, str]) -> GitRepo:
    repo: GitRepo = service["repo"]
    repo.git("checkout", "-q", "-B", name, service["start"])
    repo.commit({"app/main.txt": f"{name}\n", **files}, message=name)
    return repo


def test_buildah_built_on_the_amd64_child(service: dict[str, Any]) -> None:
    cold, amd64 = service["cold"], service["amd64"]
    assert (cold["strategy"], cold["builder"]) == ("builder", "buildah")
    config = image_config(service["registry"].url, "mp/svc", cold["digest"])
    assert config["architecture"] == "amd64"
    assert config["rootfs"]["diff_ids"][0] == amd64.diff_id
    assert config["config"]["Labels"]["base.arch"] == "amd64"


def test_a_code_change_appends_onto_the_previous_image_s_platform(service: dict[str, Any]) -> None:
    registry, amd64, arm64 = service["registry"], service["amd64"], service["arm64"]
    repo = _branch(service, "code-change", {})
    record = _build(repo)
    assert record["strategy"] == "append", record["_stderr"][-2000:]
    assert record["previous"] == f"mp/svc@{service['cold']['digest']}"
    assert record["append"]["kept_layers"] == 1  # the base's amd64 layer, as buildah kept it
    previous = image_manifest(registry.url, "mp/svc", service["cold"]["digest"])
    appended = image_manifest(registry.url, "mp/svc", record["digest"])
    assert appended["layers"][0] == previous["layers"][0]
    config = image_config(registry.url, "mp/svc", record["digest"])
    assert config["architecture"] == "amd64"
    assert config["rootfs"]["diff_ids"][0] == amd64.diff_id
    assert arm64.diff_id not in config["rootfs"]["diff_ids"]
    # The base's own history entry stays first, the change's COPY is the new layer.
    assert config["history"][0]["created_by"] == "the amd64 base layer"


def test_a_base_index_without_the_platform_goes_to_the_builder(service: dict[str, Any]) -> None:
    """The base tag now names an index with no amd64 child (its publisher dropped it): a code
    change, which append would publish, has nothing to read the base's config through."""
    client = RegistryClient(service["registry"].host)
    repo = _branch(service, "no-platform", {})
    push_index(client, "mp/base", "multi", [service["arm64"]])
    try:
        refused = cli("build", "--strategy", "append", cwd=repo.path)
        planned = cli("build", "--dry-run", "--format", "json", cwd=repo.path)
    finally:
        push_index(client, "mp/base", "multi", [service["arm64"], service["amd64"]])
    assert refused.returncode == 1, refused.stderr
    reason = "the base image has no manifest for {'os': 'linux', 'architecture': 'amd64'}"
    assert f"append cannot publish this change: {reason}" in refused.stderr
    assert planned.returncode == 0, planned.stderr
    record = json.loads(planned.stdout)
    assert (record["strategy"], record["builder"], record["fallback"]) == (
        "builder",
        "buildah",
        reason,
    )
    assert f"not appended: {reason}" in planned.stderr


def test_a_previous_image_recorded_as_an_index_is_appended_per_platform(
    service: dict[str, Any],
) -> None:
    """The change goes into the index's image, on that platform's base, and a new index
    names it: the record gives the index's digest and its platform's image digest."""
    registry, amd64 = service["registry"], service["amd64"]
    repo = _branch(service, "wrapped", {})
    record = _build(repo, "--config", "ci/wrapped.yaml")
    assert record["strategy"] == "append", (record["reason"], record["fallback"])
    client = RegistryClient(registry.host)
    wrapped = client.get_manifest("mp/wrapped", f"pk-{service['cold']['image_key']}")
    assert record["previous"] == f"mp/wrapped@{wrapped.digest}"
    assert record["append"]["platforms"] == {"linux/amd64": service["cold"]["digest"]}
    index = client.get_manifest("mp/wrapped", record["digest"])
    assert index.media_type == OCI_INDEX
    (entry,) = json.loads(index.raw)["manifests"]
    assert record["children"] == {"linux/amd64": entry["digest"]}
    assert entry["platform"] == {"architecture": "amd64", "os": "linux"}
    config = image_config(registry.url, "mp/wrapped", entry["digest"])
    assert config["architecture"] == "amd64"
    assert config["rootfs"]["diff_ids"][0] == amd64.diff_id
    previous = image_manifest(registry.url, "mp/svc", service["cold"]["digest"])
    appended = image_manifest(registry.url, "mp/wrapped", entry["digest"])
    assert appended["layers"][:-1] == previous["layers"][:-1]


def test_an_index_whose_other_platform_does_not_fit_goes_to_the_builder(
    service: dict[str, Any],
) -> None:
    """Its arm64 image claims arm64 but holds the amd64 base's layer: append cannot put the
    change on the base's arm64 image under it, so with ``--strategy append`` that is exit 1
    naming the platform, and in auto mode buildah runs and the record says why."""
    repo = _branch(service, "posing", {})
    client = RegistryClient(service["registry"].host)
    index = client.get_manifest("mp/posing", f"pk-{service['cold']['image_key']}").digest
    reason = (
        f"mp/posing@{index} is a multi-platform index, and its linux/arm64 image cannot be "
        f"appended to: the base image {service['registry'].host}/mp/base:multi changed since "
        "the previous image was built"
    )
    refused = cli("--config", "ci/posing.yaml", "build", "--strategy", "append", cwd=repo.path)
    assert refused.returncode == 1, refused.stderr
    assert f"append cannot publish this change: {reason}" in refused.stderr
    assert "Traceback" not in refused.stderr

    record = _build(repo, "--config", "ci/posing.yaml")
    assert (record["strategy"], record["builder"], record["fallback"]) == (
        "builder",
        "buildah",
        reason,
    )
    assert f"not appended: {reason}" in record["_stderr"]
    built = image_manifest(service["registry"].url, "mp/posing", record["digest"])
    assert built["mediaType"] == OCI_MANIFEST

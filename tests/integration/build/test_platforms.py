"""Multi-platform images for real, without an emulator: linux/amd64 and linux/arm64.

The service's Dockerfile has only COPY, ENV and WORKDIR, so no step runs a binary of the other
architecture: each platform gets its own busybox-static (this machine's for amd64, Debian's
arm64 package, which scripts/test-images downloads, for arm64) by ``COPY busybox-${TARGETARCH}``.
BuildKit builds both in one run and pushes an index; buildah and Kaniko (in its sandbox) build
one per run, and ``merge`` puts the two children in an index. The arm64 child is never run (no
emulator is assumed): its content is read from the registry, layer by layer. The amd64 child is
run by podman from the index, which shows that the runner's platform is the one taken.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline_kit.adapters.registry.client import RegistryClient
from pipeline_kit.adapters.registry.references import sha256_digest
from tests.support.builds import BUSYBOX
from tests.support.example_image import CACHE, remove_storage
from tests.support.gitrepo import GitRepo, cli
from tests.support.kitbuild import build_cli, build_in_process
from tests.support.services.buildkitd import BuildkitDaemon
from tests.support.services.kaniko import KanikoSandbox
from tests.support.services.registry import RegistryServer

BUSYBOX_ARM64 = CACHE / "busybox-arm64"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKERFILE = """\
FROM scratch
ARG TARGETARCH
COPY busybox-${TARGETARCH} /bin/busybox
ENV PATH=/bin
WORKDIR /srv
COPY app/ /srv/app/
CMD ["/bin/busybox", "cat", "/srv/app/main.txt"]
"""
PLATFORMS = "platforms: [linux/amd64, linux/arm64]\n"


def _files(layer: bytes) -> dict[str, bytes]:
    """The regular files of a gzipped layer tar, by path."""
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as archive:
        return {
            member.name.lstrip("./"): archive.extractfile(member).read()  # type: ignore[union-attr]
            for member in archive.getmembers()
            if member.isfile()
        }


def _children(client: RegistryClient, repo: str, index_digest: str) -> dict[str, dict[str, Any]]:
    """Each platform's manifest, config and files, as the index in the registry lists them."""
    index = client.get_manifest(repo, index_digest)
    assert index.media_type == OCI_INDEX
    out = {}
    for entry in json.loads(index.raw)["manifests"]:
        platform = f"{entry['platform']['os']}/{entry['platform']['architecture']}"
        manifest = json.loads(client.get_manifest(repo, entry["digest"]).raw)
        config = json.loads(client.get_blob(repo, manifest["config"]["digest"]))
        files: dict[str, bytes] = {}
        for layer in manifest["layers"]:
            files.update(_files(client.get_blob(repo, layer["digest"])))
        out[platform] = {
            "digest": entry["digest"],
            "manifest": manifest,
            "config": config,
            "files": files,
        }
    return out


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer) -> dict[str, Any]:
    if not BUSYBOX_ARM64.is_file():
        pytest.fail(f"{BUSYBOX_ARM64} is missing: run scripts/test-images once (scripts/test does)")
    root = tmp_path_factory.mktemp("platforms")
    storage = root / "storage"
    repo = GitRepo.init(root / "repo")
    (repo.path / "busybox-amd64").write_bytes(BUSYBOX.read_bytes())
    (repo.path / "busybox-arm64").write_bytes(BUSYBOX_ARM64.read_bytes())
    for binary in ("busybox-amd64", "busybox-arm64"):
        (repo.path / binary).chmod(0o755)
    buildah = (
        f"image: {registry.host}/mp/merged\ndockerfile: ../Dockerfile\ncontext: ..\n{PLATFORMS}"
        "build:\n  builder: buildah\n"
        f"  buildah:\n    storage_driver: vfs\n    root: {storage}/root\n"
        f"    runroot: {storage}/run\n"
    )
    repo.commit(
        {
            "Dockerfile": DOCKERFILE,
            ".dockerignore": "ci/\n",
            "app/main.txt": "hello from the index\n",
            "pipeline-kit.yaml": f"image: {registry.host}/mp/svc\n{PLATFORMS}"
            "build:\n  builder: buildkit\n",
            "ci/buildah.yaml": buildah,
            "ci/kaniko.yaml": f"image: {registry.host}/mp/kaniko\ndockerfile: ../Dockerfile\n"
            f"context: ..\n{PLATFORMS}build:\n  builder: kaniko\n",
        },
        message="two-platform service",
    )
    return {"repo": repo, "registry": registry, "client": RegistryClient(registry.host)}


@pytest.fixture(scope="module")
def buildkit_index(service: dict[str, Any], buildkitd: BuildkitDaemon) -> dict[str, Any]:
    return build_cli(service["repo"], "--tag", "both", env=buildkitd.env)


def test_buildkit_builds_both_platforms_in_one_index(
    service: dict[str, Any], buildkit_index: dict[str, Any]
) -> None:
    record, client = buildkit_index, service["client"]
    assert (record["strategy"], record["builder"]) == ("builder", "buildkit")
    children = _children(client, "mp/svc", record["digest"])
    assert set(children) == {"linux/amd64", "linux/arm64"}
    assert record["children"] == {p: c["digest"] for p, c in children.items()}
    for platform, binary in (("linux/amd64", BUSYBOX), ("linux/arm64", BUSYBOX_ARM64)):
        child = children[platform]
        assert (child["config"]["os"], child["config"]["architecture"]) == tuple(
            platform.split("/")
        )
        assert child["files"]["bin/busybox"] == binary.read_bytes()
        assert child["files"]["srv/app/main.txt"] == b"hello from the index\n"
        assert child["config"]["config"]["WorkingDir"] == "/srv"
        assert len(child["manifest"]["layers"]) == 3  # busybox, WORKDIR /srv, app/
    # Every tag names the index itself.
    both = client.get_manifest("mp/svc", "both")
    assert (both.digest, both.media_type) == (record["digest"], OCI_INDEX)


def test_a_second_build_of_the_same_content_retags_the_index(
    service: dict[str, Any], buildkit_index: dict[str, Any], buildkitd: BuildkitDaemon
) -> None:
    """The index's record is believed like an image's: its children carry the trust label."""
    again = build_cli(service["repo"], "--tag", "again", env=buildkitd.env)
    assert again["strategy"] == "retag", again["_stderr"][-2000:]
    assert again["digest"] == buildkit_index["digest"]
    assert set(again["children"]) == {"linux/amd64", "linux/arm64"}


@pytest.fixture(scope="module")
def appended(
    service: dict[str, Any], buildkit_index: dict[str, Any], buildkitd: BuildkitDaemon
) -> dict[str, Any]:
    """A code change on a branch of its own, built after the index (the checkout goes back)."""
    repo: GitRepo = service["repo"]
    branch = repo.git("rev-parse", "--abbrev-ref", "HEAD")
    repo.git("checkout", "-q", "-b", "code-change")
    try:
        repo.commit({"app/main.txt": "hello v2\n"}, message="code change")
        return build_cli(repo, "--tag", "v2", env=buildkitd.env)
    finally:
        repo.git("checkout", "-q", branch)


def test_a_code_change_is_appended_to_every_platform_of_the_index(
    service: dict[str, Any], buildkit_index: dict[str, Any], appended: dict[str, Any]
) -> None:
    client = service["client"]
    assert appended["strategy"] == "append", (appended["reason"], appended["fallback"])
    assert appended["previous"] == f"mp/svc@{buildkit_index['digest']}"
    assert set(appended["append"]["platforms"]) == {"linux/amd64", "linux/arm64"}
    assert appended["append"]["new_layers"] == 1  # one code layer for both platforms
    before = _children(client, "mp/svc", buildkit_index["digest"])
    after = _children(client, "mp/svc", appended["digest"])
    assert appended["children"] == {p: c["digest"] for p, c in after.items()}
    code_layers = {p: c["manifest"]["layers"][-1]["digest"] for p, c in after.items()}
    assert len(set(code_layers.values())) == 1, code_layers
    for platform, binary in (("linux/amd64", BUSYBOX), ("linux/arm64", BUSYBOX_ARM64)):
        old, new = before[platform], after[platform]
        assert new["manifest"]["layers"][:-1] == old["manifest"]["layers"][:-1]
        assert new["manifest"]["layers"][-1] != old["manifest"]["layers"][-1]
        assert new["config"]["architecture"] == old["config"]["architecture"]
        assert new["files"]["bin/busybox"] == binary.read_bytes()
        assert new["files"]["srv/app/main.txt"] == b"hello v2\n"
    v2 = client.get_manifest("mp/svc", "v2")
    assert (v2.digest, v2.media_type) == (appended["digest"], OCI_INDEX)


def test_promote_keeps_the_index_byte_for_byte(
    service: dict[str, Any], buildkit_index: dict[str, Any]
) -> None:
    client, digest = service["client"], buildkit_index["digest"]
    host = service["registry"].host
    cwd = service["repo"].path
    promoted = cli("promote", f"{host}/mp/svc@{digest}", "stable", "--format", "json", cwd=cwd)
    assert promoted.returncode == 0, promoted.stderr
    assert json.loads(promoted.stdout)["digest"] == digest
    stable, original = (
        client.get_manifest("mp/svc", "stable"),
        client.get_manifest("mp/svc", digest),
    )
    assert (stable.raw, stable.media_type, stable.digest) == (original.raw, OCI_INDEX, digest)
    # Into another repository: the children (and their blobs) come along.
    across = cli("promote", f"{host}/mp/svc@{digest}", f"{host}/mp/prod:live", cwd=cwd)
    assert across.returncode == 0, across.stderr
    assert client.get_manifest("mp/prod", "live").raw == original.raw
    assert set(_children(client, "mp/prod", digest)) == {"linux/amd64", "linux/arm64"}


def test_podman_runs_the_runner_s_child_of_the_index(
    service: dict[str, Any], buildkit_index: dict[str, Any], tmp_path: Path
) -> None:
    from pipeline_kit.adapters.podman import RELAXED_CONTAINERS_CONF

    assert os.uname().machine == "x86_64", "this test expects an amd64 runner"
    conf = tmp_path / "containers.conf"
    conf.write_text(RELAXED_CONTAINERS_CONF)
    runroot = Path(tempfile.mkdtemp(prefix="pk-mp-"))  # podman wants a short runroot
    podman = [
        "podman", "--storage-driver=vfs", f"--root={tmp_path}/root",
        f"--runroot={runroot}", "--runtime=runc",
    ]  # fmt: skip
    reference = f"{service['registry'].host}/mp/svc@{buildkit_index['digest']}"
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    try:
        ran = subprocess.run(
            [*podman, "run", "--rm", "--tls-verify=false", "--network=none", reference],
            capture_output=True, text=True, env=env, timeout=300, check=False,
        )  # fmt: skip
        image = subprocess.run(
            [*podman, "image", "inspect", "--format", "{{.Architecture}}", reference],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip
    finally:
        remove_storage(runroot)
        remove_storage(tmp_path / "root")
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout == "hello from the index\n"
    assert image.stdout.strip() == "amd64", image.stderr


@pytest.fixture(scope="module")
def per_platform(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """buildah, one run per platform, as two jobs of a matrix."""
    return {
        platform: build_cli(
            service["repo"], "--platform", platform, "--tag", "main", config="ci/buildah.yaml"
        )
        for platform in ("linux/amd64", "linux/arm64")
    }


def test_buildah_builds_each_platform_under_its_own_tags(
    service: dict[str, Any], per_platform: dict[str, dict[str, Any]]
) -> None:
    client = service["client"]
    amd, arm = per_platform["linux/amd64"], per_platform["linux/arm64"]
    assert "main-linux-amd64" in amd["tags"] and "main-linux-arm64" in arm["tags"]
    assert "main" not in amd["tags"] + arm["tags"]
    for platform, record in per_platform.items():
        manifest = client.get_manifest("mp/merged", record["digest"])
        assert not manifest.is_index
        config = json.loads(
            client.get_blob("mp/merged", json.loads(manifest.raw)["config"]["digest"])
        )
        assert f"{config['os']}/{config['architecture']}" == platform


def _merge(service: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return cli("--config", "ci/buildah.yaml", "merge", *args, cwd=service["repo"].path)


@pytest.fixture(scope="module")
def merged(service: dict[str, Any], per_platform: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The merge job: no children named, so the config's platforms under the build's tags."""
    merged = _merge(service, "--tag", "main", "--format", "json")
    assert merged.returncode == 0, merged.stderr
    record: dict[str, Any] = json.loads(merged.stdout)
    return record


def test_merge_finds_the_children_by_tag_and_pushes_one_index(
    service: dict[str, Any], per_platform: dict[str, dict[str, Any]], merged: dict[str, Any]
) -> None:
    client, record = service["client"], merged
    assert record["children"] == {p: r["digest"] for p, r in per_platform.items()}
    assert "main" in record["tags"]
    main = client.get_manifest("mp/merged", "main")
    assert (main.digest, main.media_type) == (record["digest"], OCI_INDEX)
    assert main.digest == sha256_digest(main.raw)
    children = _children(client, "mp/merged", record["digest"])
    assert children["linux/arm64"]["files"]["bin/busybox"] == BUSYBOX_ARM64.read_bytes()
    assert children["linux/amd64"]["files"]["bin/busybox"] == BUSYBOX.read_bytes()


def test_merge_takes_children_by_digest(
    service: dict[str, Any], per_platform: dict[str, dict[str, Any]]
) -> None:
    amd, arm = per_platform["linux/amd64"]["digest"], per_platform["linux/arm64"]["digest"]
    host = service["registry"].host
    merged = _merge(
        service, f"linux/arm64={host}/mp/merged@{arm}", f"linux/amd64={amd}",
        "--tag", "by-digest", "--format", "json",
    )  # fmt: skip
    assert merged.returncode == 0, merged.stderr
    assert list(json.loads(merged.stdout)["children"]) == ["linux/arm64", "linux/amd64"]


@pytest.mark.parametrize(
    ("children", "message"),
    [
        (
            ("linux/amd64={amd}", "linux/arm64={amd}"),
            "mp/merged@{amd}: listed as linux/arm64, but its config says linux/amd64.",
        ),
        (("linux/amd64={amd}", "amd64={arm}"), "linux/amd64: listed twice"),
        (
            ("linux/amd64={amd}", "linux/arm64={host}/mp/svc@{arm}"),
            "mp/svc@{arm}: not in {host}/mp/merged, the repository the index goes to.",
        ),
        (("linux/amd64={index}",), "mp/merged@{index}: is itself an index"),
    ],
    ids=["mismatched-platform", "duplicate-platform", "other-repository", "child-index"],
)
def test_merge_refuses_what_cannot_be_one_index(
    service: dict[str, Any],
    per_platform: dict[str, dict[str, Any]],
    merged: dict[str, Any],
    children: tuple[str, ...],
    message: str,
) -> None:
    client = service["client"]
    values = {
        "amd": per_platform["linux/amd64"]["digest"],
        "arm": per_platform["linux/arm64"]["digest"],
        "host": service["registry"].host,
        "index": merged["digest"],
    }
    before = client.get_manifest("mp/merged", "main").digest
    refused = _merge(service, *(c.format(**values) for c in children), "--tag", "main")
    assert refused.returncode == 2, refused.stderr
    assert message.format(**values) in refused.stderr
    assert "Traceback" not in refused.stderr
    assert client.get_manifest("mp/merged", "main").digest == before  # nothing pushed


def test_cache_gc_keeps_the_platform_images_a_kept_index_lists(
    service: dict[str, Any], per_platform: dict[str, dict[str, Any]], merged: dict[str, Any]
) -> None:
    """Every per-platform tag is past a one-second TTL, but the index (which has no config,
    so no age) stays, and so does each image it lists."""
    client = service["client"]
    index = client.get_manifest("mp/merged", "main").digest
    time.sleep(1.5)
    gc = cli(
        "cache", "gc", "--repository", f"{service['registry'].host}/mp/merged",
        "--ttl", "1s", "--keep", "0", "--delete", "--format", "json", cwd=service["repo"].path,
    )  # fmt: skip
    assert gc.returncode == 0, gc.stderr
    assert json.loads(gc.stdout)["deleted"] == []
    for record in per_platform.values():
        assert client.head_manifest("mp/merged", record["digest"]) is not None
    assert client.get_manifest("mp/merged", "main").digest == index


def test_kaniko_builds_each_platform_and_merge_makes_the_index(
    service: dict[str, Any], kaniko: KanikoSandbox
) -> None:
    """Kaniko, one run per platform as two jobs of a matrix (--custom-platform; only COPY, so
    nothing of arm64 runs), then merge by the build's tags."""
    client, repo = service["client"], service["repo"]
    config = repo.path / "ci" / "kaniko.yaml"
    built = {
        platform: build_in_process(
            repo, kaniko.builder(), "--platform", platform, "--tag", "k", config=config
        )
        for platform in ("linux/amd64", "linux/arm64")
    }
    for platform, record in built.items():
        assert (record["strategy"], record["builder"]) == ("builder", "kaniko")
        assert f"k{'-' + platform.replace('/', '-')}" in record["tags"]
    merged = cli(
        "--config", "ci/kaniko.yaml", "merge", "--tag", "k", "--format", "json", cwd=repo.path
    )
    assert merged.returncode == 0, merged.stderr
    record = json.loads(merged.stdout)
    assert record["children"] == {p: r["digest"] for p, r in built.items()}
    children = _children(client, "mp/kaniko", record["digest"])
    assert children["linux/arm64"]["files"]["bin/busybox"] == BUSYBOX_ARM64.read_bytes()
    assert children["linux/amd64"]["files"]["bin/busybox"] == BUSYBOX.read_bytes()
    assert children["linux/arm64"]["config"]["architecture"] == "arm64"


def _verify(service: dict[str, Any], image: str) -> tuple[int, dict[str, Any]]:
    proc = cli("verify", image, "--format", "json", cwd=service["repo"].path)
    return proc.returncode, json.loads(proc.stdout)


def test_verify_passes_on_the_built_appended_and_merged_indexes(
    service: dict[str, Any],
    buildkit_index: dict[str, Any],
    appended: dict[str, Any],
    merged: dict[str, Any],
) -> None:
    """Each platform's image carries its own provenance and SBOM (what runs is a child), the
    index a provenance; verify checks the index and every child."""
    host = service["registry"].host
    for repo, record in (("mp/svc", buildkit_index), ("mp/svc", appended), ("mp/merged", merged)):
        code, result = _verify(service, f"{host}/{repo}@{record['digest']}")
        assert code == 0, result["problems"]
        assert set(result["children"]) == {"linux/amd64", "linux/arm64"}
        for platform, child in result["children"].items():
            assert child["digest"] == record["children"][platform]
            kinds = sorted(a["predicateType"].split("/")[2] for a in child["attestations"])
            assert kinds == ["slsa.dev", "spdx.dev"], child
            assert child["passed"]


def test_verify_fails_an_index_whose_platform_image_lacks_its_sbom(
    service: dict[str, Any], merged: dict[str, Any], tmp_path: Path
) -> None:
    """The merged index's arm64 image copied into a repository of its own without its
    referrers fails on its own; an index over it there, with no provenance either, fails on
    both counts, the child's named by its platform."""
    client: RegistryClient = service["client"]
    host = service["registry"].host
    arm64 = merged["children"]["linux/arm64"]
    raw = client.get_manifest("mp/merged", arm64).raw
    manifest = json.loads(raw)
    for blob in (manifest["config"], *manifest["layers"]):
        client.mount_blob("mp/bare", blob["digest"], "mp/merged")
    client.put_manifest("mp/bare", arm64, raw, manifest["mediaType"])
    code, result = _verify(service, f"{host}/mp/bare@{arm64}")
    assert code == 1
    assert any("no consistent SBOM" in problem for problem in result["problems"])
    index = json.loads(client.get_manifest("mp/merged", merged["digest"]).raw)
    index["manifests"] = [m for m in index["manifests"] if m["digest"] == arm64]
    raw_index = json.dumps(index).encode()
    index_digest = client.put_manifest("mp/bare", sha256_digest(raw_index), raw_index,
                                       index["mediaType"])  # fmt: skip
    code, result = _verify(service, f"{host}/mp/bare@{index_digest}")
    assert code == 1
    assert any(p.startswith("linux/arm64") and "SBOM" in p for p in result["problems"])
    assert any("no consistent provenance" in p for p in result["problems"])

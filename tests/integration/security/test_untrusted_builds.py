"""Attacks a pull request or an unprotected push can make on what the default branch ships,
each run as the attacker's steps against a loopback registry with real buildah builds.

The CI contexts are GitHub's (the variables and event payload the runner gives); the kit reads
them at its edge, so they are exactly what a job on GitHub would see. What is checked is what
lands in the registry: tags, labels and the bytes of the images' layers.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from pipeline_kit.adapters.registry.client import RegistryClient
from tests.support.builds import busybox_repo
from tests.support.ci_contexts import SECRET, github_env
from tests.support.gitrepo import GitRepo, cli, traced_cli
from tests.support.services.registry import RegistryServer

# The RUN bakes whatever a host mount puts at /mnt/inject into the image.
DOCKERFILE = """\
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]

FROM base AS code
COPY app/ /srv/app/
RUN (cat /mnt/inject 2>/dev/null || echo clean) > /srv/baked
CMD ["/bin/cat", "/srv/baked"]
"""


def config(
    registry: RegistryServer, repo: str, storage: Path, volumes: tuple[str, ...] = ()
) -> str:
    mounts = f"    volumes: {json.dumps(list(volumes))}\n" if volumes else ""
    return (
        f"image: {registry.host}/{repo}\n"
        f"build:\n  builder: buildah\n  buildah:\n    storage_driver: vfs\n"
        f"    root: {storage}/root\n    runroot: {storage}/run\n{mounts}"
    )


# Where the CI token may be: the kit, git, buildah and its helpers (re-executed as ``exe``);
# never a Dockerfile's RUN step, nor any command line.
MAY_HOLD_THE_TOKEN = {"python", "git", "buildah", "exe"}


def build(repo: GitRepo, env: dict[str, str] | None = None) -> dict[str, Any]:
    run = traced_cli("build", "--format", "json", cwd=repo.path, env=env, timeout=300)
    result = run.result
    assert result.returncode == 0, result.stderr[-3000:]
    assert run.argv_holding(SECRET) == []
    if env and SECRET in env.values():
        assert set(run.env_holding(SECRET)) <= MAY_HOLD_THE_TOKEN, run.env_holding(SECRET)
    record: dict[str, Any] = json.loads(result.stdout)
    if record["strategy"] == "builder":  # the RUN steps were seen: the check above had work
        assert "sh" in run.tools(), run.tools()
    record["log"] = result.stderr
    return record


def image_file(registry: RegistryServer, repo: str, digest: str, path: str) -> bytes | None:
    """The content of ``path`` in the image, from its layers (the last one that has it)."""
    client = RegistryClient(registry.host)
    manifest = json.loads(client.get_manifest(repo, digest).raw)
    found = None
    for layer in manifest["layers"]:
        blob = client.get_blob(repo, layer["digest"])
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as archive:
            for member in archive.getmembers():
                if member.name.lstrip("./") == path and member.isfile():
                    extracted = archive.extractfile(member)
                    assert extracted is not None
                    found = extracted.read()
    return found


def labels(registry: RegistryServer, repo: str, digest: str) -> dict[str, str]:
    client = RegistryClient(registry.host)
    manifest = json.loads(client.get_manifest(repo, digest).raw)
    image = json.loads(client.get_blob(repo, manifest["config"]["digest"]))
    found: dict[str, str] = image["config"]["Labels"]
    return found


def registry_tags(registry: RegistryServer, repo: str) -> set[str]:
    return set(RegistryClient(registry.host).list_tags(repo))


@pytest.fixture
def service(tmp_path: Path, registry: RegistryServer) -> tuple[GitRepo, str, Path]:
    """A repository whose default branch was built by a trusted (default-branch) job."""
    name = f"sec/{tmp_path.name.lower()[-40:].strip('_-')}"
    storage = tmp_path / "storage"
    repo = busybox_repo(
        tmp_path / "repo",
        {
            "Dockerfile": DOCKERFILE,
            "app/main.txt": "v1\n",
            "pipeline-kit.yaml": config(registry, name, storage),
        },
    )
    return repo, name, storage


def test_a_pull_requests_host_mount_never_reaches_the_default_branch(
    service: tuple[GitRepo, str, Path], registry: RegistryServer, tmp_path: Path
) -> None:
    """The attack: push 1 of a pull request adds ``build.buildah.volumes`` mounting a file
    that a RUN bakes in, push 2 reverts the config so the reviewed diff is clean, and after
    the merge the default branch retags the image push 1 built. Now the mount is the base
    commit's (none), the pull request records nothing under ``pk-``, and main builds its own."""
    repo, name, storage = service
    main = repo.head()
    build(repo, github_env(tmp_path, event="push", ref="refs/heads/main", sha=main))
    trusted_tags = registry_tags(registry, name)
    inject = tmp_path / "inject"
    inject.write_text("BACKDOORED\n")

    repo.git("checkout", "-q", "-b", "evil")
    push1 = repo.commit(
        {
            "app/main.txt": "v2\n",
            "pipeline-kit.yaml": config(registry, name, storage, (f"{inject}:/mnt/inject:ro",)),
        }
    )
    pull = github_env(tmp_path, event="pull_request", ref="refs/pull/7/merge", sha=push1,
                      pull=(7, main), head_ref="evil")  # fmt: skip
    first = build(repo, pull)
    assert "build.buildah: a pull request does not change what reaches the runner" in first["log"]
    assert image_file(registry, name, first["digest"], "srv/baked") == b"clean\n"
    assert first["strategy"] == "builder" and first["trust"]["trusted"] is False

    push2 = repo.commit({"pipeline-kit.yaml": config(registry, name, storage)})
    pull = github_env(tmp_path, event="pull_request", ref="refs/pull/7/merge", sha=push2,
                      pull=(7, main), head_ref="evil")  # fmt: skip
    second = build(repo, pull)
    written = registry_tags(registry, name) - trusted_tags
    # sha256-<hex>: the referrers tag holding the attestations of the pull request's own digest
    assert written and all(
        t.startswith(("pkx-pr-7-", "pr-7", "sha-", "sha256-")) for t in written
    ), written

    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--ff-only", "evil")
    merged = build(repo, github_env(tmp_path, event="push", ref="refs/heads/main",
                                    sha=push2, before=main))  # fmt: skip
    assert image_file(registry, name, merged["digest"], "srv/baked") == b"clean\n"
    assert merged["strategy"] == "builder"  # nothing the pull request recorded is believed
    assert merged["digest"] != second["digest"]
    assert labels(registry, name, merged["digest"])["dev.pipeline-kit.trust"] == "protected"
    assert all(SECRET.encode() not in data for _, data in registry.stored_files())


def test_an_unprotected_branch_bakes_its_mount_into_its_own_records_only(
    service: tuple[GitRepo, str, Path], registry: RegistryServer, tmp_path: Path
) -> None:
    """A push to an unprotected branch runs the branch's own CI definition, so its config is
    honoured, mount and all; but the content key covers the mount, the records it writes are
    ``pkx-ref-<branch>-``, and the default branch, after a merge that drops the mount, builds
    its own image instead of retagging the branch's."""
    repo, name, storage = service
    main = repo.head()
    build(repo, github_env(tmp_path, event="push", ref="refs/heads/main", sha=main))
    inject = tmp_path / "inject"
    inject.write_text("BACKDOORED\n")

    repo.git("checkout", "-q", "-b", "feature/x")
    mounted = repo.commit(
        {
            "app/main.txt": "v2\n",
            "pipeline-kit.yaml": config(registry, name, storage, (f"{inject}:/mnt/inject:ro",)),
        }
    )
    branch = build(repo, github_env(tmp_path, event="push", ref="refs/heads/feature/x",
                                    sha=mounted, before=main))  # fmt: skip
    assert image_file(registry, name, branch["digest"], "srv/baked") == b"BACKDOORED\n"
    assert branch["trust"]["records"] == "pkx-ref-feature-x-"
    assert f"pkx-ref-feature-x-{branch['image_key']}" in branch["tags"]
    assert not any(t.startswith("pk-") or t == "latest" for t in branch["tags"]), branch["tags"]
    label = labels(registry, name, branch["digest"])["dev.pipeline-kit.trust"]
    assert label.startswith("untrusted")

    reverted = repo.commit({"pipeline-kit.yaml": config(registry, name, storage)})
    unmounted = repo.detect(base=mounted, head=reverted)
    assert unmounted["image_key"] != branch["image_key"]  # the key covers the mount

    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--ff-only", "feature/x")
    merged = build(repo, github_env(tmp_path, event="push", ref="refs/heads/main",
                                    sha=reverted, before=main))  # fmt: skip
    assert image_file(registry, name, merged["digest"], "srv/baked") == b"clean\n"
    assert "latest" in merged["tags"] and f"pk-{merged['image_key']}" in merged["tags"]


def test_the_default_branch_believes_no_record_a_protected_ref_did_not_build(
    service: tuple[GitRepo, str, Path], registry: RegistryServer, tmp_path: Path
) -> None:
    """Someone with write access to the registry points ``pk-<key>`` of the next main commit
    at an image an unprotected branch built. Main does not retag it: the image's label says
    no protected ref built it, so main builds (or appends onto its own image) instead."""
    repo, name, _ = service
    main = repo.head()
    build(repo, github_env(tmp_path, event="push", ref="refs/heads/main", sha=main))
    repo.git("checkout", "-q", "-b", "topic")
    change = repo.commit({"app/main.txt": "v2\n"})
    branch = build(repo, github_env(tmp_path, event="push", ref="refs/heads/topic",
                                    sha=change, before=main))  # fmt: skip
    client = RegistryClient(registry.host)
    forged = client.get_manifest(name, branch["digest"])
    for tag in (f"pk-{branch['image_key']}", *(t.replace("pkx-ref-topic-", "pk-") for t in
                                               branch["tags"] if "-on-" in t)):  # fmt: skip
        client.put_manifest(name, tag, forged.raw, forged.media_type)

    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--ff-only", "topic")
    merged = build(repo, github_env(tmp_path, event="push", ref="refs/heads/main",
                                    sha=change, before=main))  # fmt: skip
    assert "which no protected ref built: not reused" in merged["log"]
    assert merged["strategy"] in ("append", "builder") and merged["digest"] != branch["digest"]
    assert labels(registry, name, merged["digest"])["dev.pipeline-kit.trust"] == "protected"


def test_a_branch_called_latest_or_a_version_gets_no_protected_tag(
    service: tuple[GitRepo, str, Path], registry: RegistryServer, tmp_path: Path
) -> None:
    """Branch names and the branch's own tag rules cannot make an untrusted build write a tag
    the default branch or a release owns (latest, 1.2, pk-...)."""
    repo, name, storage = service
    base = repo.head()
    for branch in ("latest", "1.2", "v2.0.0"):
        repo.git("checkout", "-q", "-B", branch, base)
        sha = repo.commit({"app/main.txt": f"{branch}\n"})
        record = build(repo, github_env(tmp_path, event="push", ref=f"refs/heads/{branch}",
                                        sha=sha, before=base))  # fmt: skip
        assert record["tags"][0] == f"sha-{sha[:7]}", record["tags"]
        assert branch not in registry_tags(registry, name)
    # Rules written to turn a pull request's number into a version tag.
    rules = "tags:\n  pull_request: {prefix: ''}\n"
    repo.git("checkout", "-q", "-B", "rules", base)
    sha = repo.commit({"pipeline-kit.yaml": config(registry, name, storage) + rules})
    pull = github_env(tmp_path, event="pull_request", ref="refs/pull/1/merge", sha=sha,
                      pull=(1, base))  # fmt: skip
    result = cli("tags", "--format", "json", cwd=repo.path, env=pull)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tags"] == [f"sha-{sha[:7]}"]

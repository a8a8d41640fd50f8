"""Changes append must not publish: each goes to the builder, and the build record says why.

A repository is built once with buildah; each case starts a branch from that commit, makes a
code change plus the change under test, and asks for the build three ways: ``--strategy
append`` exits 1 with the reason (no builder runs, nothing is pushed), ``--dry-run`` in auto
mode plans the builder with the reason as ``fallback``, and for the first case a real auto
build runs buildah and records the same. Previous images that must not be trusted (no
provenance label, a history that does not match it) are made by rewriting a real one's config.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline_kit.adapters.registry.client import RegistryClient
from pipeline_kit.adapters.registry.references import sha256_digest
from tests.support.builds import BUSYBOX, TWO_STAGES
from tests.support.gitrepo import GitRepo, cli
from tests.support.services.registry import RegistryServer


def _archive() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        info = tarfile.TarInfo("inside.txt")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"x\n"))
    return gzip.compress(raw.getvalue())


def _append_to_dockerfile(line: str) -> Callable[[GitRepo], None]:
    return lambda repo: repo.write({"Dockerfile": TWO_STAGES + line + "\n"})


def _replace_in_dockerfile(old: str, new: str) -> Callable[[GitRepo], None]:
    return lambda repo: repo.write({"Dockerfile": TWO_STAGES.replace(old, new)})


def _add_archive(repo: GitRepo) -> None:
    (repo.path / "model.tar.gz").write_bytes(_archive())
    repo.write({"Dockerfile": TWO_STAGES + "ADD model.tar.gz /opt/\n"})


# name -> (config file, change besides the code change, what the reason says)
CASES: dict[str, tuple[str, Callable[[GitRepo], None], str]] = {
    "RUN after the change": (
        "pipeline-kit.yaml",
        _append_to_dockerfile('RUN ["/bin/busybox", "touch", "/ran"]'),
        "RUN comes after the change",
    ),
    "COPY --from": (
        "pipeline-kit.yaml",
        _append_to_dockerfile("COPY --from=base /bin/busybox /opt/busybox"),
        "COPY --from takes files from another stage or image",
    ),
    "ADD of a URL": (
        "pipeline-kit.yaml",
        _append_to_dockerfile("ADD https://models.example.invalid/w.bin /opt/w.bin"),
        "ADD of a URL",
    ),
    "ADD of an archive": ("pipeline-kit.yaml", _add_archive, "ADD of an archive (model.tar.gz)"),
    "--chown with a user name": (
        "pipeline-kit.yaml",
        _replace_in_dockerfile("COPY app/", "COPY --chown=app app/"),
        "--chown=app names a user",
    ),
    "an unknown flag": (
        "pipeline-kit.yaml",
        _replace_in_dockerfile("COPY app/", "COPY --exclude=*.md app/"),
        "COPY --exclude is not supported by append",
    ),
    "no previous image": (
        "ci/fresh.yaml",
        lambda repo: None,
        "no previous image recorded by pipeline-kit",
    ),
    "a previous image without the kit's label": (
        "ci/unlabelled.yaml",
        lambda repo: None,
        "it has no dev.pipeline-kit.provenance label: pipeline-kit did not record it",
    ),
    "a previous image whose history does not match": (
        "ci/tampered.yaml",
        lambda repo: None,
        "history entry 1 is COPY, but the recorded instruction 2 of the chain is WORKDIR",
    ),
}


def _config(registry: RegistryServer, repo: str, storage: Path, relative: str) -> str:
    paths = "dockerfile: ../Dockerfile\ncontext: ..\n" if relative else ""
    return (
        f"image: {registry.host}/{repo}\n{paths}"
        f"build:\n  builder: buildah\n  buildah:\n    storage_driver: vfs\n"
        f"    root: {storage}/root\n    runroot: {storage}/run\n"
    )


def _clone_rewritten(
    client: RegistryClient,
    source: str,
    digest: str,
    target: str,
    tags: list[str],
    rewrite: Callable[[dict[str, Any]], None],
) -> None:
    """Copy an image into ``target`` under ``tags`` with its config changed by ``rewrite``."""
    manifest = json.loads(client.get_manifest(source, digest).raw)
    config = json.loads(client.get_blob(source, manifest["config"]["digest"]))
    rewrite(config)
    raw_config = json.dumps(config).encode()
    client.upload_blob(target, raw_config, sha256_digest(raw_config))
    for layer in manifest["layers"]:
        if not client.mount_blob(target, layer["digest"], source):
            client.upload_blob(target, client.get_blob(source, layer["digest"]), layer["digest"])
    manifest["config"] = {**manifest["config"], "digest": sha256_digest(raw_config)}
    manifest["config"]["size"] = len(raw_config)
    raw = json.dumps(manifest).encode()
    for tag in tags:
        client.put_manifest(target, tag, raw, manifest["mediaType"])


def _drop_label(config: dict[str, Any]) -> None:
    del config["config"]["Labels"]["dev.pipeline-kit.provenance"]


def _drop_history_entry(config: dict[str, Any]) -> None:
    del config["history"][1]  # the WORKDIR entry: the next COPY slides into its place


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("append-fallback")
    storage = root / "storage"
    repo = GitRepo.init(root / "repo")
    repo.commit(
        {
            "Dockerfile": TWO_STAGES,
            ".dockerignore": "ci/\n",
            "app/main.txt": "v1\n",
            "pipeline-kit.yaml": _config(registry, "fb/svc", storage, ""),
            "ci/fresh.yaml": _config(registry, "fb/fresh", storage, "ci"),
            "ci/unlabelled.yaml": _config(registry, "fb/unlabelled", storage, "ci"),
            "ci/tampered.yaml": _config(registry, "fb/tampered", storage, "ci"),
        },
        message="service",
    )
    shutil.copy(BUSYBOX, repo.path / "busybox")
    base = repo.commit(message="busybox")
    result = cli("build", "--format", "json", cwd=repo.path)
    assert result.returncode == 0, result.stderr[-3000:]
    cold = json.loads(result.stdout)
    client = RegistryClient(registry.host)
    recorded = [tag for tag in cold["tags"] if tag.startswith("pk-")]
    _clone_rewritten(client, "fb/svc", cold["digest"], "fb/unlabelled", recorded, _drop_label)
    _clone_rewritten(client, "fb/svc", cold["digest"], "fb/tampered", recorded, _drop_history_entry)
    return {"repo": repo, "base": base, "cold": cold}


def _case_branch(service: dict[str, Any], name: str) -> tuple[GitRepo, str]:
    repo: GitRepo = service["repo"]
    config, change, _ = CASES[name]
    repo.git("checkout", "-q", "-B", f"case-{list(CASES).index(name)}", service["base"])
    change(repo)
    repo.commit({"app/main.txt": "v2\n"}, message=name)
    return repo, config


@pytest.mark.parametrize("name", list(CASES))
def test_strategy_append_refuses_with_the_reason(service: dict[str, Any], name: str) -> None:
    repo, config = _case_branch(service, name)
    result = cli("--config", config, "build", "--strategy", "append", cwd=repo.path)
    assert result.returncode == 1, result.stderr
    assert "append cannot publish this change" in result.stderr
    assert CASES[name][2] in result.stderr
    assert "buildah" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("name", list(CASES))
def test_auto_plans_the_builder_and_says_why(service: dict[str, Any], name: str) -> None:
    repo, config = _case_branch(service, name)
    result = cli("--config", config, "build", "--dry-run", "--format", "json", cwd=repo.path)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["strategy"] == "builder" and record["builder"] == "buildah"
    assert CASES[name][2] in record["fallback"]
    assert f"not appended: {record['fallback']}" in result.stderr


def test_auto_builds_with_buildah_when_append_cannot(service: dict[str, Any]) -> None:
    repo, config = _case_branch(service, "RUN after the change")
    result = cli("--config", config, "build", "--format", "json", cwd=repo.path)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(result.stdout)
    assert (record["strategy"], record["builder"]) == ("builder", "buildah")
    assert "line 8: RUN comes after the change" in record["fallback"]
    assert record["digest"].startswith("sha256:") and record["digest"] != service["cold"]["digest"]


def test_dry_run_shows_the_append_plan_and_writes_nothing(
    service: dict[str, Any], registry: RegistryServer
) -> None:
    repo: GitRepo = service["repo"]
    repo.git("checkout", "-q", "-B", "dry-run", service["base"])
    repo.commit({"app/main.txt": "v2\n"}, message="code only")
    result = cli("build", "--dry-run", "--format", "json", cwd=repo.path)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["strategy"] == "append" and record["digest"] is None
    assert record["previous"] == f"fb/svc@{service['cold']['digest']}"
    assert record["append"]["kept_layers"] == 1  # the busybox layer
    assert record["append"]["applied"] == [
        "line 6: COPY app/ /srv/app/ (new layer)",
        'line 7: CMD ["/bin/cat", "/srv/app/main.txt"] (config)',
    ]
    client = RegistryClient(registry.host)
    assert client.head_manifest("fb/svc", f"pk-{record['image_key']}") is None

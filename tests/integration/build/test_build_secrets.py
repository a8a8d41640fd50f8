"""Build secrets for real: BuildKit (a real buildkitd) and buildah build a Dockerfile whose RUN
step reads two secrets, one from an environment variable and one from a file outside the
checkout, and pushes to the loopback registry.

The step writes the sha256 of each secret into the image, which proves the value reached it.
Then every blob in the registry's storage (image, cache, config; decompressed too), the kit's
output, the daemon's log and the argv of every process the kit started (strace,
tests/support/processes.py) are searched for the values: none holds them. Kaniko, and a
missing value, are refused before any builder starts.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.builds import manifest
from tests.support.ci_contexts import github_env
from tests.support.gitrepo import GitRepo, traced_cli
from tests.support.kitbuild import busybox_service
from tests.support.services.buildkitd import BuildkitDaemon
from tests.support.services.registry import RegistryServer

DOCKERFILE = """\
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]

FROM base AS deps
COPY requirements.txt /app/requirements.txt
RUN --mount=type=secret,id=hf_token,required=true --mount=type=secret,id=pip_token,required=true \\
    cd /run/secrets && sha256sum hf_token pip_token > /secret-digests
RUN test ! -e /run/secrets/hf_token && echo absent > /secret-after-step

FROM deps AS code
COPY app/ /app/
"""
SECRETS = "secrets:\n  - {id: hf_token, env: HF_TOKEN}\n  - {id: pip_token, file: '%s'}\n"


def blobs(registry: RegistryServer) -> Iterator[tuple[str, bytes]]:
    """Every blob the registry stores, by digest, as stored and decompressed."""
    root = registry.workdir / "storage" / "docker" / "registry" / "v2" / "blobs"
    for data in root.rglob("data"):
        raw = data.read_bytes()
        yield data.parent.name, raw
        if raw[:2] == b"\x1f\x8b":
            yield data.parent.name, gzip.decompress(raw)
        else:
            # Anything compressed another way would hide a value from this search.
            assert raw[:4] != b"\x28\xb5\x2f\xfd", f"a zstd blob: {data}"


def image_file(registry: RegistryServer, repo: str, ref: str, name: str) -> str:
    """The file ``name`` as the image's layers leave it (the last layer that has it)."""
    found = None
    for layer in manifest(registry, repo, ref)["layers"]:
        url = f"{registry.url}/v2/{repo}/blobs/{layer['digest']}"
        with urllib.request.urlopen(url, timeout=30) as answer:
            raw = answer.read()
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:*") as tar:
            for member in tar.getmembers():
                if member.name.lstrip("./") == name and member.isfile():
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    found = extracted.read().decode()
    assert found is not None, f"{name} is in no layer of {repo}:{ref}"
    return found


def service(root: Path, registry: RegistryServer, builder: str, secret_file: Path) -> GitRepo:
    """The service in a repository of its own: a test never finds another's image to retag."""
    storage = root / "storage"
    config = (
        f"  buildah:\n    storage_driver: vfs\n    root: {storage}/root\n"
        f"    runroot: {storage}/run\n"
    )
    return busybox_service(
        root / "repo",
        f"{registry.host}/secrets/{builder}-{uuid.uuid4().hex[:12]}",
        builder,
        dockerfile=DOCKERFILE,
        config=config + SECRETS % secret_file,
    )


@pytest.fixture
def values(tmp_path: Path) -> dict[str, Any]:
    """Fresh values (a token in the environment, another in a runner file) for each test."""
    holder = tmp_path / "runner-temp"
    holder.mkdir()
    file_value = f"pip-{uuid.uuid4().hex}"
    (holder / "pip-token").write_text(file_value)
    return {"env": f"hf_{uuid.uuid4().hex}", "file": file_value, "path": holder / "pip-token"}


@pytest.mark.parametrize("builder", ["buildkit", "buildah"])
def test_a_secret_reaches_its_run_step_and_nothing_else(
    tmp_path: Path,
    registry: RegistryServer,
    buildkitd: BuildkitDaemon,
    values: dict[str, Any],
    builder: str,
) -> None:
    repo = service(tmp_path, registry, builder, values["path"])
    home = tmp_path / "home"
    home.mkdir()
    env = {**buildkitd.env, "HOME": str(home), "HF_TOKEN": values["env"]}
    run = traced_cli("build", "--format", "json", cwd=repo.path, env=env)
    result = run.result
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(result.stdout)
    assert record["strategy"] == "builder" and record["builder"] == builder
    image = record["image"].split("/", 1)[1]

    # The RUN step read both values: their digests are in the image.
    digests = image_file(registry, image, record["digest"], "secret-digests")
    expected = {
        name: hashlib.sha256(value.encode()).hexdigest()
        for name, value in (("hf_token", values["env"]), ("pip_token", values["file"]))
    }
    assert dict(reversed(line.split()) for line in digests.splitlines()) == expected
    # The next step, without the mount, does not see it.
    assert image_file(registry, image, record["digest"], "secret-after-step") == "absent\n"

    # In no blob of the registry (the image, the builders' cache, the configs), compressed or not.
    searched = 0
    for digest, data in blobs(registry):
        searched += 1
        for value in (values["env"], values["file"]):
            assert value.encode() not in data, f"the secret is in blob {digest}"
    assert searched > 5
    # The search reads what layers hold: the digests the step wrote are found.
    assert any(expected["hf_token"].encode() in data for _, data in blobs(registry))
    # In no output, no build log, no argv of any process the kit started.
    for value in (values["env"], values["file"]):
        assert value not in result.stdout and value not in result.stderr
        assert value not in buildkitd.log_path.read_text(errors="replace")
        assert run.argv_holding(value) == []
    # The file's value was never in any process's environment; the variable's only where the
    # job put it (the kit and what inherits its environment), never a new one.
    assert run.env_holding(values["file"]) == {}
    assert "HF_TOKEN" in run.env_holding(values["env"])["python"]
    assert all(names == ["HF_TOKEN"] for names in run.env_holding(values["env"]).values())
    # The builder was handed files, by id.
    flags = [a for argv in (e.argv for e in run.execs if e.ok) for a in argv if "--secret" in a]
    assert sorted(flag.split(",")[0] for flag in flags) == [
        "--secret=id=hf_token",
        "--secret=id=pip_token",
    ]


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "secrets[0] (hf_token): the environment variable HF_TOKEN is not set"),
        ({"HF_TOKEN": ""}, "secrets[0] (hf_token): the environment variable HF_TOKEN is empty"),
    ],
)
def test_a_missing_value_stops_the_build_before_any_builder(
    tmp_path: Path,
    registry: RegistryServer,
    values: dict[str, Any],
    environ: dict[str, str],
    message: str,
) -> None:
    repo = service(tmp_path, registry, "buildah", values["path"])
    run = traced_cli("build", cwd=repo.path, env={"HOME": str(tmp_path), **environ})
    assert run.result.returncode == 2, run.result.stderr
    assert message in run.result.stderr
    assert "buildah" not in run.tools()


def test_a_missing_file_stops_the_build_before_any_builder(
    tmp_path: Path, registry: RegistryServer, values: dict[str, Any]
) -> None:
    repo = service(tmp_path, registry, "buildah", values["path"])
    values["path"].unlink()
    env = {"HOME": str(tmp_path), "HF_TOKEN": values["env"]}
    run = traced_cli("build", cwd=repo.path, env=env)
    assert run.result.returncode == 2, run.result.stderr
    assert f"secrets[1] (pip_token): file: {values['path']} does not exist" in (run.result.stderr)
    assert "buildah" not in run.tools()


@pytest.mark.parametrize("configured", [True, False])
def test_kaniko_is_refused_before_it_starts(
    tmp_path: Path, registry: RegistryServer, values: dict[str, Any], configured: bool
) -> None:
    """With ``secrets`` in the config, or only a secret mount in the Dockerfile: Kaniko builds
    get no secrets, so the build stops (exit 2) before the executor, and says to use BuildKit
    or buildah."""
    repo = service(tmp_path, registry, "kaniko", values["path"])
    if not configured:
        config = (repo.path / "pipeline-kit.yaml").read_text()
        repo.commit({"pipeline-kit.yaml": config[: config.index("secrets:")]})
    env = {"HOME": str(tmp_path), "HF_TOKEN": values["env"]}
    run = traced_cli("build", cwd=repo.path, env=env)
    assert run.result.returncode == 2, run.result.stderr
    if configured:
        assert "secrets (hf_token, pip_token): Kaniko builds get no build secrets" in (
            run.result.stderr
        )
    else:
        assert "Dockerfile:7: RUN --mount=type=secret,id=hf_token: Kaniko builds get" in (
            run.result.stderr
        )
    assert "--builder buildkit or buildah" in run.result.stderr
    assert not any("executor" in tool for tool in run.tools())


STEAL = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN --mount=type=secret,id=hf_token --mount=type=secret,id=pip_token \\
    cat /run/secrets/hf_token /run/secrets/pip_token > /stolen 2>&1; true
"""


def test_a_pull_request_cannot_name_the_runners_secrets(
    tmp_path: Path, registry: RegistryServer, values: dict[str, Any]
) -> None:
    """The attack: a pull request adds ``secrets`` naming a runner file and a variable the job
    has, and a step that copies them into its image. The list is the base commit's (none), so
    the step finds nothing, and the values are in no blob."""
    repo = service(tmp_path, registry, "buildah", values["path"])
    config = (repo.path / "pipeline-kit.yaml").read_text()
    base = repo.commit({"pipeline-kit.yaml": config[: config.index("secrets:")]}, message="base")
    repo.git("checkout", "-q", "-b", "contribution")
    repo.commit({"pipeline-kit.yaml": config, "Dockerfile": STEAL}, message="steal")
    env = github_env(tmp_path, event="pull_request", ref="refs/pull/5/merge", sha=repo.head(),
                     pull=(5, base))  # fmt: skip
    env.update({"HOME": str(tmp_path), "HF_TOKEN": values["env"]})
    run = traced_cli("build", "--format", "json", cwd=repo.path, env=env)
    assert run.result.returncode == 0, run.result.stderr[-3000:]
    assert "secrets: a pull request does not change what reaches the runner; the base " in (
        run.result.stderr
    )
    record = json.loads(run.result.stdout)
    image = record["image"].split("/", 1)[1]
    assert "No such file" in image_file(registry, image, record["digest"], "stolen")
    for _, data in blobs(registry):
        assert values["env"].encode() not in data and values["file"].encode() not in data
    assert [a for e in run.execs for a in e.argv if "--secret" in a] == []

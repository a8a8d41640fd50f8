"""The GitHub definitions checked by the tools GitHub users check them with, offline: zizmor
(template injection, permissions, unpinned references) and check-jsonschema's vendored schemas
of workflows and actions; the tables of docs/github-actions.md generated from them;
references to the kit's own release kept at its version.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline_kit import __version__
from tests.support import REPO
from tests.support.docs import doc_files
from tests.support.tools import tool

ROOT = REPO
BIN = Path(sys.executable).parent
WORKFLOWS = sorted(
    [*(ROOT / ".github" / "workflows").glob("*.yml"), *(ROOT / "workflows").glob("*.yml")]
)
ACTION_DOCS = ROOT / "scripts" / "action-docs"


def test_there_is_something_to_check() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in WORKFLOWS}
    assert {
        ".github/workflows/pipeline.yml", ".github/workflows/cleanup.yml",
        ".github/workflows/ci.yml", ".github/workflows/test-action.yml",
        ".github/workflows/release.yml",
        "workflows/pull-request.yml", "workflows/main.yml", "workflows/cleanup.yml",
    } <= names  # fmt: skip


def zizmor(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("zizmor"), "--offline", "--format", "json", "--config",
         str(ROOT / ".github" / "zizmor.yml"), *map(str, paths)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def serious(result: subprocess.CompletedProcess[str]) -> list[str]:
    """zizmor's findings of medium severity or more that no ``zizmor: ignore`` comment covers."""
    return [
        f"{f['ident']} ({f['determinations']['severity']}): {f['desc']}"
        for f in json.loads(result.stdout)
        if not f.get("ignored") and f["determinations"]["severity"] in ("Medium", "High")
    ]


def test_zizmor_finds_nothing_of_medium_severity_or_more() -> None:
    result = zizmor(ROOT / "action.yml", *WORKFLOWS)
    assert serious(result) == []
    assert result.returncode == 0, result.stderr[-2000:]


def test_zizmor_would_catch_an_injection(tmp_path: Path) -> None:
    """The check above can fail: an expression expanded into a run script is found."""
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: pull_request\npermissions: {contents: read}\njobs:\n  x:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    result = zizmor(bad)
    assert result.returncode != 0
    assert any(finding.startswith("template-injection (High)") for finding in serious(result))


@pytest.mark.parametrize(
    ("schema", "paths"),
    [
        ("vendor.github-actions", [ROOT / "action.yml"]),
        ("vendor.github-workflows", WORKFLOWS),
    ],
)
def test_github_schemas(schema: str, paths: list[Path]) -> None:
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", schema, *map(str, paths)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_action_schema_wants_descriptions(tmp_path: Path) -> None:
    """The schema check above can fail: an input without a description is refused."""
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    del action["inputs"]["config"]["description"]
    bad = tmp_path / "action.yml"
    bad.write_text(yaml.safe_dump(action))
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions", str(bad)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout


def test_references_to_the_kit_name_this_release() -> None:
    """Every `uses: pipeline-kit/pipeline-kit...@REF` (workflows, callers, the docs) names the
    release of this version, so the files a release ships call each other."""
    refs = {}
    for path in [*WORKFLOWS, *doc_files()]:
        for ref in re.findall(
            r"pipeline-kit/pipeline-kit(?:/[\w./-]+)?@([\w.-]+)", path.read_text()
        ):
            refs.setdefault(ref, set()).add(path.relative_to(ROOT).as_posix())
    assert set(refs) == {f"v{__version__}"}, refs


def test_the_docs_tables_are_generated_from_the_definitions() -> None:
    result = subprocess.run(
        [sys.executable, str(ACTION_DOCS), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_action_docs_notices_a_drift(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    for name in ("docs/github-actions.md", "action.yml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    for name in ("pipeline.yml", "cleanup.yml"):
        shutil.copy(ROOT / ".github" / "workflows" / name, tmp_path / ".github" / "workflows")
    action = tmp_path / "action.yml"
    action.write_text(
        action.read_text().replace("The Python interpreter (3.10", "The interpreter (3.10")
    )
    check = [sys.executable, str(ACTION_DOCS), "--check", "--root", str(tmp_path)]
    drifted = subprocess.run(check, capture_output=True, text=True)
    assert drifted.returncode == 1 and "out of date" in drifted.stderr
    written = subprocess.run([*check[:2], "--root", str(tmp_path)], capture_output=True, text=True)
    assert written.returncode == 0, written.stderr
    docs = (tmp_path / "docs" / "github-actions.md").read_text()
    assert "| `python` | `python3` | The interpreter (3.10" in docs
    assert subprocess.run(check, capture_output=True).returncode == 0


LEVELS = {"none": 0, "read": 1, "write": 2}


def _permissions(value: object) -> dict[str, int]:
    if value in ("read-all", "write-all"):
        level = 1 if value == "read-all" else 2
        scopes = ("contents", "packages", "actions", "pull-requests", "id-token", "deployments")
        return dict.fromkeys(scopes, level)
    assert isinstance(value, dict), value
    return {scope: LEVELS[level] for scope, level in value.items()}


def test_callers_grant_what_the_called_jobs_ask_for() -> None:
    """GitHub refuses to start a run whose called workflow has a job (skipped or not) asking for
    more than the calling job grants; act does not check. So: checked here."""
    checked = 0
    for caller_path in WORKFLOWS:
        caller = yaml.safe_load(caller_path.read_text())
        for job_id, job in caller["jobs"].items():
            match = re.fullmatch(r"pipeline-kit/pipeline-kit/(\.github/workflows/[\w.-]+)@.+",
                                 job.get("uses", ""))  # fmt: skip
            if not match:
                continue
            granted = _permissions(job.get("permissions", caller.get("permissions", {})))
            called = yaml.safe_load((ROOT / match[1]).read_text())
            for nested_id, nested in called["jobs"].items():
                wanted = _permissions(nested.get("permissions", called.get("permissions", {})))
                for scope, level in wanted.items():
                    assert granted.get(scope, 0) >= level, (
                        f"{caller_path.name}: job {job_id} grants {scope}: "
                        f"{granted.get(scope, 0)}, {match[1]} job {nested_id} asks for {level}"
                    )
            checked += 1
    assert checked == 4  # pull request (2), main, cleanup


def test_every_with_names_a_declared_input_of_the_right_type() -> None:
    """GitHub refuses a call with an undeclared input or a value of the wrong type (act passes
    them on); a step's unknown action input is only a warning there, but a mistake all the same."""
    action_inputs = set(yaml.safe_load((ROOT / "action.yml").read_text())["inputs"])
    types = {"boolean": bool, "string": str, "number": (int, float)}
    calls = steps = 0
    for path in WORKFLOWS:
        workflow = yaml.safe_load(path.read_text())
        for job_id, job in workflow["jobs"].items():
            match = re.fullmatch(r"pipeline-kit/pipeline-kit/(\.github/workflows/[\w.-]+)@.+",
                                 job.get("uses", ""))  # fmt: skip
            if match:
                called = yaml.safe_load((ROOT / match[1]).read_text())
                declared = (called.get("on") or called[True])["workflow_call"]
                for name, value in (job.get("with") or {}).items():
                    spec = declared["inputs"].get(name)
                    assert spec is not None, f"{path.name} {job_id}: {match[1]} has no input {name}"
                    expression = isinstance(value, str) and value.startswith("${{")
                    assert expression or isinstance(value, types[spec["type"]]), (path, name)
                for name in job.get("secrets") or {}:
                    assert name in declared.get("secrets", {}), (path, job_id, name)
                calls += 1
            for step in job.get("steps", []):
                if re.fullmatch(r"(\./|pipeline-kit/pipeline-kit@.+)", step.get("uses", "")):
                    assert set(step.get("with") or {}) <= action_inputs, (path, job_id, step)
                    assert "command" in step["with"], (path, job_id, step)
                    steps += 1
    assert calls == 4 and steps > 10


def _kaniko_job_scripts() -> tuple[str, str]:
    job = yaml.safe_load((ROOT / ".github" / "workflows" / "pipeline.yml").read_text())["jobs"][
        "build-kaniko"
    ]
    assert job["defaults"]["run"]["shell"] == "sh"
    checkout, build = job["steps"]
    return checkout["run"], build["run"]


def test_kaniko_job_checks_out_full_history_with_the_token_in_no_argv(tmp_path: Path) -> None:
    """The Kaniko job needs its container, so it cannot run under act here; its checkout
    script runs under busybox sh (the builder image's shell) against a local repository."""
    from tests.support.gitrepo import GitRepo
    from tests.support.processes import traced

    origin = GitRepo.init(tmp_path / "origin")
    first = origin.commit({"a": "1\n"})
    origin.git("branch", "other")
    head = origin.commit({"a": "2\n"})
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (tmp_path / "home").mkdir()  # /github/home in a container job
    token = "ghs_checkout-token-4c1d"
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), "TOKEN": token,
        "REPOSITORY_URL": f"file://{origin.path}", "SHA": head,
    }  # fmt: skip
    checkout, _ = _kaniko_job_scripts()
    # strace records every exec of the script and its children (sampling /proc could miss
    # a short git call, and then prove nothing about its argv).
    run = traced(["busybox", "sh", "-e", "-c", checkout], cwd=workspace, env=env, timeout=60)
    result = run.result
    assert result.returncode == 0, result.stderr
    assert any(e.tool == "git" and "fetch" in e.argv and "origin" in e.argv for e in run.execs)
    assert run.argv_holding(token) == []
    clone = GitRepo(workspace)
    assert clone.head() == head
    assert clone.git("merge-base", "--is-ancestor", first, "HEAD") == ""  # history is there
    assert clone.git("rev-parse", "origin/other") == first
    assert token not in (workspace / ".git" / "config").read_text()


def test_kaniko_job_passes_build_args_one_per_line(tmp_path: Path) -> None:
    """The build script under busybox sh, with a stand-in pipeline-kit that writes its argv."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "pipeline-kit"
    stand_in.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/argv\n')
    stand_in.chmod(0o755)
    _, build = _kaniko_job_scripts()
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin", "CONFIG": "ci/pk.yaml",
        "BUILD_ARGS": "--tag\n  release candidate  \n\n--strategy\nbuilder\n",
    }  # fmt: skip
    result = subprocess.run(
        ["busybox", "sh", "-e", "-c", build], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "argv").read_text().splitlines() == [
        "--config", "ci/pk.yaml", "build", "--builder", "kaniko", "--format", "github",
        "--tag", "release candidate", "--strategy", "builder",
    ]  # fmt: skip
    result = subprocess.run(
        ["busybox", "sh", "-e", "-c", build], env={**env, "BUILD_ARGS": ""}, capture_output=True
    )
    assert result.returncode == 0
    assert (tmp_path / "argv").read_text().splitlines()[-1] == "github"


def test_deploy_cluster_is_off_by_default_and_deploys_before_promote() -> None:
    """deploy-cluster adds ``pipeline-kit deploy`` before promote (a rollback promotes nothing);
    the kubeconfig goes from the secret to a 0600 file that KUBECONFIG names, never into argv."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "pipeline.yml").read_text())
    declared = workflow[True]["workflow_call"]
    assert declared["inputs"]["deploy-cluster"]["type"] == "boolean"
    assert declared["inputs"]["deploy-cluster"]["default"] is False
    assert declared["secrets"]["kubeconfig"]["required"] is False
    steps = workflow["jobs"]["deploy"]["steps"]
    commands = [(step.get("with") or {}).get("command") for step in steps]
    deploy, promote = steps[commands.index("deploy")], steps[commands.index("promote")]
    assert commands.index("deploy") < commands.index("promote")
    assert deploy["if"] == "inputs.deploy-cluster" and "if" not in promote  # else promote only
    assert deploy["env"]["KUBECONFIG"] == "${{ runner.temp }}/pipeline-kit-kubeconfig"
    assert deploy["with"]["args"].split() == ["--image", "${{", "needs.gate.outputs.image", "}}"]
    written = [step for step in steps if "secrets.kubeconfig" in json.dumps(step)]
    assert len(written) == 1 and "secrets" not in written[0]["run"]
    assert "umask 077" in written[0]["run"]
    removed = steps[commands.index("deploy") + 1]
    assert removed["if"] == "always() && inputs.deploy-cluster" and "rm -f" in removed["run"]


def test_require_attestations_is_off_by_default_and_verifies_first() -> None:
    """require-attestations adds ``pipeline-kit verify`` of the gated digest as the deploy
    job's first command: a digest without consistent attestations is neither deployed nor
    promoted (the step fails the job)."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "pipeline.yml").read_text())
    declared = workflow[True]["workflow_call"]["inputs"]["require-attestations"]
    assert (declared["type"], declared["default"]) == ("boolean", False)
    steps = workflow["jobs"]["deploy"]["steps"]
    commands = [(step.get("with") or {}).get("command") for step in steps]
    verify = steps[commands.index("verify")]
    assert commands.index("verify") < commands.index("deploy") < commands.index("promote")
    assert verify["if"] == "inputs.require-attestations"
    assert verify["with"]["args"] == "${{ needs.gate.outputs.image }}"
    assert verify["with"]["registry-password"] == "${{ secrets.registry-password }}"


def test_platform_runners_make_one_build_per_platform_and_a_merge() -> None:
    """Without platform-runners the build jobs' matrix is one entry with no platform (the
    jobs as they were); with it, one per platform on its runner, and merge's index is what
    the gate and the workflow's outputs take."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "pipeline.yml").read_text())
    inputs = workflow[True]["workflow_call"]["inputs"]
    assert inputs["platforms"]["default"] == inputs["platform-runners"]["default"] == ""
    jobs = workflow["jobs"]
    single = '[{"platform":"","runs-on":""}]'
    for name in ("build", "build-kaniko"):
        include = jobs[name]["strategy"]["matrix"]["include"]
        assert include == f"${{{{ fromJSON(inputs.platform-runners || '{single}') }}}}"
        assert jobs[name]["runs-on"] == "${{ matrix.runs-on || inputs.runs-on }}"
    args = jobs["build"]["steps"][-1]["with"]["args"]
    assert "${{ matrix.platform != '' && '--platform' || '' }}" in args
    assert "${{ matrix.platform == '' && inputs.platforms != '' && '--platforms' || '' }}" in args
    merge = jobs["merge"]
    assert merge["needs"] == ["build", "build-kaniko"]
    assert "inputs.platform-runners != ''" in merge["if"]
    assert merge["steps"][-1]["with"]["command"] == "merge"
    assert "merge" in jobs["gate"]["needs"]
    (up,) = [step for step in jobs["gate"]["steps"] if step.get("id") == "up"]
    assert "|| needs.merge.outputs.image }}" in up["with"]["args"]
    # A matrix leg of one platform reports nothing: merge's index is the build's image.
    for name in ("build", "build-kaniko"):
        assert jobs[name]["outputs"]["image"] == (
            "${{ matrix.platform == '' && steps.build.outputs.image || '' }}"
        )
    outputs = workflow[True]["workflow_call"]["outputs"]
    assert outputs["image"]["value"].endswith("|| jobs.merge.outputs.image }}")


def test_kaniko_job_builds_its_matrix_platform(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "pipeline-kit"
    stand_in.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/argv\n')
    stand_in.chmod(0o755)
    _, build = _kaniko_job_scripts()
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CONFIG": "pk.yaml", "PLATFORM": "linux/arm64"}
    result = subprocess.run(
        ["busybox", "sh", "-e", "-c", build], env={**env, "BUILD_ARGS": "--tag\nx\n"},
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "argv").read_text().splitlines() == [
        "--config", "pk.yaml", "build", "--builder", "kaniko", "--format", "github",
        "--platform", "linux/arm64", "--tag", "x",
    ]  # fmt: skip

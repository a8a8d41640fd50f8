"""The GitLab CI template (.gitlab-ci-template.yml), its pipeline run for real by gitlab-ci-local.

A scratch repository holds the bundled example (tests/example_image.py: configured to build
offline into the session's loopback registry and to preview with podman) and includes the
template with ``include: local`` and the ``builder: buildah`` input. Its registry repository
starts as an earlier default-branch pipeline would leave it: the example's image, built once for
the session, under its content key. gitlab-ci-local then runs, with GitLab's variables:

1. a merge request pipeline for a code-only commit: detect, lint, build (appended onto the
   default branch's image), the review preview, the smoke gate against it;
2. the manual stop-preview;
3. the default branch's pipeline after the merge: detect, lint, build (appended onto its own
   image: the merge request's records are not the default branch's), the smoke gate on a
   preview of its own, promote;
4. the default branch's next commit, a regression that loses the model's words: build (append),
   the smoke gate fails, promote does not run;
5. a scheduled pipeline: preview-gc alone;
6. a pipeline with PIPELINE_KIT_DISABLED=true.

The project's own jobs ``saw-<job>`` each need one kit job and keep the values its dotenv report
gave them. The kit's jobs install it with pip from the ``install`` input's default
(``llm-pipeline-kit==$PIPELINE_KIT_VERSION``), offline: the only wheel of that name they can find
is this checkout's, the dependencies come from the wheelhouse scripts/test-images caches.

gitlab-ci-local runs every job's script on this machine (--force-shell-executor): no job image
is pulled. The Kaniko build job cannot run like that (Kaniko deletes the root filesystem it runs
in; only support/services/kaniko.py runs it, in a throwaway root), so the pipeline selects buildah
through the ``builder`` input, and the Kaniko job's definition (builder image, entrypoint, the
kit's path in the image, its script) is checked as gitlab-ci-local renders it with the default
inputs. The template is validated against GitLab's CI schema (check-jsonschema's
vendor.gitlab-ci) the way GitLab reads it: the header, then the jobs with the inputs
interpolated, and every job again as ``extends`` merges it (the schema skips hidden jobs).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import pipeline_kit
from tests.support import REPO, gitlab_yaml
from tests.support.example_image import (
    KIT_WHEELHOUSE,
    BuiltExample,
    kit_wheel,
    prepare_example,
    remove_storage,
)
from tests.support.gitlab_pipeline import (
    GITLAB_CI,
    GITLAB_CI_LOCAL,
    TEMPLATE,
    Project,
    Run,
    merge_request_variables,
    seed_default_branch,
)
from tests.support.images import image_manifest
from tests.support.services.registry import RegistryServer
from tests.support.tools import rendered

ROOT = REPO
KIT_JOBS = ("detect", "lint", "build", "preview", "smoke", "promote", "stop-preview", "preview-gc")
MR_IID = "7"
REPOSITORY = "gitlab/llm-service"
# A code change that loses what the model says (the server still answers, and is ready).
REGRESSION = """

def detokenize(tokens: list[str]) -> str:
    return "lost"
"""


@dataclass(frozen=True)
class Pipelines:
    merge_request: Run
    previews_after_merge_request: set[str]
    stop: Run
    previews_after_stop: set[str]
    merge_request_junit: str
    default_branch: Run
    previews_after_default_branch: set[str]
    default_branch_junit: str
    regression: Run
    regression_junit: str
    previews_after_regression: set[str]
    scheduled: Run
    disabled: Run


def push(before: str) -> dict[str, str]:
    """GitLab's variables of a push to the default branch (the checked-out branch)."""
    return {"GITLAB_CI": "true", "CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BEFORE_SHA": before}


@pytest.fixture(scope="module")
def pipelines(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    registry: RegistryServer,
) -> Iterator[Pipelines]:
    if not GITLAB_CI_LOCAL.exists():
        pytest.fail(f"{GITLAB_CI_LOCAL} is missing: run scripts/test-tools (scripts/test does).")
    if not (KIT_WHEELHOUSE / ".requirements.sha256").is_file():
        pytest.fail(f"{KIT_WHEELHOUSE} is missing: run scripts/test-images (scripts/test does).")
    example_image: BuiltExample = request.getfixturevalue("example_image")
    workdir = tmp_path_factory.mktemp("gitlab")
    runroot = Path(tempfile.mkdtemp(prefix="pk-gl-"))
    project = None
    try:
        example = prepare_example(workdir, runroot, registry, name=REPOSITORY)
        seed_default_branch(example_image, registry, REPOSITORY)
        # The install input's default, llm-pipeline-kit==$PIPELINE_KIT_VERSION, finds this
        # checkout's wheel; its dependencies come from the kit's wheelhouse.
        wheels = f"{kit_wheel(workdir / 'wheel')} {KIT_WHEELHOUSE}"
        pip = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": wheels}
        project = Project(example, workdir, pip)
        main_before = project.repo.head()
        project.repo.git("checkout", "-q", "-b", "feature")
        app = project.repo.path / "server" / "app.py"
        project.repo.commit(
            {"server/app.py": app.read_text() + "\n# Served by the review preview.\n"},
            message="code only",
        )
        merge_request = merge_request_variables(MR_IID, main_before)
        mr_run = project.run(variables=merge_request)
        after_mr = project.previews()
        mr_junit = project.smoke_junit().read_text() if mr_run.returncode == 0 else ""
        stop = project.run("pipeline-kit:stop-preview", variables=merge_request)
        after_stop = project.previews()

        project.repo.git("checkout", "-q", "main")
        project.repo.git("merge", "-q", "--ff-only", "feature")
        project.push("main")
        default_branch = project.run(variables=push(main_before))
        after_default = project.previews()
        default_junit = project.smoke_junit().read_text() if default_branch.returncode == 0 else ""

        merged = project.repo.head()
        project.repo.commit({"server/app.py": app.read_text() + REGRESSION}, message="regression")
        project.push("main")
        # promote and what it needs: the build, then the gate.
        regression = project.run(
            "--needs", "pipeline-kit:promote", "saw-build", variables=push(merged)
        )
        regression_junit = project.smoke_junit().read_text()
        after_regression = project.previews()

        scheduled = project.run(variables={"GITLAB_CI": "true", "CI_PIPELINE_SOURCE": "schedule"})
        disabled = project.run(variables={"GITLAB_CI": "true", "PIPELINE_KIT_DISABLED": "true"})
        yield Pipelines(
            mr_run, after_mr, stop, after_stop, mr_junit,
            default_branch, after_default, default_junit,
            regression, regression_junit, after_regression, scheduled, disabled,
        )  # fmt: skip
    finally:
        if project is not None:
            project.remove_previews()
        remove_storage(workdir)
        remove_storage(runroot)


def junit_cases(text: str) -> tuple[int, int]:
    """(test cases, failures and errors) of a JUnit report."""
    root = ET.fromstring(text)
    cases = root.findall(".//testcase")
    bad = [case for case in cases if case.find("failure") is not None]
    bad += [case for case in cases if case.find("error") is not None]
    return len(cases), len(bad)


def test_merge_request_pipeline_builds_previews_and_gates_the_digest(
    pipelines: Pipelines, registry: RegistryServer
) -> None:
    run = pipelines.merge_request
    assert run.returncode == 0, run.why()
    assert run.kit_jobs() == {
        f"pipeline-kit:{job}" for job in ("detect", "lint", "build", "preview", "smoke")
    }  # not promote (the default branch and tags), stop-preview (manual), preview-gc
    build = run.witnessed["saw-build"]
    assert build["PIPELINE_KIT_STRATEGY"] == "append"  # a code-only change onto main's image
    assert f"mr-{MR_IID}" in build["PIPELINE_KIT_TAGS"].split(",")
    manifest = image_manifest(registry.url, REPOSITORY, f"mr-{MR_IID}")
    assert build["PIPELINE_KIT_DIGEST"] == manifest["_digest"]
    assert build["PIPELINE_KIT_IMAGE"] == f"{registry.host}/{REPOSITORY}@{manifest['_digest']}"

    preview = run.witnessed["saw-preview"]
    assert preview["PIPELINE_KIT_PREVIEW_NAME"] == f"llm-service-mr-{MR_IID}"
    assert preview["PIPELINE_KIT_PREVIEW_URL"].startswith("http://127.0.0.1:")
    assert preview["PIPELINE_KIT_DIGEST"] == build["PIPELINE_KIT_DIGEST"]
    # The review environment stays up after the pipeline, until stop-preview.
    assert pipelines.previews_after_merge_request == {f"llm-service-mr-{MR_IID}"}

    smoke = run.witnessed["saw-smoke"]
    assert smoke["PIPELINE_KIT_VERDICT"] == "passed"
    assert smoke["PIPELINE_KIT_DIGEST"] == build["PIPELINE_KIT_DIGEST"]
    cases, bad = junit_cases(pipelines.merge_request_junit)
    assert cases >= 2 and bad == 0
    assert "PIPELINE_KIT_TAGS" not in run.witnessed["saw-promote"]  # it ran without promote


def test_stop_preview_tears_the_review_preview_down(pipelines: Pipelines) -> None:
    assert pipelines.stop.returncode == 0, pipelines.stop.why()
    assert pipelines.stop.kit_jobs() == {"pipeline-kit:stop-preview"}
    assert pipelines.previews_after_stop == set()


def test_detect_results_reach_the_jobs_that_need_it(pipelines: Pipelines) -> None:
    """A code-only commit, in the merge request and on the default branch after the merge."""
    for run in (pipelines.merge_request, pipelines.default_branch):
        seen = run.witnessed["saw-detect"]
        assert seen["PIPELINE_KIT_CODE_CHANGED"] == "true"
        assert seen["PIPELINE_KIT_DEPS_CHANGED"] == "false"
        assert seen["PIPELINE_KIT_BASE_CHANGED"] == "false"
        assert seen["PIPELINE_KIT_REBUILD_FROM"] == "code"
        assert seen["PIPELINE_KIT_IMAGE_CHANGED"] == "true"
        assert re.fullmatch(r"[0-9a-f]{16,}", seen["PIPELINE_KIT_CODE_KEY"])
    mr_keys = pipelines.merge_request.witnessed["saw-detect"]
    main_keys = pipelines.default_branch.witnessed["saw-detect"]
    assert mr_keys["PIPELINE_KIT_CODE_KEY"] == main_keys["PIPELINE_KIT_CODE_KEY"]


def test_default_branch_pipeline_publishes_its_own_image_gates_and_promotes_it(
    pipelines: Pipelines, registry: RegistryServer
) -> None:
    """The merge request built this content, but under its own records: the default branch
    believes none of them (docs/trust-model.md) and appends onto its own image instead."""
    run = pipelines.default_branch
    assert run.returncode == 0, run.why()
    assert run.kit_jobs() == {
        f"pipeline-kit:{job}" for job in ("detect", "lint", "build", "smoke", "promote")
    }
    from_mr = pipelines.merge_request.witnessed["saw-build"]["PIPELINE_KIT_DIGEST"]
    build = run.witnessed["saw-build"]
    assert build["PIPELINE_KIT_STRATEGY"] == "append"
    built = build["PIPELINE_KIT_DIGEST"]
    assert built != from_mr
    assert "latest" in build["PIPELINE_KIT_TAGS"].split(",")

    smoke = run.witnessed["saw-smoke"]
    assert smoke["PIPELINE_KIT_VERDICT"] == "passed" and smoke["PIPELINE_KIT_DIGEST"] == built
    cases, bad = junit_cases(pipelines.default_branch_junit)
    assert cases >= 2 and bad == 0
    assert pipelines.previews_after_default_branch == set()  # the gate's preview went with it

    promote = run.witnessed["saw-promote"]
    assert promote["PIPELINE_KIT_DIGEST"] == built
    assert promote["PIPELINE_KIT_TAGS"].split(",") == [f"{registry.host}/{REPOSITORY}:stable"]
    assert image_manifest(registry.url, REPOSITORY, "stable")["_digest"] == built


def test_a_failed_gate_promotes_nothing(pipelines: Pipelines, registry: RegistryServer) -> None:
    run = pipelines.regression
    assert run.returncode == 1, run.why()
    assert run.kit_jobs() == {"pipeline-kit:build"}
    assert "pipeline-kit:smoke" in run.failed and "pipeline-kit:promote" not in run.failed
    build = run.witnessed["saw-build"]
    assert build["PIPELINE_KIT_STRATEGY"] == "append"
    passed = pipelines.default_branch.witnessed["saw-build"]["PIPELINE_KIT_DIGEST"]
    assert build["PIPELINE_KIT_DIGEST"] != passed
    assert junit_cases(pipelines.regression_junit)[1] >= 1
    assert pipelines.previews_after_regression == set()
    assert image_manifest(registry.url, REPOSITORY, "stable")["_digest"] == passed


def test_scheduled_pipeline_collects_expired_previews_only(pipelines: Pipelines) -> None:
    run = pipelines.scheduled
    assert run.returncode == 0, run.why()
    assert run.kit_jobs() == {"pipeline-kit:preview-gc"}


def test_disabled_runs_no_kit_job(pipelines: Pipelines) -> None:
    run = pipelines.disabled
    assert run.returncode == 0, run.why()
    assert run.kit_jobs() == set()
    assert "saw-detect" in run.passed  # the project's own jobs still run


# Static checks: what gitlab-ci-local cannot run here, checked against GitLab's own rules.


def split_template(text: str) -> tuple[dict[str, Any], str]:
    """The header (``spec``) and the jobs' text, as GitLab splits them at ``---``."""
    header, body = re.split(r"^---$", text, maxsplit=1, flags=re.MULTILINE)
    return yaml.safe_load(header), body


def interpolate(body: str, inputs: Mapping[str, Any]) -> str:
    def value(match: re.Match[str]) -> str:
        return str(inputs[match.group(1)])

    return re.sub(r"\$\[\[\s*inputs\.([\w-]+)\s*\]\]", value, body)


def defaults(header: Mapping[str, Any]) -> dict[str, Any]:
    return {name: spec["default"] for name, spec in header["spec"]["inputs"].items()}


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.gitlab-ci",
         "--data-transform", "gitlab-ci", str(path)],
        capture_output=True, text=True,
    )  # fmt: skip


def test_template_is_valid_gitlab_ci_as_gitlab_reads_it(tmp_path: Path) -> None:
    header, body = split_template(TEMPLATE.read_text())
    for name, spec in header["spec"]["inputs"].items():
        assert spec.get("description"), f"input {name} has no description"
        assert "default" in spec, f"input {name} has no default: every input is optional"
    (tmp_path / "header.yml").write_text(yaml.safe_dump(header))
    for builder in header["spec"]["inputs"]["builder"]["options"]:
        jobs = tmp_path / f"jobs-{builder}.yml"
        jobs.write_text(interpolate(body, {**defaults(header), "builder": builder}))
        loaded = gitlab_yaml.load(jobs.read_text())
        assert not {"default", "variables", "stages"} & set(loaded), "a component sets no globals"
    scratch = tmp_path / "gitlab-ci.yml"
    scratch.write_text(GITLAB_CI)
    for path in sorted(tmp_path.glob("*.yml")):
        result = check_jsonschema(path)
        assert result.returncode == 0, f"{path.name}: {result.stdout}{result.stderr}"


def test_schema_check_catches_a_broken_job(tmp_path: Path) -> None:
    """The validation above can fail: a misspelled keyword is refused."""
    header, body = split_template(TEMPLATE.read_text())
    job = "pipeline-kit:detect:\n  extends: .pipeline-kit:detect\n"
    broken = interpolate(body, defaults(header)).replace(job, job + "  scripts: [true]\n")
    assert broken != interpolate(body, defaults(header))
    (tmp_path / "jobs.yml").write_text(broken)
    assert check_jsonschema(tmp_path / "jobs.yml").returncode == 1


def test_kaniko_build_job_runs_the_kit_from_the_builder_image(tmp_path: Path) -> None:
    """The default builder: the job runs in the builder image with its entrypoint cleared (a
    shell, not the executor), installs nothing (Kaniko would delete it between stages) and runs
    the kit from /kaniko, the one directory Kaniko keeps."""
    job = rendered(tmp_path, "include:\n  - local: .gitlab-ci-template.yml\n")["pipeline-kit:build"]
    version = pipeline_kit.__version__
    assert job["variables"]["PIPELINE_KIT_VERSION"] == version
    assert job["image"] == {
        "name": "ghcr.io/pipeline-kit/kaniko:$PIPELINE_KIT_VERSION",
        "entrypoint": [""],
    }
    assert job["before_script"] == [] and "after_script" not in job
    assert job["script"] == [
        '/kaniko/pipeline-kit/bin/pipeline-kit --config "$PIPELINE_KIT_CONFIG" build'
        ' --builder kaniko ${PIPELINE_KIT_PLATFORM:+--platform "$PIPELINE_KIT_PLATFORM"}'
        " --format gitlab --dotenv pipeline-kit.env"
    ]
    assert job["variables"]["GIT_DEPTH"] == "0"
    assert job["artifacts"] == {"reports": {"dotenv": "pipeline-kit.env"}}


def test_builder_image_puts_the_kit_where_the_kaniko_job_runs_it() -> None:
    """The builder image's last stage (the image the job runs in) copies the kit's entry point
    to the path the job's script names."""
    text = (ROOT / "images" / "kaniko" / "Dockerfile").read_text()
    final_stage = text[text.rindex("\nFROM ") :]
    copied = r"^COPY .*\s/kaniko/pipeline-kit/bin/pipeline-kit$"
    assert re.search(copied, final_stage, re.MULTILINE)


def test_every_kit_job_is_switched_off_first_and_pins_the_kits_version(tmp_path: Path) -> None:
    """The opt-out is written once (.pipeline-kit:rules) and is every job's first rule."""
    assert TEMPLATE.read_text().count('$PIPELINE_KIT_DISABLED == "true"') == 1
    pipeline = rendered(tmp_path, "include:\n  - local: .gitlab-ci-template.yml\n")
    for job in KIT_JOBS:
        definition = pipeline[f"pipeline-kit:{job}"]
        assert definition["rules"][0] == {
            "if": '$PIPELINE_KIT_DISABLED == "true" || $PIPELINE_KIT_DISABLED == "1"',
            "when": "never",
        }, job
        assert definition["variables"]["PIPELINE_KIT_VERSION"] == pipeline_kit.__version__
        if job == "build":  # Kaniko's: checked above
            continue
        assert definition["image"] == {"name": "python:3.12-bookworm"}
        install = definition["variables"]["PIPELINE_KIT_INSTALL"]
        assert install == f"{pipeline_kit.DISTRIBUTION}==$PIPELINE_KIT_VERSION"
        assert any('pip" install' in line for line in definition["before_script"])


@pytest.mark.parametrize("builder", ["kaniko", "buildah", "buildkit"])
def test_every_job_as_extends_merges_it_is_valid_gitlab_ci(tmp_path: Path, builder: str) -> None:
    """The schema skips hidden jobs; the jobs they make, merged, are checked whole."""
    include = f"include:\n  - local: .gitlab-ci-template.yml\n    inputs: {{builder: {builder}}}\n"
    pipeline = rendered(tmp_path, include)
    assert set(KIT_JOBS) <= {name.removeprefix("pipeline-kit:") for name in pipeline}
    merged = tmp_path / "merged.yml"
    merged.write_text(yaml.safe_dump(pipeline))
    result = check_jsonschema(merged)
    assert result.returncode == 0, result.stdout + result.stderr

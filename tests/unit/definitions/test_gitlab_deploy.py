"""The GitLab template's promote job with and without ``kubernetes-deploy`` and
``require-attestations``: its script run by
a real ``sh`` and ``bash`` (runners use either) with a recording ``pipeline-kit`` on PATH, so
the order of the commands, their argv and what stops the job are what GitLab's runner would
do. (The template as a whole is checked against GitLab's schema with gitlab-ci-local in
tests/integration/ci.)"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import REPO

TEMPLATE = REPO / ".gitlab-ci-template.yml"
IMAGE = "registry.example.com/ml/llm@sha256:" + "c" * 64


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!reference", lambda loader, node: loader.construct_sequence(node))


def _template() -> tuple[dict[str, Any], dict[str, Any]]:
    header, jobs = yaml.load_all(TEMPLATE.read_text(), Loader=_Loader)
    return header, jobs


@pytest.fixture(params=["sh", "bash"])
def shell(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _promote(tmp_path: Path, shell: str, deploy: str, exit_code: int = 0, **env: str) -> Any:
    """The promote job's script, as the runner runs it (each line in one shell, -e)."""
    _, jobs = _template()
    job = jobs[".pipeline-kit:promote"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    kit = bin_dir / "pipeline-kit"
    failing = env.pop("FAILING", "deploy")
    kit.write_text(f'#!/bin/sh\necho "$*" >> "{tmp_path}/calls"\n'
                   f'[ "$1" = {failing} ] && exit {exit_code}\nexit 0\n')  # fmt: skip
    kit.chmod(0o755)
    script = "\n".join(job["script"])
    variables = {"PIPELINE_KIT_PROMOTE_TAGS": "stable", "PIPELINE_KIT_KUBERNETES_DEPLOY": deploy,
                 "PIPELINE_KIT_VERDICT": "passed", "PIPELINE_KIT_IMAGE": IMAGE}  # fmt: skip
    result = subprocess.run(
        [shell, "-e", "-c", script],
        cwd=tmp_path,
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}", **variables, **env},
        capture_output=True,
        text=True,
    )
    calls = tmp_path / "calls"
    return result, calls.read_text().splitlines() if calls.exists() else []


def test_kubernetes_deploy_is_a_boolean_input_off_by_default() -> None:
    header, jobs = _template()
    spec = header["spec"]["inputs"]["kubernetes-deploy"]
    assert (spec["type"], spec["default"]) == ("boolean", False)
    job = jobs[".pipeline-kit:promote"]
    assert job["variables"]["PIPELINE_KIT_KUBERNETES_DEPLOY"] == "$[[ inputs.kubernetes-deploy ]]"
    assert job["artifacts"]["reports"]["dotenv"] == ["pipeline-kit.env", "pipeline-kit-deploy.env"]


def test_off_it_promotes_only(tmp_path: Path, shell: str) -> None:
    result, calls = _promote(tmp_path, shell, "false")
    assert result.returncode == 0, result.stderr
    assert calls == [f"promote {IMAGE} stable --format gitlab --dotenv pipeline-kit.env"]
    assert (tmp_path / "pipeline-kit-deploy.env").read_text() == ""  # the report is there, empty


def test_on_it_deploys_with_the_kubeconfig_from_the_environment_then_promotes(
    tmp_path: Path, shell: str
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    result, calls = _promote(tmp_path, shell, "true", KUBECONFIG=str(kubeconfig))
    assert result.returncode == 0, result.stderr
    assert calls == [
        f"deploy --image {IMAGE} --format gitlab --dotenv pipeline-kit-deploy.env",
        f"promote {IMAGE} stable --format gitlab --dotenv pipeline-kit.env",
    ]
    assert all(str(kubeconfig) not in call for call in calls)


@pytest.mark.parametrize("exit_code", [1, 3])
def test_a_failed_deploy_promotes_nothing(tmp_path: Path, shell: str, exit_code: int) -> None:
    result, calls = _promote(tmp_path, shell, "true", exit_code, KUBECONFIG="/dev/null")
    assert result.returncode == exit_code
    assert [call.split()[0] for call in calls] == ["deploy"]


def test_on_without_a_kubeconfig_stops_before_any_command(tmp_path: Path, shell: str) -> None:
    result, calls = _promote(tmp_path, shell, "true")
    assert result.returncode != 0 and calls == []
    assert "kubernetes-deploy needs KUBECONFIG" in result.stderr


def test_require_attestations_is_a_boolean_input_off_by_default() -> None:
    header, jobs = _template()
    spec = header["spec"]["inputs"]["require-attestations"]
    assert (spec["type"], spec["default"]) == ("boolean", False)
    variables = jobs[".pipeline-kit:promote"]["variables"]
    assert variables["PIPELINE_KIT_REQUIRE_ATTESTATIONS"] == "$[[ inputs.require-attestations ]]"


def test_require_attestations_verifies_before_deploy_and_promote(
    tmp_path: Path, shell: str
) -> None:
    result, calls = _promote(tmp_path, shell, "true", KUBECONFIG="/dev/null",
                             PIPELINE_KIT_REQUIRE_ATTESTATIONS="true")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [call.split()[0] for call in calls] == ["verify", "deploy", "promote"]
    assert calls[0] == f"verify {IMAGE}"


def test_a_digest_that_fails_verify_is_neither_deployed_nor_promoted(
    tmp_path: Path, shell: str
) -> None:
    env = {"KUBECONFIG": "/dev/null", "PIPELINE_KIT_REQUIRE_ATTESTATIONS": "true"}
    result, calls = _promote(tmp_path, shell, "true", 1, FAILING="verify", **env)
    assert result.returncode == 1
    assert calls == [f"verify {IMAGE}"]


@pytest.mark.parametrize("builder", ["kaniko", "buildah", "buildkit"])
def test_a_matrix_platform_reaches_the_build(tmp_path: Path, shell: str, builder: str) -> None:
    """Each builder's script, with and without PIPELINE_KIT_PLATFORM (set by the matrix of
    .pipeline-kit:build-platforms), as the runner's shell expands it."""
    _, jobs = _template()
    script = "\n".join(jobs[f".pipeline-kit:build-{builder}"]["script"])
    script = script.replace("/kaniko/pipeline-kit/bin/pipeline-kit", "pipeline-kit")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    kit = bin_dir / "pipeline-kit"
    kit.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{tmp_path}/argv"\n')
    kit.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "PIPELINE_KIT_CONFIG": "pk.yaml"}
    for platform, expected in (("linux/arm64", ["--platform", "linux/arm64"]), ("", [])):
        result = subprocess.run(
            [shell, "-e", "-c", script], env={**env, "PIPELINE_KIT_PLATFORM": platform},
            capture_output=True, text=True,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "argv").read_text().splitlines() == [
            "--config", "pk.yaml", "build", "--builder", builder, *expected,
            "--format", "gitlab", "--dotenv", "pipeline-kit.env",
        ]  # fmt: skip


def test_the_platform_jobs_build_on_their_runners_and_merge_reports_the_index() -> None:
    _, jobs = _template()
    platforms = jobs[".pipeline-kit:build-platforms"]
    assert platforms["extends"] == ".pipeline-kit:build"
    assert platforms["tags"] == ["$PIPELINE_KIT_RUNNER"]
    matrix = platforms["parallel"]["matrix"]
    assert [entry["PIPELINE_KIT_PLATFORM"] for entry in matrix] == ["linux/amd64", "linux/arm64"]
    merge = jobs[".pipeline-kit:merge"]
    assert merge["script"] == [
        'pipeline-kit --config "$PIPELINE_KIT_CONFIG" merge --format gitlab --dotenv '
        "pipeline-kit.env"
    ]
    assert merge["artifacts"]["reports"]["dotenv"] == "pipeline-kit.env"
    assert merge["rules"] == jobs[".pipeline-kit:build"]["rules"]

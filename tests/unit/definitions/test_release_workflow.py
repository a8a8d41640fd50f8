""".github/workflows/release.yml: what each job may do, and its scripts run for real (bash, a
clone of this repository released with scripts/release, a stand-in for the `gh` client) the way
the runner runs them. zizmor and the workflow schema check it with the others
(test_github_definitions.py)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline_kit import DISTRIBUTION, __version__
from tests.support import REPO
from tests.support.example_image import CACHE
from tests.support.gitrepo import GIT_ENV, GitRepo
from tests.support.release import NEXT, released_clone
from tests.support.tools import unpinned_uses

RELEASE_YML = REPO / ".github" / "workflows" / "release.yml"
WORKFLOW: dict[Any, Any] = yaml.safe_load(RELEASE_YML.read_text())
JOBS: dict[str, Any] = WORKFLOW["jobs"]
_MAJOR = __version__.split(".")[0]
DIGEST = "sha256:" + "5eed" * 16


def test_it_runs_on_version_tags_alone() -> None:
    assert WORKFLOW[True] == {"push": {"tags": ["v*"]}}
    assert WORKFLOW["permissions"] == {"contents": "read"}


def test_every_action_is_pinned_by_commit(tmp_path: Path) -> None:
    """zizmor's default policy, with no exemption: every action by a 40-hex SHA."""
    assert unpinned_uses(RELEASE_YML) == []
    uses = re.findall(r"uses: (\S+)(.*)$", RELEASE_YML.read_text(), re.M)
    remote = [(ref, comment) for ref, comment in uses if not ref.startswith("./")]
    assert len(remote) >= 6
    for ref, comment in remote:
        assert re.fullmatch(r"[\w-]+/[\w-]+@[0-9a-f]{40}", ref), ref
        assert re.fullmatch(r" # v\d+\.\d+\.\d+", comment), (ref, comment)
    # The failing direction: a tag is what zizmor reports.
    moved = tmp_path / "release.yml"
    (publish,) = [ref for ref, _ in remote if ref.startswith("pypa/gh-action-pypi-publish@")]
    moved.write_text(
        RELEASE_YML.read_text().replace(publish, "pypa/gh-action-pypi-publish@release/v1")
    )
    assert len(unpinned_uses(moved)) == 1


def test_pypi_is_reached_by_trusted_publishing_alone() -> None:
    """The publish job gets an OIDC token and nothing else; no secret is named anywhere."""
    pypi = JOBS["pypi"]
    assert pypi["permissions"] == {"id-token": "write"}
    assert pypi["environment"]["url"] == f"https://pypi.org/project/{DISTRIBUTION}/"
    (publish,) = [step for step in pypi["steps"] if "gh-action-pypi-publish" in step["uses"]]
    assert publish["with"] == {"packages-dir": "dist/"}
    assert "secrets." not in RELEASE_YML.read_text()
    writers = {
        name: job["permissions"]
        for name, job in JOBS.items()
        if "write" in (job.get("permissions") or {}).values()
    }
    assert writers == {
        "pypi": {"id-token": "write"},
        "builder-image": {"contents": "read", "packages": "write"},
        "release": {"contents": "write"},
    }


def test_nothing_is_published_before_the_tests_pass() -> None:
    ci = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    assert "workflow_call" in ci[True]
    assert JOBS["test"] == {"name": "Tests", "needs": "check", "uses": "./.github/workflows/ci.yml"}

    def upstream(job: str) -> set[str]:
        needs = JOBS[job].get("needs", [])
        direct = {needs} if isinstance(needs, str) else set(needs)
        return direct.union(*(upstream(name) for name in direct))

    for job in ("dist", "pypi", "builder-image", "release"):
        assert {"check", "test"} <= upstream(job), job
    assert {"pypi", "builder-image"} <= upstream("release")


def test_the_builder_image_is_built_by_the_kit_itself() -> None:
    (build,) = [step for step in JOBS["builder-image"]["steps"] if step.get("id") == "build"]
    assert build["uses"] == "./"
    assert build["with"]["command"] == "build"
    assert build["with"]["config"] == "images/kaniko/pipeline-kit.yaml"
    config = yaml.safe_load((REPO / "images" / "kaniko" / "pipeline-kit.yaml").read_text())
    assert config["image"] == "ghcr.io/pipeline-kit/kaniko"
    for name in (".gitlab-ci-template.yml", ".github/workflows/pipeline.yml"):
        assert "ghcr.io/pipeline-kit/kaniko:" in (REPO / name).read_text()


def named_step(job: str, name: str) -> dict[str, Any]:
    (step,) = [step for step in JOBS[job]["steps"] if step.get("name") == name]
    return dict(step)


@pytest.mark.parametrize("buildkit_host", ["", "unix:///run/buildkit/buildkitd.sock"])
def test_the_builder_image_job_makes_a_buildx_builder_unless_the_runner_has_buildkitd(
    tmp_path: Path, buildkit_host: str
) -> None:
    """GitHub's runners: a docker-container buildx builder, as before. A runner whose own
    buildkitd BUILDKIT_HOST names: nothing to make, the kit speaks buildctl to it."""
    steps = JOBS["builder-image"]["steps"]
    buildkit = named_step("builder-image", "BuildKit")
    assert steps.index(buildkit) == [s.get("id") for s in steps].index("build") - 1
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    seen = tmp_path / "docker.argv"
    docker = bin_dir / "docker"  # the Docker client: records its arguments
    docker.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> {seen}\n')
    docker.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "BUILDKIT_HOST": buildkit_host}
    result = bash(buildkit["run"], tmp_path, env)
    assert result.returncode == 0, result.stderr
    if buildkit_host:
        assert not seen.exists()
        assert "BuildKit: the runner's buildkitd (BUILDKIT_HOST)" in result.stdout
    else:
        assert seen.read_text().splitlines() == [
            "buildx", "create", "--name", "pipeline-kit", "--driver", "docker-container",
            "--use", "--bootstrap",
        ]  # fmt: skip


def step_script(job: str, index: int = -1) -> str:
    script: str = [step for step in JOBS[job]["steps"] if "run" in step][index]["run"]
    return script


@pytest.fixture
def released(tmp_path: Path) -> GitRepo:
    """The commit a tag vNEXT would name (tests/support/release.py)."""
    return released_clone(tmp_path / "kit", tag=False)


def checkout(released: GitRepo, job: str, into: Path) -> Path:
    """The tag's commit as the job's actions/checkout step fetches it: as shallow as it asks."""
    (step,) = [s for s in JOBS[job]["steps"] if s.get("uses", "").startswith("actions/checkout@")]
    depth = str((step.get("with") or {}).get("fetch-depth", 1))
    cloned = subprocess.run(
        ["git", "clone", "-q", "--depth", depth, f"file://{released.path}", str(into)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert cloned.returncode == 0, cloned.stderr
    return into


def bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script], cwd=cwd,
        env={**os.environ, **GIT_ENV, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("tag", ["match", f"v{__version__}-mismatch"])
def test_the_check_job_wants_the_tag_of_the_version_a_release_commit_ships(
    released: GitRepo, tmp_path: Path, tag: str
) -> None:
    output = tmp_path / "output"
    output.touch()
    name = f"v{NEXT}" if tag == "match" else tag
    workspace = checkout(released, "check", tmp_path / "workspace")
    result = bash(step_script("check"), workspace, {"TAG": name, "GITHUB_OUTPUT": str(output)})
    if tag == "match":
        assert result.returncode == 0, result.stderr
        assert output.read_text() == f"version={NEXT}\n"
        stamp = json.loads((workspace / "pipeline_kit" / "onboard" / "release.json").read_text())
        assert stamp == {"version": NEXT, "commit": released.head()}
    else:
        assert result.returncode == 2
        assert f"the tag {name} does not name the version this commit ships (v{NEXT}" in (
            result.stdout
        )
        assert output.read_text() == ""


def test_the_check_job_refuses_a_commit_scripts_release_pins_did_not_make(
    released: GitRepo, tmp_path: Path
) -> None:
    released.git("reset", "-q", "--hard", "HEAD~1")  # the version commit, before the pins
    output = tmp_path / "output"
    output.touch()
    workspace = checkout(released, "check", tmp_path / "workspace")
    result = bash(
        step_script("check"), workspace, {"TAG": f"v{NEXT}", "GITHUB_OUTPUT": str(output)}
    )
    assert result.returncode != 0
    assert "not a release commit" in result.stderr
    assert output.read_text() == ""


@pytest.mark.integration  # builds from the test cache's build system
def test_the_dist_job_builds_the_stamped_release_from_its_checkout(
    released: GitRepo, tmp_path: Path
) -> None:
    wheelhouse = CACHE / "kit-wheelhouse"
    if not any(wheelhouse.glob("setuptools-*.whl")):
        pytest.fail(f"no build system in {wheelhouse}: run scripts/test-images (scripts/test does)")
    workspace = checkout(released, "dist", tmp_path / "workspace")
    env = {"VERSION": NEXT, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse)}
    result = bash(step_script("dist"), workspace, {**env, "PIP_CONFIG_FILE": os.devnull})
    assert result.returncode == 0, result.stderr[-3000:]
    wheel = workspace / "dist" / f"llm_pipeline_kit-{NEXT}-py3-none-any.whl"
    assert sorted(p.name for p in (workspace / "dist").iterdir()) == [
        wheel.name, f"llm_pipeline_kit-{NEXT}.tar.gz",
    ]  # fmt: skip
    listed = (workspace / "dist.sha256").read_text()
    assert f"{hashlib.sha256(wheel.read_bytes()).hexdigest()}  {wheel}" in listed
    with zipfile.ZipFile(wheel) as built:  # init in this wheel pins the tag's commit
        stamp = json.loads(built.read("pipeline_kit/onboard/release.json"))
    assert stamp == {"version": NEXT, "commit": released.head()}


def test_the_release_job_publishes_the_notes_and_the_image_by_digest(
    released: GitRepo, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    seen = tmp_path / "gh"
    gh = bin_dir / "gh"  # the GitHub client: records its arguments and what they name
    gh.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > {seen}.argv\n'
        f'printf "%s" "$GH_TOKEN" > {seen}.token\n'
        f'while [ $# -gt 0 ]; do [ "$1" = --notes-file ] && cp "$2" {seen}.notes; shift; done\n'
    )
    gh.chmod(0o755)
    (released.path / "dist").mkdir()
    for name in (f"llm_pipeline_kit-{NEXT}.tar.gz", f"llm_pipeline_kit-{NEXT}-py3-none-any.whl"):
        (released.path / "dist" / name).write_text("built\n")
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}", "VERSION": NEXT, "TAG": f"v{NEXT}",
        "IMAGE": f"ghcr.io/pipeline-kit/kaniko@{DIGEST}", "GH_TOKEN": "ghs_release-token",
        "TAGS": f"ghcr.io/pipeline-kit/kaniko:{NEXT},ghcr.io/pipeline-kit/kaniko:{_MAJOR}",
    }  # fmt: skip
    result = bash(step_script("release"), released.path, env)
    assert result.returncode == 0, result.stderr

    pinned = f"ghcr.io/pipeline-kit/kaniko:{NEXT}@{DIGEST}"
    argv = Path(f"{seen}.argv").read_text().splitlines()
    assert argv[:7] == [
        "release",
        "create",
        f"v{NEXT}",
        "--verify-tag",
        "--title",
        f"v{NEXT}",
        "--notes-file",
    ]
    assert sorted(argv[8:]) == sorted([
        f"dist/llm_pipeline_kit-{NEXT}.tar.gz", f"dist/llm_pipeline_kit-{NEXT}-py3-none-any.whl",
        "assets/gitlab-ci-template.yml", "assets/pipeline.yml", "assets/kaniko-image.txt",
    ])  # fmt: skip
    assert Path(f"{seen}.token").read_text() == "ghs_release-token"  # by environment, not argv
    assert not [arg for arg in argv if "ghs_" in arg]

    assets = released.path / "assets"
    assert (assets / "kaniko-image.txt").read_text() == pinned + "\n"
    header = (assets / "gitlab-ci-template.yml").read_text().split("\n---\n", 1)[0]
    assert yaml.safe_load(header)["spec"]["inputs"]["kaniko-image"]["default"] == pinned
    called = yaml.safe_load((assets / "pipeline.yml").read_text())[True]["workflow_call"]
    assert called["inputs"]["kaniko-image"]["default"] == pinned

    notes = Path(f"{seen}.notes").read_text()
    section = subprocess.run(
        [str(REPO / "scripts" / "release-notes"), NEXT, "--changelog",
         str(released.path / "CHANGELOG.md")], capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert notes.startswith(section)
    assert f"pip install {DISTRIBUTION}=={NEXT}\n" in notes
    assert f"`{pinned}`" in notes


def test_the_reusable_workflows_buildkit_build_makes_its_builder_the_same_way() -> None:
    """The reusable workflow's build job (with ``builder: buildkit``) runs the same step as
    the release's builder image job, whose behaviour the test above runs."""
    pipeline = yaml.safe_load((REPO / ".github" / "workflows" / "pipeline.yml").read_text())
    (step,) = [s for s in pipeline["jobs"]["build"]["steps"] if s.get("name") == "BuildKit"]
    assert step["if"] == "inputs.builder == 'buildkit'"
    assert step["run"] == named_step("builder-image", "BuildKit")["run"]

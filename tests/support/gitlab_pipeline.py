"""A GitLab project of the bundled example, its pipelines run for real by gitlab-ci-local on
this machine (``--force-shell-executor``: no job image is pulled), with GitLab's variables.

The project includes a template with ``include: local`` and the ``builder: buildah`` input; its
own jobs ``saw-<job>`` each need one kit job and keep the values its dotenv report gave them.
How the kit's jobs install the kit is the project's ``pip`` variables: offline from wheels, or
from a package index.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.support import REPO
from tests.support.ci_outputs import parse_dotenv
from tests.support.example_image import BuiltExample, ExampleRepo
from tests.support.gitrepo import GIT_ENV, cli
from tests.support.images import image_config
from tests.support.services.registry import RegistryServer

TEMPLATE = REPO / ".gitlab-ci-template.yml"
GITLAB_CI_LOCAL = REPO / ".tools" / "node_modules" / ".bin" / "gitlab-ci-local"
PIPELINE_TIMEOUT_S = 900

# The scratch project's own jobs: each needs one kit job and keeps what its dotenv report gave.
WITNESSES = """
.saw:
  stage: .post
  script:
    - env | grep '^PIPELINE_KIT_' | sort > "$WITNESS_DIR/$CI_JOB_NAME.env" || true
""" + "".join(
    f"""
saw-{job}:
  extends: .saw
  needs: [{{job: "pipeline-kit:{job}", optional: true}}]
"""
    for job in ("detect", "build", "preview", "smoke", "promote")
)


GITLAB_CI = f"""\
include:
  - local: .gitlab-ci-template.yml
    inputs:
      builder: buildah
{WITNESSES}"""


@dataclass(frozen=True)
class Run:
    """One gitlab-ci-local invocation: its exit code, log, and the jobs that passed or failed."""

    returncode: int
    output: str
    passed: frozenset[str]
    failed: frozenset[str]
    witnessed: Mapping[str, dict[str, str]]  # saw-<job> -> the PIPELINE_KIT_ values it saw

    def kit_jobs(self) -> set[str]:
        return {job for job in self.passed if job.startswith("pipeline-kit:")}

    def why(self) -> str:
        """What a failed run said: the kit's errors and failed jobs, then the log's end."""
        lines = self.output.splitlines()
        said = [line for line in lines if re.search(r"error:|FAIL|Traceback", line)]
        return "\n".join([*said, "...", *lines[-60:]])


class Project:
    """The example as a GitLab project: a git repository with the template and a bare origin."""

    def __init__(
        self,
        example: ExampleRepo,
        workdir: Path,
        pip: Mapping[str, str],
        template: Path = TEMPLATE,
    ) -> None:
        """``pip``: the variables the kit's jobs install it with (its ``install`` input's
        default, ``llm-pipeline-kit==$PIPELINE_KIT_VERSION``); ``template``: the one the
        project includes."""
        self.example = example
        self.pip = dict(pip)
        self.repo = example.repo
        self.workdir = workdir
        self.home = workdir / "home"
        self.tmp = workdir / "tmp"
        self.home.mkdir()
        self.tmp.mkdir()
        config = self.repo.path / "pipeline-kit.yaml"
        local = "  provider: local\n"  # the weights the preview jobs mount, beside it
        assert local in config.read_text()
        config.write_text(
            config.read_text().replace(local, f"{local}  weights: {example.weights}\n")
        )
        shutil.copy(template, self.repo.path / ".gitlab-ci-template.yml")
        (self.repo.path / ".gitlab-ci.yml").write_text(GITLAB_CI)
        self.repo.git("config", "user.name", GIT_ENV["GIT_AUTHOR_NAME"])
        self.repo.git("config", "user.email", GIT_ENV["GIT_AUTHOR_EMAIL"])
        self.repo.commit(message="GitLab CI with pipeline-kit")
        origin = workdir / "origin.git"
        subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
        # gitlab-ci-local names the project after origin's URL; pushes go to the bare repository.
        self.repo.git("remote", "add", "origin", "https://gitlab.example.com/ml/llm-service.git")
        self.repo.git("remote", "set-url", "--push", "origin", str(origin))
        self.push("main")
        self.repo.git("remote", "set-head", "origin", "main")

    def push(self, branch: str) -> None:
        self.repo.git("push", "-q", "origin", f"{branch}:{branch}")
        # Without a fetch URL of its own, the remote-tracking branch is moved by hand.
        self.repo.git("update-ref", f"refs/remotes/origin/{branch}", branch)

    def run(self, *jobs: str, variables: Mapping[str, str]) -> Run:
        """gitlab-ci-local on the checked-out commit: the whole pipeline, or ``jobs``."""
        witness_dir = Path(tempfile.mkdtemp(dir=self.workdir, prefix="witness-"))
        every = {
            **self.pip,
            "WITNESS_DIR": str(witness_dir),
            **variables,
        }
        predefined = [name for name in every if name.startswith(("CI_", "GITLAB_"))]
        argv = [
            str(GITLAB_CI_LOCAL),
            "--cwd", ".",
            "--shell-isolation",
            "--no-artifacts-to-source",
            "--color=false",
            "--force-shell-executor",
            *(f"--variable={name}={value}" for name, value in every.items()),
            *([f"--ignore-predefined-vars={','.join(predefined)}"] if predefined else []),
            *jobs,
        ]  # fmt: skip
        # Nothing of this session's own CI, pip or kit settings leaks into the jobs.
        dropped = ("CI", "GITLAB", "GITHUB_", "PIP_", "PIPELINE_KIT_", "VIRTUAL_ENV")
        env = {name: value for name, value in os.environ.items() if not name.startswith(dropped)}
        env.update(GIT_ENV, HOME=str(self.home), TMPDIR=str(self.tmp))
        proc = subprocess.run(
            argv,
            cwd=self.repo.path,
            env=env,
            capture_output=True,
            text=True,
            timeout=PIPELINE_TIMEOUT_S,
        )
        output = proc.stdout + proc.stderr
        passed = frozenset(re.findall(r"^ PASS +(\S+)", output, flags=re.MULTILINE))
        failed = frozenset(re.findall(r"^ FAIL +(\S+)", output, flags=re.MULTILINE))
        witnessed = {path.stem: parse_dotenv(path) for path in witness_dir.glob("*.env")}
        return Run(proc.returncode, output, passed, failed, witnessed)

    def previews(self) -> set[str]:
        """The previews podman itself shows in this project's scope."""
        proc = subprocess.run(
            [*self.example.podman, "ps", "--all", "--format=json",
             f"--filter=label=pipeline-kit.dev/scope={self.example.scope}"],
            capture_output=True, text=True, env=self.example.podman_env, check=True,
        )  # fmt: skip
        return {c["Labels"]["pipeline-kit.dev/preview"] for c in json.loads(proc.stdout or "[]")}

    def remove_previews(self) -> None:
        """Whatever the pipelines left running in this project's scope (and only that)."""
        leftovers = subprocess.run(
            [*self.example.podman, "ps", "--all", "--quiet",
             f"--filter=label=pipeline-kit.dev/scope={self.example.scope}"],
            capture_output=True, text=True, env=self.example.podman_env, check=False,
        ).stdout.split()  # fmt: skip
        if leftovers:
            subprocess.run(
                [*self.example.podman, "rm", "--force", "--time=0", *leftovers],
                capture_output=True, env=self.example.podman_env, check=False,
            )  # fmt: skip

    def smoke_junit(self) -> Path:
        """The smoke job's JUnit report, as gitlab-ci-local kept it."""
        (found,) = (self.repo.path / ".gitlab-ci-local" / "artifacts").glob(
            "*/pipeline-kit-smoke.xml"
        )
        return found


def merge_request_variables(iid: str, base: str) -> dict[str, str]:
    """GitLab's variables of a merge request pipeline from ``feature`` into ``main``."""
    return {
        "GITLAB_CI": "true",
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_COMMIT_BRANCH": "",  # GitLab does not set it in merge request pipelines
        "CI_MERGE_REQUEST_IID": iid,
        "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature",
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
        "CI_MERGE_REQUEST_DIFF_BASE_SHA": base,
    }


def seed_default_branch(example: BuiltExample, registry: RegistryServer, repository: str) -> None:
    """The project's registry as an earlier default-branch pipeline left it: the example's image
    (built once for the session) under its content key, so this pipeline appends and retags."""
    labels = image_config(registry.url, example.repository.split("/", 1)[1], example.digest)
    key = labels["config"]["Labels"]["dev.pipeline-kit.image-key"]
    result = cli("promote", example.image, f"{registry.host}/{repository}:pk-{key}", cwd=REPO)
    assert result.returncode == 0, result.stderr

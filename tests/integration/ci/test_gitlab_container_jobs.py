"""The GitLab CI template's jobs in their own images: gitlab-ci-local's docker executor on a
private Docker Engine (support/services/docker_engine.py: dockerd under a temp dir, no bridge,
containers on the host network to reach the loopback registry).

The images are the ones the template names by default, served locally under those names
(nothing is pulled from outside; ``--pull-policy if-not-present``):

- ``ghcr.io/pipeline-kit/kaniko:<version>`` (the ``kaniko-image`` input): the session's
  ``builder_image``, the kit's images/kaniko built by the kit on a stand-in Kaniko debug image
  that carries the real executor from ``$KANIKO_EXECUTOR``;
- ``python:3.12-bookworm`` (the ``image`` input): a Debian bookworm Python with git, made from
  the mmdebstrap root scripts/test-images builds (Python 3.11: the template asks for 3.10+);
- gitlab-ci-local's helper image (``docker.io/firecow/gitlab-ci-local-util:latest``, which copies
  files into and out of the job's volumes): busybox with this machine's bash and rsync.

The Kaniko job runs the real executor inside its container, as GitLab's runners do: between the
stages of a multi-stage Dockerfile Kaniko deletes that container's root filesystem (its log
says ``Deleting filesystem``), and the kit, kept under /kaniko, reads the digest and writes the
dotenv report after it. An ``after_script`` added to the job lists the container's root after
the build: Kaniko left the last stage's files there, and the image's own are gone. The detect
job runs in the Python image and installs the kit with pip, offline (the ``install`` input's
default finds this checkout's wheel in a mounted folder). The ``builder: buildkit`` build job
runs in that image with BuildKit's client added, and the session's buildkitd (its socket
mounted into the job) builds and pushes.

The project is the busybox service of tests/support/kitbuild.py with a multi-stage Dockerfile,
a bare ``origin`` and its default branch checked out (a push pipeline on it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline_kit import __version__
from tests.support import REPO
from tests.support.builder_image import BuiltBuilder
from tests.support.builds import MULTI_STAGE
from tests.support.ci_outputs import parse_dotenv
from tests.support.example_image import KIT_WHEELHOUSE, kit_wheel
from tests.support.gitrepo import GIT_ENV, GitRepo
from tests.support.images import image_manifest
from tests.support.kitbuild import busybox_service
from tests.support.services.buildkitd import BuildkitDaemon
from tests.support.services.docker_engine import DockerEngine
from tests.support.services.registry import RegistryServer
from tests.support.tools import GITLAB_CI_LOCAL

TEMPLATE = REPO / ".gitlab-ci-template.yml"
KANIKO_IMAGE = f"ghcr.io/pipeline-kit/kaniko:{__version__}"  # the kaniko-image input's default
PYTHON_IMAGE = "python:3.12-bookworm"  # the image input's default
HELPER_IMAGE = "docker.io/firecow/gitlab-ci-local-util:latest"
JOB_TIMEOUT_S = 600

GITLAB_CI = """\
include:
  - local: .gitlab-ci-template.yml

pipeline-kit:build:
  after_script:
    - echo "root after the build:" $(ls /)
    - echo "etc after the build:" $(ls /etc)
"""

# The template with builder buildkit and a job image that has buildctl, as a user whose runners
# reach a BuildKit daemon (BUILDKIT_HOST) includes it.
GITLAB_CI_BUILDKIT = f"""\
include:
  - local: .gitlab-ci-template.yml
    inputs:
      builder: buildkit
      image: {PYTHON_IMAGE}-buildctl
"""
BUILDCTL_IMAGE = f"""\
FROM {PYTHON_IMAGE}
COPY buildctl /usr/local/bin/buildctl
"""

FAILING_RUN = MULTI_STAGE.replace(
    '"echo built > /tool"', '"echo the tools do not build >&2; exit 3"'
)


@dataclass(frozen=True)
class Job:
    returncode: int
    output: str
    dotenv: dict[str, str]  # the job's dotenv report, as gitlab-ci-local kept it

    def passed(self, job: str) -> bool:
        return re.search(rf"^ PASS +{re.escape(job)}(\s|$)", self.output, re.MULTILINE) is not None

    def failed(self, job: str) -> bool:
        return re.search(rf"^ FAIL +{re.escape(job)}(\s|$)", self.output, re.MULTILINE) is not None


@dataclass(frozen=True)
class Runner:
    engine: DockerEngine
    wheels: Path  # this checkout's wheel

    def project(
        self, path: Path, image: str, dockerfile: str = MULTI_STAGE, gitlab_ci: str = GITLAB_CI
    ) -> GitRepo:
        """The busybox service with the template, on main, with a bare origin."""
        repo = busybox_service(path / "repo", image, "kaniko", dockerfile=dockerfile)
        shutil.copy(TEMPLATE, repo.path / ".gitlab-ci-template.yml")
        repo.commit({".gitlab-ci.yml": gitlab_ci}, message="GitLab CI with pipeline-kit")
        origin = path / "origin.git"
        subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
        repo.git("remote", "add", "origin", "https://gitlab.example.com/ml/service.git")
        repo.git("remote", "set-url", "--push", "origin", str(origin))
        self.push(repo)
        repo.git("remote", "set-head", "origin", "main")
        return repo

    @staticmethod
    def push(repo: GitRepo) -> None:
        repo.git("push", "-q", "origin", "main:main")
        repo.git("update-ref", "refs/remotes/origin/main", "main")

    def run(
        self, repo: GitRepo, job: str, variables: Mapping[str, str], volumes: tuple[str, ...] = ()
    ) -> Job:
        """gitlab-ci-local's docker executor on the checked-out commit: one job."""
        every = {
            "GITLAB_CI": "true",
            "CI_PIPELINE_SOURCE": "push",
            "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": "/pk-wheels/kit /pk-wheels/deps",
            **variables,
        }
        predefined = [name for name in every if name.startswith(("CI_", "GITLAB_"))]
        argv = [
            str(GITLAB_CI_LOCAL),
            "--cwd", ".",
            "--no-artifacts-to-source",
            "--color=false",
            "--pull-policy", "if-not-present",
            "--network", "host",
            f"--volume={self.wheels}:/pk-wheels/kit:ro",
            f"--volume={KIT_WHEELHOUSE}:/pk-wheels/deps:ro",
            *(f"--volume={volume}" for volume in volumes),
            *(f"--variable={name}={value}" for name, value in every.items()),
            f"--ignore-predefined-vars={','.join(predefined)}",
            job,
        ]  # fmt: skip
        dropped = ("CI", "GITLAB", "GITHUB_", "PIP_", "PIPELINE_KIT_", "VIRTUAL_ENV", "DOCKER_")
        env = {name: value for name, value in os.environ.items() if not name.startswith(dropped)}
        env.update(GIT_ENV, HOME=str(repo.path.parent), **self.engine.env)
        proc = subprocess.run(
            argv, cwd=repo.path, env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT_S
        )
        reports = repo.path / ".gitlab-ci-local" / "artifacts"
        found = list(reports.glob("*/.gitlab-ci-reports/dotenv/pipeline-kit.env"))
        dotenv = parse_dotenv(found[0]) if found else {}
        for path in found:
            path.unlink()  # the next run's report is its own
        return Job(proc.returncode, proc.stdout + proc.stderr, dotenv)


@pytest.fixture(scope="module")
def gitlab(
    docker_engine: DockerEngine,
    builder_image: BuiltBuilder,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Runner]:
    if not GITLAB_CI_LOCAL.exists():
        pytest.fail(f"{GITLAB_CI_LOCAL} is missing: run scripts/test-tools (scripts/test does).")
    if not (KIT_WHEELHOUSE / ".requirements.sha256").is_file():
        pytest.fail(f"{KIT_WHEELHOUSE} is missing: run scripts/test-images (scripts/test does).")
    docker_engine.pull_as(builder_image.reference, KANIKO_IMAGE)
    docker_engine.pull_as(builder_image.python_base, PYTHON_IMAGE)
    docker_engine.import_busybox(HELPER_IMAGE, Path("/usr/bin/bash"), Path("/usr/bin/rsync"))
    yield Runner(docker_engine, kit_wheel(tmp_path_factory.mktemp("gitlab-wheel")))


def after_build(output: str, what: str) -> set[str]:
    """What the job's after_script listed of the container after the build."""
    (line,) = re.findall(rf"^\S+ > {what} after the build: (.*)$", output, re.MULTILINE)
    return set(line.split())


def test_kaniko_job_builds_in_the_builder_image_and_the_kit_outlives_the_wipe(
    gitlab: Runner, registry: RegistryServer, tmp_path: Path
) -> None:
    repository = "gitlab/kaniko-job"
    repo = gitlab.project(tmp_path, f"{registry.host}/{repository}")
    job = gitlab.run(repo, "pipeline-kit:build", {})
    assert job.returncode == 0, job.output[-6000:]
    assert job.passed("pipeline-kit:build")
    assert f"pipeline-kit:build starting {KANIKO_IMAGE} (build)" in job.output
    # The real executor, in the job's container: it deleted that root between the stages.
    assert "Building stage 'scratch' [idx: '1'" in job.output
    assert "Deleting filesystem..." in job.output
    # The container's root is now the last stage's (app, tool, busybox), the builder image's
    # own files (its /workspace, /etc/nsswitch.conf) are gone; /kaniko and the volumes stayed.
    root = after_build(job.output, "root")
    assert {"app", "tool", "kaniko", "busybox", "builds"} <= root and "workspace" not in root
    assert "nsswitch.conf" not in after_build(job.output, "etc")
    # The kit, still there, read the digest and reported it: the registry's.
    assert job.dotenv["PIPELINE_KIT_STRATEGY"] == "builder"
    short = repo.head()[:7]
    tags = job.dotenv["PIPELINE_KIT_TAGS"].split(",")
    assert {"latest", "main", f"sha-{short}"} <= set(tags)
    pushed = image_manifest(registry.url, repository, f"sha-{short}")
    assert job.dotenv["PIPELINE_KIT_DIGEST"] == pushed["_digest"]
    assert job.dotenv["PIPELINE_KIT_IMAGE"] == f"{registry.host}/{repository}@{pushed['_digest']}"


def test_a_failing_run_fails_the_kaniko_job_and_pushes_nothing(
    gitlab: Runner, registry: RegistryServer, tmp_path: Path
) -> None:
    repository = "gitlab/kaniko-job-fails"
    repo = gitlab.project(tmp_path, f"{registry.host}/{repository}", dockerfile=FAILING_RUN)
    job = gitlab.run(repo, "pipeline-kit:build", {})
    assert job.returncode == 1, job.output[-6000:]
    assert job.failed("pipeline-kit:build")
    assert "the tools do not build" in job.output
    assert "Deleting filesystem" not in job.output  # it stopped in the first stage
    assert job.dotenv == {}
    for tag in ("latest", "main", f"sha-{repo.head()[:7]}"):
        assert not registry.has_manifest(repository, tag), tag


def test_detect_job_runs_in_the_default_python_image(
    gitlab: Runner, registry: RegistryServer, tmp_path: Path
) -> None:
    """The template's ``image`` default, with pip installing the kit in the job's container;
    its report is what the kit on this machine says of the same commits."""
    repo = gitlab.project(tmp_path, f"{registry.host}/gitlab/detect-job")
    before = repo.head()
    repo.commit({"app/main.txt": "hello v2\n", "docs/index.md": "# v2\n"}, message="code")
    gitlab.push(repo)
    job = gitlab.run(repo, "pipeline-kit:detect", {"CI_COMMIT_BEFORE_SHA": before})
    assert job.returncode == 0, job.output[-6000:]
    assert job.passed("pipeline-kit:detect")
    assert f"pipeline-kit:detect starting {PYTHON_IMAGE} (build)" in job.output
    assert f"pipeline-kit, version {__version__}" in job.output
    here = repo.detect(base=before, head=repo.head(), worktree=False)
    assert job.dotenv["PIPELINE_KIT_REBUILD_FROM"] == here["rebuild_from"] == "code"
    assert job.dotenv["PIPELINE_KIT_CODE_CHANGED"] == "true"
    assert job.dotenv["PIPELINE_KIT_BASE_CHANGED"] == "false"
    assert job.dotenv["PIPELINE_KIT_IMAGE_CHANGED"] == "true"


def test_buildkit_job_builds_in_its_image_through_the_runners_daemon(
    gitlab: Runner,
    registry: RegistryServer,
    buildkitd: BuildkitDaemon,
    tmp_path: Path,
) -> None:
    """The ``builder: buildkit`` path: the build job in a job image with buildctl (the default
    Python image plus BuildKit's client, built on the engine), pip installing the kit there,
    and ``BUILDKIT_HOST`` naming the runner's buildkitd (its socket mounted into the job, as a
    runner mounts a daemon's socket or a service listens). The daemon runs the build and pushes;
    the kit in the container reports the registry's digest."""
    context = tmp_path / "buildctl-image"
    context.mkdir()
    shutil.copy(buildkitd.bin_dir / "buildctl", context / "buildctl")
    (context / "Dockerfile").write_text(BUILDCTL_IMAGE)
    gitlab.engine.docker("build", "--quiet", "--tag", f"{PYTHON_IMAGE}-buildctl", str(context))
    repository = "gitlab/buildkit-job"
    repo = gitlab.project(tmp_path, f"{registry.host}/{repository}", gitlab_ci=GITLAB_CI_BUILDKIT)
    builds = buildkitd.build_count()
    socket_dir = str(buildkitd.root)
    job = gitlab.run(
        repo,
        "pipeline-kit:build",
        {"BUILDKIT_HOST": buildkitd.address},
        volumes=(f"{socket_dir}:{socket_dir}",),
    )
    assert job.returncode == 0, job.output[-6000:]
    assert job.passed("pipeline-kit:build")
    assert f"pipeline-kit:build starting {PYTHON_IMAGE}-buildctl (build)" in job.output
    assert buildkitd.build_count() > builds  # the runner's daemon built it
    assert job.dotenv["PIPELINE_KIT_STRATEGY"] == "builder"
    short = repo.head()[:7]
    pushed = image_manifest(registry.url, repository, f"sha-{short}")
    assert job.dotenv["PIPELINE_KIT_DIGEST"] == pushed["_digest"]

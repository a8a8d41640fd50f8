"""The release workflow (.github/workflows/release.yml) run end to end by act, on the host and
offline, on a clone released by scripts/release and scripts/release-pins and tagged ``vNEXT``.

What is real: act (nektos/act) runs every job of the workflow as written, in host mode
(``-P ubuntu-latest=-self-hosted``), with the tag's push event; the jobs' own scripts
(``scripts/release-pins --stamp``, ``scripts/build-dist``, ``scripts/pin-builder-image``,
``scripts/release-notes``) and the kit's composite action (``uses: ./``, installed by pip from
the tag's files) run for real; the builder image is built by the kit with ``--builder
buildkit`` by a real buildkitd (the runner's own: ``BUILDKIT_HOST``, so the workflow makes no
buildx builder) and pushed to the session's loopback registry; the distributions are uploaded
to a package index on loopback by its legacy upload API and pip installs from it.

What stands in, and why:

- the ``test`` job calls ci.yml, this very test suite: it is replaced by a job that succeeds
  (the only change to the workflow, checked below);
- actions/upload-artifact, actions/download-artifact and pypa/gh-action-pypi-publish, which act
  cannot fetch offline: act's ``--local-repository`` maps them, at the commits the workflow
  pins, to the composite actions in tests/fixtures/actions (their README says which inputs each
  honours): artifacts are copied through a directory of this run, and the publisher uploads to
  the loopback index without trusted publishing (no OIDC token here);
- the tag is protected, as the release needs (CONTRIBUTING.md, "Releasing"): act does not
  know GitHub's rulesets, so the run says so as GitHub does (``GITHUB_REF_PROTECTED=true``);
- ``gh``: a recording client first on the job's ``PATH`` keeps its arguments, its token and the
  files they name; nothing reaches GitHub;
- the builder image's bases, which no registry here serves: the stand-in Kaniko debug image
  and Debian Python of tests/support/builder_image.py, the Python one carrying a pip
  configuration and the builder wheelhouse (BuildKit mounts nothing into RUN steps), named by
  the documented build arguments KANIKO_IMAGE and PYTHON_IMAGE through the runner's
  environment (``PIPELINE_KIT_BUILD_ARGS``), the repository by ``PIPELINE_KIT_IMAGE_REPOSITORY``;
- pip in the ``dist`` job and in the action finds the build system and the kit's dependencies
  in the test cache's kit wheelhouse (``PIP_NO_INDEX``, ``PIP_FIND_LINKS``).

Then a user's pipelines take what the release published:

- GitLab: gitlab-ci-local (tests/support/gitlab_pipeline.py, on the host) runs the merge request
  pipeline of a code-only change (detect, lint, build by append onto the default branch's
  image, a podman preview, the smoke gate) of the bundled example, which includes the
  template the release attached (the builder image pinned by digest); the kit's jobs install
  ``llm-pipeline-kit==<version>`` with pip from the index the release uploaded to and nothing
  else (``PIP_INDEX_URL``, no pip configuration), the kit's dependencies served there from the
  test cache;
- GitHub: act runs a user's workflow that names the action by the release's tag
  (``pipeline-kit/pipeline-kit@v<version>``), which ``--local-repository`` resolves to the
  tagged clone; detect, then build by append, of a push to the default branch. The action
  installs the kit from its own files, as it does on GitHub (offline: the kit wheelhouse).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline_kit import DISTRIBUTION
from tests.support import REPO
from tests.support.builder_image import standin_bases
from tests.support.example_image import (
    CACHE,
    KIT_WHEELHOUSE,
    BuiltExample,
    ExampleRepo,
    MissingTestImages,
    prepare_example,
    remove_storage,
)
from tests.support.gitlab_pipeline import (
    GITLAB_CI_LOCAL,
    Project,
    Run,
    merge_request_variables,
    seed_default_branch,
)
from tests.support.gitrepo import GIT_ENV, GitRepo
from tests.support.images import image_manifest
from tests.support.release import NEXT, act_binary, released_clone
from tests.support.services.buildkitd import BuildkitDaemon
from tests.support.services.kaniko import KanikoSandbox
from tests.support.services.package_index import PackageIndex, make_index
from tests.support.services.registry import RegistryServer

RELEASE_YML = REPO / ".github" / "workflows" / "release.yml"
STANDINS = REPO / "tests" / "fixtures" / "actions"
REPOSITORY = "release/pipeline-kit/kaniko"
PYTHON_STANDIN = "standin/python:bookworm-git-offline-pip"
ACT_TIMEOUT_S = 1500
GH_TOKEN = "ghs_release-token-under-act"
# The test job's stand-in: ci.yml is this suite.
TEST_JOB = {
    "name": "Tests",
    "needs": "check",
    "runs-on": "ubuntu-latest",
    "steps": [{"run": "echo 'stands for ci.yml: the tests run this workflow'"}],
}
JOB_NAMES = {
    "check": "The tag is a release commit",
    "test": "Tests",
    "dist": "sdist and wheel",
    "pypi": "Publish to PyPI",
    "builder-image": "Kaniko builder image",
    "release": "GitHub release",
}
# The recording GitHub client: its arguments, its token, and the files they name.
GH = """#!/bin/sh
record={record}
printf '%s\\n' "$@" > "$record/argv"
printf '%s' "$GH_TOKEN" > "$record/token"
for arg in "$@"; do
  [ -f "$arg" ] || continue
  mkdir -p "$record/files/$(dirname "$arg")" && cp "$arg" "$record/files/$arg"
done
"""


@dataclass(frozen=True)
class Release:
    clone: GitRepo
    returncode: int
    log: str
    index: PackageIndex
    gh: Path  # what the recording gh kept
    image: str  # registry/repository, where the builder image went
    workdir: Path


def standin_mappings(workflow: dict[str, Any]) -> list[str]:
    """``--local-repository`` for every remote action the workflow uses but checkout (act
    serves that one from the working tree itself), at the ref the workflow pins."""
    folders = {
        "actions/upload-artifact": "upload-artifact",
        "actions/download-artifact": "download-artifact",
        "pypa/gh-action-pypi-publish": "gh-action-pypi-publish",
    }
    uses = {
        step["uses"]
        for job in workflow["jobs"].values()
        for step in job.get("steps", ())
        if "uses" in step and not step["uses"].startswith(("./", "actions/checkout@"))
    }
    assert {use.split("@")[0] for use in uses} == set(folders), uses
    return [f"--local-repository={use}={STANDINS / folders[use.split('@')[0]]}" for use in uses]


def workflow_under_test(path: Path) -> dict[str, Any]:
    """release.yml with the test job replaced (and nothing else), written to ``path``."""
    workflow: dict[Any, Any] = yaml.safe_load(RELEASE_YML.read_text())
    original = copy.deepcopy(workflow)
    workflow["jobs"]["test"] = TEST_JOB
    assert {k: v for k, v in original["jobs"].items() if k != "test"} == {
        k: v for k, v in workflow["jobs"].items() if k != "test"
    }
    path.write_text(RELEASE_YML.read_text().split("\njobs:\n", 1)[0] + "\n")
    text = yaml.safe_dump({"jobs": workflow["jobs"]}, sort_keys=False)
    path.write_text(path.read_text() + text)
    reread = yaml.safe_load(path.read_text())
    assert {k: v for k, v in reread.items() if k != "jobs"} == {
        k: v for k, v in original.items() if k != "jobs"
    }
    return workflow


def job_env(
    workdir: Path,
    index: PackageIndex,
    buildkitd: BuildkitDaemon,
    bases: tuple[str, str],
    image: str,
    gh_dir: Path,
) -> dict[str, str]:
    """What the self-hosted runner's environment holds: nothing of this session's own CI, pip
    or kit settings."""
    dropped = ("GITHUB_", "ACT", "PIP_", "PIPELINE_KIT_", "VIRTUAL_ENV", "BUILDKIT_HOST")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    wheels = shutil.copytree(KIT_WHEELHOUSE, workdir / "kit-wheelhouse")
    kaniko_base, python_base = bases
    return {
        **env,
        **GIT_ENV,
        **buildkitd.env,
        "PATH": f"{gh_dir}{os.pathsep}{buildkitd.env['PATH']}",
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheels),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "STANDIN_ARTIFACTS": str(workdir / "artifacts"),
        "STANDIN_PYPI_UPLOAD_URL": index.upload_url,
        "PIPELINE_KIT_IMAGE_REPOSITORY": image,
        "PIPELINE_KIT_BUILD_ARGS": f"KANIKO_IMAGE={kaniko_base}\nPYTHON_IMAGE={python_base}\n",
    }


def act_push(
    repo: Path,
    workflow: Path,
    event: dict[str, Any],
    env: dict[str, str],
    cache: Path,
    extra: list[str],
) -> subprocess.CompletedProcess[str]:
    """act on the host, offline, for a push event; its log in the result's stdout."""
    event_file = cache.parent / f"{workflow.stem}-event.json"
    event_file.write_text(json.dumps(event))
    return subprocess.run(
        [act_binary(), "push", "--workflows", str(workflow), "--eventpath", str(event_file),
         "--platform", "ubuntu-latest=-self-hosted", "--no-cache-server",
         "--action-offline-mode", "--action-cache-path", str(cache), *extra],
        cwd=repo, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=ACT_TIMEOUT_S,
    )  # fmt: skip


@pytest.fixture(scope="module")
def release(
    tmp_path_factory: pytest.TempPathFactory,
    registry: RegistryServer,
    buildkitd: BuildkitDaemon,
    kaniko: KanikoSandbox,
) -> Iterator[Release]:
    if not any(KIT_WHEELHOUSE.glob("setuptools-*.whl")):
        pytest.fail(f"no kit wheelhouse in {CACHE}: run scripts/test-images (scripts/test does)")
    workdir = tmp_path_factory.mktemp("release-act")
    clone = released_clone(workdir / "kit", tag=True)
    dependencies = [p for p in KIT_WHEELHOUSE.glob("*.whl") if not p.name.startswith("setuptools")]
    index = PackageIndex(make_index(workdir / "index", dependencies)).start()
    gh_dir, record = workdir / "gh-bin", workdir / "gh"
    gh_dir.mkdir()
    record.mkdir()
    (gh_dir / "gh").write_text(GH.format(record=record))
    (gh_dir / "gh").chmod(0o755)
    workflow = workflow_under_test(workdir / "release.yml")
    event = {"ref": f"refs/tags/v{NEXT}", "repository": {"default_branch": "main"}}
    secrets = workdir / "secrets"
    secrets.write_text(f"GITHUB_TOKEN={GH_TOKEN}\n")
    image = f"{registry.host}/{REPOSITORY}"
    try:
        try:
            with standin_bases(
                workdir / "bases", registry, kaniko.source, PYTHON_STANDIN, offline_pip=True
            ) as bases:
                env = job_env(workdir, index, buildkitd, bases, image, gh_dir)
        except MissingTestImages as exc:
            pytest.fail(str(exc))
        proc = act_push(
            clone.path, workdir / "release.yml", event, env, workdir / "act-cache",
            ["--secret-file", str(secrets), "--env", "GITHUB_REF_PROTECTED=true",
             *standin_mappings(workflow)],
        )  # fmt: skip
        (workdir / "act.log").write_text(proc.stdout)
        yield Release(clone, proc.returncode, proc.stdout, index, record, image, workdir)
    finally:
        index.stop()


def test_every_job_of_the_release_succeeds_under_act(release: Release) -> None:
    assert release.returncode == 0, release.log[-6000:]
    for job, name in JOB_NAMES.items():
        assert re.search(
            rf"^\[Release/{re.escape(name)}\s*\] .*Job succeeded$", release.log, re.M
        ), job
    # The runner's buildkitd did the build: no buildx builder was made.
    assert "BuildKit: the runner's buildkitd (BUILDKIT_HOST)" in release.log


def build_dist(clone: GitRepo, out: Path) -> dict[str, str]:
    """scripts/build-dist on a fresh clone of the tag, stamped as the dist job stamps it:
    file name -> sha256."""
    fresh = out.parent / "fresh"
    subprocess.run(["git", "clone", "-q", "--branch", f"v{NEXT}", str(clone.path), str(fresh)],
                   check=True, capture_output=True)  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV"))}
    env.update(GIT_ENV, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(KIT_WHEELHOUSE),
               PIP_CONFIG_FILE=os.devnull)  # fmt: skip
    for argv in (
        ["scripts/release-pins", "--stamp", NEXT],
        ["scripts/build-dist", "--out", str(out)],
    ):
        done = subprocess.run(argv, cwd=fresh, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()}


def test_pypi_got_the_reproducible_sdist_and_wheel_of_the_tag(
    release: Release, tmp_path: Path
) -> None:
    """The index's uploads are exactly the two files scripts/build-dist makes of the tag."""
    expected = build_dist(release.clone, tmp_path / "dist")
    assert sorted(expected) == [
        f"llm_pipeline_kit-{NEXT}-py3-none-any.whl", f"llm_pipeline_kit-{NEXT}.tar.gz",
    ]  # fmt: skip
    uploaded = {upload.filename: upload.sha256 for upload in release.index.uploads}
    assert uploaded == expected
    served = release.index.root / "files"
    assert {
        name: hashlib.sha256((served / name).read_bytes()).hexdigest() for name in expected
    } == expected
    kinds = {
        u.filename: (u.fields["name"], u.fields["version"], u.fields["filetype"])
        for u in release.index.uploads
    }
    assert set(kinds.values()) == {
        ("llm_pipeline_kit", NEXT, "bdist_wheel"), ("llm_pipeline_kit", NEXT, "sdist"),
    }  # fmt: skip
    page = (release.index.root / "simple" / "llm-pipeline-kit" / "index.html").read_text()
    assert all(f"{name}#sha256={digest}" in page for name, digest in expected.items())


def test_the_release_names_the_builder_image_the_registry_serves(
    release: Release, registry: RegistryServer
) -> None:
    digest = image_manifest(registry.url, REPOSITORY, NEXT)["_digest"]
    pinned = f"{release.image}:{NEXT}@{digest}"
    major, minor, _ = NEXT.split(".")
    # The version's tags, one digest (no X for major version 0: docs/configuration.md).
    version_tags = [NEXT, f"{major}.{minor}", *([major] if major != "0" else [])]
    for tag in version_tags[1:]:
        assert image_manifest(registry.url, REPOSITORY, tag)["_digest"] == digest
    assert registry.has_manifest(REPOSITORY, major) == (major != "0")
    files = release.gh / "files"
    assert (files / "assets" / "kaniko-image.txt").read_text() == pinned + "\n"
    header = (files / "assets" / "gitlab-ci-template.yml").read_text().split("\n---\n", 1)[0]
    assert yaml.safe_load(header)["spec"]["inputs"]["kaniko-image"]["default"] == pinned
    called = yaml.safe_load((files / "assets" / "pipeline.yml").read_text())[True]["workflow_call"]
    assert called["inputs"]["kaniko-image"]["default"] == pinned
    notes = (files / "notes.md").read_text()
    tags = ",".join([*version_tags, f"sha-{release.clone.head()[:7]}"])
    assert f"`{pinned}` (tags {tags},pk-" in notes


def test_the_github_release_is_created_with_the_notes_and_assets(release: Release) -> None:
    argv = (release.gh / "argv").read_text().splitlines()
    assert argv == [
        "release", "create", f"v{NEXT}", "--verify-tag", "--title", f"v{NEXT}",
        "--notes-file", "notes.md",
        f"dist/llm_pipeline_kit-{NEXT}-py3-none-any.whl", f"dist/llm_pipeline_kit-{NEXT}.tar.gz",
        "assets/gitlab-ci-template.yml", "assets/kaniko-image.txt", "assets/pipeline.yml",
    ]  # fmt: skip
    # The token by the environment, never on a command line nor in the log.
    assert (release.gh / "token").read_text() == GH_TOKEN
    assert GH_TOKEN not in release.log
    files = release.gh / "files"
    uploaded = {u.filename: u.sha256 for u in release.index.uploads}
    for name, digest in uploaded.items():  # the very files PyPI got
        assert hashlib.sha256((files / "dist" / name).read_bytes()).hexdigest() == digest
    section = subprocess.run(
        [str(REPO / "scripts" / "release-notes"), NEXT, "--changelog",
         str(release.clone.path / "CHANGELOG.md")], capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    notes = (files / "notes.md").read_text()
    assert notes.startswith(section) and section.strip()
    assert f"pip install {DISTRIBUTION}=={NEXT}\n" in notes


# -- a user's pipelines, installing from what the release published ---------------------------

GITLAB_REPOSITORY = "release-user/gitlab/llm-service"
GITHUB_REPOSITORY = "release-user/github/llm-service"
MR_IID = "12"
KIT_ACTION = "pipeline-kit/pipeline-kit"
# A user's workflow: detect and build with the released action, then what they gave.
USER_WORKFLOW = f"""\
name: Build
on: push
permissions:
  contents: read
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0
        with:
          fetch-depth: 0
          persist-credentials: false
      - id: detect
        uses: {KIT_ACTION}@v{NEXT}
        with:
          command: detect
      - id: build
        uses: {KIT_ACTION}@v{NEXT}
        with:
          command: build
          args: |
            --strategy
            append
      - env:
          DETECT: ${{{{ steps.detect.outputs.json }}}}
          BUILD: ${{{{ steps.build.outputs.json }}}}
        run: |
          printf '%s' "$DETECT" > "$PK_TEST_RECORD/detect.json"
          printf '%s' "$BUILD" > "$PK_TEST_RECORD/build.json"
          "$RUNNER_TOOL_CACHE"/pipeline-kit/*/bin/pipeline-kit --version > "$PK_TEST_RECORD/version"
"""


def code_change(example: ExampleRepo, branch: str | None) -> tuple[str, str]:
    """(before, after): a code-only commit on ``branch`` (made from the checked-out one)."""
    before = example.repo.head()
    if branch:
        example.repo.git("checkout", "-q", "-b", branch)
    app = example.repo.path / "server" / "app.py"
    after = example.repo.commit(
        {"server/app.py": app.read_text() + "\n# a code change\n"}, message="code only"
    )
    return before, after


@dataclass(frozen=True)
class GitlabUser:
    run: Run
    template: str  # the .gitlab-ci-template.yml the project included


@pytest.fixture(scope="module")
def gitlab_user(
    request: pytest.FixtureRequest,
    release: Release,
    registry: RegistryServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GitlabUser]:
    """A GitLab project including the release's template asset (the builder image pinned by
    digest), whose kit jobs install ``llm-pipeline-kit==<version>`` from the index the release
    published to and from nowhere else: the merge request pipeline of a code-only change."""
    assert release.returncode == 0, release.log[-4000:]
    if not GITLAB_CI_LOCAL.exists():
        pytest.fail(f"{GITLAB_CI_LOCAL} is missing: run scripts/test-tools (scripts/test does).")
    example_image: BuiltExample = request.getfixturevalue("example_image")
    workdir = tmp_path_factory.mktemp("release-gitlab-user")
    runroot = Path(tempfile.mkdtemp(prefix="pk-rel-"))
    project = None
    try:
        example = prepare_example(workdir, runroot, registry, name=GITLAB_REPOSITORY)
        seed_default_branch(example_image, registry, GITLAB_REPOSITORY)
        template = release.gh / "files" / "assets" / "gitlab-ci-template.yml"
        pip = {"PIP_INDEX_URL": release.index.url, "PIP_CONFIG_FILE": os.devnull}
        project = Project(example, workdir, pip, template=template)
        before, _ = code_change(example, "feature")
        run = project.run(variables=merge_request_variables(MR_IID, before))
        included = (project.repo.path / ".gitlab-ci-template.yml").read_text()
        yield GitlabUser(run, included)
    finally:
        if project is not None:
            project.remove_previews()
        remove_storage(workdir)
        remove_storage(runroot)


def test_a_gitlab_merge_request_installs_the_release_from_its_index(
    gitlab_user: GitlabUser, release: Release, registry: RegistryServer
) -> None:
    run = gitlab_user.run
    assert run.returncode == 0, run.why()
    assert run.kit_jobs() == {
        f"pipeline-kit:{job}" for job in ("detect", "lint", "build", "preview", "smoke")
    }
    # Each kit job installed the release's wheel from the index, and says its version.
    assert run.output.count(f"pipeline-kit, version {NEXT}") >= 5
    wheel = f"/files/llm_pipeline_kit-{NEXT}-py3-none-any.whl"
    assert wheel in release.index.requested
    pinned = (release.gh / "files" / "assets" / "kaniko-image.txt").read_text().strip()
    header = yaml.safe_load(gitlab_user.template.split("\n---\n", 1)[0])
    assert header["spec"]["inputs"]["kaniko-image"]["default"] == pinned
    assert f'PIPELINE_KIT_VERSION: "{NEXT}"' in gitlab_user.template

    build = run.witnessed["saw-build"]
    assert build["PIPELINE_KIT_STRATEGY"] == "append"
    manifest = image_manifest(registry.url, GITLAB_REPOSITORY, f"mr-{MR_IID}")
    assert build["PIPELINE_KIT_DIGEST"] == manifest["_digest"]
    assert run.witnessed["saw-detect"]["PIPELINE_KIT_REBUILD_FROM"] == "code"
    smoke = run.witnessed["saw-smoke"]
    assert smoke["PIPELINE_KIT_VERDICT"] == "passed"
    assert smoke["PIPELINE_KIT_DIGEST"] == build["PIPELINE_KIT_DIGEST"]
    assert run.witnessed["saw-preview"]["PIPELINE_KIT_DIGEST"] == build["PIPELINE_KIT_DIGEST"]


@dataclass(frozen=True)
class GithubUser:
    returncode: int
    log: str
    record: Path  # detect.json, build.json, version
    after: str


@pytest.fixture(scope="module")
def github_user(
    release: Release,
    registry: RegistryServer,
    example_image: BuiltExample,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GithubUser]:
    """A user's repository whose workflow names the action by the release's tag
    (``pipeline-kit/pipeline-kit@v<version>``), which act's ``--local-repository`` resolves to
    the tagged release clone: a push of a code-only
    change to the default branch, detected and appended onto its image in the registry. The
    action installs the kit from its own files with pip, offline (the kit wheelhouse)."""
    assert release.returncode == 0, release.log[-4000:]
    workdir = tmp_path_factory.mktemp("release-github-user")
    runroot = Path(tempfile.mkdtemp(prefix="pk-rel-"))
    try:
        example = prepare_example(workdir, runroot, registry, name=GITHUB_REPOSITORY)
        seed_default_branch(example_image, registry, GITHUB_REPOSITORY)
        example.repo.commit({".github/workflows/build.yml": USER_WORKFLOW}, message="CI")
        before, after = code_change(example, None)
        record = workdir / "record"
        record.mkdir()
        dropped = ("GITHUB_", "ACT", "PIP_", "PIPELINE_KIT_", "VIRTUAL_ENV", "BUILDKIT_HOST")
        env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
        wheels = shutil.copytree(KIT_WHEELHOUSE, workdir / "kit-wheelhouse")
        env.update(GIT_ENV, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheels),
                   PIP_CONFIG_FILE=os.devnull, PK_TEST_RECORD=str(record))  # fmt: skip
        event = {
            "ref": "refs/heads/main", "before": before, "after": after,
            "repository": {"default_branch": "main", "full_name": "team/llm-service"},
        }  # fmt: skip
        proc = act_push(
            example.repo.path, example.repo.path / ".github" / "workflows" / "build.yml", event,
            env, workdir / "act-cache",
            [f"--local-repository={KIT_ACTION}@v{NEXT}={release.clone.path}"],
        )  # fmt: skip
        (workdir / "act.log").write_text(proc.stdout)
        yield GithubUser(proc.returncode, proc.stdout, record, after)
    finally:
        remove_storage(workdir)
        remove_storage(runroot)


def test_a_github_workflow_uses_the_released_action_by_its_tag(
    github_user: GithubUser, registry: RegistryServer
) -> None:
    assert github_user.returncode == 0, github_user.log[-6000:]
    assert re.search(r"^\[Build/build\s*\] .*Job succeeded$", github_user.log, re.M)
    assert (github_user.record / "version").read_text() == f"pipeline-kit, version {NEXT}\n"
    detect = json.loads((github_user.record / "detect.json").read_text())
    assert detect["rebuild_from"] == "code" and detect["image_changed"] is True
    build = json.loads((github_user.record / "build.json").read_text())
    assert build["strategy"] == "append"
    assert build["head"] == github_user.after
    tag = f"sha-{github_user.after[:7]}"
    assert image_manifest(registry.url, GITHUB_REPOSITORY, tag)["_digest"] == build["digest"]

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
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline_kit import DISTRIBUTION
from tests.support import REPO
from tests.support.builder_image import standin_bases
from tests.support.example_image import CACHE, KIT_WHEELHOUSE, MissingTestImages
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
    event = workdir / "event.json"
    event.write_text(
        json.dumps({"ref": f"refs/tags/v{NEXT}", "repository": {"default_branch": "main"}})
    )
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
        proc = subprocess.run(
            [act_binary(), "push", "--workflows", str(workdir / "release.yml"),
             "--eventpath", str(event), "--platform", "ubuntu-latest=-self-hosted",
             "--no-cache-server", "--action-offline-mode",
             "--action-cache-path", str(workdir / "act-cache"),
             "--secret-file", str(secrets), "--env", "GITHUB_REF_PROTECTED=true",
             *standin_mappings(workflow)],
            cwd=clone.path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=ACT_TIMEOUT_S,
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

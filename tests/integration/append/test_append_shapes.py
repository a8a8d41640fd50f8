"""append on the shape most LLM servers have: one stage holds the base, the packages and the
server, which is copied last. The layers are ranges of that stage, inferred from what the
instructions do; append publishes a change to the server and refuses one to the packages,
for the same reason detect gives (its rebuild point), against the real registry and buildah.

busybox stands in for CUDA and the package managers: the base stage installs a ``pip`` that
records what it was asked to install, so the Dockerfile reads as a real one and runs here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.gitrepo import GitRepo, cli
from tests.support.images import image_manifest
from tests.support.services.registry import RegistryServer

BUSYBOX = Path("/usr/bin/busybox")
DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /usr/local/bin /deps \\
 && printf '#!/bin/sh\\ncat "$4" > /deps/installed\\n' > /usr/local/bin/pip \\
 && chmod 755 /usr/local/bin/pip
COPY requirements.txt /deps/requirements.txt
RUN pip install --no-cache-dir -r /deps/requirements.txt
WORKDIR /srv
COPY server/ /srv/server/
ENV PYTHONPATH=/srv
CMD ["/bin/cat", "/srv/server/app.py"]
"""


def _build(repo: GitRepo, *args: str) -> dict[str, Any]:
    result = cli("build", "--format", "json", *args, cwd=repo.path)
    assert result.returncode == 0, result.stderr[-3000:]
    record: dict[str, Any] = json.loads(result.stdout)
    return record


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("append-shapes")
    storage = root / "storage"
    repo = GitRepo.init(root / "repo")
    repo.commit(
        {
            "Dockerfile": DOCKERFILE,
            "requirements.txt": "torch==2.5.1\n",
            "server/app.py": "print('v1')\n",
            "pipeline-kit.yaml": (
                f"image: {registry.host}/shapes/one-stage\nbuild:\n  builder: buildah\n"
                f"  buildah:\n    storage_driver: vfs\n    root: {storage}/root\n"
                f"    runroot: {storage}/run\n"
            ),
        },
        message="service",
    )
    shutil.copy(BUSYBOX, repo.path / "busybox")
    base = repo.commit(message="busybox")
    cold = _build(repo)
    return {"repo": repo, "base": base, "cold": cold}


def test_the_layers_are_ranges_of_the_one_stage(service: dict[str, Any]) -> None:
    repo: GitRepo = service["repo"]
    result = repo.detect(base="HEAD", head="HEAD")
    assert {name: layer["lines"] for name, layer in result["layers"].items()} == {
        "base": [1, 6],
        "deps": [7, 8],
        "code": [9, 12],
    }


def test_a_server_change_is_code_only_and_appended(
    service: dict[str, Any], registry: RegistryServer
) -> None:
    repo: GitRepo = service["repo"]
    repo.git("checkout", "-q", "-B", "server-change", service["base"])
    repo.commit({"server/app.py": "print('v2')\n"}, message="server")
    detected = repo.detect()
    assert {n: v["changed"] for n, v in detected["layers"].items()} == {
        "base": False,
        "deps": False,
        "code": True,
    }
    assert detected["rebuild_point"]["line"] == 10
    record = _build(repo, "--strategy", "append")
    assert record["strategy"] == "append" and record["rebuild_from"] == "code"
    assert record["previous"].endswith(service["cold"]["digest"])
    # busybox, its install, the pip, the requirements and their install: all kept by digest.
    assert record["append"]["kept_layers"] == 5
    assert record["append"]["applied"][0] == "line 10: COPY server/ /srv/server/ (new layer)"
    previous = image_manifest(registry.url, "shapes/one-stage", service["cold"]["digest"])
    appended = image_manifest(registry.url, "shapes/one-stage", record["digest"])
    kept = [layer["digest"] for layer in previous["layers"][:5]]
    assert [layer["digest"] for layer in appended["layers"][:5]] == kept


def test_a_requirements_change_is_refused_with_detects_rebuild_point(
    service: dict[str, Any],
) -> None:
    repo: GitRepo = service["repo"]
    repo.git("checkout", "-q", "-B", "deps-change", service["base"])
    repo.commit({"requirements.txt": "torch==2.6.0\n"}, message="deps")
    assert repo.detect()["rebuild_point"]["layer"] == "deps"
    result = cli("build", "--strategy", "append", cwd=repo.path)
    assert result.returncode == 1, result.stderr[-3000:]
    assert (
        "append cannot publish this change: the change starts at Dockerfile:7 COPY "
        "requirements.txt /deps/requirements.txt, in deps: only a change inside the last layer "
        "(code) can be appended" in result.stderr
    )
    dry = cli("build", "--dry-run", "--format", "json", cwd=repo.path)
    assert dry.returncode == 0, dry.stderr[-3000:]
    plan = json.loads(dry.stdout)
    assert plan["strategy"] == "builder"
    assert plan["reason"] == (
        "rebuild from deps at Dockerfile:7 COPY requirements.txt /deps/requirements.txt"
    )


def test_an_image_below_the_code_range_is_found_by_content_not_by_commit(
    service: dict[str, Any],
) -> None:
    """The base commit's image was never built (a server change made it): an image of another
    commit with the same base and packages is found by the key of what lies below the code
    range, and the change is appended to it."""
    repo: GitRepo = service["repo"]
    repo.git("checkout", "-q", "-B", "unbuilt-base", service["base"])
    repo.commit({"server/app.py": "print('never built')\n"}, message="not built")
    repo.commit({"server/app.py": "print('v3')\n"}, message="server again")
    record = _build(repo, "--strategy", "append")
    # No commit of this branch was built: only the record of what lies below the code range
    # (written by every build on it, the newest wins) leads to an image to append to.
    assert record["strategy"] == "append"
    assert record["previous"].startswith("shapes/one-stage@sha256:")
    assert record["append"]["kept_layers"] == 5

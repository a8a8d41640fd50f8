"""The guide from a naive Dockerfile to the layered one (docs/lint.md), run as written.

The naive Dockerfile and the table of findings are read from docs/lint.md between their markers;
`pipeline-kit lint` runs on the example's files with that Dockerfile (and the weights and
unpinned requirements the guide describes), then on the layered example itself, and `detect`
on a code and a dependency change of the layered one.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from pipeline_kit.lint.weights import WEIGHTS_MIN_BYTES
from tests.support.docs import between, doc
from tests.support.example_image import EXAMPLE
from tests.support.gitrepo import GitRepo, cli

GUIDE = "docs/lint.md"


def lint(path: Path) -> tuple[int, list[str]]:
    result = cli("lint", "--format", "json", cwd=path)
    assert result.returncode in (0, 1), result.stderr
    findings = json.loads(result.stdout)["findings"]
    return result.returncode, sorted({f"{f['rule']} {f['name']}" for f in findings})


def test_the_naive_dockerfile_gives_the_findings_the_guide_lists(tmp_path: Path) -> None:
    guide = doc(GUIDE)
    naive = re.search(r"```dockerfile\n(.*?)```", between(guide, "migration:naive"), re.S)
    assert naive
    rows = re.findall(r"^\| `(PK\d{3})` ([a-z-]+) \|", between(guide, "migration:findings"), re.M)
    listed = [f"{rule} {name}" for rule, name in rows]
    assert len(listed) == 6
    service = tmp_path / "service"
    shutil.copytree(EXAMPLE, service, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (service / ".dockerignore").unlink()
    (service / "Dockerfile").write_text(naive.group(1))
    (service / "requirements.txt").write_text("numpy\nsafetensors\n")
    (service / "models").mkdir(exist_ok=True)
    (service / "models" / "model.safetensors").write_bytes(b"\0" * WEIGHTS_MIN_BYTES)
    code, found = lint(service)
    assert code == 1  # PK001 and PK003 are errors
    assert found == sorted(listed)


def test_the_layered_example_keeps_only_the_digest_warning(tmp_path: Path) -> None:
    code, found = lint(EXAMPLE)
    assert (code, found) == (0, ["PK005 base-image-not-pinned"])

    repo = GitRepo.init(tmp_path / "service")
    shutil.copytree(EXAMPLE, repo.path, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
    repo.commit(message="service")
    repo.commit({"server/__main__.py": (EXAMPLE / "server/__main__.py").read_text() + "# c\n"})
    assert repo.detect()["rebuild_from"] == "code"
    requirements = (EXAMPLE / "requirements.txt").read_text()
    repo.commit({"requirements.txt": requirements.replace("numpy==2.1.3", "numpy==2.1.2")})
    assert repo.detect()["rebuild_from"] == "deps"

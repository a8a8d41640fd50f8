"""`pipeline-kit init` finds the build context where the repository says it or where the
Dockerfile's COPY/ADD sources are, writes it, and says where it came from; detect then
answers right on the repository's real shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.support.gitrepo import GitRepo, changed, cli

PKG_DOCKERFILE = """\
FROM python:3.11-slim AS base
RUN pip install poetry==1.8.3

FROM base AS deps
WORKDIR /app
COPY poetry.lock pyproject.toml ./
RUN poetry install --no-root

FROM deps AS code
COPY pkg pkg
CMD ["python", "-m", "pkg"]
"""

PKG = {
    "README.md": "# monorepo\n",
    "libs/pkg/Dockerfile": PKG_DOCKERFILE,
    "libs/pkg/poetry.lock": "# lock\n",
    "libs/pkg/pyproject.toml": "[tool.poetry]\nname = 'pkg'\n",
    "libs/pkg/pkg/__init__.py": "",
    "libs/pkg/pkg/__main__.py": "print('serve')\n",
}

# A Dockerfile under docker/ built from the root: its sources are at the root only.
ROOT_BUILT = {
    "docker/Dockerfile": "FROM python:3.11-slim\nCOPY requirements.txt .\nCOPY src/ /app/src/\n",
    "requirements.txt": "numpy==2.1.3\n",
    "src/app.py": "print(1)\n",
    "docker/README.md": "how to build\n",
}


def _init(repo: GitRepo, dockerfile: str) -> tuple[dict[str, object], str]:
    args = ("init", "--ci", "none", "--image", "r.io/a/b", "--dockerfile", dockerfile)
    proc = cli(*args, cwd=repo.path)
    assert proc.returncode == 0, proc.stderr
    config = yaml.safe_load((repo.path / "pipeline-kit.yaml").read_text())
    return config, proc.stdout


def test_subdirectory_context_from_the_sources_and_detect_answers_right(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "mono")
    repo.commit(PKG)
    config, out = _init(repo, "libs/pkg/Dockerfile")
    assert config["context"] == "libs/pkg"
    assert "context libs/pkg: 3 of 3 COPY/ADD sources are there" in out
    text = (repo.path / "pipeline-kit.yaml").read_text()
    assert "context: libs/pkg  # 3 of 3 COPY/ADD sources are there\n" in text
    repo.commit(message="onboard")

    repo.commit({"libs/pkg/pkg/__main__.py": "print('serve!')\n"}, "code")
    proc = cli("detect", "--format", "json", "--base", "HEAD~1", cwd=repo.path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["image_changed"] is True
    assert changed(result) == {"base": False, "deps": False, "code": True}
    repo.commit({"README.md": "# monorepo!\n"}, "readme")
    proc = cli("detect", "--format", "json", "--base", "HEAD~1", cwd=repo.path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["image_changed"] is False


def test_sources_at_the_root_keep_the_root(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "rootbuilt")
    repo.commit(ROOT_BUILT)
    config, out = _init(repo, "docker/Dockerfile")
    assert "context" not in config  # the default, "."
    assert "context .: 2 of 2 COPY/ADD sources are there" in out


def test_a_tie_goes_to_the_dockerfiles_folder(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "tie")
    files = {**PKG, "pkg/__init__.py": "", "poetry.lock": "x\n", "pyproject.toml": "x\n"}
    repo.commit(files)
    config, _ = _init(repo, "libs/pkg/Dockerfile")
    assert config["context"] == "libs/pkg"


def test_a_folder_between_wins_where_the_sources_are(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "between")
    files = {f"libs/{k.removeprefix('libs/pkg/')}": v for k, v in PKG.items() if k != "README.md"}
    files["libs/docker/pkg/Dockerfile"] = files.pop("libs/Dockerfile")
    repo.commit(files)
    config, _ = _init(repo, "libs/docker/pkg/Dockerfile")
    assert config["context"] == "libs"


COMPOSE = """\
services:
  api:
    build:
      context: ./services/api
      dockerfile: ../../docker/api.Dockerfile
  worker:
    build: ./worker
"""

MAKEFILE = "image:\n\tdocker build -t api \\\n\t  -f docker/api.Dockerfile services/api\n"
SCRIPT = (
    "#!/bin/sh\nset -e\n"
    "docker buildx build --push --file=docker/api.Dockerfile --build-arg V=1 services/api && echo\n"
)


@pytest.mark.parametrize(
    ("files", "origin"),
    [
        ({"compose.yaml": COMPOSE}, "compose.yaml: services.api.build"),
        (
            {"Makefile": MAKEFILE},
            "Makefile:2: docker build",
        ),
        (
            {"scripts/build.sh": SCRIPT},
            "scripts/build.sh:3: docker build",
        ),
        (
            {".github/workflows/image.yml": (
                "on: push\njobs:\n  image:\n    runs-on: ubuntu-latest\n    steps:\n"
                "      - uses: actions/checkout@v4\n"
                "      - uses: docker/build-push-action@v6\n"
                "        with: {context: services/api, file: docker/api.Dockerfile, push: false}\n"
            )},
            ".github/workflows/image.yml: jobs.image.steps[1] (with)",
        ),
    ],
    ids=["compose", "makefile", "script", "workflow"],
)  # fmt: skip
def test_the_context_the_repositorys_build_files_give(
    tmp_path: Path, files: dict[str, str], origin: str
) -> None:
    """The sources would say the root (requirements.txt is there, and only there); the
    repository's own build says services/api, and it wins."""
    repo = GitRepo.init(tmp_path / "declared")
    repo.commit(
        {
            "docker/api.Dockerfile": "FROM python:3.11-slim\nCOPY requirements.txt .\n",
            "requirements.txt": "numpy==2.1.3\n",
            "services/api/main.py": "1\n",
            "worker/Dockerfile": "FROM scratch\n",
            **files,
        }
    )
    config, out = _init(repo, "docker/api.Dockerfile")
    assert config["context"] == "services/api"
    assert f"context services/api: {origin}" in out


def test_a_build_file_for_another_dockerfile_says_nothing(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "other")
    repo.commit(
        {
            **PKG,
            "compose.yaml": "services:\n  x:\n    build: {context: ., dockerfile: Dockerfile}\n",
            "Makefile": "all:\n\tdocker build -f other/Dockerfile .\n",
        }
    )
    config, out = _init(repo, "libs/pkg/Dockerfile")
    assert config["context"] == "libs/pkg"
    assert "COPY/ADD sources are there" in out

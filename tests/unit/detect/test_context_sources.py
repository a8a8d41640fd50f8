"""A COPY/ADD source that matches nothing in the build context stops detect (exit 2), as
BuildKit stops the build; the shapes are the ones real repositories have (a Dockerfile in a
subdirectory built with that folder as its context). What BuildKit accepts is accepted:
a wildcard that matches nothing, a source missing only at the base revision, a stage the
target does not build on, ``COPY --from``. BuildKit's own answers are checked in
tests/integration/build/test_context_sources_buildkit.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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

MONOREPO = {
    "README.md": "# monorepo\n",
    "libs/pkg/Dockerfile": PKG_DOCKERFILE,
    "libs/pkg/poetry.lock": "# lock\n",
    "libs/pkg/pyproject.toml": "[tool.poetry]\nname = 'pkg'\n",
    "libs/pkg/pkg/__init__.py": "",
    "libs/pkg/pkg/__main__.py": "print('serve')\n",
    "libs/other/main.py": "1\n",
}


def _config(context: str | None) -> str:
    text = "image: registry.example.com/team/pkg\ndockerfile: libs/pkg/Dockerfile\n"
    return text + (f"context: {context}\n" if context else "")


def _detect(repo: GitRepo, *args: str) -> tuple[int, dict[str, object] | None, str]:
    proc = cli("detect", "--format", "json", *args, cwd=repo.path)
    return proc.returncode, json.loads(proc.stdout) if proc.returncode == 0 else None, proc.stderr


@pytest.fixture
def mono(tmp_path: Path) -> GitRepo:
    repo = GitRepo.init(tmp_path / "mono")
    repo.commit({**MONOREPO, "pipeline-kit.yaml": _config("libs/pkg")}, "initial")
    return repo


def test_subdirectory_context_answers_right(mono: GitRepo) -> None:
    mono.commit({"libs/pkg/pkg/__main__.py": "print('serve!')\n"}, "code")
    code, result, err = _detect(mono, "--base", "HEAD~1")
    assert code == 0, err
    assert result is not None and result["image_changed"] is True
    assert changed(result) == {"base": False, "deps": False, "code": True}
    mono.commit({"libs/pkg/poetry.lock": "# lock 2\n"}, "lock")
    code, result, err = _detect(mono, "--base", "HEAD~1")
    assert code == 0, err
    assert result is not None and changed(result) == {"base": False, "deps": True, "code": True}
    mono.commit({"README.md": "# monorepo, documented\n"}, "readme")
    code, result, err = _detect(mono, "--base", "HEAD~1")
    assert code == 0, err
    assert result is not None and result["image_changed"] is False


def test_root_context_for_a_subdirectory_dockerfile_is_an_input_error(mono: GitRepo) -> None:
    """The silent wrong answer: with the root as context nothing the COPYs name exists."""
    mono.commit({"pipeline-kit.yaml": _config(None)}, "no context")
    mono.commit({"libs/pkg/pkg/__main__.py": "print('serve!')\n"}, "code")
    code, result, err = _detect(mono, "--base", "HEAD~1")
    assert code == 2, (result, err)
    head = mono.head()[:12]
    where = f"matches nothing in the build context . at {head}"
    assert f"libs/pkg/Dockerfile:6: COPY poetry.lock: {where}" in err
    assert "It is in libs/pkg: set `context: libs/pkg` in pipeline-kit.yaml" in err
    assert "Traceback" not in err


def test_source_missing_at_base_only_is_a_change(mono: GitRepo) -> None:
    dockerfile = PKG_DOCKERFILE.replace("COPY pkg pkg", "COPY pkg pkg\nCOPY settings.toml ./")
    mono.commit({"libs/pkg/Dockerfile": dockerfile}, "a COPY of a file that is not there yet")
    mono.commit({"libs/pkg/settings.toml": "x = 1\n"}, "the file")
    code, result, err = _detect(mono, "--base", "HEAD~1")
    assert code == 0, err
    assert result is not None and changed(result) == {"base": False, "deps": False, "code": True}
    # ... and the commit that takes it away again fails, naming the line.
    mono.commit({"libs/pkg/settings.toml": None}, "gone")
    code, _, err = _detect(mono, "--base", "HEAD~1")
    assert code == 2
    assert "libs/pkg/Dockerfile:11: COPY settings.toml: matches nothing" in err


def test_source_missing_at_both_revisions_is_an_input_error(mono: GitRepo) -> None:
    dockerfile = PKG_DOCKERFILE.replace("COPY pkg pkg", "COPY pkg pkg\nADD missing.tar.gz /opt/")
    mono.commit({"libs/pkg/Dockerfile": dockerfile}, "broken")
    mono.commit({"libs/pkg/pkg/__main__.py": "print('serve!')\n"}, "code")
    code, _, err = _detect(mono, "--base", "HEAD~1")
    assert code == 2
    assert "libs/pkg/Dockerfile:11: ADD missing.tar.gz: matches nothing in the build context" in err
    assert "libs/pkg at " in err
    assert "Set `context:` in pipeline-kit.yaml to the directory" in err  # nowhere else either


def test_source_excluded_by_dockerignore_names_the_ignore_line(mono: GitRepo) -> None:
    mono.commit({"libs/pkg/.dockerignore": "**/__pycache__\n*.lock\n"}, "ignore the lock")
    code, _, err = _detect(mono, "--base", "HEAD~1")
    assert code == 2
    assert "libs/pkg/Dockerfile:6: COPY poetry.lock: excluded by libs/pkg/.dockerignore:2" in err


def test_directory_excluded_by_a_double_star_pattern(mono: GitRepo) -> None:
    dockerfile = PKG_DOCKERFILE.replace("COPY pkg pkg", "COPY pkg/__pycache__ /cache/")
    mono.commit(
        {
            "libs/pkg/Dockerfile": dockerfile,
            "libs/pkg/.dockerignore": "# caches\n**/__pycache__\n",
            "libs/pkg/pkg/__pycache__/m.pyc": "pyc\n",
        }
    )
    code, _, err = _detect(mono, "--base", "HEAD~1")
    assert code == 2
    assert "COPY pkg/__pycache__: excluded by libs/pkg/.dockerignore:2" in err


def test_what_buildkit_accepts_is_accepted(mono: GitRepo) -> None:
    """A wildcard matching nothing, a directory whose files are all ignored, an unused stage
    with a missing source, COPY --from: BuildKit builds each, and so does detect answer."""
    dockerfile = (
        "FROM python:3.11-slim AS unused\nCOPY not-here.txt /\n\n"
        + PKG_DOCKERFILE.replace(
            "COPY pkg pkg",
            "COPY pkg pkg\nCOPY optional-*.toml nothing/ma?ches ./\nCOPY empty /empty/\n"
            "COPY --from=base /usr/local/bin/poetry /opt/",
        )
    )
    mono.commit(
        {
            "libs/pkg/Dockerfile": dockerfile,
            "libs/pkg/.dockerignore": "empty/*\n",
            "libs/pkg/empty/ignored.txt": "1\n",
        }
    )
    mono.commit({"libs/pkg/pkg/__main__.py": "print('serve!')\n"}, "code")
    code, result, err = _detect(mono, "--base", "HEAD~1")
    assert code == 0, err
    assert result is not None and result["image_changed"] is True


def test_build_refuses_too(mono: GitRepo) -> None:
    mono.commit({"pipeline-kit.yaml": _config(".")}, "root context")
    proc = cli("build", "--dry-run", cwd=mono.path)
    assert proc.returncode == 2, proc.stderr
    assert "libs/pkg/Dockerfile:6: COPY poetry.lock: matches nothing" in proc.stderr


def test_lint_refuses_from_the_working_tree(mono: GitRepo) -> None:
    proc = cli("lint", cwd=mono.path)
    assert proc.returncode in (0, 1), proc.stderr  # a verdict on the right context
    (mono.path / "libs/pkg/poetry.lock").unlink()
    proc = cli("lint", cwd=mono.path)
    assert proc.returncode == 2, proc.stdout
    assert "libs/pkg/Dockerfile:6: COPY poetry.lock: matches nothing in the build context" in (
        proc.stderr
    )
    assert "libs/pkg in the working tree" in proc.stderr
    (mono.path / "libs/pkg/poetry.lock").write_text("# lock\n")
    (mono.path / "libs/pkg/.dockerignore").write_text("pkg\n")
    proc = cli("lint", cwd=mono.path)
    assert proc.returncode == 2, proc.stdout
    assert "libs/pkg/Dockerfile:10: COPY pkg: excluded by libs/pkg/.dockerignore:1" in proc.stderr


def test_lint_accepts_what_buildkit_accepts(mono: GitRepo) -> None:
    dockerfile = PKG_DOCKERFILE.replace(
        "COPY pkg pkg", "COPY pkg pkg\nCOPY optional-*.toml ./\nCOPY keep /keep/"
    )
    mono.write(
        {
            "libs/pkg/Dockerfile": dockerfile,
            "libs/pkg/.dockerignore": "keep\n!keep/this.txt\n",
            "libs/pkg/keep/this.txt": "1\n",
        }
    )
    proc = cli("lint", cwd=mono.path)
    assert proc.returncode in (0, 1), proc.stderr

"""``COPY .git``: a build context sent from a checkout holds the repository, which no git tree
lists. LocalAI's Dockerfile copies it so that its build stamps ``git describe`` into the
binary: every commit changes that image, a commit that touches only ignored files included."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.gitrepo import GitRepo, cli

DOCKERFILE = """\
FROM busybox:1.36 AS builder
WORKDIR /build
COPY ./.git ./.git
COPY main.go ./
RUN echo "$(cat .git/HEAD)" > /version

FROM busybox:1.36
COPY --from=builder /version /version
"""


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo.init(tmp_path / "svc")
    repo.commit(
        {
            "Dockerfile": DOCKERFILE,
            ".dockerignore": ".github\n",
            "main.go": "package main\n",
            ".github/workflows/ci.yml": "on: push\n",
        }
    )
    return repo


def test_a_commit_of_ignored_files_changes_an_image_that_copies_the_repository(
    repo: GitRepo,
) -> None:
    base = repo.head()
    head = repo.commit({".github/workflows/ci.yml": "on: [push]\n"})
    result = repo.detect(base=base, head=head)
    assert result["image_changed"] is True
    assert result["rebuild_point"]["reasons"] == [
        "Dockerfile:8 COPY --from=builder /version /version: stage 'builder' changed: "
        "Dockerfile:3 COPY ./.git ./.git: content changed"
    ]


def test_without_the_repository_copy_the_same_commit_changes_nothing(repo: GitRepo) -> None:
    """The failing direction: the answer above comes from ``COPY .git``, not from the commit."""
    repo.commit({"Dockerfile": DOCKERFILE.replace("COPY ./.git ./.git\n", "")})
    base = repo.head()
    head = repo.commit({".github/workflows/ci.yml": "on: [push]\n"})
    assert repo.detect(base=base, head=head)["image_changed"] is False


def test_a_repository_copy_that_dockerignore_excludes_is_an_input_error(repo: GitRepo) -> None:
    repo.commit({".dockerignore": ".github\n.git\n"})
    proc = cli("detect", "--base", "HEAD~1", cwd=repo.path)
    assert proc.returncode == 2, proc.stderr
    assert "Dockerfile:3: COPY .git: excluded by .dockerignore:2" in proc.stderr


def test_a_context_below_the_root_holds_no_repository(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "svc")
    repo.commit(
        {
            "svc/Dockerfile": DOCKERFILE,
            "svc/main.go": "package main\n",
            "pipeline-kit.yaml": "image: r.example.com/svc\ndockerfile: svc/Dockerfile\n"
            "context: svc\n",
        }
    )
    proc = cli("detect", "--base", "HEAD", cwd=repo.path)
    assert proc.returncode == 2, proc.stderr
    assert "svc/Dockerfile:3: COPY .git: matches nothing in the build context svc" in proc.stderr

"""A filtered directory is named by the tree id git gives the files the image takes."""

from __future__ import annotations

from pathlib import Path

from pipeline_kit.adapters.git import Git
from pipeline_kit.dockerfile.context_tree import ContextSnapshot
from pipeline_kit.dockerfile.dockerignore import DockerIgnore
from pipeline_kit.dockerfile.stages import ContextSource
from tests.support.gitrepo import GitRepo

IGNORE = "**/__pycache__\napp/**/*.md\napp/notes\n!app/notes/keep.txt\n"
TAKEN = {
    "app/main.py": "print(1)\n",
    "app/sub/keep.py": "K = 1\n",
    "app/sub/deeper/x.py": "X = 1\n",
    "app/notes/keep.txt": "keep\n",
}
EXCLUDED = {
    "app/__pycache__/main.cpython-311.pyc": "bytes",
    "app/sub/__pycache__/keep.cpython-311.pyc": "bytes",
    "app/sub/README.md": "# sub\n",
    "app/notes/drop.txt": "drop\n",
    "app/notes/deep/drop.txt": "drop\n",
}


def _snapshot(repo: GitRepo, ignore: str) -> tuple[Git, ContextSnapshot]:
    git = Git(repo.path)
    tree = git.tree_of("HEAD")
    assert tree is not None
    return git, ContextSnapshot(git, tree, DockerIgnore.parse(ignore))


def test_filtered_tree_equals_the_tree_of_what_is_taken(tmp_path: Path) -> None:
    full = GitRepo.init(tmp_path / "full")
    full.commit({**TAKEN, **EXCLUDED})
    taken_only = GitRepo.init(tmp_path / "taken")
    taken_only.commit(TAKEN)

    git, snapshot = _snapshot(full, IGNORE)
    with git:
        [line] = snapshot.material(ContextSource("app", 1, "COPY"))
    expected = taken_only.git("rev-parse", "HEAD:app")
    assert line == f"40000 {expected} app"
    assert expected != full.git("rev-parse", "HEAD:app")


def test_untouched_directory_is_named_by_its_own_tree_id(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "r")
    repo.commit({**TAKEN, "lib/a.py": "A\n", "lib/b/c.py": "C\n"})
    git, snapshot = _snapshot(repo, IGNORE)
    with git:
        [line] = snapshot.material(ContextSource("lib", 1, "COPY"))
    assert line == f"40000 {repo.git('rev-parse', 'HEAD:lib')} lib"


def test_files_wildcards_modes_and_excluded_sources(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "r")
    repo.commit(
        {
            "requirements.txt": "a==1\n",
            "requirements-dev.txt": "b==1\n",
            "run.sh": "#!/bin/sh\n",
            "app/x.md": "x\n",
        }
    )
    (repo.path / "run.sh").chmod(0o755)
    repo.commit(message="executable")
    git, snapshot = _snapshot(repo, "app/x.md\n")
    with git:
        wildcard = snapshot.material(ContextSource("requirements*.txt", 1, "COPY"))
        script = snapshot.material(ContextSource("run.sh", 1, "COPY"))
        ignored = snapshot.material(ContextSource("app/x.md", 1, "COPY"))
        missing = snapshot.material(ContextSource("nope.txt", 1, "COPY"))
    blob = repo.git("rev-parse", "HEAD:requirements.txt")
    dev = repo.git("rev-parse", "HEAD:requirements-dev.txt")
    assert wildcard == sorted(
        [f"100644 {blob} requirements.txt", f"100644 {dev} requirements-dev.txt"]
    )
    assert script == [f"100755 {repo.git('rev-parse', 'HEAD:run.sh')} run.sh"]
    assert ignored == ["nothing matches app/x.md"]
    assert missing == ["nothing matches nope.txt"]


def test_a_directory_emptied_by_the_ignore_file_is_kept_empty(tmp_path: Path) -> None:
    """Docker still creates a directory whose files are all excluded; the key says so too."""
    with_empty = GitRepo.init(tmp_path / "a")
    with_empty.commit({"app/main.py": "1\n", "app/docs/only.md": "x\n"})
    without = GitRepo.init(tmp_path / "b")
    without.commit({"app/main.py": "1\n"})
    git_a, snap_a = _snapshot(with_empty, "app/**/*.md\n")
    git_b, snap_b = _snapshot(without, "app/**/*.md\n")
    with git_a, git_b:
        source = ContextSource("app", 1, "COPY")
        assert snap_a.material(source) != snap_b.material(source)

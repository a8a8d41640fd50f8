"""What the git adapter reads through ``cat-file`` agrees with git's own commands."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import pytest

from pipeline_kit.adapters.git import Git
from tests.support.gitrepo import GitRepo


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[GitRepo, list[str]]:
    """Commits whose differences cover every kind of tree change git reports."""
    repo = GitRepo.init(tmp_path_factory.mktemp("history"))
    first = repo.commit(
        {
            "a.txt": "a\n",
            "b/c.txt": "c\n",
            "b/d/e.txt": "e\n",
            "b-side.txt": "sorts between b and b/\n",
            "f": "a file that becomes a directory\n",
            "g/inner.txt": "a directory that becomes a file\n",
            "x.sh": "echo x\n",
            "ü/ünïcode.txt": "u\n",
        }
    )
    (repo.path / "link").symlink_to("a.txt")
    submodule = repo.head()
    (repo.path / "sub").mkdir()  # an uninitialised submodule: `git add -A` keeps its gitlink
    repo.git("update-index", "--add", "--cacheinfo", f"160000,{submodule},sub")
    second = repo.commit({}, message="symlink and gitlink")
    (repo.path / "x.sh").chmod(0o755)  # a mode change alone
    (repo.path / "link").unlink()
    (repo.path / "link").symlink_to("b/c.txt")
    repo.git("rm", "-q", "-r", "g")
    repo.write({"f": None})
    repo.git("update-index", "--cacheinfo", f"160000,{first},sub")
    third = repo.commit(
        {
            "a.txt": "a changed\n",
            "b/c.txt": None,
            "b/c2.txt": "c\n",  # a rename
            "b/d/e.txt": None,
            "b/new/deep/file.txt": "new\n",
            "f/inside.txt": "now a directory\n",
            "g": "now a file\n",
            "ü/ünïcode.txt": "u2\n",
        }
    )
    return repo, [first, second, third]


def diff_tree(repo: GitRepo, old: str, new: str, path: str) -> list[str]:
    pathspec = ("--", path) if path else ()
    out = repo.git("diff-tree", "-r", "--no-renames", "--name-only", "-z", old, new, *pathspec)
    return [p for p in out.split("\0") if p]


@pytest.mark.parametrize("path", ["", "b", "b/d", "g", "f", "missing"])
def test_changed_paths_are_what_git_diff_tree_lists(
    history: tuple[GitRepo, list[str]], path: str
) -> None:
    repo, commits = history
    git = Git(repo.path)
    try:
        for old, new in itertools.permutations(commits, 2):
            assert git.changed_paths(old, new, path) == diff_tree(repo, old, new, path)
        # The head side may be a tree id (a working tree's), as for uncommitted changes.
        tree = git.tree_of(commits[2])
        assert tree is not None
        expected = diff_tree(repo, commits[0], commits[2], path)
        assert git.changed_paths(commits[0], tree, path) == expected
        assert len(expected) > 0 or path in ("missing", "b/d")
    finally:
        git.close()


def test_ancestry_agrees_with_merge_base(history: tuple[GitRepo, list[str]]) -> None:
    repo, commits = history
    git = Git(repo.path)
    try:
        assert git.parents(commits[0]) == []
        assert git.parents(commits[2]) == [commits[1]]
        for one, other in itertools.product(commits, repeat=2):
            answer = subprocess.run(
                ["git", "merge-base", "--is-ancestor", one, other], cwd=repo.path, check=False
            )
            assert git.is_ancestor(one, other) is (answer.returncode == 0), (one, other)
    finally:
        git.close()


def test_a_merge_commit_has_both_parents(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "merge")
    base = repo.commit({"a": "1\n"})
    repo.git("checkout", "-q", "-b", "side")
    side = repo.commit({"b": "2\n"})
    repo.git("checkout", "-q", "main")
    main = repo.commit({"c": "3\n"})
    repo.git("merge", "-q", "--no-edit", "side")
    merge = repo.head()
    git = Git(repo.path)
    try:
        assert git.parents(merge) == [main, side]
        assert git.is_ancestor(side, merge) and git.is_ancestor(base, merge)
        assert not git.is_ancestor(side, main)
    finally:
        git.close()

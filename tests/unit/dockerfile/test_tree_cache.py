"""Filtered tree ids made directory by directory and kept between calls: the same ids with
the cache empty, warm or absent, the ids git gives the files the image takes, and a warm
call that reads only the directories that changed."""

from __future__ import annotations

import json
import posixpath
import random
import subprocess
from pathlib import Path

import pytest

from pipeline_kit.adapters.git import Git, TreeEntry
from pipeline_kit.dockerfile.context_tree import ContextSnapshot
from pipeline_kit.dockerfile.dockerignore import DockerIgnore
from pipeline_kit.dockerfile.tree_cache import FilteredTreeStore, store_for
from tests.support.gitrepo import GitRepo, cli

RULE_SETS = {
    "real-world": "**/__pycache__\n**/*.pyc\n**/.git\n*.md\n",
    "anchored and double star": "app/**/*.md\napp/a1\n**/tmp\n",
    "exceptions inside excluded directories": "app/a0\n!app/a0/b1\n**/*.pyc\n!app/**/keep.pyc\n",
    "everything then back": "**\n!app/a2/**\napp/a2/**/*.md\n",
}


def _tree(seed: int) -> dict[str, str]:
    """About 400 files in 60 directories, with caches, notes and keepers."""
    rng = random.Random(seed)
    files: dict[str, str] = {}
    dirs = ["app"]
    for depth in range(4):
        for parent in [d for d in dirs if d.count("/") == depth]:
            for name in ("a0", "b1", "tmp2", "a3")[: rng.randint(2, 4)]:
                dirs.append(f"{parent}/{name}")
    for directory in dirs:
        files[f"{directory}/.keepme"] = directory  # every directory keeps a file
        for i in range(rng.randint(2, 6)):
            files[f"{directory}/m{i}.py"] = f"{directory} {i} {rng.random()}\n"
        files[f"{directory}/notes.md"] = "notes\n"
        files[f"{directory}/__pycache__/m0.cpython-311.pyc"] = "pyc\n"
        if rng.random() < 0.3:
            files[f"{directory}/keep.pyc"] = "kept\n"
    return files


def _oracle(repo: GitRepo, ignore: DockerIgnore) -> str:
    """The tree id of ``app`` built with ``git mktree`` from what BuildKit sends: every file
    not excluded, every directory not excluded or holding a kept file (the matcher's answer
    per path is checked against BuildKit in tests/integration/build/)."""
    listed = [
        line.split("\t", 1) for line in repo.git("ls-tree", "-r", "-t", "HEAD", "app").splitlines()
    ]
    files = {
        path: info for info, path in listed if " tree " not in info and not ignore.excluded(path)
    }
    dirs = {
        path
        for info, path in listed
        if " tree " in info
        and (not ignore.excluded(path) or any(f.startswith(path + "/") for f in files))
    }
    ids: dict[str, str] = {}
    for directory in sorted(dirs | {"app"}, key=lambda d: -d.count("/")):
        lines = [
            f"{info}\t{path.rpartition('/')[2]}"
            for path, info in files.items()
            if path.rpartition("/")[0] == directory
        ]
        lines += [
            f"040000 tree {ids[d]}\t{d.rpartition('/')[2]}"
            for d in dirs
            if d.rpartition("/")[0] == directory
        ]
        proc = subprocess.run(
            ["git", "mktree"],
            cwd=repo.path,
            input="".join(line + "\n" for line in lines),
            capture_output=True,
            text=True,
            check=True,
        )
        ids[directory] = proc.stdout.strip()
    return ids["app"]


class CountingGit(Git):
    """Counts the trees fetched from git (a tree read again from memory does not count)."""

    reads = 0

    def read_tree(self, oid: str) -> list[TreeEntry]:
        self.reads += oid not in self._trees
        return super().read_tree(oid)

    def prefetch_trees(self, oids: list[str]) -> None:
        self.reads += len({oid for oid in oids if oid not in self._trees})
        super().prefetch_trees(oids)


def _filtered(
    repo: GitRepo, rules: str, store_root: Path | None, rev: str = "HEAD"
) -> tuple[str, int]:
    ignore = DockerIgnore.parse(rules)
    with CountingGit(repo.path) as git:
        tree = git.tree_of(rev)
        app = git.tree_of(rev, "app")
        assert tree is not None and app is not None
        store = FilteredTreeStore(store_root, ignore) if store_root is not None else None
        snapshot = ContextSnapshot(git, tree, ignore, store=store)
        return snapshot.filtered_tree("app", app), git.reads


@pytest.mark.parametrize("rules", RULE_SETS.values(), ids=RULE_SETS.keys())
def test_the_same_ids_with_the_cache_empty_warm_or_absent(rules: str, tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "r")
    repo.commit(_tree(1))
    expected = _oracle(repo, DockerIgnore.parse(rules))
    assert expected != repo.git("rev-parse", "HEAD:app")  # the rules do exclude something
    store = tmp_path / "cache"
    assert _filtered(repo, rules, None)[0] == expected
    assert _filtered(repo, rules, store)[0] == expected  # empty: computed and written
    assert _filtered(repo, rules, store)[0] == expected  # warm: read back


def test_a_warm_call_reads_only_the_directories_that_changed(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "r")
    files = _tree(2)
    repo.commit(files)
    rules = RULE_SETS["real-world"]
    store = tmp_path / "cache"
    _, cold_reads = _filtered(repo, rules, store)
    deep = max((p for p in files if p.endswith(".py")), key=lambda p: p.count("/"))
    repo.commit({deep: "changed\n"})
    found, warm_reads = _filtered(repo, rules, store)
    assert found == _oracle(repo, DockerIgnore.parse(rules))
    # Empty cache: every directory the rules reach into, once. Warm: the changed file's
    # directories (app, ..., its parent) and the small unchanged ones near them (a directory
    # of fewer than STORE_MIN_ENTRIES entries is listed again rather than kept), never the
    # rest of the tree.
    listed = repo.git("ls-tree", "-r", "-t", "--name-only", "HEAD", "app").splitlines()
    directories = {posixpath.dirname(p) for p in listed if "__pycache__" not in p} - {""}
    assert cold_reads >= len(directories) > 40  # (and the __pycache__ they all share)
    assert deep.count("/") <= warm_reads < cold_reads / 3


def test_the_cache_is_keyed_by_the_rules(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "r")
    repo.commit(_tree(3))
    store = tmp_path / "cache"
    first = _filtered(repo, RULE_SETS["real-world"], store)[0]
    other_rules = RULE_SETS["anchored and double star"]
    assert _filtered(repo, other_rules, store)[0] == _oracle(repo, DockerIgnore.parse(other_rules))
    assert first != _filtered(repo, other_rules, store)[0]


def test_a_damaged_cache_entry_is_computed_again(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "r")
    repo.commit(_tree(4))
    rules = RULE_SETS["real-world"]
    store = tmp_path / "cache"
    expected = _filtered(repo, rules, store)[0]
    entries = [p for p in store.rglob("*") if p.is_file()]
    assert entries
    for entry in entries:
        entry.write_text("4b825dc642cb6eb9a060e54bf8d69288fbee4904-not-an-id\n")
    assert _filtered(repo, rules, store)[0] == expected


SERVICE = {
    "Dockerfile": "FROM python:3.11-slim AS deps\nCOPY requirements.txt .\n"
    "FROM deps AS code\nCOPY app/ /app/\n",
    ".dockerignore": "**/__pycache__\n**/*.pyc\n**/.git\n*.md\n",
    "pipeline-kit.yaml": "image: registry.example.com/team/svc\n",
    "requirements.txt": "numpy==2.1.3\n",
}


@pytest.mark.parametrize(
    ("change", "image_changed"),
    [
        ({"app/a0/__pycache__/m0.cpython-311.pyc": "other bytes\n"}, False),
        ({"app/a0/keep.pyc": "under **/*.pyc\n"}, False),
        ({"app/a0/m0.py": "changed\n"}, True),
        ({"app/a0/new/__init__.py": ""}, True),
    ],
    ids=["inside an ignored cache", "an ignored file", "a taken file", "a new directory"],
)
def test_detect_answers_the_same_with_the_cache_warm_and_empty(
    tmp_path: Path, change: dict[str, str], image_changed: bool
) -> None:
    repo = GitRepo.init(tmp_path / "svc")
    repo.commit({**SERVICE, **_tree(5)})
    repo.commit(change)
    warm = tmp_path / "warm"
    answers = []
    for cache in (warm, warm, tmp_path / "empty", None):
        env = {"XDG_CACHE_HOME": str(cache)} if cache else {"XDG_CACHE_HOME": "", "HOME": ""}
        proc = cli("detect", "--format", "json", "--base", "HEAD~1", cwd=repo.path, env=env)
        assert proc.returncode == 0, proc.stderr
        answers.append(json.loads(proc.stdout))
    assert any((warm / "pipeline-kit" / "filtered-trees").rglob("*"))
    keys = [{n: v["key"] for n, v in a["layers"].items()} for a in answers]
    assert keys[0] == keys[1] == keys[2] == keys[3]
    assert [a["image_changed"] for a in answers] == [image_changed] * 4


@pytest.mark.parametrize(
    ("ci", "used"),
    [
        ({}, True),
        ({"GITHUB_ACTIONS": "true"}, False),
        ({"GITLAB_CI": "true"}, False),
        ({"CI": "1"}, False),
        ({"CI": "true", "PIPELINE_KIT_TREE_CACHE": "1"}, True),
        ({"CI": "true", "PIPELINE_KIT_TREE_CACHE": "0"}, False),
    ],
    ids=["outside CI", "github", "gitlab", "CI=1", "opted in", "not opted in"],
)
def test_a_ci_job_keeps_no_cache_unless_it_opts_in(
    tmp_path: Path, ci: dict[str, str], used: bool
) -> None:
    """A runner shared with untrusted jobs may hold ids one of them wrote: a protected build
    must not take its keys from them."""
    store = store_for(DockerIgnore.parse("**/*.pyc\n"), {"XDG_CACHE_HOME": str(tmp_path), **ci})
    assert (store is not None) is used


def test_detect_in_a_ci_job_answers_without_the_cache(tmp_path: Path) -> None:
    """The whole command under GitHub Actions' variables: the same answer, nothing stored; the
    same call outside CI stores its ids (the failing direction)."""
    repo = GitRepo.init(tmp_path / "svc")
    repo.commit({**SERVICE, **_tree(5)})
    repo.commit({"app/a0/m0.py": "changed\n"})
    stored = {}
    for name, ci in (("ci", {"GITHUB_ACTIONS": "true"}), ("local", {})):
        cache = tmp_path / name
        proc = cli(
            "detect", "--format", "json", "--base", "HEAD~1", cwd=repo.path,
            env={"XDG_CACHE_HOME": str(cache), **ci},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["image_changed"] is True
        stored[name] = any((cache / "pipeline-kit" / "filtered-trees").rglob("*.ids"))
    assert stored == {"ci": False, "local": True}

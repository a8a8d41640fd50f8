"""git, the kit's source of truth for content: blob and tree ids are already content hashes.

One long-lived ``git cat-file --batch`` serves every object read of a command, so that reading
trees and Dockerfiles at two revisions costs one process, not dozens. The paths two trees
differ in are read through it too (the trees are the ones the keys read), and so is the
ancestry of a commit's own parent: neither costs a process of its own.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import IO, NamedTuple

from pipeline_kit.adapters.process import CommandFailed, inherited, run, start_all
from pipeline_kit.errors import EnvironmentFault, InputError

TREE_MODE = "40000"
_HEX = re.compile(r"^[0-9a-f]{7,64}$")
_BATCH = 1000  # tree requests written before reading the answers (41 bytes each)


class TreeEntry(NamedTuple):
    mode: str  # "100644", "100755", "120000", "40000", "160000"
    name: str
    oid: str

    @property
    def is_tree(self) -> bool:
        return self.mode == TREE_MODE


class Git:
    """A git repository, found from any directory inside its work tree."""

    def __init__(self, cwd: Path) -> None:
        try:
            out = run(
                [
                    "git",
                    "rev-parse",
                    "--show-toplevel",
                    "--absolute-git-dir",
                    "--is-shallow-repository",
                ],
                cwd=cwd,
            )
        except CommandFailed as exc:
            if "not a git repository" in exc.stderr:
                raise InputError(
                    f"{cwd} is not inside a git repository.",
                    hint="Run pipeline-kit in a git checkout, or pass --config with a path in one.",
                ) from None
            raise
        top, git_dir, shallow = out.stdout.decode().splitlines()[:3]
        self.root = Path(top)
        self.git_dir = Path(git_dir)
        self.shallow = shallow.strip() == "true"
        self._batch: subprocess.Popen[bytes] | None = None
        self._trees: dict[str, list[TreeEntry]] = {}
        # Commands started ahead of their answer (``ask_*``), by what they answer.
        self._asked: dict[str, Callable[[], list[subprocess.CompletedProcess[bytes]]]] = {}

    # -- object access through one cat-file process -------------------------------------

    def _cat_file(self) -> tuple[IO[bytes], IO[bytes]]:
        if self._batch is None:
            self._batch = subprocess.Popen(
                ["git", "cat-file", "--batch"],
                cwd=self.root,
                env=inherited(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        assert self._batch.stdin is not None and self._batch.stdout is not None
        return self._batch.stdin, self._batch.stdout

    def read_object(self, spec: str) -> tuple[str, str, bytes] | None:
        """``(oid, type, content)`` of ``spec`` (any ``rev``, ``rev:path``, oid), or None."""
        if "\n" in spec:
            raise InputError(f"revision {spec!r} holds a newline.")
        stdin, stdout = self._cat_file()
        stdin.write(spec.encode() + b"\n")
        stdin.flush()
        header = stdout.readline()
        if not header:
            raise EnvironmentFault("`git cat-file --batch` stopped unexpectedly.")
        parts = header.split()
        if len(parts) != 3:  # "<spec> missing" or "<spec> ambiguous"
            return None
        size = int(parts[2])
        content = stdout.read(size + 1)[:size]
        return parts[0].decode(), parts[1].decode(), content

    def resolve_commit(self, rev: str) -> str | None:
        found = self.read_object(f"{rev}^{{commit}}")
        return None if found is None else found[0]

    def tree_of(self, treeish: str, path: str = "") -> str | None:
        """The tree id at ``path`` ("" for the root) in a commit or tree, or None."""
        spec = f"{treeish}:{path}" if path else f"{treeish}^{{tree}}"
        found = self.read_object(spec)
        return found[0] if found is not None and found[1] == "tree" else None

    def read_blob(self, treeish: str, path: str) -> bytes | None:
        found = self.read_object(f"{treeish}:{path}")
        return found[2] if found is not None and found[1] == "blob" else None

    def read_tree(self, oid: str) -> list[TreeEntry]:
        cached = self._trees.get(oid)
        if cached is not None:
            return cached
        found = self.read_object(oid)
        if found is None or found[1] != "tree":
            raise EnvironmentFault(f"git object {oid} is not a readable tree.")
        entries = parse_tree(found[2], len(oid) // 2)
        self._trees[oid] = entries
        return entries

    def prefetch_trees(self, oids: list[str]) -> None:
        """Read many trees in one exchange with cat-file (the answers stay for ``read_tree``):
        a round trip per tree costs more than the tree on a busy machine."""
        wanted = [oid for oid in dict.fromkeys(oids) if oid not in self._trees]
        for start in range(0, len(wanted), _BATCH):
            chunk = wanted[start : start + _BATCH]  # well under a pipe's buffer of requests
            stdin, stdout = self._cat_file()
            stdin.write("".join(oid + "\n" for oid in chunk).encode())
            stdin.flush()
            for oid in chunk:
                header = stdout.readline()
                parts = header.split()
                if not header:
                    raise EnvironmentFault("`git cat-file --batch` stopped unexpectedly.")
                if len(parts) != 3:
                    continue  # missing: read_tree says so when asked
                size = int(parts[2])
                content = stdout.read(size + 1)[:size]
                if parts[1] == b"tree":
                    self._trees[oid] = parse_tree(content, len(oid) // 2)

    def close(self) -> None:
        for finish in self._asked.values():  # asked and never read: reap the processes
            finish()
        self._asked.clear()
        if self._batch is not None:
            if self._batch.stdin:
                self._batch.stdin.close()
            self._batch.wait()
            if self._batch.stdout:
                self._batch.stdout.close()
            self._batch = None

    # -- commands ------------------------------------------------------------------------

    def _git(self, *args: str, env: dict[str, str] | None = None) -> bytes:
        return run(["git", *args], cwd=self.root, env=env).stdout

    def list_tree_paths(self, tree: str) -> list[str]:
        """Every path below ``tree`` (directories too), relative to it."""
        out = self._git("ls-tree", "-r", "-t", "-z", "--name-only", tree)
        return out.decode("utf-8", "surrogateescape").split("\0")[:-1]

    def changed_paths(self, old: str, new: str, path: str = "") -> list[str]:
        """Paths that differ between two tree-ishes (only ``path`` and below), in git's order.

        What ``git diff-tree -r --no-renames --name-only old new -- path`` lists (files,
        symlinks and submodules; a rename as a delete plus an add), from the trees: only
        subtrees whose ids differ are read.
        """
        parent, _, name = path.rpartition("/")
        changed: list[str] = []
        self._diff_trees(
            self.tree_of(old, parent) if old else None,
            self.tree_of(new, parent),
            f"{parent}/" if parent else "",
            changed,
            only=name or None,
        )
        return changed

    def _diff_trees(
        self, old: str | None, new: str | None, prefix: str, out: list[str], only: str | None = None
    ) -> None:
        """Append to ``out`` the leaves that differ below two trees (``only``: one name)."""
        if old == new:
            return
        before = {e.name: e for e in self.read_tree(old) if only in (None, e.name)} if old else {}
        after = {e.name: e for e in self.read_tree(new) if only in (None, e.name)} if new else {}
        # git sorts a tree as if its name ended in "/": a file "a" and a directory "a" differ.
        entries = (*before.values(), *after.values())
        keys = {(e.name + "/" if e.is_tree else e.name, e.name) for e in entries}
        for key, name in sorted(keys, key=lambda k: k[0].encode("utf-8", "surrogateescape")):
            one, other = before.get(name), after.get(name)
            if key.endswith("/"):
                self._diff_trees(
                    one.oid if one is not None and one.is_tree else None,
                    other.oid if other is not None and other.is_tree else None,
                    f"{prefix}{name}/",
                    out,
                )
                continue
            leaf_one = one if one is not None and not one.is_tree else None
            leaf_other = other if other is not None and not other.is_tree else None
            if leaf_one != leaf_other:
                out.append(prefix + name)

    def parents(self, commit: str) -> list[str]:
        """The parent ids of ``commit`` (none for a root commit or an unknown one)."""
        found = self.read_object(commit)
        if found is None or found[1] != "commit":
            return []
        head = found[2].split(b"\n\n", 1)[0]
        return [line[7:].decode() for line in head.split(b"\n") if line.startswith(b"parent ")]

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        if ancestor == descendant or ancestor in self.parents(descendant):
            return True  # a push of one commit, or HEAD~1: no merge-base process needed
        proc = run(
            ["git", "merge-base", "--is-ancestor", ancestor, descendant], cwd=self.root, check=False
        )
        return proc.returncode == 0

    def merge_base(self, a: str, b: str) -> str | None:
        proc = run(["git", "merge-base", a, b], cwd=self.root, check=False)
        if proc.returncode != 0:
            return None
        return proc.stdout.decode().strip() or None

    def current_branch(self) -> str | None:
        """The checked-out branch, or None on a detached HEAD."""
        proc = run(
            ["git", "symbolic-ref", "--quiet", "--short", "HEAD"], cwd=self.root, check=False
        )
        return proc.stdout.decode().strip() or None if proc.returncode == 0 else None

    def tags_at(self, rev: str) -> list[str]:
        """Tags that point at ``rev`` (annotated or lightweight), sorted."""
        out = self._git("tag", "--points-at", rev).decode()
        return sorted(line for line in out.splitlines() if line)

    def default_branch(self) -> str | None:
        """The remote's default branch as ``origin/HEAD`` records it, if it is known."""
        proc = run(
            ["git", "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD"],
            cwd=self.root,
            check=False,
        )
        name = proc.stdout.decode().strip()
        return name.removeprefix("origin/") or None if proc.returncode == 0 else None

    def remote_url(self) -> str | None:
        proc = run(["git", "remote", "get-url", "origin"], cwd=self.root, check=False)
        return proc.stdout.decode().strip() or None if proc.returncode == 0 else None

    def _ask(self, key: str, commands: list[list[str]]) -> None:
        if key not in self._asked:
            self._asked[key] = start_all(commands, cwd=self.root)

    def _answer(
        self, key: str, commands: list[list[str]]
    ) -> list[subprocess.CompletedProcess[bytes]]:
        self._ask(key, commands)
        return self._asked.pop(key)()

    def ask_local_facts(self, rev: str) -> None:
        """Start asking git what ``local_facts(rev)`` returns: it runs while the caller works."""
        self._ask(f"facts {rev}", _local_facts_commands(rev))

    def local_facts(self, rev: str) -> tuple[str | None, list[str], str | None, str | None]:
        """(branch, tags at ``rev``, default branch, origin URL), asked of git all at once."""
        branch, tags, default, url = self._answer(f"facts {rev}", _local_facts_commands(rev))

        def text(proc: subprocess.CompletedProcess[bytes]) -> str | None:
            return proc.stdout.decode().strip() or None if proc.returncode == 0 else None

        if tags.returncode != 0:
            raise CommandFailed(tags.args, tags.returncode, tags.stderr.decode(errors="replace"))
        default_name = text(default)
        return (
            text(branch),
            sorted(line for line in tags.stdout.decode().splitlines() if line),
            default_name.removeprefix("origin/") or None if default_name else None,
            text(url),
        )

    def ask_dirty(self) -> None:
        """Start asking git what ``is_dirty()`` returns: it runs while the caller works."""
        self._ask("dirty", [_STATUS])

    def is_dirty(self) -> bool:
        (status,) = self._answer("dirty", [_STATUS])
        if status.returncode != 0:
            raise CommandFailed(
                status.args, status.returncode, status.stderr.decode(errors="replace")
            )
        return bool(status.stdout)

    def worktree_tree(self) -> str:
        """A tree id for the working tree as it is: tracked changes and untracked files.

        Built in a copy of the index, so the user's staging area is left as it was.
        """
        import shutil
        import tempfile  # only a dirty working tree needs them

        with tempfile.TemporaryDirectory(prefix="pipeline-kit-index-") as tmp:
            index = Path(tmp) / "index"
            real_index = self.git_dir / "index"
            if real_index.exists():
                shutil.copyfile(real_index, index)
            env = {"GIT_INDEX_FILE": str(index)}
            self._git("add", "-A", "--", ".", env=env)
            return self._git("write-tree", env=env).decode().strip()

    def __enter__(self) -> Git:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_STATUS = ["git", "status", "--porcelain", "-z", "--untracked-files=normal"]


def _local_facts_commands(rev: str) -> list[list[str]]:
    return [
        ["git", "symbolic-ref", "--quiet", "--short", "HEAD"],
        ["git", "tag", "--points-at", rev],
        ["git", "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD"],
        ["git", "remote", "get-url", "origin"],
    ]


def looks_like_sha(rev: str) -> bool:
    return bool(_HEX.match(rev))


def is_null_sha(rev: str | None) -> bool:
    return rev is not None and len(rev) >= 40 and set(rev) == {"0"}


def parse_tree(data: bytes, oid_len: int) -> list[TreeEntry]:
    """Entries of a raw tree object: ``<mode> <name>\\0<binary oid>`` repeated."""
    entries: list[TreeEntry] = []
    pos = 0
    while pos < len(data):
        space = data.index(b" ", pos)
        nul = data.index(b"\0", space)
        mode = data[pos:space].decode()
        name = data[space + 1 : nul].decode("utf-8", "surrogateescape")
        oid = data[nul + 1 : nul + 1 + oid_len].hex()
        entries.append(TreeEntry(mode, name, oid))
        pos = nul + 1 + oid_len
    return entries


def tree_object_id(entries: list[TreeEntry], oid_len: int) -> str:
    """The git id of a tree made of ``entries`` (already in git's order), as git would hash it."""
    body = b"".join(
        e.mode.encode()
        + b" "
        + e.name.encode("utf-8", "surrogateescape")
        + b"\0"
        + bytes.fromhex(e.oid)
        for e in entries
    )
    algo = hashlib.sha1 if oid_len == 20 else hashlib.sha256
    return algo(b"tree %d\0" % len(body) + body).hexdigest()

"""git, the kit's source of truth for content: blob and tree ids are already content hashes.

One long-lived ``git cat-file --batch`` serves every object read of a command, so that reading
trees and Dockerfiles at two revisions costs one process, not dozens.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pipeline_kit.adapters.process import CommandFailed, run, run_all
from pipeline_kit.errors import EnvironmentFault, InputError

TREE_MODE = "40000"
_HEX = re.compile(r"^[0-9a-f]{7,64}$")


@dataclass(frozen=True)
class TreeEntry:
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

    # -- object access through one cat-file process -------------------------------------

    def _cat_file(self) -> tuple[IO[bytes], IO[bytes]]:
        if self._batch is None:
            self._batch = subprocess.Popen(
                ["git", "cat-file", "--batch"],
                cwd=self.root,
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

    def close(self) -> None:
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
        """Paths that differ between two tree-ishes, renames as a delete plus an add."""
        args = ["diff-tree", "-r", "--no-renames", "--name-only", "-z", old, new]
        if path:
            args += ["--", path]
        return self._git(*args).decode("utf-8", "surrogateescape").split("\0")[:-1]

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
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

    def local_facts(self, rev: str) -> tuple[str | None, list[str], str | None, str | None]:
        """(branch, tags at ``rev``, default branch, origin URL), asked of git all at once."""
        branch, tags, default, url = run_all(
            [
                ["git", "symbolic-ref", "--quiet", "--short", "HEAD"],
                ["git", "tag", "--points-at", rev],
                ["git", "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD"],
                ["git", "remote", "get-url", "origin"],
            ],
            cwd=self.root,
        )

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

    def is_dirty(self) -> bool:
        out = self._git("status", "--porcelain", "-z", "--untracked-files=normal")
        return bool(out)

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

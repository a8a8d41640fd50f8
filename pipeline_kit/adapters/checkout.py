"""A checkout's files as anyone's pull request may shape them: read inside a root, and the
kit's own output files written never through a symlink.

A path is resolved component by component, the way BuildKit scopes a build context: a
symlink is followed while its target stays inside the root; one that leaves it (an absolute
target, or ``..`` above the root) is refused, naming the link. The same walk runs over the
files on disk and over a git tree: a ``Lookup`` says what one root-relative path is.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

from pipeline_kit.errors import InputError

MAX_LINKS = 40  # as many as Linux follows in one path walk


class Node(NamedTuple):
    kind: str  # "dir", "file", "symlink", "missing" or "other" (a fifo, socket, device)
    target: str = ""  # a symlink's target, as written


Lookup = Callable[[str], Node]  # a root-relative path whose parents are resolved -> its node


class LeavesRoot(InputError):
    """A path of the checkout resolves to a place outside the root it must stay in."""


def resolve(path: str, lookup: Lookup, *, root_name: str = "the checkout") -> str:
    """``path`` (relative to the root, cleaned) with every symlink on it followed.

    Returns the root-relative path it names ("" for the root), which need not exist.
    """
    pending = [part for part in reversed(path.split("/")) if part not in ("", ".")]
    done: list[str] = []
    followed: tuple[str, str] | None = None  # the last symlink followed, and its target
    links = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if not done:
                link, target = followed or (path, path)
                raise _leaves(link, target, root_name)
            done.pop()
            continue
        here = "/".join([*done, part])
        node = lookup(here)
        if node.kind == "symlink":
            links += 1
            if links > MAX_LINKS or node.target.startswith("/"):
                raise _leaves(here, node.target, root_name)
            followed = (here, node.target)
            pending += [p for p in reversed(node.target.split("/")) if p not in ("", ".")]
            continue
        done.append(part)
        if node.kind != "dir" and pending:
            # Nothing can be below a file or a missing path: what is left names nothing.
            return "/".join([*done, *(p for p in reversed(pending) if p != "..")])
    return "/".join(done)


def _leaves(link: str, target: str, root_name: str) -> LeavesRoot:
    return LeavesRoot(
        f"{link} is a symlink to {target}, which leaves {root_name}.",
        hint=f"Symlinks are followed only while they stay inside {root_name}: point it at a "
        "path inside, or put the file itself there.",
    )


def disk_lookup(root: Path) -> Lookup:
    """What each root-relative path is on disk (symlinks not followed)."""

    def lookup(rel: str) -> Node:
        try:
            info = os.lstat(root / rel)
        except (FileNotFoundError, NotADirectoryError):
            return Node("missing")
        if stat.S_ISLNK(info.st_mode):
            return Node("symlink", os.readlink(root / rel))
        if stat.S_ISDIR(info.st_mode):
            return Node("dir")
        return Node("file" if stat.S_ISREG(info.st_mode) else "other")

    return lookup


def on_disk(root: Path, rel: str, *, root_name: str | None = None) -> Path:
    """The file or directory ``rel`` names under ``root``, symlinks followed inside it."""
    name = root_name or f"{root}"
    return root / resolve(rel, disk_lookup(root), root_name=name) if rel else root


def inside(root: Path, path: Path, what: str) -> Path:
    """``path`` (absolute, or relative to the working directory) resolved inside ``root``.

    ``what`` names the input in errors (``"context"``, ``"--dockerfile Dockerfile"``).
    """
    real_root = root.resolve()
    absolute = Path(os.path.normpath(Path.cwd() / path))
    try:
        rel = absolute.relative_to(real_root)
    except ValueError:
        try:
            rel = absolute.relative_to(Path(os.path.normpath(root.absolute())))
        except ValueError:
            raise InputError(
                f"{what}: {path} is outside {real_root}.",
                hint="Keep the Dockerfile, the context and the files they name inside the "
                "repository.",
            ) from None
    try:
        return on_disk(real_root, rel.as_posix() if str(rel) != "." else "")
    except LeavesRoot as exc:
        raise LeavesRoot(f"{what}: {exc.message}", hint=exc.hint) from None


def repository_root(path: Path) -> Path | None:
    """The nearest directory above ``path`` holding ``.git`` (a directory, or a worktree file).

    Found from where ``path`` is written, not where a symlink there points.
    """
    for directory in Path(os.path.abspath(path)).parents:
        if (directory / ".git").exists():
            return directory
    return None


def read_text(root: Path, rel: str, what: str) -> str:
    """The text of the file ``rel`` under ``root``, read only when it resolves inside.

    The file must be a regular file: a fifo or a device would block or never end.
    """
    path = inside(root, root / rel, what)
    if not path.is_file():
        raise InputError(f"{what}: {rel} is not a regular file.")
    return path.read_text(encoding="utf-8", errors="replace")


def write_file(path: Path, data: str | bytes, *, root: Path | None = None) -> None:
    """Write ``path`` whole (a temporary file renamed over it), never through a symlink.

    A symlink at ``path``, or at any directory between ``root`` (default: the working
    directory) and ``path``, is refused: a checkout may hold one pointing anywhere.
    """
    import tempfile  # only where a file is written: it is slow to import

    target = _unlinked(path, root)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with _writing(path):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(raw)
            os.chmod(partial, 0o644 & ~_umask())
            os.replace(partial, target)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise


def append_file(path: Path, text: str, *, root: Path | None = None) -> None:
    """Append ``text`` to ``path`` (created when missing), never through a symlink."""
    target = _unlinked(path, root)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    with _writing(path):
        target.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(target, flags, 0o644), "a", encoding="utf-8") as handle:
            handle.write(text)


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    """An output that cannot be written (a file where a directory must be, no permission, a
    full disk) is an error naming the path, not a traceback."""
    try:
        yield
    except OSError as exc:
        raise InputError(
            f"{path}: cannot write it ({exc.strerror or exc}).",
            hint="Give a path in a directory the kit can write.",
        ) from None


def _unlinked(path: Path, root: Path | None) -> Path:
    """``path`` made absolute, once no symlink stands on it below ``root``."""
    base = Path(os.path.normpath((root or Path.cwd()).absolute()))
    target = Path(os.path.normpath(Path.cwd() / path))
    try:
        below = target.parent.relative_to(base).parts
    except ValueError:
        below = ()  # outside the checkout (a runner's temporary directory): as given
    walked = base
    for part in below:
        walked = walked / part
        if walked.is_symlink():
            raise _symlink_refused(path, walked)
    if target.is_symlink():
        raise _symlink_refused(path, target)
    return target


def _symlink_refused(path: Path, link: Path) -> InputError:
    return InputError(
        f"{path}: {link} is a symlink; the kit does not write through symlinks.",
        hint="Remove it or write the output to another path.",
    )


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current

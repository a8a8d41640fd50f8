"""Every process a command starts, recorded as it starts: secrets must reach no argv, and only
the processes meant to hold a credential may have it in their environment.

``traced`` runs a command under ``strace -f -e trace=execve`` (the kernel's record of each exec
of the command and of everything it starts, however short-lived), with full argument and
environment strings (``-v -s``), and parses the log into ``Exec`` records.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_EXECVE = re.compile(r"^(\d+)\s+execve\((.*)$")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "v": "\v", "f": "\f", '"': '"', "\\": "\\"}


@dataclass(frozen=True)
class Exec:
    pid: int
    path: str  # the file executed
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]  # (name, value), in order
    ok: bool  # the exec succeeded (a failed one is PATH lookup, but its argv still counts)

    @property
    def tool(self) -> str:
        return os.path.basename(self.path)

    def env_names_holding(self, secret: str) -> list[str]:
        return [name for name, value in self.env if secret in value]


class Traced:
    """A finished command and every exec strace saw."""

    def __init__(self, result: subprocess.CompletedProcess[str], execs: list[Exec]) -> None:
        self.result = result
        self.execs = execs

    def tools(self) -> list[str]:
        """The tools started successfully, first start first, each once."""
        return list(dict.fromkeys(e.tool for e in self.execs if e.ok))

    def argv_holding(self, secret: str) -> list[tuple[str, ...]]:
        return [e.argv for e in self.execs if any(secret in arg for arg in (e.path, *e.argv))]

    def env_holding(self, secret: str) -> dict[str, list[str]]:
        """tool -> the variable names that hold ``secret``, for every process that has it."""
        found: dict[str, list[str]] = {}
        for e in self.execs:
            names = e.env_names_holding(secret)
            if e.ok and names:
                found.setdefault(e.tool, [])
                found[e.tool] += [n for n in names if n not in found[e.tool]]
        return found


def _string(text: str, at: int) -> tuple[str, int]:
    """The C string strace printed at ``text[at] == '"'``; returns (value, index after it)."""
    assert text[at] == '"', text[at : at + 40]
    out: list[str] = []
    raw = bytearray()
    i = at + 1
    while text[i] != '"':
        if text[i] == "\\":
            nxt = text[i + 1]
            if nxt in _ESCAPES:
                raw += _ESCAPES[nxt].encode()
                i += 2
            elif nxt == "x":
                raw.append(int(text[i + 2 : i + 4], 16))
                i += 4
            else:  # octal, up to three digits
                j = i + 1
                while j < i + 4 and text[j] in "01234567":
                    j += 1
                raw.append(int(text[i + 1 : j], 8))
                i = j
        else:
            raw += text[i].encode()
            i += 1
    out.append(raw.decode("utf-8", "replace"))
    i += 1
    if text.startswith("...", i):  # cut at -s: never with the length traced() passes
        raise AssertionError(f"strace cut a string: {text[at : at + 80]}")
    return out[0], i


def _array(text: str, at: int) -> tuple[list[str], int]:
    assert text[at] == "[", text[at : at + 40]
    items: list[str] = []
    i = at + 1
    while text[i] != "]":
        if text[i] in ", ":
            i += 1
            continue
        if text.startswith("...", i):
            raise AssertionError("strace abbreviated an array (run it with -v)")
        value, i = _string(text, i)
        items.append(value)
    return items, i + 1


def parse_strace(lines: Iterable[str]) -> list[Exec]:
    """``Exec`` records from the log of ``strace -f -v -s N -e trace=execve``."""
    execs: list[Exec] = []
    for line in lines:
        match = _EXECVE.match(line)
        if match is None:
            continue
        pid, rest = int(match.group(1)), match.group(2)
        path, i = _string(rest, 0)
        assert rest.startswith(", ", i)
        argv, i = _array(rest, i + 2)
        assert rest.startswith(", ", i)
        env, i = _array(rest, i + 2)
        tail = rest[i:]
        ok = tail.startswith(") = 0") or "<unfinished" in tail
        pairs = tuple((item.partition("=")[0], item.partition("=")[2]) for item in env)
        execs.append(Exec(pid, path, tuple(argv), pairs, ok))
    return execs


def traced(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float = 300,
) -> Traced:
    """Run ``argv`` under strace; every exec of it and of its descendants is recorded."""
    with tempfile.TemporaryDirectory(prefix="pk-strace-") as tmp:
        log = Path(tmp) / "execve.log"
        result = subprocess.run(
            [
                "strace", "-f", "-qq", "-v", "-s", "1048576", "-e", "trace=execve",
                "-e", "signal=none", "-o", str(log), *argv,
            ],
            cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        execs = parse_strace(log.read_text(errors="replace").splitlines())
    return Traced(result, execs)


# Sampling /proc misses a process that lives less than ``every``. Still used where ``traced``
# cannot wait for the end: ``preview up`` leaves the container's monitor (conmon) running, and
# strace -f returns only when every process it traces has ended; act runs the kit in its own
# runner process tree. Prefer ``traced``.
@contextlib.contextmanager
def argv_seen(every: float = 0.02) -> Iterator[list[str]]:
    """The command lines of all processes, sampled every ``every`` seconds until the block ends."""
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                with contextlib.suppress(OSError):
                    seen.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            stop.wait(every)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield seen
    finally:
        stop.set()
        watcher.join()

"""The one subprocess wrapper: never ``shell=True``; failures show command, code and stderr."""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from pipeline_kit.errors import EnvironmentFault

_STDERR_TAIL = 2000
T = TypeVar("T")
# The kit's own registry password reaches a tool only through the 0600 credentials file the
# kit writes for it, never through the environment every child process inherits; so do the
# build secrets the reusable workflow hands over in one variable (build/secrets.py).
WITHHELD = frozenset({"PIPELINE_KIT_REGISTRY_PASSWORD", "PIPELINE_KIT_BUILD_SECRETS"})


def inherited() -> dict[str, str]:
    """The kit's environment as the tools it starts get it: without ``WITHHELD``."""
    return {name: value for name, value in os.environ.items() if name not in WITHHELD}


class CommandFailed(EnvironmentFault):
    """A command exited non-zero; callers that expect failure catch it and decide."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        tail = stderr.strip()[-_STDERR_TAIL:]
        super().__init__(
            f"`{shlex.join(self.argv)}` exited with {returncode}" + (f": {tail}" if tail else ".")
        )


class TimedOut(EnvironmentFault):
    """A command did not finish within its timeout; callers that can say more catch it."""

    def __init__(self, argv: Sequence[str], timeout: float) -> None:
        self.argv = list(argv)
        self.timeout = timeout
        super().__init__(
            f"`{shlex.join(self.argv)}` did not finish within {timeout:g} s.",
            hint="Check that the service it talks to is up.",
        )


def _not_installed(argv: Sequence[str], exc: OSError) -> EnvironmentFault:
    return EnvironmentFault(
        f"`{argv[0]}` is not installed or not on PATH.",
        hint=f"Install it and run again ({exc.strerror}).",
    )


def _spawn(
    argv: Sequence[str], *, env: Mapping[str, str], cwd: Path | str | None = None
) -> subprocess.Popen[bytes]:
    """A process whose merged output is read line by line (``stream``, ``background``)."""
    try:
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    except FileNotFoundError as exc:
        raise _not_installed(argv, exc) from None


def run(
    argv: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    check: bool = True,
    timeout: float | None = None,
    clean_env: bool = False,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` and capture its output as bytes.

    ``env`` adds to (not replaces) the current environment, unless ``clean_env``: then it is
    all the command gets. A missing executable, or one that does not finish within
    ``timeout`` seconds, is an infrastructure error that names the tool.
    """
    full_env = {} if clean_env else inherited()
    full_env.update(env or {})
    try:
        proc = subprocess.run(
            list(argv),
            cwd=cwd,
            env=full_env,
            input=input,
            capture_output=True,
            check=False,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        assert timeout is not None
        raise TimedOut(argv, timeout) from None
    except FileNotFoundError as exc:
        raise _not_installed(argv, exc) from None
    if check and proc.returncode != 0:
        raise CommandFailed(argv, proc.returncode, proc.stderr.decode(errors="replace"))
    return proc


def run_all(
    commands: Sequence[Sequence[str]], *, cwd: Path | str | None = None
) -> list[subprocess.CompletedProcess[bytes]]:
    """Run independent commands at once and wait for all (``check=False``: callers decide)."""
    return start_all(commands, cwd=cwd)()


def start_all(
    commands: Sequence[Sequence[str]], *, cwd: Path | str | None = None
) -> Callable[[], list[subprocess.CompletedProcess[bytes]]]:
    """Start independent commands now; the function returned waits for them all.

    For answers needed later: the commands run while the caller does other work.
    """
    started = []
    for argv in commands:
        try:
            started.append(
                subprocess.Popen(
                    list(argv),
                    cwd=cwd,
                    env=inherited(),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            )
        except FileNotFoundError as exc:
            for proc in started:
                proc.kill()
                proc.wait()
            raise _not_installed(argv, exc) from None

    def finish() -> list[subprocess.CompletedProcess[bytes]]:
        results = []
        for argv, proc in zip(commands, started, strict=True):
            out, err = proc.communicate()
            results.append(subprocess.CompletedProcess(list(argv), proc.returncode, out, err))
        return results

    return finish


def stream(
    argv: Sequence[str],
    *,
    on_line: Callable[[str], None],
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    replace_env: bool = False,
) -> tuple[int, str]:
    """Run ``argv``, passing each line of its merged output to ``on_line`` as it comes.

    Returns the exit code and the last lines (for the error message). ``env`` adds to the
    current environment unless ``replace_env`` is set (builders that must not inherit it).
    """
    full_env = dict(env or {}) if replace_env else {**inherited(), **(env or {})}
    tail: collections.deque[str] = collections.deque(maxlen=40)
    proc = _spawn(argv, cwd=cwd, env=full_env)
    assert proc.stdout is not None
    try:
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            tail.append(line)
            on_line(line)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc.wait(), "\n".join(tail)


@contextlib.contextmanager
def background(
    argv: Sequence[str],
    *,
    ready: Callable[[str], T | None],
    timeout: float,
    env: Mapping[str, str] | None = None,
) -> Iterator[T]:
    """Run ``argv`` while the block runs (a port-forward, say).

    Its output lines go to ``ready`` until it returns a value, which is yielded; a process that
    exits first, or says nothing ready within ``timeout`` seconds, is an infrastructure error
    showing its last lines. The process is stopped when the block ends.
    """
    proc = _spawn(argv, env={**inherited(), **(env or {})})
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:  # keeps reading, so a chatty process never blocks on a full pipe
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    tail: collections.deque[str] = collections.deque(maxlen=20)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                why = "\n".join([*tail, f"not ready in {timeout:g}s"])
                raise CommandFailed(argv, -1, why) from None
            if line is None:
                raise CommandFailed(argv, proc.wait(), "\n".join(tail))
            tail.append(line)
            value = ready(line)
            if value is not None:
                break
        yield value
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

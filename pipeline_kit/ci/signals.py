"""SIGTERM and SIGINT as exceptions, so ``finally`` blocks run when a CI job is cancelled.

GitLab and GitHub cancel a job with SIGTERM or SIGINT (then SIGKILL a few seconds later); the
default SIGTERM action ends Python without running a single ``finally``. ``cancellable`` turns
both into ``Interrupted``; ``shielded`` holds them back while a teardown runs, and raises once
it is done.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from pipeline_kit.errors import ExitCode, KitError

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(KitError):
    exit_code = ExitCode.INTERRUPTED

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}.")


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def cancellable() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise ``Interrupted`` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def shielded() -> Iterator[list[int]]:
    """Within the block, SIGTERM and SIGINT are recorded, not acted on: a teardown finishes.

    Yields the list of signals that arrived; the caller decides what they mean afterwards.
    """
    arrived: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield arrived
        return

    def record(signum: int, frame: FrameType | None) -> None:
        arrived.append(signum)

    previous = {sig: signal.signal(sig, record) for sig in SIGNALS}
    try:
        yield arrived
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

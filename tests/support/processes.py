"""Every process command line on the machine while a block runs: secrets must appear in none."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path


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

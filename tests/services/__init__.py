"""Real servers the tests run on loopback: a registry, a token endpoint, a fault proxy, an HTTP(S)
origin and a forward proxy, buildkitd, the Kaniko sandbox, a deploy tool and a kubectl stand-in."""

from __future__ import annotations

import subprocess


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """Ask ``process`` to end, and kill it when it has not within ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()

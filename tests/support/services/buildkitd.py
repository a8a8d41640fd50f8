"""A real BuildKit daemon (moby/buildkit's buildkitd) on a private socket, for the test session.

Overlayfs snapshotter, runc, host network; its state, socket and OTEL socket all under a temp
dir, so daemons of parallel sessions do not meet. Ready when ``buildctl debug workers``
answers. The kit's BuildKit builder reaches it as users' CI does: ``BUILDKIT_HOST`` and
``buildctl`` on ``PATH``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.services import stop_process

READY_TIMEOUT_S = 60.0


@dataclass
class BuildkitDaemon:
    bin_dir: Path  # holds buildkitd and buildctl
    root: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"unix://{self.root / 'buildkitd.sock'}"

    @property
    def log_path(self) -> Path:
        return self.root.parent / "buildkitd.log"

    @property
    def env(self) -> dict[str, str]:
        """What a CI job that talks to this daemon has in its environment."""
        return {
            "BUILDKIT_HOST": self.address,
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def buildctl(self, *args: str) -> str:
        proc = subprocess.run(
            [str(self.bin_dir / "buildctl"), "--addr", self.address, *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if proc.returncode != 0:
            raise AssertionError(f"buildctl {' '.join(args)} failed: {proc.stderr[-2000:]}")
        return proc.stdout

    def build_count(self) -> int:
        """How many builds the daemon has run (its own build history)."""
        lines = self.buildctl("debug", "histories").splitlines()
        return sum(1 for line in lines[1:] if line.strip())

    def forget_local_cache(self) -> None:
        """Drop the daemon's local cache: the next build has only the registry cache."""
        self.buildctl("prune", "--all")

    def start(self) -> BuildkitDaemon:
        runc = shutil.which("runc")
        if runc is None:
            raise RuntimeError("runc is not installed; run scripts/system-packages")
        self.root.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                str(self.bin_dir / "buildkitd"),
                "--root",
                str(self.root),
                "--addr",
                self.address,
                "--otel-socket-path",
                str(self.root / "otel-grpc.sock"),
                "--oci-worker-snapshotter",
                "overlayfs",
                "--oci-worker-net",
                "host",
                "--oci-worker-binary",
                runc,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        delay = 0.05
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"buildkitd exited with {self.process.returncode}:\n"
                    + self.log_path.read_text(errors="replace")[-2000:]
                )
            probe = subprocess.run(
                [str(self.bin_dir / "buildctl"), "--addr", self.address, "debug", "workers"],
                capture_output=True,
                timeout=30,
            )
            if probe.returncode == 0:
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"buildkitd did not answer on {self.address} in time")
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def stop(self) -> None:
        stop_process(self.process, timeout=30)
        self.process = None

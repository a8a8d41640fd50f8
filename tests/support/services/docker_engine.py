"""A real Docker Engine (Debian's ``docker.io``: dockerd, containerd, runc) for the test session.

Everything under one temp dir: data root, exec root, pid file and the API socket, so it meets
no other daemon on the machine. No network plumbing (``--bridge=none``, no iptables): containers
run with ``--network host`` to reach the loopback registry. Nothing can be pulled from outside:
images come from the loopback registry or ``docker load``/``docker import``. Ready when
``GET /_ping`` answers on the socket; the client is Debian's ``/usr/bin/docker``, named by path
(another ``docker`` may come first on ``PATH``).
"""

from __future__ import annotations

import http.client
import io
import os
import re
import shutil
import socket
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.services import stop_process

DOCKERD = Path("/usr/sbin/dockerd")
DOCKER = Path("/usr/bin/docker")
READY_TIMEOUT_S = 60.0


class EngineUnavailable(RuntimeError):
    """dockerd is not installed, or did not come up: the message says why."""


def shared_libraries(binary: Path) -> list[Path]:
    """The shared libraries ``binary`` loads here (ldd's paths, the loader's too)."""
    listed = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True)
    found = re.findall(r"(/\S+) \(0x", listed.stdout)
    return [Path(path) for path in found]


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self.path))


@dataclass
class DockerEngine:
    workdir: Path  # holds root/, exec/, docker.sock, dockerd.pid and dockerd.log
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def socket(self) -> Path:
        return self.workdir / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "dockerd.log"

    @property
    def env(self) -> dict[str, str]:
        """What a tool that drives this engine needs: its socket, and Debian's client first on
        ``PATH`` (gitlab-ci-local and act call ``docker``); no client config from this user."""
        path = os.environ.get("PATH", "")
        return {
            "DOCKER_HOST": self.host,
            "DOCKER_CONFIG": str(self.workdir / "client-config"),
            "PATH": f"{DOCKER.parent}{os.pathsep}{path}",
        }

    def docker(
        self, *args: str, input: bytes | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """``docker ARGS`` against this engine; raises with its stderr when it fails."""
        proc = subprocess.run(
            [str(DOCKER), *args],
            input=input,
            capture_output=True,
            env={**os.environ, **self.env},
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            stderr = proc.stderr.decode(errors="replace")
            raise AssertionError(f"docker {' '.join(args)} failed: {stderr[-2000:]}")
        return subprocess.CompletedProcess(
            proc.args, 0, proc.stdout.decode(errors="replace"), proc.stderr.decode()
        )

    def pull_as(self, reference: str, *names: str) -> str:
        """Pull ``reference`` (from the loopback registry) and tag it ``names``; its image id."""
        self.docker("pull", "--quiet", reference)
        for name in names:
            self.docker("tag", reference, name)
        return self.docker("image", "inspect", "--format", "{{.Id}}", reference).stdout.strip()

    def import_busybox(self, name: str, *binaries: Path) -> None:
        """A busybox image (busybox-static and its applets in /bin), made offline, with this
        machine's ``binaries`` (a Debian bookworm's, like their libraries) and the shared
        libraries they load at their own paths."""
        files = {Path("/bin/busybox"): Path("/usr/bin/busybox")}
        for binary in binaries:
            files[Path("/bin") / binary.name] = binary
            files.update((library, library) for library in shared_libraries(binary))
        applets = subprocess.run(
            ["/usr/bin/busybox", "--list"], capture_output=True, text=True, check=True
        ).stdout.split()
        layer = io.BytesIO()
        with tarfile.open(fileobj=layer, mode="w") as tar:
            directories = {"bin", "tmp"} | {
                str(parent).lstrip("/") for path in files for parent in path.parents
            }
            for directory in sorted(directories - {"", "."}):
                entry = tarfile.TarInfo(directory)
                entry.type, entry.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
                tar.addfile(entry)
            for target, source in files.items():
                data = source.read_bytes()
                entry = tarfile.TarInfo(str(target).lstrip("/"))
                entry.size, entry.mode = len(data), 0o755
                tar.addfile(entry, io.BytesIO(data))
            for applet in set(applets) - {path.name for path in files}:
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
        change = "ENV PATH=/bin"
        self.docker("import", "--change", change, "-", name, input=layer.getvalue())

    def ping(self, timeout: float = 5.0) -> bool:
        connection = _UnixConnection(self.socket, timeout)
        try:
            connection.request("GET", "/_ping")
            answer = connection.getresponse()
            return answer.status == 200 and answer.read() == b"OK"
        except OSError:
            return False
        finally:
            connection.close()

    def start(self) -> DockerEngine:
        if not DOCKERD.is_file() or not DOCKER.is_file():
            raise EngineUnavailable(
                f"{DOCKERD} or {DOCKER} is missing: scripts/system-packages installs docker.io"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "client-config").mkdir(exist_ok=True)
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                str(DOCKERD),
                "--data-root", str(self.workdir / "root"),
                "--exec-root", str(self.workdir / "exec"),
                "--pidfile", str(self.workdir / "dockerd.pid"),
                "--host", self.host,
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--storage-driver", "overlay2",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group: a terminal's ^C reaches pytest, which stops it in order.
            start_new_session=True,
        )  # fmt: skip
        log.close()
        self._wait_ready()
        return self

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        delay = 0.05
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                code = self.process.returncode
                self.stop()
                raise EngineUnavailable(f"dockerd exited with {code}; its log:\n{self._log_tail()}")
            if self.socket.exists() and self.ping():
                return
            if time.monotonic() > deadline:
                tail = self._log_tail()
                self.stop()
                raise EngineUnavailable(
                    f"dockerd did not answer on {self.host} in {READY_TIMEOUT_S:.0f}s; "
                    f"its log:\n{tail}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def stop(self) -> None:
        """Stop the daemon (containerd and the shims go with it), then remove its files."""
        stop_process(self.process, timeout=30)
        self.process = None
        netns = self.workdir / "exec" / "netns" / "default"
        if os.path.ismount(netns):
            subprocess.run(["umount", str(netns)], capture_output=True, check=False)
        # Whatever the daemon left mounted under its root (a container killed mid-run).
        mounted = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        inside = [path for path in mounted if path.startswith(f"{self.workdir}/")]
        for mount in sorted(inside, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)

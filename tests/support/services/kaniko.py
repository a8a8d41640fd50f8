"""The real Kaniko executor, run the way its image runs it, and only that way.

Kaniko treats the root it runs in as the image it builds: it unpacks base images over ``/`` and
deletes ``/`` between stages. This machine has a ``/.dockerenv``, so an executor started here
would believe it is in a container and destroy the machine. ``KanikoSandbox`` is therefore the
only thing in the tests that starts it, itself or through the kit in the builder image
(``ImageRoot``, below), and always in a root like this:

- a throwaway root per run holding ``/kaniko/executor`` (a copy of the shipped, non-executable
  file, made executable there), the CA bundle in ``/kaniko/ssl/certs``, an empty ``/.dockerenv``,
  ``/etc/{hosts,resolv.conf,nsswitch.conf}``, and the build context (a copy: Kaniko runs as root
  and writes into it) bind-mounted at ``/workspace``;
- ``unshare --mount --propagation private``, the mounts, then ``chroot ROOT /kaniko/executor``
  with exactly the official image's environment (osscontainertools/kaniko ``deploy/Dockerfile``;
  its ``WORKDIR /workspace`` aside: chroot starts in ``/``, and the kit passes absolute paths);
- ``--force`` is refused, and so is any executor path that is not the root's own copy;
- ``/dev`` in the root is a private tmpfs with a few device nodes bind-mounted one by one, not a
  bind of the host's ``/dev``, so nothing Kaniko deletes there can reach the host;
- the root is removed only after checking that no mount is left under it;
- the sandbox refuses to exist while the host has ``/kaniko/executor`` (the kit's own Kaniko
  builder would then run it outside any root) or an ``executor`` on PATH (a tool that looks
  for one might).

``KanikoSandbox.run`` starts the executor with a test's own arguments (``--help``, a made-up
flag) in such a root, through the same ``ThrowawayRoot.run`` as a build's executor.

``ImageRoot`` is that root for the builder image (images/kaniko): it holds only the image's
``/kaniko`` (what Kaniko never deletes; the executor in it), plus what a container runtime
provides (``/.dockerenv``, ``/etc/hosts``, ``/etc/resolv.conf``, ``/proc``, ``/dev``) and the
workspace, in which the sandbox starts the kit's own launcher, ``/kaniko/pipeline-kit/bin/
pipeline-kit``. The kit then starts the executor itself, as in a Kaniko job: as its child, so
inside the same chroot and private mount namespace. The sandbox takes such a root only when its
``/kaniko/executor`` is byte for byte the executor the sandbox was given, refuses ``--force`` in
the kit's arguments, and starts nothing but the launcher (the kit never passes ``--force``).

``SandboxedKaniko`` is the kit's own ``KanikoBuilder`` with one change: the executor process is
started through the sandbox. Everything else (its argv, its private files under ``/kaniko``, the
docker config, reading the digest) is the kit's code, so a build through ``commands.build.run``
with this builder in ``BUILDERS`` is the kit's Kaniko plan executed for real. The kit's working
directory is mirrored into the root at the same path, as if the kit ran in the same container,
so files the kit keeps outside ``/kaniko`` meet the same fate as in a Kaniko job.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipeline_kit.build.builders.base import BuildOutput, BuildRequest, LineSink
from pipeline_kit.build.builders.kaniko import KANIKO_EXECUTOR, KanikoBuilder

# The kaniko-executor stage of osscontainertools/kaniko's deploy/Dockerfile (v1.28.x).
IMAGE_ENV = {
    "HOME": "/root",
    "USER": "root",
    "PATH": "/usr/local/bin:/kaniko",
    "SSL_CERT_DIR": "/kaniko/ssl/certs",
    "DOCKER_CONFIG": "/kaniko/.docker/",
    "DOCKER_CREDENTIAL_GCR_CONFIG": "/kaniko/.config/gcloud/docker_credential_gcr_config.json",
}
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
RUN_TIMEOUT_S = 300.0

KIT_LAUNCHER = "/kaniko/pipeline-kit/bin/pipeline-kit"

# Runs inside the new mount namespace: mounts that vanish with it, then the command that enters
# the root (chroot or ``unshare --root``; see ``ThrowawayRoot.run`` and ``ImageRoot.run_kit``).
_NAMESPACE_SCRIPT = r"""
set -eu
root=$1 context=$2 mount=$3
shift 3
if [ "$root" = / ] || [ ! -f "$root/.dockerenv" ] || [ ! -x "$root/kaniko/executor" ]; then
  echo "kaniko sandbox: $root is not a throwaway root" >&2
  exit 97
fi
"$mount" --bind "$context" "$root/workspace"
"$mount" -t proc proc "$root/proc"
"$mount" -t tmpfs -o mode=0755,size=16m tmpfs "$root/dev"
for node in DEVICES; do
  : > "$root/dev/$node"
  "$mount" --bind "/dev/$node" "$root/dev/$node"
done
exec "$@"
""".replace("DEVICES", " ".join(DEVICES))


class SandboxRefused(RuntimeError):
    """The harness will not start the executor this way."""


@dataclass
class ExecutorRun:
    """One executor run as it happened inside the root: argv and environment, exit code, log."""

    argv: list[str]
    env: dict[str, str]
    returncode: int
    log: list[str]

    @property
    def text(self) -> str:
        return "\n".join(self.log)


@dataclass
class ThrowawayRoot:
    """A root directory for one executor run, with the build context beside it."""

    path: Path
    context: Path
    sandbox: KanikoSandbox
    mirrored: list[Path] = field(default_factory=list)

    @property
    def executor(self) -> Path:
        return self.path / "kaniko" / "executor"

    def inside(self, value: str) -> str:
        """``value`` with host paths under the root written as the executor sees them."""
        return value.replace(f"{self.path}/", "/")

    def mirror(self, directory: Path) -> None:
        """Put a copy of ``directory`` at the same path inside the root (copied back after)."""
        target = self.path / directory.relative_to("/")
        shutil.copytree(directory, target, symlinks=True, dirs_exist_ok=True)
        self.mirrored.append(directory)

    def run(self, argv: list[str], env: dict[str, str], log: LineSink) -> ExecutorRun:
        if self.path not in self.sandbox.live_roots:
            raise SandboxRefused(f"{self.path} is not a root this sandbox made and still holds")
        if not argv or argv[0] != str(self.executor):
            raise SandboxRefused(f"only the root's own executor runs here, not {argv[:1]}")
        if any(arg == "--force" or arg.startswith("--force=") for arg in argv):
            raise SandboxRefused("--force would let Kaniko run outside a container")
        args = [self.inside(arg) for arg in argv[1:]]
        inner_env = {**IMAGE_ENV, **{k: self.inside(v) for k, v in env.items()}}
        enter = [self.sandbox.chroot, str(self.path), "/kaniko/executor", *args]
        command = self.sandbox.in_namespace(self.path, self.context, enter)
        returncode, lines = _run_with_deadline(command, inner_env, log, RUN_TIMEOUT_S)
        for directory in self.mirrored:  # what the executor left in the kit's own directories
            copy = self.path / directory.relative_to("/")
            if copy.is_dir():
                shutil.copytree(copy, directory, symlinks=True, dirs_exist_ok=True)
        record = ExecutorRun(["/kaniko/executor", *args], inner_env, returncode, lines)
        self.sandbox.runs.append(record)
        return record


class KanikoSandbox:
    """Makes throwaway roots and runs the executor copy in them; keeps a record of every run."""

    def __init__(self, executor: Path, workdir: Path) -> None:
        if KANIKO_EXECUTOR.exists() or shutil.which("executor"):
            raise SandboxRefused(
                f"{KANIKO_EXECUTOR} or an `executor` on PATH exists on this machine: it could "
                "be run outside any root. Remove it."
            )
        if not executor.is_file():
            raise SandboxRefused(f"KANIKO_EXECUTOR={executor} is not a file")
        self.source = executor
        self.workdir = workdir
        self.runs: list[ExecutorRun] = []
        self.live_roots: set[Path] = set()  # the roots made by ``root()`` and not yet removed
        self.unshare = _tool("unshare")
        self.mount = _tool("mount")
        self.chroot = _tool("chroot")

    @contextlib.contextmanager
    def root(self, context: Path) -> Iterator[ThrowawayRoot]:
        base = Path(tempfile.mkdtemp(prefix="root-", dir=self.workdir))
        try:
            path = base / "root"
            for sub in ("kaniko/ssl/certs", "kaniko/.docker", "etc", "workspace", "proc", "dev"):
                (path / sub).mkdir(parents=True)
            (path / "tmp").mkdir(mode=0o1777)
            shutil.copyfile(self.source, path / "kaniko" / "executor")
            (path / "kaniko" / "executor").chmod(0o755)
            shutil.copyfile(CA_BUNDLE, path / "kaniko" / "ssl" / "certs" / CA_BUNDLE.name)
            (path / ".dockerenv").touch()
            for name in ("hosts", "resolv.conf"):
                if Path("/etc", name).is_file():
                    shutil.copyfile(Path("/etc", name), path / "etc" / name)
            (path / "etc" / "nsswitch.conf").write_text("hosts: files dns\n")
            copy = base / "context"
            shutil.copytree(context, copy, symlinks=True)
            self.live_roots.add(path)
            yield ThrowawayRoot(path, copy, self)
        finally:
            self.live_roots.discard(base / "root")
            _remove_root(base)

    def run(self, args: list[str]) -> ExecutorRun:
        """The executor started with ``args`` alone (``["--help"]``, say) in a throwaway root
        with an empty workspace: the same root, namespace, mounts, chroot, environment and
        refusals (``--force``) as a build's run. Its output, stdout and stderr, is the log."""
        empty = Path(tempfile.mkdtemp(prefix="empty-workspace-", dir=self.workdir))
        try:
            with self.root(empty) as root:
                return root.run([str(root.executor), *args], {}, lambda line: None)
        finally:
            empty.rmdir()

    @contextlib.contextmanager
    def image_root(self, kaniko_dir: Path, workspace: Path) -> Iterator[ImageRoot]:
        """A root holding a copy of an image's ``/kaniko`` (``kaniko_dir``) and nothing else of
        the image, with a copy of ``workspace`` mounted at ``/workspace``."""
        base = Path(tempfile.mkdtemp(prefix="image-root-", dir=self.workdir))
        try:
            path = base / "root"
            path.mkdir()
            shutil.copytree(kaniko_dir, path / "kaniko", symlinks=True)
            executor = path / "kaniko" / "executor"
            if not executor.is_file() or _sha256(executor) != _sha256(self.source):
                raise SandboxRefused(
                    f"{kaniko_dir}/executor is not the executor this sandbox runs ({self.source})"
                )
            executor.chmod(0o755)
            # What a container runtime provides; no /tmp: the Kaniko image has none.
            for sub in ("etc", "workspace", "proc", "dev"):
                (path / sub).mkdir()
            (path / ".dockerenv").touch()
            for name in ("hosts", "resolv.conf"):
                if Path("/etc", name).is_file():
                    shutil.copyfile(Path("/etc", name), path / "etc" / name)
            copy = base / "workspace"
            shutil.copytree(workspace, copy, symlinks=True)
            self.live_roots.add(path)
            yield ImageRoot(path, copy, self)
        finally:
            self.live_roots.discard(base / "root")
            _remove_root(base)

    def in_namespace(self, root: Path, workspace: Path, enter: list[str]) -> list[str]:
        """The command that mounts ``workspace``, ``/proc`` and ``/dev`` in ``root`` inside a
        private mount namespace, then runs ``enter`` (which enters the root)."""
        script = [_NAMESPACE_SCRIPT, "kaniko-sandbox", str(root), str(workspace), self.mount]
        return [
            self.unshare,
            "--mount",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
            *script,
            *enter,
        ]

    def builder(self, *, files_under_kaniko: bool = True) -> SandboxedKaniko:
        return SandboxedKaniko(self, files_under_kaniko=files_under_kaniko)


@dataclass
class KitRun:
    """The kit's launcher run inside an ``ImageRoot``: its argv, exit code and output."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


@dataclass
class ImageRoot:
    """A root made of an image's ``/kaniko``, where the kit runs as in a Kaniko job of that image:
    working directory ``/workspace`` (``workspace`` here, a copy), the environment given."""

    path: Path
    workspace: Path
    sandbox: KanikoSandbox

    def run_kit(self, args: list[str], env: dict[str, str]) -> KitRun:
        if self.path not in self.sandbox.live_roots:
            raise SandboxRefused(f"{self.path} is not a root this sandbox made and still holds")
        if any(arg == "--force" or arg.startswith("--force=") for arg in args):
            raise SandboxRefused("--force would let Kaniko run outside a container")
        enter = [self.sandbox.unshare, f"--root={self.path}", "--wd=/workspace", KIT_LAUNCHER]
        command = self.sandbox.in_namespace(self.path, self.workspace, [*enter, *args])
        proc = subprocess.Popen(
            command,
            env=env,  # the kit's whole environment, as the image and the job give it
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            err += f"\nkaniko sandbox: killed after {RUN_TIMEOUT_S:.0f} s".encode()
        decoded = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        return KitRun([KIT_LAUNCHER, *args], proc.returncode, *decoded)


class SandboxedKaniko(KanikoBuilder):
    """The kit's Kaniko builder whose executor runs in a throwaway root (see the module doc).

    ``files_under_kaniko=False`` gives the kit no ``/kaniko`` to keep its files in, as if it
    ran where ``/kaniko`` is missing: they stay in its working directory.
    """

    def __init__(self, sandbox: KanikoSandbox, *, files_under_kaniko: bool = True) -> None:
        super().__init__()
        self.sandbox = sandbox
        self.files_under_kaniko = files_under_kaniko
        self._root: ThrowawayRoot | None = None

    def available(self) -> bool:
        return True

    def executor(self) -> str:
        assert self._root is not None, "the executor exists only inside a root"
        return str(self._root.executor)

    def build(
        self, request: BuildRequest, workdir: Path, docker_config: Path | None, log: LineSink
    ) -> BuildOutput:
        try:
            dockerfile = request.dockerfile.relative_to(request.context)
        except ValueError:
            raise SandboxRefused("the Dockerfile must be inside the build context") from None
        inside = dataclasses.replace(
            request, context=Path("/workspace"), dockerfile=Path("/workspace") / dockerfile
        )
        with self.sandbox.root(request.context) as root:
            self._root = root
            self.home = root.path / ("kaniko" if self.files_under_kaniko else "no-kaniko-dir")
            root.mirror(workdir)
            try:
                return super().build(inside, workdir, docker_config, log)
            finally:
                self._root = None

    def run_executor(self, argv: list[str], env: dict[str, str], log: LineSink) -> tuple[int, str]:
        assert self._root is not None
        run = self._root.run(argv, env, log)
        return run.returncode, "\n".join(run.log[-40:])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if path is None:
        raise SandboxRefused(f"`{name}` is not installed (util-linux / coreutils)")
    return path


def _run_with_deadline(
    command: list[str], env: dict[str, str], log: Callable[[str], None], timeout: float
) -> tuple[int, list[str]]:
    proc = subprocess.Popen(
        command,
        env=env,  # the executor's whole environment: the script calls tools by full path
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lines: collections.deque[str] = collections.deque(maxlen=5000)

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line)
            log(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        returncode = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        returncode = proc.wait()
        lines.append(f"kaniko sandbox: killed after {timeout:.0f} s")
    reader.join(timeout=10)
    return returncode, list(lines)


def _mounts_under(path: Path) -> list[str]:
    prefix = f"{path}/"
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4].replace("\\040", " ")
        if mount_point == str(path) or mount_point.startswith(prefix):
            found.append(mount_point)
    return found


def _remove_root(base: Path) -> None:
    """Unmount what is left under ``base`` (nothing, when the namespace did its job), remove it."""
    for mount_point in sorted(_mounts_under(base), reverse=True):
        subprocess.run(["umount", "--lazy", mount_point], check=False)
    left = _mounts_under(base)
    if left:
        # Removing files under a live bind mount would remove them on the host.
        raise SandboxRefused(f"mounts left under {base}, not removing it: {left}")
    shutil.rmtree(base, ignore_errors=True)

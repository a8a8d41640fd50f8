"""Whether this machine runs another architecture's programs, found out by running one.

A ``RUN`` step of another architecture's image runs only where the kernel hands that
architecture's programs to an emulator (binfmt_misc with qemu-user, as Debian's
qemu-user-static or ``tonistiigi/binfmt`` register it). ``/proc/sys/fs/binfmt_misc`` is often
not mounted inside a CI job's container even where the host's registration serves it, so, as
BuildKit does, the kit executes a program of a few instructions built for that architecture,
which only exits 0: the kernel refusing it (``ENOEXEC``) is the answer no.
"""

from __future__ import annotations

import errno
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline_kit.adapters.process import TimedOut, run

PROBE_TIMEOUT_S = 10
_BASE = 0x400000  # where the program is loaded


@dataclass(frozen=True)
class _Arch:
    machine: int  # the ELF header's e_machine
    bits: int
    big_endian: bool
    code: Callable[[int], bytes]  # exit(status) through the architecture's system call
    flags: int = 0


def _words(*words: int) -> bytes:
    return struct.pack(f"<{len(words)}I", *words)


_ARCHES = {
    # mov edi,status; mov eax,60 (exit); syscall
    "amd64": _Arch(
        62, 64, False, lambda n: b"\xbf" + struct.pack("<I", n) + bytes.fromhex("b83c000000 0f05")
    ),
    # mov ebx,status; mov eax,1 (exit); int 0x80
    "386": _Arch(
        3, 32, False, lambda n: b"\xbb" + struct.pack("<I", n) + bytes.fromhex("b801000000 cd80")
    ),
    # movz x0,#status; movz x8,#93 (exit); svc #0
    "arm64": _Arch(183, 64, False, lambda n: _words(0xD2800000 | n << 5, 0xD2800BA8, 0xD4000001)),
    # mov r0,#status; mov r7,#1 (exit); svc #0 (EABI version 5 in the header's flags)
    "arm": _Arch(
        40, 32, False, lambda n: _words(0xE3A00000 | n, 0xE3A07001, 0xEF000000), 0x05000000
    ),
    # li a0,status; li a7,93 (exit); ecall
    "riscv64": _Arch(243, 64, False, lambda n: _words(n << 20 | 0x513, 0x05D00893, 0x73)),
    # li r0,1 (exit); li r3,status; sc (ELFv2 ABI in the header's flags)
    "ppc64le": _Arch(21, 64, False, lambda n: _words(0x38000001, 0x38600000 | n, 0x44000002), 2),
    # lghi r2,status; svc 1 (exit)
    "s390x": _Arch(22, 64, True, lambda n: b"\xa7\x29" + struct.pack(">H", n) + b"\x0a\x01"),
}


def probe_program(arch: str, status: int = 0) -> bytes | None:
    """A static ELF executable for ``arch`` (a Go/OCI architecture name) that exits with
    ``status`` (0 to 127), or None for an architecture the kit has no program for."""
    spec = _ARCHES.get(arch)
    if spec is None:
        return None
    assert 0 <= status < 128, status
    code = spec.code(status)
    order = ">" if spec.big_endian else "<"
    wide = spec.bits == 64
    header_size, entry_size = (64, 56) if wide else (52, 32)
    entry = _BASE + header_size + entry_size
    size = header_size + entry_size + len(code)
    ident = b"\x7fELF" + bytes([2 if wide else 1, 2 if spec.big_endian else 1, 1]) + bytes(9)
    address = "Q" if wide else "I"
    header = ident + struct.pack(
        f"{order}HHI{address}{address}{address}IHHHHHH",
        2, spec.machine, 1, entry, header_size, 0, spec.flags,
        header_size, entry_size, 1, 0, 0, 0,
    )  # fmt: skip
    if wide:  # p_type, p_flags (R+X), p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align
        segment = struct.pack(f"{order}IIQQQQQQ", 1, 5, 0, _BASE, _BASE, size, size, 0x1000)
    else:  # p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags, p_align
        segment = struct.pack(f"{order}IIIIIIII", 1, 0, _BASE, _BASE, size, size, 5, 0x1000)
    return header + segment + code


def runs_programs_of(arch: str) -> bool | None:
    """True when this machine runs Linux programs of ``arch`` (a Go/OCI architecture name),
    False when its kernel refuses them, None when that cannot be told (an architecture
    without a probe, a temporary directory mounted noexec): the build is then left to find
    out."""
    program = probe_program(arch)
    if program is None:
        return None
    with tempfile.TemporaryDirectory(prefix="pipeline-kit-probe-") as tmp:
        path = Path(tmp) / f"exit-{arch}"
        path.write_bytes(program)
        path.chmod(0o700)
        try:
            done = run([str(path)], check=False, timeout=PROBE_TIMEOUT_S, clean_env=True)
        except OSError as exc:
            return False if exc.errno == errno.ENOEXEC else None
        except TimedOut:
            return None
    return done.returncode == 0

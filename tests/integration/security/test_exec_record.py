"""The exec record the secret checks rely on (tests/support/processes.py), against real strace:
every process however short-lived, its exact argv and environment."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.support.processes import traced

AWKWARD = 'a "quoted" \\ back\nnew line\ttab é ünï'


def test_every_exec_is_recorded_with_its_exact_argv_and_environment(tmp_path: Path) -> None:
    script = (
        "import subprocess, sys\n"
        "for _ in range(20):\n"
        "    subprocess.run(['true', sys.argv[1]])\n"  # each lives a millisecond or so
        "subprocess.run(['sh', '-c', 'exit 0'], env={'ONLY': 'this'})\n"
    )
    run = traced(
        [sys.executable, "-c", script, AWKWARD],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "TOKEN": "tok-secret-1"},
    )
    assert run.result.returncode == 0, run.result.stderr
    started = [e for e in run.execs if e.ok]
    assert [e.tool for e in started] == ["python", *["true"] * 20, "sh"]
    assert started[0].argv == (sys.executable, "-c", script, AWKWARD)
    assert {e.argv for e in started[1:21]} == {("true", AWKWARD)}
    assert started[-1].env == (("ONLY", "this"),)
    assert run.env_holding("tok-secret-1") == {"python": ["TOKEN"], "true": ["TOKEN"]}
    assert run.argv_holding("tok-secret-1") == []
    assert run.argv_holding("quoted") == [started[0].argv] + [("true", AWKWARD)] * 20

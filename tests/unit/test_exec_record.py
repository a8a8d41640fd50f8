"""The exec record the secret checks rely on (tests/support/processes.py): strace's log read
back exactly (tests/integration/security/test_exec_record.py runs strace itself)."""

from __future__ import annotations

from tests.support.processes import parse_strace


def test_the_parser_reads_strace_s_escapes_and_failed_execs() -> None:
    log = [
        '101 execve("/usr/bin/x", ["x", "a\\"b\\\\c\\n", "\\303\\251\\x41"], ["K=v=w"]) = 0',
        '102 execve("/nope/y", ["y"], []) = -1 ENOENT (No such file or directory)',
        '103 execve("/usr/bin/z", ["z"], ["A=1"] <unfinished ...>',
        "101 +++ exited with 0 +++",
    ]
    execs = parse_strace(log)
    assert [(e.pid, e.path, e.argv, e.env, e.ok) for e in execs] == [
        (101, "/usr/bin/x", ("x", 'a"b\\c\n', "éA"), (("K", "v=w"),), True),
        (102, "/nope/y", ("y",), (), False),
        (103, "/usr/bin/z", ("z",), (("A", "1"),), True),
    ]

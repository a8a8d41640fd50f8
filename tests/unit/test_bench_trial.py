"""bench/trial.py on a small repository made here: its table, and the crashes it must catch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.gitrepo import GIT_ENV, GitRepo

ROOT = Path(__file__).resolve().parents[2]
TRIAL = ROOT / "bench" / "trial.py"
REAL_CLI = Path(sys.executable).parent / "pipeline-kit"

DOCKERFILE = """\
FROM python:3.11-slim AS base
RUN apt-get update && apt-get install -y --no-install-recommends curl

FROM base AS deps
COPY requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt

FROM deps AS code
WORKDIR /app
COPY app/ /app/
CMD ["python", "-m", "app"]
"""

# A stand-in for the CLI: the real one, except for the heads named in the environment,
# where it fails the ways a broken kit would.
STUB = """\
import os, signal, sys
args = sys.argv[1:]
head = args[args.index("--head") + 1] if "--head" in args else None
if os.environ.get("STUB_LOG"):
    with open(os.environ["STUB_LOG"], "a") as log:
        log.write(" ".join(args[:1] + ([head] if head else [])) + "\\n")
if head and head == os.environ.get("STUB_FLAKY_HEAD"):
    with open(os.environ["STUB_LOG"]) as log:
        if log.read().count(head) == 2:  # the second call on this pair fails
            sys.stderr.write("Traceback (most recent call last):\\nOSError: flaky\\n")
            sys.exit(1)
if args[:1] == ["init"] and os.environ.get("STUB_INIT_TRACEBACK"):
    sys.stderr.write("Traceback (most recent call last):\\nRuntimeError: init broke\\n")
    sys.exit(1)
if head and head == os.environ.get("STUB_TRACEBACK_HEAD"):
    sys.stderr.write(
        'Traceback (most recent call last):\\n  File "detect.py", line 9, in run\\n'
        "KeyError: 'layers'\\n"
    )
    sys.exit(1)
if head and head == os.environ.get("STUB_EXIT3_HEAD"):
    sys.stderr.write("error: the registry went away\\n")
    sys.exit(3)
if head and head == os.environ.get("STUB_SIGNAL_HEAD"):
    os.kill(os.getpid(), signal.SIGSEGV)
if head and head == os.environ.get("STUB_INPUT_ERROR_HEAD"):
    sys.stderr.write("error: Dockerfile:4: COPY takes a source and a destination\\n")
    sys.exit(2)
os.execv(os.environ["STUB_REAL_CLI"], [os.environ["STUB_REAL_CLI"], *args])
"""


@pytest.fixture
def history(tmp_path: Path) -> tuple[GitRepo, dict[str, str]]:
    """A service whose first-parent history has one change of each kind, an empty commit
    and a merge; returns the repo and the commit of each change."""
    repo = GitRepo.init(tmp_path / "service")
    shas = {
        "root": repo.commit(
            {
                "Dockerfile": DOCKERFILE,
                "requirements.txt": "numpy==2.1.3\n",
                "app/__init__.py": "",
                "app/main.py": "print('hello')\n",
                "app/helper.py": "X = 1\n",
                "README.md": "# svc\n",
            },
            "root",
        )
    }
    shas["code"] = repo.commit({"app/main.py": "print('hello, world')\n"}, "code fix")
    shas["deps"] = repo.commit({"requirements.txt": "numpy==2.2.0\n"}, "bump numpy")
    shas["docs"] = repo.commit({"README.md": "# svc\n\nServes.\n"}, "docs")
    shas["empty"] = repo.commit(None, "empty")
    shas["base"] = repo.commit(
        {"Dockerfile": DOCKERFILE.replace("python:3.11-slim", "python:3.12-slim")}, "py 3.12"
    )
    repo.git("checkout", "-q", "-b", "side")
    repo.commit({"app/helper.py": "X = 2\n"}, "side: helper")
    repo.commit({"README.md": "# svc\n\nServes models.\n"}, "side: docs")
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "-m", "merge side", "side")
    shas["merge"] = repo.head()
    return repo, shas


def run_trial(
    repo: GitRepo, tmp_path: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = tmp_path / "table.json"
    argv = [sys.executable, str(TRIAL), str(repo.path), "--dockerfile", "Dockerfile"]
    proc = subprocess.run(
        [*argv, "--json", str(out), *extra],
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV, **(env or {})},
        timeout=300,
        check=False,
    )
    assert out.is_file(), proc.stdout + proc.stderr
    doc: dict[str, Any] = json.loads(out.read_text())
    return proc, doc


def test_table_has_one_row_per_first_parent_pair_that_changes_files(
    history: tuple[GitRepo, dict[str, str]], tmp_path: Path
) -> None:
    repo, shas = history
    before = (repo.git("status", "--porcelain"), repo.git("for-each-ref"), repo.head())
    proc, doc = run_trial(repo, tmp_path, "-n", "10")
    assert proc.returncode == 0, proc.stdout + proc.stderr

    rows = [(r["base"], r["head"], r["files_changed"], r["answer"]) for r in doc["pairs"]]
    assert rows == [
        (shas["base"], shas["merge"], 2, "code-only"),  # against the first parent only
        (shas["empty"], shas["base"], 1, "base"),
        (shas["deps"], shas["docs"], 1, "unchanged"),
        (shas["code"], shas["deps"], 1, "deps"),
        (shas["root"], shas["code"], 1, "code-only"),
    ]
    by_head = {r["head"]: r for r in doc["pairs"]}
    assert by_head[shas["code"]]["changed_layers"] == ["code"]
    assert by_head[shas["code"]]["rebuild_from"] == "code"
    assert any("app/main.py" in reason for reason in by_head[shas["code"]]["reasons"])
    assert by_head[shas["docs"]]["image_changed"] is False
    assert by_head[shas["merge"]]["files"] == ["README.md", "app/helper.py"]
    assert all(r["exit"] == 0 and r["seconds"] > 0 for r in doc["pairs"])
    assert doc["summary"]["crashes"] == 0
    assert len(doc["summary"]["load_average"]) == 2
    assert doc["summary"]["answers"] == {"code-only": 2, "base": 1, "unchanged": 1, "deps": 1}
    assert "deps: deps" in doc["init"]["config"]
    assert doc["lint"]["exit"] in (0, 1) and isinstance(doc["lint"]["findings"], list)
    # The printed table has the same rows, newest first.
    table = [ln for ln in proc.stdout.splitlines() if ".." in ln and ln[:3].strip().isdigit()]
    assert [ln.split()[1] for ln in table] == [f"{r[0][:8]}..{r[1][:8]}" for r in rows]
    assert "crashes 0" in proc.stdout
    # The source is only read.
    after = (repo.git("status", "--porcelain"), repo.git("for-each-ref"), repo.head())
    assert after == before
    assert not (repo.path / "pipeline-kit.yaml").exists()


def test_n_takes_the_newest_pairs(history: tuple[GitRepo, dict[str, str]], tmp_path: Path) -> None:
    repo, shas = history
    proc, doc = run_trial(repo, tmp_path, "-n", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [r["head"] for r in doc["pairs"]] == [shas["merge"], shas["base"]]


def make_stub(tmp_path: Path) -> Path:
    stub = tmp_path / "bin" / "pipeline-kit"
    stub.parent.mkdir()
    stub.write_text(f"#!{sys.executable}\n{STUB}")
    stub.chmod(0o755)
    return stub


def test_every_crash_is_counted_and_printed_whole(
    history: tuple[GitRepo, dict[str, str]], tmp_path: Path
) -> None:
    repo, shas = history
    stub = make_stub(tmp_path)
    env = {
        "STUB_REAL_CLI": str(REAL_CLI),
        "STUB_TRACEBACK_HEAD": shas["code"],
        "STUB_EXIT3_HEAD": shas["deps"],
        "STUB_SIGNAL_HEAD": shas["base"],
        "STUB_INPUT_ERROR_HEAD": shas["docs"],
    }
    proc, doc = run_trial(repo, tmp_path, "-n", "10", "--cli", str(stub), env=env)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    answers = {r["head"]: (r["answer"], r["exit"]) for r in doc["pairs"]}
    assert answers == {
        shas["merge"]: ("code-only", 0),
        shas["base"]: ("crash", -11),
        shas["docs"]: ("error", 2),  # an input error is not a crash
        shas["deps"]: ("crash", 3),
        shas["code"]: ("crash", 1),  # exit 1 is a verdict, but not with a traceback
    }
    assert doc["summary"]["crashes"] == 3
    assert doc["summary"]["errors"] == 1
    assert len(doc["crashes"]) == 3
    for text in ("KeyError: 'layers'", "the registry went away", "exit -11"):
        assert text in proc.stdout
        assert sum(text in crash for crash in doc["crashes"]) == 1
    # A crash is printed whole: the command, its exit, and all of its stderr.
    crash = next(c for c in doc["crashes"] if "KeyError" in c)
    assert f"--head {shas['code']}" in crash and "exit 1" in crash
    assert 'File "detect.py", line 9, in run' in crash
    assert "COPY takes a source and a destination" in proc.stdout
    assert "crashes 3" in proc.stdout


def test_a_crashing_init_is_a_crash_and_lint_still_runs(
    history: tuple[GitRepo, dict[str, str]], tmp_path: Path
) -> None:
    repo, _ = history
    stub = make_stub(tmp_path)
    env = {"STUB_REAL_CLI": str(REAL_CLI), "STUB_INIT_TRACEBACK": "1"}
    proc, doc = run_trial(repo, tmp_path, "--cli", str(stub), env=env)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert doc["pairs"] == []
    assert doc["summary"]["crashes"] == 1
    assert "RuntimeError: init broke" in doc["crashes"][0]
    assert doc["lint"]["exit"] in (0, 1)
    assert "Traceback" not in proc.stderr  # the trial itself did not fail


def test_repeat_calls_detect_that_many_times_and_any_crash_counts(
    history: tuple[GitRepo, dict[str, str]], tmp_path: Path
) -> None:
    repo, shas = history
    stub = make_stub(tmp_path)
    log = tmp_path / "calls.log"
    env = {"STUB_REAL_CLI": str(REAL_CLI), "STUB_LOG": str(log), "STUB_FLAKY_HEAD": shas["base"]}
    proc, doc = run_trial(repo, tmp_path, "-n", "2", "--repeat", "3", "--cli", str(stub), env=env)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    calls = log.read_text().splitlines()
    assert calls.count(f"detect {shas['merge']}") == 3
    assert calls.count(f"detect {shas['base']}") == 3
    assert [c.split()[0] for c in calls] == ["init"] + ["detect"] * 6 + ["lint"]
    # A crash on any of the calls is the pair's answer: the first and third were fine.
    assert [r["answer"] for r in doc["pairs"]] == ["code-only", "crash"]
    assert doc["summary"]["crashes"] == 1 and "OSError: flaky" in doc["crashes"][0]


@pytest.mark.parametrize("what", ["not a repository", "unknown ref", "no such CLI"])
def test_bad_input_exits_2_naming_it(
    what: str, history: tuple[GitRepo, dict[str, str]], tmp_path: Path
) -> None:
    repo, _ = history
    source, extra = {
        "not a repository": (tmp_path / "empty", []),
        "unknown ref": (repo.path, ["--ref", "nosuch"]),
        "no such CLI": (repo.path, ["--cli", str(tmp_path / "nosuch")]),
    }[what]
    source.mkdir(exist_ok=True)
    proc = subprocess.run(
        [sys.executable, str(TRIAL), str(source), *extra],
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: ") and (
        "nosuch" in proc.stderr or str(source) in proc.stderr
    )
    assert "Traceback" not in proc.stderr


def test_files_a_partial_source_cannot_check_out_are_named(
    history: tuple[GitRepo, dict[str, str]], tmp_path: Path
) -> None:
    """A mirror without some large blobs checks out with exit 0 and those files absent:
    the trial says which, since lint then reads a tree without them."""
    repo, _ = history
    repo.commit({"assets/font.ttc": "not really a font\n"}, "add a font")
    blob = repo.git("rev-parse", "HEAD:assets/font.ttc").strip()
    (repo.path / ".git" / "objects" / blob[:2] / blob[2:]).unlink()
    proc, doc = run_trial(repo, tmp_path, "-n", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert doc["checkout_missing"] == ["assets/font.ttc"]
    assert "the checkout lacks 1 file(s)" in proc.stdout and "assets/font.ttc" in proc.stdout

"""Trial on a real repository: `init`, then `detect` over its recent history, then `lint`.

What a new user of the kit would do on a repository that ships an LLM-serving image, run
over its real history so that every answer can be checked against `git diff`:

1. clone the repository (a bare mirror is fine) into a scratch directory, shared with the
   source through git's alternates, so the source is only read, never written
   (a source without some objects, such as a mirror without its largest blobs, checks out
   without those files: the trial names them);
2. `pipeline-kit init --ci none --dockerfile DOCKERFILE` in the clone, and print the
   config it wrote (`--context DIR` then sets `context:` in it, saying so);
3. `pipeline-kit detect --base P --head C --no-worktree --format json` for each of the last
   N first-parent pairs (P, C) whose trees differ, newest first, timed as a whole CLI call;
4. `pipeline-kit lint DOCKERFILE --format json` at the checked-out revision.

Per pair it prints the short SHAs, how many files the pair changes, the answer (the image
changed or not, which layers, where the rebuild starts, and the strategy or rebuild point
when the answer has one), the first reasons and the time; at the end the crashes (an exit
3, any exit other than 0, 1 or 2, or a traceback in the output: each printed whole), the
median and 90th percentile of the detect times, and how many answers were unchanged,
code-only, deps, base or otherwise. An input error (exit 2, e.g. a Dockerfile the kit
refuses at one revision) is not a crash; it is counted and its message shown.

The kit is driven only through its CLI (by default the `pipeline-kit` next to this
interpreter, i.e. the venv's), never imported. The trial reports, it does not judge the
answers: checking them by hand against `git diff --stat P C` and the Dockerfile is the
point. Exit 0 when nothing crashed, 1 when something did, 2 for bad input (arguments, a
source git cannot clone, an unknown --ref, no CLI).

Run:

    .venv/bin/python bench/trial.py /path/to/repo.git --dockerfile Dockerfile -n 50
    .venv/bin/python bench/trial.py REPO --dockerfile docker/Dockerfile --context . \\
        -n 80 --json /tmp/trial.json --keep
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthrepo import bench_env, resolve_cli

NORMAL_EXITS = (0, 1, 2)
TRACEBACK = "Traceback (most recent call last)"
REASONS_SHOWN = 3
# Answer fields a newer kit may add; shown when present.
EXTRA_ANSWER_FIELDS = ("rebuild_point", "strategy")
FILES_KEPT = 50  # changed paths kept per pair in --json, for checking by hand
MISSING_SHOWN = 5  # files the checkout could not write, named in the output


class Pair(NamedTuple):
    """A first-parent commit and its parent, and the paths that differ between them."""

    base: str
    head: str
    subject: str
    files: list[str]


@dataclass
class Call:
    """One CLI call and what came back."""

    argv: list[str]
    exit: int
    seconds: float
    stdout: str
    stderr: str

    @property
    def crashed(self) -> bool:
        return self.exit not in NORMAL_EXITS or TRACEBACK in self.stdout or TRACEBACK in self.stderr


@dataclass
class PairRow:
    """detect's answer for one first-parent pair."""

    base: str
    head: str
    subject: str
    files_changed: int
    exit: int
    seconds: float
    answer: str  # unchanged, code-only, deps, base, fail-safe, error, crash, or a layer name
    files: list[str] = field(default_factory=list)
    image_changed: bool | None = None
    changed_layers: list[str] = field(default_factory=list)
    rebuild_from: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    fail_safe: Any = None
    reasons: list[str] = field(default_factory=list)
    message: str = ""


def fail(message: str) -> NoReturn:
    """Stop on bad input: the message on stderr, exit 2 (1 means a crash of the kit)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def git(repo: Path, *args: str) -> str:
    """Run git in repo and return stdout; a failure stops the trial with git's message."""
    proc = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        fail(f"`git {shlex.join(args)}` in {repo}: {proc.stderr.strip()}")
    return proc.stdout


def run_cli(argv: Sequence[str], cwd: Path, env: dict[str, str]) -> Call:
    start = time.perf_counter()
    proc = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, check=False)
    seconds = time.perf_counter() - start
    return Call(
        list(argv),
        proc.returncode,
        seconds,
        proc.stdout.decode(errors="replace"),
        proc.stderr.decode(errors="replace"),
    )


def scratch_clone(source: Path, ref: str, dest: Path) -> str:
    """Clone source into dest (objects shared, source untouched), check out ref; its SHA."""
    proc = subprocess.run(
        ["git", "clone", "--quiet", "--shared", "--no-checkout", str(source), str(dest)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        fail(f"{source} is not a git repository git can clone: {proc.stderr.strip()}")
    sha = git(dest, "rev-parse", "--verify", f"{ref}^{{commit}}").strip()
    git(dest, "checkout", "--quiet", "--detach", sha)
    return sha


def first_parent_pairs(repo: Path, head: str, count: int) -> list[Pair]:
    """The last `count` first-parent pairs that change at least one file, newest first."""
    pairs: list[Pair] = []
    log = git(repo, "log", "--first-parent", "--format=%H %P%x09%s", head)
    for line in log.splitlines():
        shas, _, subject = line.partition("\t")
        commit, *parents = shas.split()
        if not parents:
            continue
        names = git(repo, "diff", "--name-only", "--no-renames", parents[0], commit).split("\n")
        changed = [n for n in names if n]
        if changed:
            pairs.append(Pair(parents[0], commit, subject, changed))
            if len(pairs) == count:
                break
    return pairs


def classify(doc: dict[str, Any]) -> tuple[str, list[str], list[str]]:
    """(answer, changed layers, reasons as 'layer: reason') of a detect JSON answer."""
    layers = doc.get("layers") or {}
    changed = [name for name, layer in layers.items() if layer.get("changed")]
    reasons = [
        f"{name}: {reason}"
        for name, layer in layers.items()
        for reason in layer.get("reasons") or []
        if layer.get("changed")
    ]
    if doc.get("fail_safe"):
        answer = "fail-safe"
    elif not doc.get("image_changed"):
        answer = "unchanged"
    else:
        start = doc.get("rebuild_from")
        answer = {"code": "code-only", None: "changed"}.get(start, str(start))
    return answer, changed, reasons


def detect_pair(
    cli: Path, clone: Path, env: dict[str, str], pair: Pair, extra: list[str], repeat: int = 1
) -> tuple[PairRow, Call]:
    """detect on one pair, `repeat` times: the answer of the first call (of the first that
    crashed, if any did) and the least time, the one least disturbed by other load."""
    argv = [str(cli), "detect", "--base", pair.base, "--head", pair.head, "--no-worktree"]
    argv += [*extra, "--format", "json"]
    calls = [run_cli(argv, clone, env) for _ in range(repeat)]
    call = next((c for c in calls if c.crashed), calls[0])
    row = PairRow(
        pair.base,
        pair.head,
        pair.subject,
        len(pair.files),
        call.exit,
        min(c.seconds for c in calls),
        "crash",
        files=pair.files[:FILES_KEPT],
    )
    if call.crashed:
        return row, call
    if call.exit == 2:
        row.answer = "error"
        row.message = call.stderr.strip()
        return row, call
    try:
        doc = json.loads(call.stdout)
    except ValueError:
        row.answer = "error"
        row.message = f"exit {call.exit}, stdout is not JSON: {call.stdout[:300]!r}"
        return row, call
    row.answer, row.changed_layers, row.reasons = classify(doc)
    row.image_changed = doc.get("image_changed")
    row.rebuild_from = doc.get("rebuild_from")
    row.fail_safe = doc.get("fail_safe")
    row.extra = {k: doc[k] for k in EXTRA_ANSWER_FIELDS if k in doc}
    return row, call


def set_context(config: Path, context: str) -> str:
    """Make the config's top-level `context:` say `context`; what was done, for the output."""
    text = config.read_text()
    line = f"context: {json.dumps(context)}"
    if re.search(r"^context:.*$", text, flags=re.M):
        config.write_text(re.sub(r"^context:.*$", line, text, count=1, flags=re.M))
        return f"the trial replaced init's context with --context: {line}"
    config.write_text(text.rstrip("\n") + f"\n{line}  # set by the trial's --context\n")
    return f"init wrote no context; the trial added {line}"


def percentile(samples: Sequence[float], pct: int) -> float:
    if len(samples) < 2:
        return samples[0] if samples else 0.0
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1]


def show_call(title: str, call: Call) -> str:
    """A call printed whole: argv, exit, stdout, stderr."""
    return (
        f"--- {title}\n$ {shlex.join(call.argv)}\nexit {call.exit}\n"
        f"stdout:\n{call.stdout.rstrip()}\nstderr:\n{call.stderr.rstrip()}\n---"
    )


def format_row(i: int, row: PairRow) -> str:
    layers = ",".join(row.changed_layers) or "-"
    extra = " ".join(f"{k}={json.dumps(v)}" for k, v in row.extra.items())
    line = (
        f"{i:>3} {row.base[:8]}..{row.head[:8]} {row.files_changed:>5} "
        f"{row.answer:<10} {layers:<16} {row.rebuild_from or '-'!s:<8} "
        f"{row.seconds:6.3f}s  {row.subject[:60]}"
    )
    if extra:
        line += f"\n      {extra}"
    for reason in row.reasons[:REASONS_SHOWN]:
        line += f"\n      {reason}"
    if len(row.reasons) > REASONS_SHOWN:
        line += f"\n      ... {len(row.reasons) - REASONS_SHOWN} more reasons"
    if row.message:
        line += "\n      " + row.message.replace("\n", "\n      ")
    return line


def summarize(rows: Sequence[PairRow], crashes: int) -> dict[str, Any]:
    times = [r.seconds for r in rows]
    return {
        "pairs": len(rows),
        "crashes": crashes,
        "errors": sum(1 for r in rows if r.answer == "error"),
        "median_s": round(statistics.median(times), 4) if times else None,
        "p90_s": round(percentile(times, 90), 4) if times else None,
        "answers": dict(Counter(r.answer for r in rows).most_common()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="init, detect over the last N first-parent pairs, and lint, on a real repo."
    )
    parser.add_argument("repo", type=Path, help="a git repository (bare is fine); only read")
    parser.add_argument("--dockerfile", default="Dockerfile", help="relative to the repo root")
    parser.add_argument("--context", help="build context to set in the config after init")
    parser.add_argument("-n", "--pairs", type=int, default=50, help="first-parent pairs")
    parser.add_argument("--ref", default="HEAD", help="newest commit of the trial")
    parser.add_argument("--build-arg", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument(
        "--repeat", type=int, default=1, help="detect calls per pair; the least time is kept"
    )
    parser.add_argument("--cli", help="the pipeline-kit to run (default: the venv's)")
    parser.add_argument("--json", type=Path, help="write the whole table here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch clone")
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.repeat < 1:
        parser.error("-n and --repeat must be at least 1")
    try:
        cli = resolve_cli(args.cli)
    except SystemExit as exc:  # its message, with the exit status of bad input
        fail(str(exc).removeprefix("error: "))
    source = args.repo.resolve()
    env = bench_env()
    scratch = Path(tempfile.mkdtemp(prefix="pk-trial-"))
    clone = scratch / "repo"
    try:
        return trial(args, cli, source, clone, env)
    finally:
        if args.keep:
            print(f"\nscratch clone kept: {clone}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def trial(
    args: argparse.Namespace, cli: Path, source: Path, clone: Path, env: dict[str, str]
) -> int:
    load_start = os.getloadavg()[0]
    head = scratch_clone(source, args.ref, clone)
    crashes: list[str] = []
    print(f"trial of {source} at {head[:12]}, Dockerfile {args.dockerfile}, CLI {cli}")
    # git checks out what it can and exits 0 when the source lacks some objects (a partial
    # mirror): lint then reads a tree without those files, which the reader must know.
    missing = git(clone, "ls-files", "--deleted").splitlines()
    if missing:
        shown = ", ".join(missing[:MISSING_SHOWN])
        more = f" and {len(missing) - MISSING_SHOWN} more" if len(missing) > MISSING_SHOWN else ""
        print(
            f"(the checkout lacks {len(missing)} file(s) whose objects the source does not "
            f"hold; lint does not see them: {shown}{more})"
        )

    init_argv = [str(cli), "init", "--ci", "none", "--dockerfile", args.dockerfile]
    init_argv += ["--image", "trial.invalid/image"]
    init = run_cli(init_argv, clone, env)
    config = clone / "pipeline-kit.yaml"
    print(f"\n== init: exit {init.exit} in {init.seconds:.3f}s")
    if init.crashed:
        crashes.append(show_call("init crashed", init))
    elif init.exit != 0:
        print(init.stdout.rstrip() + "\n" + init.stderr.rstrip())
    context_note = ""
    if init.exit == 0 and config.is_file() and args.context is not None:
        context_note = set_context(config, args.context)
    config_text = config.read_text() if config.is_file() else ""
    print(config_text.rstrip() or "(no pipeline-kit.yaml written)")
    if context_note:
        print(f"({context_note})")

    rows: list[PairRow] = []
    if init.exit == 0:
        extra = [a for ba in args.build_arg for a in ("--build-arg", ba)]
        pairs = first_parent_pairs(clone, head, args.pairs)
        print(f"\n== detect over {len(pairs)} first-parent pairs, newest first")
        print(
            f"{'#':>3} {'base..head':<18} {'files':>5} {'answer':<10} {'changed layers':<16} "
            f"{'rebuild':<8} {'time':>7}  subject"
        )
        for i, pair in enumerate(pairs, 1):
            row, call = detect_pair(cli, clone, env, pair, extra, args.repeat)
            rows.append(row)
            print(format_row(i, row), flush=True)
            if call.crashed:
                crashes.append(show_call(f"detect crashed on pair {i}", call))

    lint_doc: dict[str, Any] = {}
    lint = run_cli([str(cli), "lint", args.dockerfile, "--format", "json"], clone, env)
    print(f"\n== lint {args.dockerfile}: exit {lint.exit}")
    if lint.crashed:
        crashes.append(show_call("lint crashed", lint))
    else:
        try:
            lint_doc = json.loads(lint.stdout)
        except ValueError:
            print(lint.stdout.rstrip() + "\n" + lint.stderr.rstrip())
    findings = lint_doc.get("findings") or []
    for f in findings:
        print(
            f"  {f.get('severity'):<7} {f.get('rule')} {f.get('path')}:{f.get('line')} "
            f"{f.get('message')}"
        )
    by_rule = Counter(f"{f.get('rule')} {f.get('severity')}" for f in findings)
    if by_rule:
        print("  per rule: " + ", ".join(f"{k} x{v}" for k, v in sorted(by_rule.items())))

    summary = summarize(rows, len(crashes))
    # Times on a shared machine say little without its load: both ends are reported.
    summary["load_average"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    print(f"\n== crashes: {len(crashes)}")
    for text in crashes:
        print(text)
    print("== summary")
    if rows:
        print(
            f"pairs {summary['pairs']}, crashes {summary['crashes']}, input errors "
            f"{summary['errors']}, detect median {summary['median_s']:.3f}s, "
            f"p90 {summary['p90_s']:.3f}s (load average {load_start:.2f} at the start, "
            f"{summary['load_average'][1]:.2f} at the end)"
        )
    print("answers: " + ", ".join(f"{k} {v}" for k, v in summary["answers"].items()))

    if args.json:
        doc = {
            "repo": str(source),
            "head": head,
            "dockerfile": args.dockerfile,
            "context": args.context,
            "cli": str(cli),
            "checkout_missing": missing,
            "init": {"exit": init.exit, "config": config_text, "note": context_note},
            "pairs": [asdict(r) for r in rows],
            "lint": {"exit": lint.exit, "findings": findings},
            "crashes": crashes,
            "summary": summary,
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())

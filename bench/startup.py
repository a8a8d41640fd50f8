"""Benchmark: start-up cost of the `pipeline-kit` CLI, and where its import time goes.

What is measured, in one run, alternating, after warm-up runs that are not counted:

  * `python -c pass` with the same interpreter (sys.executable): the floor, Python itself;
  * `pipeline-kit --version`: the CLI's start (interpreter, imports, argument parsing);
  * `pipeline-kit detect --base HEAD~1 --head HEAD --format json` in a small generated
    repository (bench/_synthrepo.py, a few hundred files, a code-only last commit), checked
    for exit 0 and the right answer (code changed, base and deps did not).

Median and min wall times are printed with the ratio of each to the `python -c pass` median.
Then `python -X importtime -c "import pipeline_kit.cli"` and the detect path under
`python -X importtime -m pipeline_kit detect ...` are run (one warm-up, then a few runs; each
module's best time is kept), and the 15 slowest imports by cumulative time are printed.

Goal: the CLI starts (`pipeline-kit --version`) in under 150 ms. A missed goal still exits 0;
a failing CLI or a wrong detect answer exits 1. pipeline_kit must be importable by the
interpreter running this script (the venv that has the CLI installed).

Run:

    .venv/bin/python bench/startup.py
    .venv/bin/python bench/startup.py --runs 20 --cli /path/to/pipeline-kit --keep
"""

from __future__ import annotations

import argparse
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthrepo import (
    DETECT_ARGS,
    CliFailure,
    Timing,
    bench_env,
    check_detect_json,
    describe_failure,
    generate_repo,
    ms,
    resolve_cli,
    timed_run,
)

GOAL_SECONDS = 0.150
TOP = 15
DETECT_LABEL = "pipeline-kit detect"


@dataclass
class ImportRecord:
    """One module's line of `-X importtime` output (microseconds)."""

    name: str
    self_us: int
    cumulative_us: int
    depth: int


def time_commands(
    commands: dict[str, tuple[Sequence[str], Path | None]], runs: int, warmup: int
) -> dict[str, Timing]:
    """Run the commands round-robin; check each result; return measured timings."""
    env = bench_env()
    timings = {label: Timing(label) for label in commands}
    for round_no in range(warmup + runs):
        for label, (argv, cwd) in commands.items():
            seconds, proc = timed_run(argv, cwd, env)
            if proc.returncode != 0:
                raise CliFailure(describe_failure(argv, proc))
            if label == DETECT_LABEL:
                problems = check_detect_json(proc.stdout)
                if problems:
                    raise CliFailure(
                        f"`{shlex.join(argv)}` gave a wrong answer for a code-only range:\n  "
                        + "\n  ".join(problems)
                        + f"\n  stdout: {proc.stdout.decode(errors='replace')[:2000]}"
                    )
            if round_no >= warmup:
                timings[label].samples.append(seconds)
    return timings


def parse_importtime(stderr: str) -> list[ImportRecord]:
    """Records from `-X importtime` lines: 'import time: SELF | CUMULATIVE | [indent]name'."""
    records = []
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line[len("import time:") :].split("|", 2)
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue  # the header line
        raw_name = parts[2].rstrip()
        name = raw_name.lstrip()
        depth = (len(raw_name) - len(name) - 1) // 2
        records.append(ImportRecord(name, int(parts[0]), int(parts[1]), depth))
    return records


def importtime(argv: Sequence[str], cwd: Path | None, runs: int) -> list[ImportRecord]:
    """Run argv (one warm-up, then `runs`), keep each module's best (lowest) times."""
    env = bench_env()
    best: dict[str, ImportRecord] = {}
    for round_no in range(1 + runs):
        proc = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, check=False)
        if proc.returncode != 0:
            raise CliFailure(describe_failure(argv, proc))
        if round_no == 0:
            continue
        for rec in parse_importtime(proc.stderr.decode(errors="replace")):
            old = best.get(rec.name)
            if old is None or rec.cumulative_us < old.cumulative_us:
                best[rec.name] = rec
    return list(best.values())


def print_imports(title: str, records: list[ImportRecord]) -> None:
    top_depth = min((r.depth for r in records), default=0)
    top_level = [r for r in records if r.depth == top_depth]
    total = sum(r.cumulative_us for r in top_level)
    ours = sum(r.cumulative_us for r in top_level if r.name.split(".")[0] == "pipeline_kit")
    print(f"\n{title}")
    print(
        f"  {len(records)} modules; all top-level imports {total / 1000:.1f} ms, "
        f"of which pipeline_kit (with what it pulls in) {ours / 1000:.1f} ms"
    )
    print(f"  {'cumulative':>12} {'self':>10}  module  ({TOP} slowest by cumulative time)")
    for rec in sorted(records, key=lambda r: r.cumulative_us, reverse=True)[:TOP]:
        print(f"  {rec.cumulative_us / 1000:9.1f} ms {rec.self_us / 1000:7.1f} ms  {rec.name}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time pipeline-kit start-up and imports.")
    parser.add_argument("--runs", type=int, default=10, help="measured runs per command")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted runs first")
    parser.add_argument("--importtime-runs", type=int, default=3, help="-X importtime runs")
    parser.add_argument("--files", type=int, default=300, help="files in the small repo")
    parser.add_argument("--commits", type=int, default=30, help="commits in the small repo")
    parser.add_argument("--cli", help="pipeline-kit executable (default: next to python)")
    parser.add_argument("--keep", action="store_true", help="keep the generated repository")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0 or args.importtime_runs < 1:
        parser.error("--runs and --importtime-runs must be >= 1, --warmup >= 0")
    cli = resolve_cli(args.cli)
    python = sys.executable

    print("pipeline-kit start-up benchmark")
    print(f"  cli:    {cli}")
    print(f"  python: {python} ({platform.python_version()})")
    print(f"  runs:   {args.warmup} warm-up + {args.runs} measured per command, alternating")

    tmp = Path(tempfile.mkdtemp(prefix="pk-bench-startup-"))
    try:
        repo = generate_repo(tmp / "repo", args.files, args.commits)
        print(
            f"  repo:   {repo.files} files, {repo.commits} commits, generated in "
            f"{repo.seconds:.2f} s"
        )
        commands: dict[str, tuple[Sequence[str], Path | None]] = {
            "python -c pass": ((python, "-c", "pass"), None),
            "pipeline-kit --version": ((str(cli), "--version"), None),
            DETECT_LABEL: ((str(cli), *DETECT_ARGS), repo.path),
        }
        try:
            timings = time_commands(commands, args.runs, args.warmup)
        except CliFailure as exc:
            print(f"\nFAIL: {exc}", file=sys.stderr)
            return 1

        baseline = timings["python -c pass"].median
        print(f"\n{'command':<26} {'median':>11} {'min':>11}   vs python -c pass")
        for label, timing in timings.items():
            print(
                f"{label:<26} {ms(timing.median):>11} {ms(timing.min):>11}   "
                f"{timing.median / baseline:6.2f}x"
            )
        version = timings["pipeline-kit --version"]
        detect = timings[DETECT_LABEL]
        print(
            f"\nCLI overhead over bare python: --version +{(version.median - baseline) * 1000:.1f}"
            f" ms, detect +{(detect.median - baseline) * 1000:.1f} ms (medians)"
        )

        try:
            print_imports(
                f'{python} -X importtime -c "import pipeline_kit.cli"',
                # cwd: the generated repo, so `-c` imports the installed package as the CLI
                # does, not a source tree that happens to be the current directory.
                importtime(
                    (python, "-X", "importtime", "-c", "import pipeline_kit.cli"),
                    repo.path,
                    args.importtime_runs,
                ),
            )
            print_imports(
                f"{python} -X importtime -m pipeline_kit {' '.join(DETECT_ARGS)}  (in the repo)",
                importtime(
                    (python, "-X", "importtime", "-m", "pipeline_kit", *DETECT_ARGS),
                    repo.path,
                    args.importtime_runs,
                ),
            )
        except CliFailure as exc:
            print(f"\nFAIL: {exc}", file=sys.stderr)
            return 1

        holds = version.median < GOAL_SECONDS
        print("\nGoal")
        print(
            f"  [{'HOLDS' if holds else 'MISSED'}] CLI start under {GOAL_SECONDS * 1000:.0f} ms: "
            f"pipeline-kit --version median {version.median * 1000:.1f} ms "
            f"(min {version.min * 1000:.1f} ms; python -c pass {baseline * 1000:.1f} ms)"
        )
        print(
            f"  (for reference: detect on the small repo, median {detect.median * 1000:.1f} ms, "
            f"is {'under' if detect.median < GOAL_SECONDS else 'over'} the same bound; "
            "its own goal is checked by bench/detect.py)"
        )
        return 0
    finally:
        if args.keep:
            print(f"\nKept the repository: {tmp / 'repo'}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

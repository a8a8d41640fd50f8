"""Benchmark: `pipeline-kit detect` on a code-only range, against `git diff` as the floor.

What is measured: the wall time of the whole CLI call

    pipeline-kit detect --base HEAD~1 --head HEAD --format json

run as a subprocess (interpreter start, imports, git calls, output) in a synthetic git
repository of an LLM-serving project (bench/_synthrepo.py: three-stage Dockerfile, most
files under docs/, tests/, data/, a few thousand under app/; HEAD~1..HEAD changes one file
under app/), and, alternating with it in the same run, the wall time of

    git diff --name-only HEAD~1 HEAD

over the same range: the least any change detection has to do. Each command gets warm-up
runs (not counted), then R measured runs; the median and min are reported. The same is done
on a repository a tenth of the size, to show how each grows with the repository.

Every detect run is checked: exit 0 and JSON saying code changed and base and deps did not
(rebuild_from "code"). A failing or wrong answer stops the benchmark with a non-zero exit.
Missed goals do not: a benchmark reports, it does not assert.

Goals: the whole detect call under 0.3 s at full size (20,000 files, 2,000 commits), and
detect growing from the small to the full repository no more than git diff does.

Run:

    .venv/bin/python bench/detect.py
    .venv/bin/python bench/detect.py --files 20000 --commits 2000 --runs 7 --keep
    .venv/bin/python bench/detect.py --cli /path/to/pipeline-kit
"""

from __future__ import annotations

import argparse
import os
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
    RepoInfo,
    Timing,
    bench_env,
    check_detect_json,
    describe_failure,
    generate_repo,
    ms,
    resolve_cli,
    timed_run,
)

GOAL_SECONDS = 0.3
DIFF_ARGV = ("git", "diff", "--name-only", "HEAD~1", "HEAD")


@dataclass
class SizeResult:
    """Timings on one repository."""

    name: str
    repo: RepoInfo
    detect: Timing
    diff: Timing

    @property
    def ratio(self) -> float:
        return self.detect.median / self.diff.median


def measure(name: str, repo: RepoInfo, cli: Path, runs: int, warmup: int) -> SizeResult:
    """Alternate detect and git diff in `repo`: `warmup` uncounted rounds, then `runs`."""
    env = bench_env()
    detect_argv = (str(cli), *DETECT_ARGS)
    detect = Timing("pipeline-kit detect")
    diff = Timing("git diff --name-only")
    expected_diff = [repo.last_change]
    for round_no in range(warmup + runs):
        seconds, proc = timed_run(detect_argv, repo.path, env)
        problems = [] if proc.returncode != 0 else check_detect_json(proc.stdout)
        if proc.returncode != 0 or problems:
            raise CliFailure(
                f"{name} repo ({repo.path}), round {round_no + 1}: "
                f"`{shlex.join(detect_argv)}` failed or answered wrong for a code-only range:\n  "
                + describe_failure(detect_argv, proc, problems)
            )
        if round_no >= warmup:
            detect.samples.append(seconds)

        seconds, proc = timed_run(DIFF_ARGV, repo.path, env)
        names = proc.stdout.decode().split()
        if proc.returncode != 0 or names != expected_diff:
            raise RuntimeError(
                f"`git diff` misbehaved in {repo.path}: "
                + describe_failure(DIFF_ARGV, proc, [str(names)])
            )
        if round_no >= warmup:
            diff.samples.append(seconds)
    return SizeResult(name, repo, detect, diff)


def print_size(result: SizeResult) -> None:
    repo = result.repo
    print(f"\n{result.name}: {repo.files:,} files, {repo.commits:,} commits ({repo.path})")
    for timing in (result.detect, result.diff):
        print(
            f"  {timing.label:<24} median {ms(timing.median)}   min {ms(timing.min)}   "
            f"({len(timing.samples)} runs)"
        )
    print(f"  ratio detect / git diff (medians): {result.ratio:6.2f}x")


def print_table(small: SizeResult, large: SizeResult) -> None:
    head = (
        f"{'repository':<12} {'files':>8} {'commits':>8} │ {'detect med':>11} {'detect min':>11}"
        f" │ {'diff med':>11} {'diff min':>11} │ {'detect/diff':>11}"
    )
    rule = "─" * len(head)
    print(f"\n{rule}\n{head}\n{rule}")
    for r in (small, large):
        print(
            f"{r.name:<12} {r.repo.files:>8,} {r.repo.commits:>8,} │ "
            f"{ms(r.detect.median):>11} {ms(r.detect.min):>11} │ "
            f"{ms(r.diff.median):>11} {ms(r.diff.min):>11} │ {r.ratio:>10.2f}x"
        )
    detect_growth = large.detect.median / small.detect.median
    diff_growth = large.diff.median / small.diff.median
    print(
        f"{'growth':<12} {'x' + format(large.repo.files / small.repo.files, '.0f'):>8} "
        f"{'x' + format(large.repo.commits / small.repo.commits, '.0f'):>8} │ "
        f"{detect_growth:>10.2f}x {large.detect.min / small.detect.min:>10.2f}x │ "
        f"{diff_growth:>10.2f}x {large.diff.min / small.diff.min:>10.2f}x │"
    )
    print(rule)


def print_goals(small: SizeResult, large: SizeResult) -> None:
    detect_growth = large.detect.median / small.detect.median
    diff_growth = large.diff.median / small.diff.median
    speed_ok = large.detect.median < GOAL_SECONDS
    growth_ok = detect_growth <= diff_growth
    spread = max((t.median - t.min) / t.min for r in (small, large) for t in (r.detect, r.diff))
    print("\nGoals")
    print(
        f"  [{'HOLDS' if speed_ok else 'MISSED'}] whole detect call under "
        f"{GOAL_SECONDS * 1000:.0f} ms at full size: median {large.detect.median * 1000:.1f} ms"
        f" (min {large.detect.min * 1000:.1f} ms)"
    )
    print(
        f"  [{'HOLDS' if growth_ok else 'MISSED'}] detect grows no more than git diff from "
        f"{small.repo.files:,} to {large.repo.files:,} files: detect x{detect_growth:.2f}, "
        f"git diff x{diff_growth:.2f} (medians)"
    )
    print(
        f"  note: the widest median-to-min spread of any series is {spread * 100:.0f}%; "
        "growth differences smaller than that are run-to-run noise."
    )


def cli_version(cli: Path) -> str:
    proc = subprocess.run(
        [str(cli), "--version"], capture_output=True, env=bench_env(), check=False
    )
    text = (proc.stdout or proc.stderr).decode(errors="replace").strip()
    return text if proc.returncode == 0 else f"(--version failed, exit {proc.returncode}: {text})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time `pipeline-kit detect` against `git diff` on synthetic repositories."
    )
    parser.add_argument("--files", type=int, default=20_000, help="files at full size")
    parser.add_argument("--commits", type=int, default=2_000, help="commits at full size")
    parser.add_argument("--runs", type=int, default=7, help="measured runs per command")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted runs first")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated content")
    parser.add_argument("--cli", help="pipeline-kit executable (default: next to python)")
    parser.add_argument("--keep", action="store_true", help="keep the generated repositories")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1 and --warmup >= 0")
    cli = resolve_cli(args.cli)
    small_files, small_commits = max(60, args.files // 10), max(2, args.commits // 10)

    git_version = subprocess.run(
        ["git", "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    print("pipeline-kit detect benchmark")
    print(f"  cli:     {cli}  {cli_version(cli)}")
    print(f"  python:  {sys.executable} ({platform.python_version()})")
    print(f"  {git_version}; {os.cpu_count()} CPUs; {platform.platform()}")
    print(f"  runs:    {args.warmup} warm-up + {args.runs} measured per command, alternating")

    tmp = Path(tempfile.mkdtemp(prefix="pk-bench-detect-"))
    try:
        print("\nGenerating repositories ...")
        repos: dict[str, RepoInfo] = {}
        for name, files, commits in (
            ("full", args.files, args.commits),
            ("small", small_files, small_commits),
        ):
            info = generate_repo(tmp / name, files, commits, args.seed)
            repos[name] = info
            print(
                f"  {name:<6} {info.files:>8,} files {info.commits:>6,} commits in "
                f"{info.seconds:6.2f} s  (last change: {info.last_change})"
            )

        try:
            large = measure("full", repos["full"], cli, args.runs, args.warmup)
            print_size(large)
            small = measure("small", repos["small"], cli, args.runs, args.warmup)
            print_size(small)
        except CliFailure as exc:
            print(f"\nFAIL: {exc}", file=sys.stderr)
            return 1

        print_table(small, large)
        print_goals(small, large)
        return 0
    finally:
        if args.keep:
            print(f"\nKept the repositories: {tmp / 'full'}  {tmp / 'small'}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

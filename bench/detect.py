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

Ignore rules that reach everywhere: the generated .dockerignore has `**/__pycache__` and
`**/*.pyc`, as real ones do, so every directory below `COPY app/` is filtered rather than
named by its git tree id. On the full repository the same code-only range is measured three
ways, alternating in the same run: with those rules and the kit's cache of filtered trees
warm (a repeated call: the CI case), with them and that cache emptied before every call
(`$XDG_CACHE_HOME/pipeline-kit/filtered-trees`), and, as the baseline, the same two commits
rewritten with a .dockerignore without the `**/` lines (nothing reaches below app/, so the
tree id serves). The ratios to the baseline say what the rules cost; goal: the warm call
under 0.3 s, and within 10% of the baseline. Each call's CPU time (user + system, the git
processes it runs included) is printed beside its wall time: on a machine shared with other
work it varies far less. `--patterns-only` measures this part alone.

Run:

    .venv/bin/python bench/detect.py
    .venv/bin/python bench/detect.py --files 20000 --commits 2000 --runs 7 --keep
    .venv/bin/python bench/detect.py --cli /path/to/pipeline-kit
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthrepo import (
    DETECT_ARGS,
    DOCKERIGNORE,
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


PATTERN_GOAL_RATIO = 1.10


@dataclass
class PatternResult:
    """The full repository's code-only range with and without rules that reach everywhere."""

    baseline: Timing  # .dockerignore without the `**/` lines
    warm: Timing  # `**/` rules, the kit's filtered-tree cache warm
    cold: Timing  # `**/` rules, that cache emptied before each call
    # The CPU time (user + system) of each call and the git processes it ran, by label: on
    # a machine shared with other work it varies far less than the wall time.
    cpu: dict[str, Timing] = field(default_factory=dict)


def plain_range(repo: Path, env: dict[str, str]) -> tuple[str, str]:
    """HEAD~1 and HEAD again on top of HEAD~2, with a .dockerignore without `**/` lines."""
    plain = "".join(line + "\n" for line in DOCKERIGNORE.splitlines() if not line.startswith("**/"))

    def git(*args: str, stdin: str | None = None, extra: dict[str, str] | None = None) -> str:
        proc = subprocess.run(
            ["git", *args],
            cwd=repo,
            env={**env, **(extra or {})},
            input=stdin,
            capture_output=True,
            text=True,
            check=True,
        )
        return proc.stdout.strip()

    blob = git("hash-object", "-w", "--stdin", stdin=plain)
    parent = git("rev-parse", "HEAD~2")
    index = {"GIT_INDEX_FILE": str(repo / ".git" / "bench-plain-index")}
    for rev in ("HEAD~1", "HEAD"):
        git("read-tree", rev, extra=index)
        git("update-index", "--cacheinfo", f"100644,{blob},.dockerignore", extra=index)
        tree = git("write-tree", extra=index)
        parent = git("commit-tree", tree, "-p", parent, "-m", f"{rev}, plain .dockerignore")
    return git("rev-parse", f"{parent}~1"), parent


def measure_patterns(
    repo: RepoInfo, cli: Path, runs: int, warmup: int, cache: Path
) -> PatternResult:
    env = {**bench_env(), "XDG_CACHE_HOME": str(cache)}
    base, head = plain_range(repo.path, env)
    plain_argv = (str(cli), "detect", "--base", base, "--head", head, "--format", "json")
    detect_argv = (str(cli), *DETECT_ARGS)
    result = PatternResult(
        Timing("no `**/` rules (baseline)"),
        Timing("`**/` rules, cache warm"),
        Timing("`**/` rules, cache empty"),
    )
    filtered = cache / "pipeline-kit" / "filtered-trees"
    series = (
        (result.baseline, plain_argv, False),
        (result.warm, detect_argv, False),
        (result.cold, detect_argv, True),
    )
    for round_no in range(warmup + runs):
        for timing, argv, empty_cache in series:
            if empty_cache:
                shutil.rmtree(filtered, ignore_errors=True)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            seconds, proc = timed_run(argv, repo.path, env)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            problems = [] if proc.returncode != 0 else check_detect_json(proc.stdout)
            if proc.returncode != 0 or problems:
                raise CliFailure(
                    f"{timing.label}, round {round_no + 1}: "
                    + describe_failure(argv, proc, problems)
                )
            if round_no >= warmup:
                timing.samples.append(seconds)
                result.cpu.setdefault(timing.label, Timing(timing.label)).samples.append(cpu)
    return result


def print_patterns(result: PatternResult, repo: RepoInfo) -> bool:
    base = result.baseline
    print(f"\nIgnore rules that reach everywhere ({repo.files:,} files, `COPY app/`):")
    base_cpu = result.cpu[base.label]
    for timing in (base, result.warm, result.cold):
        ratio = timing.median / base.median
        cpu = result.cpu[timing.label]
        print(
            f"  {timing.label:<28} wall median {ms(timing.median)}   min {ms(timing.min)}   "
            f"ratio {ratio:5.2f}x │ CPU median {ms(cpu.median)}   "
            f"ratio {cpu.median / base_cpu.median:5.2f}x"
        )
    warm_ok = result.warm.median < GOAL_SECONDS
    ratio_ok = result.warm.median / base.median <= PATTERN_GOAL_RATIO
    print(
        f"  [{'HOLDS' if warm_ok else 'MISSED'}] with `**/` rules, the whole call under "
        f"{GOAL_SECONDS * 1000:.0f} ms: median {result.warm.median * 1000:.1f} ms"
    )
    print(
        f"  [{'HOLDS' if ratio_ok else 'MISSED'}] with `**/` rules, wall time within "
        f"{(PATTERN_GOAL_RATIO - 1) * 100:.0f}% of the baseline: "
        f"{result.warm.median / base.median:.2f}x "
        f"(cache empty: {result.cold.median / base.median:.2f}x)"
    )
    return warm_ok and ratio_ok


def measure_and_print_patterns(
    repo: RepoInfo, cli: Path, args: argparse.Namespace, cache: Path
) -> int:
    try:
        patterns = measure_patterns(repo, cli, args.runs, args.warmup, cache)
    except CliFailure as exc:
        print(f"\nFAIL: {exc}", file=sys.stderr)
        return 1
    print_patterns(patterns, repo)
    return 0


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
    parser.add_argument(
        "--patterns-only",
        action="store_true",
        help="only the full repository with and without `**/` rules",
    )
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
        sizes = [("full", args.files, args.commits), ("small", small_files, small_commits)]
        for name, files, commits in sizes[:1] if args.patterns_only else sizes:
            info = generate_repo(tmp / name, files, commits, args.seed)
            repos[name] = info
            print(
                f"  {name:<6} {info.files:>8,} files {info.commits:>6,} commits in "
                f"{info.seconds:6.2f} s  (last change: {info.last_change})"
            )

        if args.patterns_only:
            return measure_and_print_patterns(repos["full"], cli, args, tmp / "cache")
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
        return measure_and_print_patterns(repos["full"], cli, args, tmp / "cache")
    finally:
        if args.keep:
            print(f"\nKept the repositories: {tmp / 'full'}  {tmp / 'small'}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

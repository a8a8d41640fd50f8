"""Benchmark: the kit against the builders on an image of an LLM server's real size.

bench/code_change.py measures one code change on a busybox image with one deps layer of random
bytes in one file. Real serving images are 6 to 28 GB: a CUDA runtime base of several GB, a
site-packages of tens of thousands of files, then the application. This benchmark builds such
an image here, without downloads, and measures what a team waits for on each kind of commit:

  base  the mmdebstrap Debian root with python3 (scripts/test-images caches it), pushed to a
        docker-registry on loopback that this script starts, plus a RUN that writes
        ``--base-mib`` (default 3072) of shared-library-like files (about 400, 64 KiB to a few
        hundred MiB, half of each block random: they compress about 2:1, as .so files do);
  deps  ``COPY requirements.txt`` and a RUN that installs it: ``--deps-mib`` (default 3072) in
        ``--deps-files`` (default 50,000) files under site-packages, 40 packages with their
        .dist-info, most files 1 to 32 KiB, 4% large extension modules; a package's files
        follow from its name and version, so a changed pin changes that package;
  code  ``WORKDIR /app``, ``COPY --link app/ /app/`` (about 4 MB of Python), ``CMD``.

Commits, in this order, each measured for every column: the cold build (the first, from empty
caches), ``--runs`` code-only changes (one file under app/), a docs-only change (README.md,
which no instruction takes), a one-package deps change (one pin in requirements.txt).

Columns:

  kit       ``pipeline-kit build``, the whole CLI call, choosing the way itself: append for a
            code change, retag for docs, BuildKit (a fresh buildkitd, the kit's registry cache)
            for the cold build and the deps change;
  BuildKit  ``buildctl build`` with the kit's own argv (``COPY --link``, ``type=registry``
            cache of its own, ``mode=max``), a fresh buildkitd per build, as on a fresh runner;
  Kaniko    the kit's Kaniko plan, ``--cache=true`` with a cache of its own, the executor run in
            the tests' sandbox (tests/support/services/kaniko.py, the only way it starts here);
  buildah   ``pipeline-kit build --strategy builder`` with buildah (``--layers``, the remote
            cache), the plain-``COPY`` twin of the Dockerfile (buildah 1.28 rejects ``--link``),
            from an empty local store, as on a fresh runner, on overlay storage where this
            machine mounts it (vfs copies each layer whole: over 30 GB for one build here);
  floor     (code changes only) a minimal uploader of the code layer, its config and one
            manifest, bench/code_change.py's.

Each column publishes into its own repository, and every reported digest is checked against
the one the registry serves. Peak memory is the largest resident set of the column's process
tree (``wait4``'s rusage): the kit's CLI with what it starts; buildkitd's own high-water mark
(``VmHWM``) and buildctl's; the Kaniko executor's; buildah's under the kit.

Goals (reported, not asserted): the kit's code-only change at least as fast as BuildKit's
``--link`` and 30x faster than Kaniko; the kit's peak memory under 200 MB; its code-only time
within 2x of the floor. The load average is printed at the start and the end.

Run (an hour or more at the default size; needs about 50 GB of free disk; root, buildah,
docker-registry, skopeo: scripts/system-packages; the base: scripts/test-images):

    KANIKO_EXECUTOR=../shared/bin/kaniko/executor BUILDKIT_BIN=../shared/bin \\
        .venv/bin/python bench/realistic.py
    .venv/bin/python bench/realistic.py --base-mib 64 --deps-mib 64 --deps-files 2000 --runs 1
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests.support

from _synthrepo import CliFailure, bench_env, describe_failure, resolve_cli
from code_change import (
    KanikoColumn,
    Registry,
    Series,
    _git,
    _remove,
    check_digest,
    find_executors,
    floor_run,
    fresh_buildkitd,
)

from tests.support.example_image import BASE_TAR, fast_storage_driver, push_base, remove_storage

COLUMNS = ("kit", "buildkit", "kaniko", "buildah", "floor")
LABELS = {
    "kit": "kit (its own choice)",
    "buildkit": "BuildKit COPY --link",
    "kaniko": "Kaniko --cache=true",
    "buildah": "buildah, empty store",
    "floor": "floor (code layer)",
}
SCENARIOS = ("cold", "code", "docs", "deps")
PACKAGES = 40
MEMORY_GOAL_MIB = 200
KANIKO_GOAL = 30.0
FLOOR_LIMIT = 2.0

DOCKERFILE = """\
FROM {base} AS base
COPY gen.py /opt/gen.py
RUN python3 /opt/gen.py libs /usr/local/cuda/lib64 {base_mib}

FROM base AS deps
COPY requirements.txt /opt/requirements.txt
RUN python3 /opt/gen.py packages /usr/local/lib/python3.11/site-packages {deps_mib} \
{deps_files} /opt/requirements.txt

FROM deps AS code
WORKDIR /app
COPY {link}app/ /app/
CMD ["python3", "-m", "app"]
"""

# What the RUN steps run: deterministic files, so the same inputs give the same layer content.
GENERATOR = '''\
"""Files shaped like a CUDA runtime's libraries or a site-packages, from a name and a size."""
import random, sys
from pathlib import Path

BLOCK = 1 << 16


def write(path, size, seed):
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        left = size
        while left > 0:
            n = min(BLOCK, left)
            half = n // 2
            out.write(rng.randbytes(half) + bytes(n - half))  # about 2:1 under gzip
            left -= n


def spread(total, count, low, high, rng):
    """count sizes between low and high (log-uniform), scaled to add up to total."""
    raw = [low * (high / low) ** rng.random() for _ in range(count)]
    scale = total / sum(raw)
    return [max(1, int(x * scale)) for x in raw]


mode, root = sys.argv[1], Path(sys.argv[2])
mib = int(sys.argv[3])
total = mib << 20
if mode == "libs":
    count = max(4, mib // 8)
    rng = random.Random("libs")
    for i, size in enumerate(spread(total, count, 1 << 16, max(1 << 17, total // 8), rng)):
        write(root / f"libcuda_like_{i:04d}.so.12", size, f"lib{i}")
else:
    files, requirements = int(sys.argv[4]), Path(sys.argv[5]).read_text().split()
    rng = random.Random("packages")
    large = max(1, files * 4 // 100)
    small_sizes = [int(1024 * 32 ** rng.random()) for _ in range(files - large)]
    large_total = max(total - sum(small_sizes), large)
    sizes = small_sizes + spread(large_total, large, 1 << 20, max(1 << 21, total // 20), rng)
    for i, size in enumerate(sizes):
        pin = requirements[i % len(requirements)]
        name, _, version = pin.partition("==")
        suffix = ".so" if i >= files - large else ".py"
        write(root / name / f"mod_{i:05d}{suffix}", size, f"{pin}/{i}")
    for pin in requirements:
        name, _, version = pin.partition("==")
        info = root / f"{name}-{version}.dist-info"
        info.mkdir(parents=True, exist_ok=True)
        meta = f"Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n"
        (info / "METADATA").write_text(meta)
'''


@dataclass
class Cell:
    seconds: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    note: str = ""

    def add(self, seconds: float, rss_kib: int | None) -> None:
        self.seconds.append(seconds)
        if rss_kib:
            self.rss_kib.append(rss_kib)

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None


@dataclass
class Results:
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)

    def __getitem__(self, key: tuple[str, str]) -> Cell:
        return self.cells.setdefault(key, Cell())


# -- the repository ------------------------------------------------------------------------


def make_repo(path: Path, host: str, base: str, args: argparse.Namespace) -> Path:
    shape = {"base": base, "base_mib": args.base_mib, "deps_mib": args.deps_mib,
             "deps_files": args.deps_files}  # fmt: skip
    (path / "ci").mkdir(parents=True)
    (path / "Dockerfile").write_text(DOCKERFILE.format(link="--link ", **shape))
    (path / "ci" / "Dockerfile.plain").write_text(DOCKERFILE.format(link="", **shape))
    (path / ".dockerignore").write_text("ci/\nREADME.md\n")
    (path / "gen.py").write_text(GENERATOR)
    (path / "README.md").write_text("# An LLM server\n")
    (path / "requirements.txt").write_text(
        "".join(f"package{i:02d}==1.0.0\n" for i in range(PACKAGES))
    )
    app = path / "app"
    app.mkdir()
    (app / "__main__.py").write_text("print('serving')\n")
    line = "def handler_{n}(request):\n    return {{'id': {n}, 'text': request['prompt'][:64]}}\n\n"
    for module in range(200):  # about 4 MB of Python, as a server's own code is
        (app / f"module_{module:03d}.py").write_text(
            "".join(line.format(n=n) for n in range(module * 250, module * 250 + 250))
        )
    image = f"{host}/bench/llm"
    store = path.parent / "buildah-store"
    (path / "pipeline-kit.yaml").write_text(f"image: {image}\nbuild: {{builder: buildkit}}\n")
    (path / "ci" / "buildah.yaml").write_text(
        f"image: {image}-buildah\ndockerfile: Dockerfile.plain\ncontext: ..\n"
        f"build: {{builder: buildah, buildah: {{storage_driver: {fast_storage_driver()}, "
        f"root: {store}/root, runroot: {store}/run}}}}\n"
    )
    (path / "ci" / "kaniko.yaml").write_text(
        f"image: {image}-kaniko\ndockerfile: ../Dockerfile\ncontext: ..\n"
        "build: {builder: kaniko}\n"
    )
    _git(path, "init", "-q", "-b", "main")
    _git(path, "add", "-A")
    _git(path, "commit", "-qm", "service")
    return path


def change(repo: Path, scenario: str, number: int) -> None:
    if scenario == "code":
        (repo / "app" / "__main__.py").write_text(f"print('serving', {number})\n")
    elif scenario == "docs":
        (repo / "README.md").write_text(f"# An LLM server\n\nRevision {number}.\n")
    elif scenario == "deps":
        pins = (
            (repo / "requirements.txt")
            .read_text()
            .replace("package07==1.0.0", f"package07==1.0.{number}")
        )
        (repo / "requirements.txt").write_text(pins)
    _git(repo, "commit", "-qam", f"{scenario} change {number}")


# -- the columns ---------------------------------------------------------------------------


def timed_with_rss(
    argv: Sequence[str], cwd: Path, env: dict[str, str]
) -> tuple[float, int, subprocess.CompletedProcess[bytes]]:
    """(wall seconds, peak RSS of the process tree in KiB, result), through GNU time."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        start = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", rss.name, *argv],
            cwd=cwd, env=env, capture_output=True, check=False,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        text = Path(rss.name).read_text().split()
    return seconds, int(text[-1]) if text else 0, proc


def kit_build(
    cli: Path, repo: Path, env: dict[str, str], *args: str
) -> tuple[float, int, dict[str, Any]]:
    argv = [str(cli), *args, "--format", "json"]
    seconds, rss, proc = timed_with_rss(argv, repo, env)
    if proc.returncode != 0:
        raise CliFailure(describe_failure(argv, proc))
    record: dict[str, Any] = json.loads(proc.stdout)
    return seconds, rss, record


def repository_of(record: dict[str, Any]) -> str:
    return str(record["image"]).split("/", 1)[1]


def buildkit_column(
    bin_dir: Path, registry: Registry, repo: Path, work: Path, tag: str
) -> tuple[float, int]:
    """One ``buildctl build`` with the kit's argv, a fresh daemon: (seconds, peak RSS KiB)."""
    from pipeline_kit.build.builders.base import BuildRequest
    from pipeline_kit.build.builders.buildkit import buildctl_argv, read_metadata_digest

    image = f"{registry.host}/bench/llm-buildkit"
    request = BuildRequest(
        image=image,
        dockerfile=repo / "Dockerfile",
        context=repo,
        target=None,
        build_args={},
        labels={},
        tags=(tag,),
        cache_repo=f"{image}/cache",
        cache_ttl="336h0m0s",
        insecure_hosts=frozenset({registry.host}),
    )
    metadata = work / "buildkit-metadata.json"
    argv = buildctl_argv(request, metadata)
    with fresh_buildkitd(bin_dir, work) as daemon:
        seconds, rss, proc = timed_with_rss(argv, repo, {**bench_env(), **daemon.env})
        daemon_rss = _high_water_kib(daemon.process.pid) if daemon.process else 0
    if proc.returncode != 0:
        raise CliFailure(describe_failure(argv, proc))
    check_digest(registry, "bench/llm-buildkit", tag, read_metadata_digest(metadata), "BuildKit")
    return seconds, max(rss, daemon_rss)


def _high_water_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def in_child(call: Callable[[], tuple[float, dict[str, Any]]]) -> tuple[float, int, dict[str, Any]]:
    """``call()`` in a forked process: (its seconds, the peak RSS of what it started, record)."""
    import resource

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own count of children's rusage, starting from nothing
        os.close(read)
        try:
            seconds, record = call()
            answer: Any = (seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, record)
        except BaseException as exc:
            answer = CliFailure(f"{type(exc).__name__}: {exc}")
        with os.fdopen(write, "wb") as out:
            pickle.dump(answer, out)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as into:
        answer = pickle.load(into)
    os.waitpid(pid, 0)
    if isinstance(answer, CliFailure):
        raise answer
    seconds, rss, record = answer
    return float(seconds), int(rss), dict(record)


# -- the run -------------------------------------------------------------------------------


def run(cli: Path, work: Path, args: argparse.Namespace, executors: Any, results: Results) -> None:
    """Every commit for every column, into ``results`` as each is measured."""
    env = {**bench_env(), "PYTHONPYCACHEPREFIX": str(work / "pycache"),
           "XDG_CACHE_HOME": str(work / "cache")}  # fmt: skip
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    registry = Registry(work / "registry")
    try:
        base = push_base(work, _Target(registry.host), "bench/bookworm:base")
        repo = make_repo(work / "repo", registry.host, base, args)
        kaniko = KanikoColumn(executors.kaniko, work / "kaniko") if executors.kaniko else None
        number = 0
        plan = [("cold", 0)] + [("code", n) for n in range(1, args.runs + 1)]
        plan += [("docs", args.runs + 1), ("deps", args.runs + 2)]
        for scenario, number in plan:
            if scenario != "cold":
                change(repo, scenario, number)
            print(f"\n{scenario} (commit {number}):", flush=True)
            measure_commit(cli, registry, repo, work, env, kaniko, executors, results,
                           scenario, number, args)  # fmt: skip
    finally:
        registry.stop()


def measure_commit(
    cli: Path,
    registry: Registry,
    repo: Path,
    work: Path,
    env: dict[str, str],
    kaniko: KanikoColumn | None,
    executors: Any,
    results: Results,
    scenario: str,
    number: int,
    args: argparse.Namespace,
) -> None:
    builders_run = scenario != "code" or number <= args.builder_runs
    # the kit: its own choice; BuildKit under it where it builds (a fresh daemon)
    with fresh_buildkitd(executors.buildkit, work) as daemon:
        seconds, rss, record = kit_build(cli, repo, {**env, **daemon.env}, "build")
        if record["strategy"] == "builder" and daemon.process:  # BuildKit's memory is the kit's
            rss = max(rss, _high_water_kib(daemon.process.pid))
    expected = {"cold": "builder", "code": "append", "docs": "retag", "deps": "builder"}
    if record["strategy"] != expected[scenario]:
        raise CliFailure(f"the kit chose {record['strategy']} for a {scenario} change: {record}")
    check_digest(registry, repository_of(record), record["tags"][0], record["digest"], "kit")
    results["kit", scenario].add(seconds, rss)
    results["kit", scenario].note = record["strategy"]
    line = f"  kit ({record['strategy']}) {seconds:.2f} s, {rss / 1024:.0f} MiB"
    if scenario == "code":
        series = Series("floor")
        floor_run(registry, work, env, record, series, 1)
        results["floor", scenario].add(series.seconds[0], None)
        line += f"; floor {series.seconds[0]:.3f} s"
    print(line, flush=True)
    if not builders_run:
        return
    tag = f"run-{number}"
    if executors.buildkit is not None:
        seconds, rss = buildkit_column(executors.buildkit, registry, repo, work, tag)
        results["buildkit", scenario].add(seconds, rss)
        print(f"  BuildKit {seconds:.1f} s, {rss / 1024:.0f} MiB", flush=True)
    if kaniko is not None:
        column = kaniko
        config = repo / "ci" / "kaniko.yaml"

        def kaniko_build() -> tuple[float, dict[str, Any]]:
            seconds, _, record = column.build(registry, repo, config, "bench/llm-kaniko")
            return seconds, record

        seconds, rss, _ = in_child(kaniko_build)
        results["kaniko", scenario].add(seconds, rss)
        print(f"  Kaniko {seconds:.1f} s, {rss / 1024:.0f} MiB", flush=True)
    if "buildah" not in executors.skipped:
        buildah = ("--config", "ci/buildah.yaml", "build", "--strategy", "builder")
        try:
            seconds, rss, built = kit_build(cli, repo, env, *buildah)
        finally:
            remove_storage(repo.parent / "buildah-store")  # the next run: a fresh runner
        check_digest(registry, repository_of(built), built["tags"][0], built["digest"], "buildah")
        results["buildah", scenario].add(seconds, rss)
        print(f"  buildah {seconds:.1f} s, {rss / 1024:.0f} MiB", flush=True)


class _Target:
    """What ``push_base`` needs of a registry: its host, and whether an image is there."""

    def __init__(self, host: str) -> None:
        self.host = host

    def has_manifest(self, repository: str, reference: str) -> bool:
        return False


# -- report --------------------------------------------------------------------------------


def report(results: Results, args: argparse.Namespace) -> None:
    size = f"base {args.base_mib} MiB + deps {args.deps_mib} MiB in {args.deps_files} files"
    print(f"\n  {size}; medians, seconds (runs) and peak RSS, MiB")
    print(f"  {'commit':<8}" + "".join(f"{LABELS[c]:>26}" for c in COLUMNS))
    for scenario in SCENARIOS:
        row = f"  {scenario:<8}"
        for column in COLUMNS:
            cell = results[column, scenario]
            if cell.median is None:
                row += f"{'-':>26}"
                continue
            rss = f", {max(cell.rss_kib) / 1024:.0f} MiB" if cell.rss_kib else ""
            row += f"{f'{cell.median:.2f} ({len(cell.seconds)}){rss}':>26}"
        print(row)
    print("\n  how many times the kit is faster, per commit:")
    for scenario in SCENARIOS:
        kit = results["kit", scenario].median
        ratios = []
        for column in ("buildkit", "kaniko", "buildah"):
            other = results[column, scenario].median
            if kit and other:
                ratios.append(f"{LABELS[column]} {other / kit:.1f}x")
        print(f"  {scenario:<8}" + "; ".join(ratios))
    code = results["kit", "code"]
    goals = [
        (_over(results, "buildkit"), 1.0, "code-only: at least as fast as BuildKit COPY --link"),
        (_over(results, "kaniko"), KANIKO_GOAL, f"code-only: {KANIKO_GOAL:g}x Kaniko"),
    ]
    print()
    for ratio, goal, text in goals:
        if ratio is not None:
            print(f"  {'HOLD' if ratio >= goal else 'MISS'}  {text}: {ratio:.1f}x")
    floor = results["floor", "code"].median
    if floor and code.median:
        ok = code.median <= FLOOR_LIMIT * floor
        print(f"  {'HOLD' if ok else 'MISS'}  code-only within {FLOOR_LIMIT:g}x of the floor: "
              f"{code.median / floor:.2f}x")  # fmt: skip
    peak = max(max(results["kit", s].rss_kib, default=0) for s in ("code", "docs")) / 1024
    print(f"  {'HOLD' if peak < MEMORY_GOAL_MIB else 'MISS'}  the kit's peak RSS for a code or "
          f"docs change under {MEMORY_GOAL_MIB} MB: {peak:.0f} MiB")  # fmt: skip


def _over(results: Results, column: str) -> float | None:
    kit, other = results["kit", "code"].median, results[column, "code"].median
    return other / kit if kit and other else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-mib", type=int, default=3072)
    parser.add_argument("--deps-mib", type=int, default=3072)
    parser.add_argument("--deps-files", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3, help="code-only commits (the kit's runs)")
    parser.add_argument("--builder-runs", type=int, default=1,
                        help="code-only commits the builders build too")  # fmt: skip
    parser.add_argument("--skip", default="", help="columns to leave out: kaniko,buildah")
    parser.add_argument("--buildkit-bin", default=os.environ.get("BUILDKIT_BIN"))
    parser.add_argument("--kaniko-executor", default=os.environ.get("KANIKO_EXECUTOR"))
    parser.add_argument("--cli", help="pipeline-kit executable (default: next to python)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args(argv)
    args.skip = [s for s in args.skip.split(",") if s]
    if not 1 <= args.builder_runs <= args.runs or args.deps_files < PACKAGES * 2:
        parser.error("need 1 <= --builder-runs <= --runs and --deps-files >= 80")
    if not BASE_TAR.is_file():
        raise SystemExit(f"no {BASE_TAR}: run scripts/test-images first")
    executors = find_executors(args)
    if executors.buildkit is None:
        raise SystemExit(f"the kit's cold build runs BuildKit: {executors.skipped['buildkit']}")
    cli = resolve_cli(args.cli)
    print("pipeline-kit at a realistic size: the kit against BuildKit, Kaniko and buildah")
    print(f"  cli: {cli}; python {platform.python_version()}; {os.cpu_count()} CPUs")
    for column, why in executors.skipped.items():
        print(f"  {column}: skipped ({why})")
    print(f"  load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    work = Path(tempfile.mkdtemp(prefix="pk-bench-real-", dir=os.environ.get("TMPDIR")))
    results, failure = Results(), None
    try:
        run(cli, work, args, executors, results)
    except CliFailure as exc:
        failure = exc
    finally:
        if args.keep:
            print(f"\nKept {work}")
        else:
            _remove(work)
    report(results, args)  # what was measured, a failed run's too
    print(f"\n  load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if failure is not None:
        print(f"\nFAIL (the table holds what ran before it): {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

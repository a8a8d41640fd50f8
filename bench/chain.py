"""Benchmark: from a code commit to a gated, promoted digest, step by step.

The bundled example service (examples/llm-service, built offline as the tests build it: the
mmdebstrap base and the wheelhouse that scripts/test-images downloads once) goes through the
chain a CI pipeline runs for a one-line code change, each step a whole CLI call against a
docker-registry on loopback that this script starts:

  detect   `pipeline-kit detect` (HEAD~1..HEAD)
  build    `pipeline-kit build`: append (the kit), or `--strategy builder` with buildah and its
           warm local store (`--layers`), as a team without the kit rebuilds
  preview  `pipeline-kit preview run` on the local provider: podman pulls the digest (only the
           layers its store lacks: the previous run's are there, as on a kept runner), runs it
           with the trained weights, the smoke gate judges it, the preview is removed; its record
           splits it into up, gate (the model's own load time included: the gate's readiness
           case says how much) and down
  promote  `pipeline-kit promote IMAGE@DIGEST stable`

Columns: the kit with podman's vfs storage (every layer a full copy, as the tests and the demo
run it), the kit with overlay storage (layers shared, nothing copied), then each builder's
rebuild (``--strategy builder``) with overlay: buildah with its warm local store, BuildKit with
one buildkitd kept through the column (its local cache warm, as on a kept runner), Kaniko with
``--cache=true`` (the kit's plan in process, the executor in the tests' sandbox,
tests/support/services/kaniko.py, the only way it starts here). The deps stage installs from
wheels copied into the build context (BuildKit and Kaniko mount nothing), the same for every
column. Every build record is checked (strategy and builder); the preview pulls the digest from
the registry. One warm-up chain per column fills the podman store (and the builder's cache) and
is not counted. Medians of --runs. ``--skip buildkit,kaniko`` leaves builders out; a builder
whose executable is missing (BUILDKIT_BIN, KANIKO_EXECUTOR, as for bench/code_change.py) is
left out and the output says so.

At a real LLM image's size: ``--base-mib``, ``--deps-mib`` and ``--deps-files`` add to the
example's base stage shared-library-like files and to its deps stage a site-packages-like tree
(bench/realistic.py's generator, deterministic), so the layers below the code change weigh what
a CUDA base and a torch install do. buildah then builds on overlay storage too (vfs would copy
every layer whole at each step), and the warm-up chain of each column pulls the whole image.

Run (takes minutes, and half an hour or more with 6 GiB of ballast; root, podman, runc,
buildah, docker-registry: scripts/system-packages; the test images: scripts/test-images):

    KANIKO_EXECUTOR=../shared/bin/kaniko/executor BUILDKIT_BIN=../shared/bin \\
        .venv/bin/python bench/chain.py --runs 3
    .venv/bin/python bench/chain.py --runs 3 --base-mib 3072 --deps-mib 3072 --deps-files 50000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests.support

from _synthrepo import CliFailure, bench_env, describe_failure, resolve_cli, timed_run
from code_change import KanikoColumn, find_executors, fresh_buildkitd
from realistic import GENERATOR

from tests.support.example_image import (
    WHEELHOUSE,
    fast_storage_driver,
    prepare_example,
    remove_storage,
)
from tests.support.services.registry import running_registry

STEPS = ("detect", "build", "up", "gate", "down", "promote")
# (label, builder: None for the kit's own append, podman's storage driver for the preview)
COLUMNS = (("kit, vfs", None, "vfs"), ("kit, overlay", None, "overlay"),
           ("buildah, overlay", "buildah", "overlay"), ("BuildKit, overlay", "buildkit", "overlay"),
           ("Kaniko, overlay", "kaniko", "overlay"))  # fmt: skip
Build = Callable[[], tuple[float, dict[str, Any]]]


def cli_json(
    cli: Path, cwd: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[float, dict[str, Any]]:
    argv = [str(cli), *args, "--format", "json"]
    seconds, proc = timed_run(argv, cwd, {**bench_env(), **(env or {})})
    if proc.returncode != 0:
        raise CliFailure(describe_failure(argv, proc))
    record: dict[str, Any] = json.loads(proc.stdout)
    return seconds, record


def code_change(repo: Path, number: int) -> None:
    app = repo / "server" / "app.py"
    app.write_text(app.read_text() + f"# change {number}\n")
    for args in (["add", "-A"], ["commit", "-qm", f"change {number}"]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env=bench_env())


def preview_config(repo: Path, work: Path, base_config: str, driver: str, runroot: Path) -> Path:
    """The example's config with podman on ``driver`` in a store of its own."""
    old = f"    storage_driver: vfs\n    root: {work}/podman/root"
    new = f"    storage_driver: {driver}\n    root: {work}/podman-{driver}"
    text = base_config.replace(old, new)
    text = text.replace(f"runroot: {runroot}\n", f"runroot: {runroot}-{driver}\n")
    # Read from the checkout (the kit takes a config from a git repository), ignored by git.
    folder = repo / ".bench"
    folder.mkdir(exist_ok=True)
    with (repo / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write("/.bench/\n")
    path = folder / f"preview-{driver}.yaml"
    path.write_text(text)
    return path


def wheels_in_context(repo: Path) -> None:
    """The deps stage installs from wheels in the build context, not a buildah volume: BuildKit
    and Kaniko mount nothing into a RUN. The ``# syntax=`` line goes (BuildKit would pull that
    frontend image from Docker Hub; its built-in Dockerfile frontend builds the same). Committed."""
    shutil.copytree(WHEELHOUSE, repo / "wheels")
    dockerfile = repo / "Dockerfile"
    text = dockerfile.read_text()
    syntax = "# syntax=docker/dockerfile:1\n"
    if text.startswith(syntax):
        text = text[len(syntax) :]
    copy = "COPY requirements.txt /tmp/requirements.txt\n"
    if copy not in text:
        raise CliFailure(f"the example's Dockerfile has no line {copy.strip()!r}")
    wheels = "COPY wheels/ /wheels/\nENV PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels\n"
    dockerfile.write_text(text.replace(copy, copy + wheels))
    for git in (["add", "-A"], ["commit", "-qm", "wheels in the context"]):
        subprocess.run(["git", *git], cwd=repo, check=True, capture_output=True, env=bench_env())


def builder_config(repo: Path, base_config: str, builder: str) -> Path:
    """The repository's config with ``builder``, beside the preview configs (not committed)."""
    if "  builder: buildah\n" not in base_config:
        raise CliFailure("the example's config does not name buildah as its builder")
    text = base_config.replace("  builder: buildah\n", f"  builder: {builder}\n")
    path = repo / ".bench" / f"build-{builder}.yaml"
    path.write_text(f"dockerfile: ../Dockerfile\ncontext: ..\n{text}")
    return path


@contextlib.contextmanager
def builds(
    builder: str | None, cli: Path, repo: Path, work: Path, base_config: str, executors: Any
) -> Iterator[Build]:
    """How a column builds a commit: a call giving (seconds, the build record)."""
    if builder is None:
        yield lambda: cli_json(cli, repo, "build")
    elif builder == "buildah":
        yield lambda: cli_json(cli, repo, "build", "--strategy", "builder")
    elif builder == "buildkit":
        config = str(builder_config(repo, base_config, builder))
        with fresh_buildkitd(executors.buildkit, work) as daemon:
            yield lambda: cli_json(cli, repo, "--config", config, "build", "--strategy",
                                   "builder", env=daemon.env)  # fmt: skip
    else:
        config_path = builder_config(repo, base_config, builder)
        kaniko = KanikoColumn(executors.kaniko, work / "kaniko")

        def in_sandbox() -> tuple[float, dict[str, Any]]:
            start = time.perf_counter()
            record = kaniko.run(repo, config_path)
            return time.perf_counter() - start, record

        yield in_sandbox


def add_ballast(repo: Path, work: Path, args: argparse.Namespace) -> None:
    """The example at a real image's size: generated files in its base and deps stages, and
    buildah on overlay storage (see the module's docstring); committed."""
    (repo / "ballast.py").write_text(GENERATOR)
    dockerfile = repo / "Dockerfile"
    text = dockerfile.read_text()
    base_end = "\nFROM base AS deps\n"
    libs = (
        "COPY ballast.py /opt/ballast.py\n"
        f"RUN python3 /opt/ballast.py libs /usr/local/lib/cuda-like {args.base_mib}\n"
    )
    deps_end = "\nFROM deps AS code\n"
    packages = (
        "RUN python3 /opt/ballast.py packages /opt/venv/lib/site-like "
        f"{args.deps_mib} {args.deps_files} /tmp/requirements.txt\n"
    )
    if base_end not in text or deps_end not in text:
        raise CliFailure("the example's Dockerfile has no base, deps and code stages")
    text = text.replace(base_end, f"{libs}{base_end}").replace(deps_end, f"{packages}{deps_end}")
    dockerfile.write_text(text)
    config = repo / "pipeline-kit.yaml"
    driver = fast_storage_driver()
    old = f"    storage_driver: vfs\n    root: {work}/build/root"
    if old not in config.read_text():
        raise CliFailure("the example's config has no vfs buildah storage to replace")
    config.write_text(
        config.read_text().replace(
            old, f"    storage_driver: {driver}\n    root: {work}/build/root"
        )
    )
    for git in (["add", "-A"], ["commit", "-qm", "ballast"]):
        subprocess.run(["git", *git], cwd=repo, check=True, capture_output=True, env=bench_env())


def remove_store(work: Path, runroot: Path, driver: str) -> None:
    """Podman's store for ``driver`` removed, with its images and containers."""
    store = ["podman", f"--storage-driver={driver}", f"--root={work}/podman-{driver}",
             f"--runroot={runroot}-{driver}"]  # fmt: skip
    subprocess.run([*store, "system", "reset", "--force"], capture_output=True, check=False)
    remove_storage(Path(f"{runroot}-{driver}"))
    remove_storage(work / f"podman-{driver}")


def chain(
    cli: Path,
    repo: Path,
    image: str,
    weights: Path,
    build: Build,
    builder: str | None,
    config: Path,
    number: int,
) -> dict[str, float]:
    code_change(repo, number)
    times: dict[str, float] = {}
    times["detect"], _ = cli_json(cli, repo, "detect")
    times["build"], record = build()
    expected = ("append", None) if builder is None else ("builder", builder)
    if (record["strategy"], record.get("builder")) != expected:
        raise CliFailure(f"expected {expected}, got {record['strategy']} {record.get('builder')}: "
                         f"{record['reason']}")  # fmt: skip
    digest = record["digest"]
    _, run = cli_json(cli, repo, "--config", str(config), "preview", "run",
                      "--image", f"{image}@{digest}", "--weights", str(weights))  # fmt: skip
    if not run["passed"]:
        raise CliFailure(f"the gate failed: {run['smoke']['cases']}")
    times.update({step: run["timings"][step] for step in ("up", "gate", "down")})
    ready = next(c for c in run["smoke"]["cases"] if c["name"] == "readiness")
    times["ready"] = ready["seconds"]
    times["promote"], _ = cli_json(cli, repo, "promote", f"{image}@{digest}", "stable")
    return times


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cli", help="the pipeline-kit executable (default: .venv's)")
    parser.add_argument("--base-mib", type=int, default=0, help="ballast in the base stage")
    parser.add_argument("--deps-mib", type=int, default=0, help="ballast in the deps stage")
    parser.add_argument("--deps-files", type=int, default=50_000, help="files of --deps-mib")
    parser.add_argument("--skip", default="", help="builders to leave out: buildah,buildkit,kaniko")
    parser.add_argument("--buildkit-bin", default=os.environ.get("BUILDKIT_BIN"))
    parser.add_argument("--kaniko-executor", default=os.environ.get("KANIKO_EXECUTOR"))
    args = parser.parse_args(argv)
    args.skip = [name for name in args.skip.split(",") if name]
    cli = resolve_cli(args.cli)
    executors = find_executors(args, needs_one=False)
    for name, why in executors.skipped.items():
        print(f"  {name}: left out ({why})")
    columns = [c for c in COLUMNS if c[1] is None or c[1] not in executors.skipped]
    print(f"  load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    work = Path(tempfile.mkdtemp(prefix="pk-bench-chain-"))
    runroot = Path(tempfile.mkdtemp(prefix="pk-bc-"))
    results: dict[str, list[dict[str, float]]] = {}
    try:
        with running_registry(work / "registry") as registry:
            example = prepare_example(work, runroot, registry, "bench/llm-service")
            repo = example.repo.path
            wheels_in_context(repo)
            if args.base_mib or args.deps_mib:
                add_ballast(repo, work, args)
                print(f"  ballast: base {args.base_mib} MiB, deps {args.deps_mib} MiB in "
                      f"{args.deps_files} files; buildah on {fast_storage_driver()}")  # fmt: skip
            seconds, first = cli_json(cli, repo, "build")
            print(f"  the first image, built by buildah: {seconds:.1f} s", flush=True)
            base_config = (repo / "pipeline-kit.yaml").read_text()
            number = 0
            for index, (label, builder, driver) in enumerate(columns):
                config = preview_config(repo, work, base_config, driver, runroot)
                samples = []
                with builds(builder, cli, repo, work, base_config, executors) as build:
                    for run in range(args.runs + 1):  # the first fills the store: not counted
                        number += 1
                        times = chain(cli, repo, example.repository, example.weights, build,
                                      builder, config, number)  # fmt: skip
                        if run:
                            samples.append(times)
                        shown = " ".join(f"{k} {v:.2f}" for k, v in times.items())
                        print(f"  {label}, run {run}{' (warm-up)' if not run else ''}: {shown}",
                              flush=True)  # fmt: skip
                results[label] = samples
                if all(later[2] != driver for later in columns[index + 1 :]):
                    remove_store(work, runroot, driver)  # a vfs store of 6 GiB images is 20 GB+
        assert first["digest"]
    except CliFailure as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    finally:
        for driver in ("vfs", "overlay"):
            remove_store(work, runroot, driver)
        remove_storage(work)
        remove_storage(runroot)
    header = "".join(f"{step:>9}" for step in STEPS)
    print(f"\n  {'column':<18}{header}{'total':>9}{'(ready)':>9}  medians, seconds")
    totals = {}
    for label, samples in results.items():
        medians = {k: statistics.median(s[k] for s in samples) for k in (*STEPS, "ready")}
        totals[label] = sum(medians[step] for step in STEPS)
        row = "".join(f"{medians[step]:>9.2f}" for step in STEPS)
        print(f"  {label:<18}{row}{totals[label]:>9.2f}{medians['ready']:>9.2f}")
    builders = {label: total for label, total in totals.items() if not label.startswith("kit")}
    print()
    if builders:
        fastest = min(builders, key=lambda label: builders[label])
        for label in ("kit, vfs", "kit, overlay"):
            ratio = builders[fastest] / totals[label]
            than = f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
            print(f"  {label}: {than} than the fastest builder's chain ({fastest})")
        ready = statistics.median(sample["ready"] for sample in results["kit, overlay"])
        kit = totals["kit, overlay"] - ready
        ratio = builders[fastest] / totals["kit, overlay"]
        print(
            f"  {'HOLD' if kit < 5 else 'MISS'}  the kit's chain (overlay) minus the model's "
            f"load under 5 s: {kit:.2f} s"
        )
        print(
            f"  {'HOLD' if ratio >= 10 else 'MISS'}  at least 10x faster than the fastest "
            f"builder's chain ({fastest}): {ratio:.1f}x"
        )
    print(f"\n  load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

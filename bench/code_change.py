"""Benchmark: a code-only change published by append, by buildah from an empty store, and the floor.

What is measured, for a three-stage image (busybox base; a deps stage whose RUN adds one
incompressible layer of 256 MiB, then of 1 GiB; a code stage: WORKDIR, COPY app/, CMD),
each a real build into a docker-registry on loopback that this script starts:

  (a) `pipeline-kit build --strategy builder`: buildah with `--layers` and the warm remote
      cache (`--cache-from`), from an empty local store, as on a fresh CI runner; the whole
      CLI call (bud, the OCI layout, the kit's push of what the registry lacks);
  (b) `pipeline-kit build --strategy append`: the whole CLI call, start-up included;
  floor: a minimal script, the same interpreter and HTTP library (requests), that uploads a
      layer and a config of the sizes (b) uploaded (random bytes, so the registry lacks them)
      and PUTs one manifest: the least any publisher of that change has to do (it sets one
      tag; the kit sets the build's tags, five here, each one more manifest PUT).

Every run is a new commit changing one file under app/. (b) and the floor run `--runs`
times per size, (a) `--builder-runs` times (it pulls the whole deps layer each time);
medians are reported, with bytes uploaded (blobs and manifests, as the build record
counts them). Each (b) record is checked (strategy append, one new layer, base and deps layers
kept) and each (a) record (strategy builder); a wrong answer exits 1. Python processes get a
private PYTHONPYCACHEPREFIX (bytecode written once, outside the repository), the same for
the CLI and the floor; a warm-up run of each is not counted.

Goals: (b) at least 20x faster than (a) at 1 GiB and 10x at 256 MiB; (b)'s time does not
grow with the layer size (1 GiB median within 25% of the 256 MiB one); (b) within 2x of the
floor. Missed goals are reported, not asserted. Another engineer may share the machine: the
load average is printed before and after.

Run (takes minutes; needs docker-registry, buildah, busybox: scripts/system-packages):

    .venv/bin/python bench/code_change.py
    .venv/bin/python bench/code_change.py --sizes 256,1024 --runs 7 --builder-runs 2 --keep
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthrepo import CliFailure, bench_env, describe_failure, resolve_cli, timed_run

GOALS = {256: 10.0, 1024: 20.0}  # layer MiB -> append at least this many times faster
GROWTH_LIMIT = 1.25
FLOOR_LIMIT = 2.0
BUSYBOX = Path("/usr/bin/busybox")

DOCKERFILE = """\
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]

FROM base AS deps
COPY requirements.txt /deps/requirements.txt
RUN dd if=/dev/urandom of=/deps/weights.bin bs=1M count={mib} 2>/dev/null

FROM deps AS code
WORKDIR /app
COPY app/ /app/
CMD ["/bin/sh", "-c", "cat /app/main.py"]
"""

FLOOR = """\
import hashlib, json, sys
import requests

registry, repo, layer_path, config_path = sys.argv[1:5]
session = requests.Session()
session.trust_env = False


def upload(data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = session.post(f"http://{registry}/v2/{repo}/blobs/uploads/")
    started.raise_for_status()
    location = started.headers["Location"]
    if "://" not in location:
        location = f"http://{registry}{location}"
    joiner = "&" if "?" in location else "?"
    done = session.put(
        f"{location}{joiner}digest={digest}",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    done.raise_for_status()
    return digest


layer, config = open(layer_path, "rb").read(), open(config_path, "rb").read()
manifest = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": upload(config), "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": upload(layer), "size": len(layer)}],
}
answer = session.put(
    f"http://{registry}/v2/{repo}/manifests/floor",
    data=json.dumps(manifest).encode(),
    headers={"Content-Type": manifest["mediaType"]},
)
answer.raise_for_status()
print(len(layer) + len(config) + len(answer.request.body))  # bytes sent, as the kit counts
"""


@dataclass
class Series:
    seconds: list[float] = field(default_factory=list)
    uploaded: list[int] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def bytes(self) -> int:
        return int(statistics.median(self.uploaded)) if self.uploaded else 0


@dataclass
class SizeResult:
    mib: int
    builder: Series
    append: Series
    floor: Series


class Registry:
    """docker-registry on a free loopback port, in its own directory."""

    def __init__(self, workdir: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.host = f"127.0.0.1:{sock.getsockname()[1]}"
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(workdir / "data")}},
            "http": {"addr": self.host},
        }
        workdir.mkdir(parents=True)
        (workdir / "config.yml").write_text(json.dumps(config))
        self.log = (workdir / "log").open("wb")
        self.process = subprocess.Popen(
            ["docker-registry", "serve", str(workdir / "config.yml")],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise SystemExit(
                        f"docker-registry did not start; see {workdir / 'log'}"
                    ) from None
                time.sleep(0.1)

    def manifest(self, repo: str, reference: str) -> dict[str, Any]:
        request = urllib.request.Request(
            f"http://{self.host}/v2/{repo}/manifests/{reference}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            body: dict[str, Any] = json.load(answer)
            return body

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env=bench_env())


def _storage(path: Path) -> str:
    return f"buildah: {{storage_driver: vfs, root: {path}/root, runroot: {path}/run}}"


def make_repo(path: Path, registry: Registry, mib: int) -> Path:
    (path / "app").mkdir(parents=True)
    (path / "ci").mkdir()
    shutil.copy(BUSYBOX, path / "busybox")
    (path / "Dockerfile").write_text(DOCKERFILE.format(mib=mib))
    (path / ".dockerignore").write_text("ci/\n")
    (path / "requirements.txt").write_text("torch==2.4.0\n")
    (path / "app" / "main.py").write_text("VERSION = 0\n")
    image = f"{registry.host}/bench/svc-{mib}"
    (path / "pipeline-kit.yaml").write_text(
        f"image: {image}\nbuild: {{builder: buildah, {_storage(path.parent / 'seed-store')}}}\n"
    )
    # (a)'s config: the same image and cache, a local store emptied before every run.
    (path / "ci" / "fresh-runner.yaml").write_text(
        f"image: {image}\ndockerfile: ../Dockerfile\ncontext: ..\n"
        f"cache: {{repository: {image}/cache}}\n"
        f"build: {{builder: buildah, {_storage(path.parent / 'fresh-store')}}}\n"
    )
    _git(path, "init", "-q", "-b", "main")
    _git(path, "add", "-A")
    _git(path, "commit", "-qm", "service")
    return path


def _remove(path: Path) -> None:
    if path.exists():
        subprocess.run(["chmod", "-R", "u+w", str(path)], check=False, capture_output=True)
        shutil.rmtree(path, ignore_errors=True)


def build(
    cli: Path, repo: Path, env: dict[str, str], *args: str, config: str | None = None
) -> tuple[float, dict[str, Any]]:
    """One whole `pipeline-kit build` call: (wall seconds, the build record)."""
    argv = [str(cli), *(["--config", config] if config else []), "build", "--format", "json"]
    argv += args
    seconds, proc = timed_run(argv, repo, env)
    if proc.returncode != 0:
        raise CliFailure(describe_failure(argv, proc))
    record: dict[str, Any] = json.loads(proc.stdout)
    return seconds, record


def code_change(repo: Path, number: int) -> None:
    (repo / "app" / "main.py").write_text(f"VERSION = {number}\n")
    _git(repo, "commit", "-qam", f"code change {number}")


def measure(
    cli: Path, registry: Registry, work: Path, mib: int, runs: int, builder_runs: int
) -> SizeResult:
    env = {**bench_env(), "PYTHONPYCACHEPREFIX": str(work / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    base = work / f"size-{mib}"
    repo = make_repo(base / "repo", registry, mib)
    floor_script = base / "floor.py"
    floor_script.write_text(FLOOR)
    print(f"\n{mib} MiB deps layer: first build (buildah, cold; not measured) ...", flush=True)
    seconds, cold = build(cli, repo, env)
    print(f"  cold build {seconds:.1f} s, {cold['bytes_uploaded'] / 2**20:.0f} MiB uploaded")
    result = SizeResult(mib, Series(), Series(), Series())
    repo_name = f"bench/svc-{mib}"
    for number in range(runs + 1):  # run 0 warms up (bytecode, registry) and is not counted
        code_change(repo, number + 1)
        seconds, record = build(cli, repo, env, "--strategy", "append")
        summary = record.get("append") or {}
        if record["strategy"] != "append" or summary.get("new_layers") != 1:
            raise CliFailure(f"(b) did not append one layer: {json.dumps(record)[:2000]}")
        if summary["kept_layers"] < 4:
            raise CliFailure(f"(b) kept {summary['kept_layers']} layers, not base and deps")
        manifest = registry.manifest(repo_name, record["digest"])
        layer, config = base / "floor-layer", base / "floor-config"
        layer.write_bytes(os.urandom(manifest["layers"][-1]["size"]))
        config.write_bytes(os.urandom(manifest["config"]["size"]))
        floor_argv = [sys.executable, str(floor_script), registry.host, "bench/floor"]
        floor_seconds, proc = timed_run([*floor_argv, str(layer), str(config)], base, env)
        if proc.returncode != 0:
            raise CliFailure(describe_failure(floor_argv, proc))
        if number == 0:
            continue
        result.append.seconds.append(seconds)
        result.append.uploaded.append(record["bytes_uploaded"])
        result.floor.seconds.append(floor_seconds)
        result.floor.uploaded.append(int(proc.stdout.decode().split()[-1]))
        line = f"  run {number}: append {seconds:.3f} s, floor {floor_seconds:.3f} s"
        if number <= builder_runs:
            _remove(base / "fresh-store")  # an empty local store: a fresh CI runner
            seconds, built = build(
                cli, repo, env, "--strategy", "builder", config="ci/fresh-runner.yaml"
            )
            if built["strategy"] != "builder":
                raise CliFailure(f"(a) did not run the builder: {json.dumps(built)[:2000]}")
            result.builder.seconds.append(seconds)
            result.builder.uploaded.append(built["bytes_uploaded"] or 0)
            line += f", buildah from an empty store {seconds:.1f} s"
        print(line, flush=True)
    _remove(base)
    return result


def _bytes(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.1f} KiB"


def print_table(results: Sequence[SizeResult]) -> None:
    head = (
        f"{'variant':<36} {'layer':>9} {'runs':>4} {'seconds':>9} {'uploaded':>11}"
        f" {'vs buildah':>11} {'vs floor':>9}"
    )
    rule = "─" * len(head)
    print(f"\n{rule}\n{head}\n{rule}")
    for r in results:
        rows = [
            ("(a) buildah, empty store, warm cache", r.builder),
            ("(b) pipeline-kit append", r.append),
            ("floor: layer + config + manifest", r.floor),
        ]
        for label, series in rows:
            speedup = r.builder.median / series.median
            near = series.median / r.floor.median
            print(
                f"{label:<36} {r.mib:>5} MiB {len(series.seconds):>4} {series.median:>9.3f}"
                f" {_bytes(series.bytes):>11} {speedup:>10.1f}x {near:>8.2f}x"
            )
    print(rule)


def print_goals(results: Sequence[SizeResult]) -> None:
    print("\nGoals")
    for r in results:
        goal = GOALS.get(r.mib)
        speedup = r.builder.median / r.append.median
        if goal is not None:
            print(
                f"  [{'HOLDS' if speedup >= goal else 'MISSED'}] append at least {goal:.0f}x "
                f"faster than buildah at {r.mib} MiB: {speedup:.1f}x"
            )
        near = r.append.median / r.floor.median
        print(
            f"  [{'HOLDS' if near <= FLOOR_LIMIT else 'MISSED'}] append within "
            f"{FLOOR_LIMIT:.0f}x of the floor at {r.mib} MiB: {near:.2f}x "
            f"({r.append.median * 1000:.0f} ms vs {r.floor.median * 1000:.0f} ms)"
        )
    if len(results) >= 2:
        small, large = min(results, key=lambda r: r.mib), max(results, key=lambda r: r.mib)
        growth = large.append.median / small.append.median
        print(
            f"  [{'HOLDS' if growth <= GROWTH_LIMIT else 'MISSED'}] append's time does not grow "
            f"with the layer ({small.mib} -> {large.mib} MiB): x{growth:.2f} "
            f"(limit x{GROWTH_LIMIT})"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="256,1024", help="deps layer sizes in MiB")
    parser.add_argument("--runs", type=int, default=5, help="measured append and floor runs")
    parser.add_argument("--builder-runs", type=int, default=2, help="measured buildah runs")
    parser.add_argument("--cli", help="pipeline-kit executable (default: next to python)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.runs < 1 or not 1 <= args.builder_runs <= args.runs or not sizes:
        parser.error("need --runs >= 1, 1 <= --builder-runs <= --runs and at least one size")
    missing = [tool for tool in ("docker-registry", "buildah") if shutil.which(tool) is None]
    if missing or not BUSYBOX.is_file():
        raise SystemExit(f"missing {missing or [str(BUSYBOX)]}: run scripts/system-packages")
    cli = resolve_cli(args.cli)
    print("pipeline-kit code-change benchmark: append vs buildah vs the floor")
    print(f"  cli: {cli}; python {platform.python_version()}; {os.cpu_count()} CPUs")
    print(f"  load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    work = Path(tempfile.mkdtemp(prefix="pk-bench-append-"))
    registry = Registry(work / "registry")
    try:
        results = [measure(cli, registry, work, mib, args.runs, args.builder_runs) for mib in sizes]
    except CliFailure as exc:
        print(f"\nFAIL: {exc}", file=sys.stderr)
        return 1
    finally:
        registry.stop()
        if args.keep:
            print(f"\nKept {work}")
        else:
            _remove(work)
    print_table(results)
    print_goals(results)
    print(f"\n  load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

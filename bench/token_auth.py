"""Benchmark: a code-only append to a registry that takes credentials, a network away.

The registries CI jobs push to (GitLab's, GHCR, Docker Hub, Harbor, Quay) answer a first
request with a 401 that names a token service, often on another host; the client fetches a
token there, per repository and scope, and asks again. bench/code_change.py's registry is
open, so it cannot show those round trips. Here a real docker-registry takes bearer tokens
from the tests' token service (tests/support/services/token_server.py, which grants what a
user may, as those services do), and both sit ``--rtt-ms`` away behind bench/_latency.py's
delaying proxy (the registry, and the token service its challenge names).

A service (busybox base, a code stage of one `COPY app/`) is built once by buildah, then each
run commits a one-file change under app/ and times the whole `pipeline-kit build --strategy
append` call, credentials from PIPELINE_KIT_REGISTRY*; every record is checked (append,
digest as the registry serves it). With `--baseline-cli` another kit (an earlier release in
a venv of its own) runs the same way on commits of its own in the same loop. Printed: medians,
min and max, the token requests each call made, and the ratio.

    .venv/bin/python bench/token_auth.py --rtt-ms 20 --baseline-cli /path/to/old/bin/pipeline-kit
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests.support.services

from _latency import DelayProxy
from _synthrepo import CliFailure, bench_env, describe_failure, resolve_cli, timed_run

from tests.support.builds import BUSYBOX, TWO_STAGES
from tests.support.services.registry import RegistryServer
from tests.support.services.token_server import TokenServer

USER, PASSWORD = "robot", "bench-pass"


def git(repo: Path, *args: str) -> None:
    _, proc = timed_run(["git", *args], repo, bench_env())
    if proc.returncode != 0:
        raise CliFailure(describe_failure(["git", *args], proc))


def build(cli: Path, repo: Path, env: dict[str, str], *args: str) -> tuple[float, dict[str, Any]]:
    argv = [str(cli), "build", *args, "--format", "json"]
    seconds, proc = timed_run(argv, repo, env)
    if proc.returncode != 0:
        raise CliFailure(describe_failure(argv, proc))
    record: dict[str, Any] = json.loads(proc.stdout)
    return seconds, record


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rtt-ms", type=float, default=20.0, help="round trip to both services")
    parser.add_argument("--runs", type=int, default=7, help="measured runs of each kit")
    parser.add_argument("--cli", help="pipeline-kit executable (default: next to python)")
    parser.add_argument("--baseline-cli", type=Path, help="another kit, measured beside it")
    args = parser.parse_args(argv)
    if shutil.which("docker-registry") is None or shutil.which("buildah") is None:
        raise SystemExit("missing docker-registry or buildah: run scripts/system-packages")
    cli = resolve_cli(args.cli)
    clis = {"kit": cli, **({"baseline": args.baseline_cli} if args.baseline_cli else {})}
    print(f"pipeline-kit append to a token-auth registry {args.rtt_ms:g} ms away")
    print(f"  cli: {cli}" + (f"; baseline: {args.baseline_cli}" if args.baseline_cli else ""))
    print(f"  load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    work = Path(tempfile.mkdtemp(prefix="pk-bench-auth-"))
    tokens = TokenServer(work / "token", USER, PASSWORD)
    (work / "token").mkdir()
    tokens.start()
    token_front = DelayProxy(tokens.realm.split("/")[2], args.rtt_ms)
    auth = tokens.registry_auth()
    auth["token"]["realm"] = f"http://{token_front.host}/token"
    registry = RegistryServer(workdir=work / "registry", auth=auth).start()
    front = DelayProxy(registry.host, args.rtt_ms)
    try:
        repo = work / "repo"
        (repo / "app").mkdir(parents=True)
        shutil.copy(BUSYBOX, repo / "busybox")
        (repo / "Dockerfile").write_text(TWO_STAGES)
        (repo / "app" / "main.txt").write_text("v0\n")
        storage = work / "storage"
        (repo / "pipeline-kit.yaml").write_text(
            f"image: {front.host}/bench/auth\nbuild:\n  builder: buildah\n"
            f"  buildah: {{storage_driver: vfs, root: {storage}/root, runroot: {storage}/run}}\n"
        )
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "service")
        env = {
            **bench_env(),
            "PIPELINE_KIT_REGISTRY": front.host,
            "PIPELINE_KIT_REGISTRY_USER": USER,
            "PIPELINE_KIT_REGISTRY_PASSWORD": PASSWORD,
            "XDG_CACHE_HOME": str(work / "cache"),
            "PYTHONPYCACHEPREFIX": str(work / "pycache"),
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        seconds, first = build(cli, repo, env, "--strategy", "builder")
        print(f"  the first image, by buildah: {seconds:.1f} s; {first['digest'][:19]}")
        times: dict[str, list[float]] = {name: [] for name in clis}
        asked: dict[str, list[int]] = {name: [] for name in clis}
        for number in range(args.runs + 1):  # run 0 warms up
            line = f"  run {number}:"
            for name, one in clis.items():
                (repo / "app" / "main.txt").write_text(f"v{number} {name}\n")
                git(repo, "commit", "-qam", f"change {number} {name}")
                before = len(tokens.requests)
                seconds, record = build(one, repo, env, "--strategy", "append")
                if record["strategy"] != "append":
                    raise CliFailure(f"{name}: not an append: {json.dumps(record)[:2000]}")
                line += f" {name} {seconds:.3f} s ({len(tokens.requests) - before} tokens)"
                if number > 0:
                    times[name].append(seconds)
                    asked[name].append(len(tokens.requests) - before)
            print(line, flush=True)
    except CliFailure as exc:
        print(f"\nFAIL: {exc}", file=sys.stderr)
        return 1
    finally:
        front.stop()
        registry.stop()
        token_front.stop()
        tokens.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'kit':<10} {'runs':>4} {'median s':>9} {'min':>7} {'max':>7} {'token requests':>15}")
    for name, samples in times.items():
        print(
            f"{name:<10} {len(samples):>4} {statistics.median(samples):>9.3f}"
            f" {min(samples):>7.3f} {max(samples):>7.3f} {statistics.median(asked[name]):>15g}"
        )
    if "baseline" in times:
        ratio = statistics.median(times["baseline"]) / statistics.median(times["kit"])
        print(f"\nbaseline / kit: {ratio:.2f}x")
    print(f"  load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

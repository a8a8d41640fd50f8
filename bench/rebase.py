"""Benchmark: a patched base published under an unchanged image, by rebase and by a rebuild.

What is measured, per base size (a busybox layer, then one layer of random bytes of the size;
uncompressed, as an imported root filesystem is), each a real call into a docker-registry on
loopback that this script starts:

  rebase: `pipeline-kit build` of the same commit after the base's tag moved to a rebuild (a
      new random layer of the same size, the same history shape), `build.rebase: true`: the
      whole CLI call, start-up included. Each run moves the tag to another rebuild first (not
      counted: that is the base's own CI).
  buildah: `pipeline-kit build --strategy builder` of the same commit on the moved base, with
      buildah and an empty local store, as on a fresh CI runner (it pulls the base, runs the
      RUN step, copies, pushes): what a team does today to pick a base patch up.
  floor: `pipeline-kit promote` of the image to a new tag, the same CLI start-up and one
      manifest GET and PUT: the least any registry-side publish costs through the kit.

Every rebase record is checked (strategy rebase, the base's layers in the manifest, the
digest the registry serves for the first tag); a wrong answer exits 1.

Goals: rebase under 1 s at every size; its median at the largest size within 25% of the
smallest (flat in the base's size); at least 10x faster than the buildah rebuild from 1 GiB.
Missed goals are reported, not asserted. The load average is printed at the start and end.

Run (takes minutes; needs docker-registry, buildah, busybox: scripts/system-packages):

    .venv/bin/python bench/rebase.py
    .venv/bin/python bench/rebase.py --sizes 64,1024,4096 --runs 5
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests.support.services

from _synthrepo import CliFailure, bench_env, describe_failure, resolve_cli, timed_run

from tests.support.services.registry import RegistryServer, running_registry

BUSYBOX = Path("/usr/bin/busybox")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
UNDER_S = 1.0
GROWTH_LIMIT = 1.25
BUILDAH_GOAL = 10.0
BUILDAH_GOAL_MIB = 1024

DOCKERFILE = """\
FROM {registry}/bench/base:current
RUN echo built > /built
COPY app/ /app/
CMD ["/bin/sh", "-c", "cat /app/main.txt"]
"""


def _send(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    return urllib.request.urlopen(request, timeout=600)


def _upload(registry: RegistryServer, path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    name = "sha256:" + digest.hexdigest()
    location = _send("POST", f"{registry.url}/v2/bench/base/blobs/uploads/").headers["Location"]
    location = location if "://" in location else registry.url + location
    size = path.stat().st_size
    with path.open("rb") as file:
        joiner = "&" if "?" in location else "?"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        _send("PUT", f"{location}{joiner}digest={name}", file, headers)
    return {"mediaType": LAYER_TAR, "digest": name, "size": size}


def _tar_of(path: Path, members: list[tuple[str, Path | bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, content in members:
            if isinstance(content, bytes):
                info = tarfile.TarInfo(name)
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
            else:
                tar.add(content, arcname=name)
    return path


def push_base(registry: RegistryServer, work: Path, mib: int, generation: int) -> str:
    """A rebuild of the base under ``bench/base:current``: the same shape, new bytes."""
    random_file = work / "random.bin"
    with random_file.open("wb") as out:
        for _ in range(mib):
            out.write(os.urandom(1 << 20))
    busybox_dir = work / "bb"
    (busybox_dir / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy(BUSYBOX, busybox_dir / "bin" / "busybox")
    if not (busybox_dir / "bin" / "sh").exists():
        os.symlink("busybox", busybox_dir / "bin" / "sh")
    tars = [
        _tar_of(work / "bb.tar", [("bin", busybox_dir / "bin")]),
        _tar_of(work / "big.tar", [("opt/runtime.bin", random_file),
                                   ("etc/patch-level", f"{generation}\n".encode())]),
    ]  # fmt: skip
    layers = [_upload(registry, tar) for tar in tars]
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
        "history": [{"created_by": "ADD busybox"}, {"created_by": f"ADD runtime {generation}"}],
    }).encode()  # fmt: skip
    config_path = work / "config.json"
    config_path.write_bytes(config)
    config_blob = _upload(registry, config_path)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {**config_blob, "mediaType": "application/vnd.oci.image.config.v1+json"},
        "layers": layers,
    }).encode()  # fmt: skip
    _send("PUT", f"{registry.url}/v2/bench/base/manifests/current", manifest,
          {"Content-Type": OCI_MANIFEST})  # fmt: skip
    for tar in tars:
        tar.unlink()
    random_file.unlink()
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def make_repo(path: Path, registry: RegistryServer, store: Path) -> Path:
    (path / "app").mkdir(parents=True)
    (path / "app" / "main.txt").write_text("hello\n")
    (path / "Dockerfile").write_text(DOCKERFILE.format(registry=registry.host))
    (path / "pipeline-kit.yaml").write_text(
        f"image: {registry.host}/bench/svc\n"
        f"build: {{builder: buildah, rebase: true, buildah: {{storage_driver: vfs, "
        f"root: {store}/root, runroot: {store}/run}}}}\n"
    )
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "service"]):
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True, env=bench_env())
    return path


def run_cli(cli: Path, repo: Path, *args: str) -> tuple[float, dict[str, Any]]:
    argv = [str(cli), *args, "--format", "json"]
    seconds, proc = timed_run(argv, repo, bench_env())
    if proc.returncode != 0:
        raise CliFailure(describe_failure(argv, proc))
    record: dict[str, Any] = json.loads(proc.stdout)
    return seconds, record


def _remove(path: Path) -> None:
    subprocess.run(["chmod", "-R", "u+w", str(path)], check=False, capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def _manifest(registry: RegistryServer, repo: str, reference: str) -> Any:
    with _send("GET", f"{registry.url}/v2/{repo}/manifests/{reference}", None,
               {"Accept": OCI_MANIFEST}) as answer:  # fmt: skip
        return json.loads(answer.read())


def check_rebase(registry: RegistryServer, record: dict[str, Any], base: str) -> None:
    if record["strategy"] != "rebase":
        raise CliFailure(f"expected a rebase, got {record['strategy']}: {record['reason']}")
    served = _manifest(registry, "bench/svc", record["tags"][0])
    wanted = [layer["digest"] for layer in _manifest(registry, "bench/base", base)["layers"]]
    if [layer["digest"] for layer in served["layers"][:2]] != wanted:
        raise CliFailure("the rebased image does not start with the new base's layers")
    if record["digest"] != _digest(registry, "bench/svc", record["tags"][0]):
        raise CliFailure("the digest reported is not the one the registry serves")


def _digest(registry: RegistryServer, repo: str, reference: str) -> str:
    with _send("HEAD", f"{registry.url}/v2/{repo}/manifests/{reference}", None,
               {"Accept": OCI_MANIFEST}) as answer:  # fmt: skip
        return str(answer.headers["Docker-Content-Digest"])


@contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix="pk-bench-rebase-"))
    try:
        yield work
    finally:
        if not keep:
            _remove(work)


def measure(cli: Path, mib: int, runs: int, work: Path) -> dict[str, Any]:
    with running_registry(work / "registry") as registry:
        store = work / "store"
        repo = make_repo(work / "svc", registry, store)
        generation = 0
        push_base(registry, work, mib, generation)
        _, first = run_cli(cli, repo, "build")
        assert first["strategy"] == "builder", first["reason"]
        _remove(store)
        rebase_s = []
        for _ in range(runs):
            generation += 1
            base = push_base(registry, work, mib, generation)
            seconds, record = run_cli(cli, repo, "build")
            check_rebase(registry, record, base)
            rebase_s.append(seconds)
        generation += 1
        push_base(registry, work, mib, generation)
        buildah_s, rebuilt = run_cli(cli, repo, "build", "--strategy", "builder")
        _remove(store)
        floor_s = [run_cli(cli, repo, "promote", f"{registry.host}/bench/svc@"
                           f"{rebuilt['digest']}", f"floor-{n}")[0]
                   for n in range(runs)]  # fmt: skip
    return {"mib": mib, "rebase": rebase_s, "buildah": buildah_s, "floor": floor_s}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="64,1024", help="base layer sizes, MiB")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cli", help="the pipeline-kit executable (default: .venv's)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    cli = resolve_cli(args.cli)
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"  load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results = []
    try:
        for mib in sizes:
            with workspace(args.keep) as work:
                results.append(measure(cli, mib, args.runs, work))
    except CliFailure as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    print(f"\n  {'base MiB':>9} {'rebase s (min-max)':>22} {'buildah rebuild s':>18} "
          f"{'floor s':>8} {'rebuild/rebase':>15} {'rebase/floor':>13}")  # fmt: skip
    for r in results:
        median = statistics.median(r["rebase"])
        floor = statistics.median(r["floor"])
        print(f"  {r['mib']:>9} {median:>8.3f} ({min(r['rebase']):.3f}-{max(r['rebase']):.3f}) "
              f"{r['buildah']:>18.2f} {floor:>8.3f} {r['buildah'] / median:>14.1f}x "
              f"{median / floor:>12.2f}x")  # fmt: skip
    print()
    for r in results:
        median = statistics.median(r["rebase"])
        print(
            f"  {'HOLD' if median < UNDER_S else 'MISS'}  rebase under {UNDER_S:g} s at "
            f"{r['mib']} MiB: {median:.3f} s"
        )
        if r["mib"] >= BUILDAH_GOAL_MIB:
            ratio = r["buildah"] / median
            print(
                f"  {'HOLD' if ratio >= BUILDAH_GOAL else 'MISS'}  at least {BUILDAH_GOAL:g}x "
                f"faster than the buildah rebuild at {r['mib']} MiB: {ratio:.1f}x"
            )
    if len(results) > 1:
        small, large = (statistics.median(results[i]["rebase"]) for i in (0, -1))
        growth = large / small
        print(
            f"  {'HOLD' if growth <= GROWTH_LIMIT else 'MISS'}  flat in the base's size: "
            f"{results[-1]['mib']} MiB / {results[0]['mib']} MiB = {growth:.2f}"
        )
    print(f"\n  load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: peak memory of append's layer, streamed, against the whole layer in memory.

Append writes the layers of a code range itself. A code range can hold assets (a tokenizer,
a vendored model table, static files of a web UI), so its layer can be large. This measures,
each in a fresh process started like the kit, the peak resident set size (``ru_maxrss``) of:

- **floor**: the interpreter with the kit's layer and registry modules imported, nothing done;
- **streamed**: the kit's ``make_layer`` (files read in blocks into a tar that is hashed and
  gzipped as it is written, spooled to a temporary file past 8 MiB) and its upload to a
  docker-registry on loopback;
- **in memory** (the baseline): the same tar made whole in memory, gzipped whole, and uploaded
  from memory, as append did before it streamed.

The layer holds ``--files`` files of random bytes (incompressible) totalling ``--mib`` MiB.
Every digest is checked against the registry's. It reports; it does not assert (exit 0 unless
an answer is wrong, 1 then). Goal: the streamed peak under 200 MB whatever the layer's size.

Run (needs docker-registry: scripts/system-packages):

    .venv/bin/python bench/layer_memory.py --mib 512
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests.support.services

CHILD = r"""
import gzip, json, resource, sys
from pathlib import Path
from pipeline_kit.adapters.registry.client import RegistryClient
from pipeline_kit.adapters.registry.references import sha256_digest
from pipeline_kit.append.copy_sources import Entry
from pipeline_kit.append.layer_tar import GZIP_LEVEL, make_layer, tar_bytes

mode, host, repo, folder = sys.argv[1:5]
files = sorted(Path(folder).iterdir())
entries = [Entry("srv", "dir", 0o755), Entry("srv/assets", "dir", 0o755)] + [
    Entry(f"srv/assets/{path.name}", "file", 0o644, source=path) for path in files
]
client = RegistryClient(host, insecure=True)
digest = ""
if mode == "streamed":
    layer = make_layer(entries, 1, "application/vnd.oci.image.layer.v1.tar+gzip")
    client.upload_missing_blob(repo, layer.spool.body(), layer.digest)
    digest = layer.digest
elif mode == "in-memory":
    data = gzip.compress(tar_bytes(entries, 1), GZIP_LEVEL, mtime=0)
    digest = sha256_digest(data)
    client.upload_missing_blob(repo, data, digest)
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_mib": peak_kib / 1024, "digest": digest}))
"""


def run_child(mode: str, host: str, repo: str, folder: Path) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, mode, host, repo, str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=512, help="the layer's content in MiB")
    parser.add_argument("--files", type=int, default=64, help="how many files hold it")
    args = parser.parse_args(argv)
    if args.mib < 1 or args.files < 1:
        parser.error("--mib and --files must be at least 1")

    from tests.support.services.registry import running_registry

    print(f"append's layer: {args.mib} MiB in {args.files} files of random bytes")
    print(f"  load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    failed = False
    with tempfile.TemporaryDirectory(prefix="layer-memory-") as tmp:
        work = Path(tmp)
        folder = work / "assets"
        folder.mkdir()
        size = args.mib * 1024 * 1024 // args.files
        for n in range(args.files):
            with (folder / f"asset-{n:04d}.bin").open("wb") as out:
                for _ in range(0, size, 1 << 20):
                    out.write(os.urandom(min(1 << 20, size)))
        with running_registry(work / "registry") as registry:
            peaks: dict[str, float] = {}
            for mode in ("floor", "streamed", "in-memory"):
                result = run_child(mode, registry.host, f"bench/{mode}", folder)
                peaks[mode] = float(str(result["peak_mib"]))
                digest = str(result["digest"])
                if digest:
                    served = _served_digest(registry.url, f"bench/{mode}", digest)
                    if not served:
                        print(f"  WRONG: {mode}: the registry has no blob {digest}")
                        failed = True
                print(f"  {mode:<10} peak RSS {peaks[mode]:8.1f} MiB")
    print()
    print(f"  streamed / in memory: {peaks['streamed'] / peaks['in-memory']:.2f}x")
    print(f"  streamed above the floor: {peaks['streamed'] - peaks['floor']:.1f} MiB")
    verdict = "HOLD" if peaks["streamed"] < 200 else "MISS"
    print(f"  [{verdict}] streamed peak under 200 MB: {peaks['streamed']:.1f} MiB")
    print(f"  load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 1 if failed else 0


def _served_digest(url: str, repo: str, digest: str) -> bool:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{url}/v2/{repo}/blobs/{digest}", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return bool(answer.status == 200)
    except urllib.error.HTTPError:
        return False


if __name__ == "__main__":
    sys.exit(main())

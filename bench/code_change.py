"""Benchmark: a code-only change by append, by BuildKit, Kaniko and buildah, and the floor.

What is measured, for a three-stage image (busybox base; a deps stage whose RUN adds one
incompressible layer of 256 MiB, then of 1 GiB; a code stage: WORKDIR, `COPY --link app/`, CMD),
each a real build into a docker-registry on loopback that this script starts (configured as
Debian's default config is: blob descriptors cached in memory), each into its own repository,
all for the same commits (a new commit changing one file under app/ per run):

  (b) `pipeline-kit build --strategy append`: the whole CLI call, start-up included, as a
      repeated kit call in a CI job (the validated-config marker under ~/.cache is there);
  (b) fresh runner: the same on a commit of its own with an empty cache directory, as the first
      kit call of a fresh CI runner (PyYAML and jsonschema read and check the config);
  (c) BuildKit: `buildctl build` with the kit's own argv (pipeline_kit/build/builders/buildkit.py:
      the tags (b) set, `--import-cache`/`--export-cache type=registry,...,mode=max`, an image
      output with push=true) against a FRESH buildkitd for every run (started and ready before
      the clock starts; tests/support/services/buildkitd.py), warm registry cache, the same
      Dockerfile (`COPY --link`: BuildKit does not pull the layers below the copy);
  (d) Kaniko: the kit's `build --strategy builder` with its Kaniko builder, run in process with
      the executor started in tests/support/services/kaniko.py's sandbox (the only way it may start
      here), `--cache=true` with the cache filled by a first build that is not counted; the
      time is the executor's run alone (what a Kaniko job spends once its container is up);
  (a) `pipeline-kit build --strategy builder` with buildah, `--layers` and the warm remote
      cache, from an empty local store as on a fresh CI runner; the whole CLI call. buildah
      1.28 rejects `COPY --link`, so (a) builds ci/Dockerfile.plain, the same image with a
      plain `COPY`, into a repository of its own whose cache a cold build fills first;
  floor: a minimal script on the same interpreter with the lightest HTTP there is (the standard
      library's http.client, one kept-alive connection; the kit uses requests), that uploads a
      layer and a config of the sizes (b) uploaded (random bytes, so the registry lacks them)
      and PUTs one manifest: the least any publisher of that change has to do (it sets one
      tag; the kit sets the build's five, each one more manifest PUT, and so do BuildKit,
      Kaniko and buildah here).

With `--baseline-cli` (another pipeline-kit executable, e.g. an earlier release installed in
a venv of its own) a further column runs that kit exactly as (b), on commits of its own, in the
same loop: a change to the kit is measured against what it replaces in one run. With
`--rtt-ms` every column reaches the registry through bench/_latency.py's proxy, that many
milliseconds (round trip) away, as a CI runner reaches a registry over the network.

The image (b) appends to first is the kit's own `build --strategy builder` of the same
Dockerfile with BuildKit (its registry cache is the one (c) imports), else with Kaniko; one of
them must be there. (b), its fresh-runner twin and the floor run `--runs` times per size,
(c) `--buildkit-runs`, (d) `--kaniko-runs`, (a) `--builder-runs` times; medians are reported
with min, max and runs.
"uploaded" is what the build record counts (blobs and manifests sent) where there is one;
"new blobs" is what the registry's blob store grew by during the call, measured the same way for
every column. Each record is checked (strategy; for append one new layer, base and deps kept;
for every column the digest reported equals the one the registry serves for its first tag); a
wrong answer exits 1. Python processes get a private PYTHONPYCACHEPREFIX (bytecode written once,
outside the repository), the same for the CLI and the floor; a warm-up run of each is not
counted. Missing executors skip their column, and the output says so: BuildKit needs BUILDKIT_BIN
(a directory with buildkitd and buildctl) and runc, Kaniko needs KANIKO_EXECUTOR, as for the
tests (.ci/run sets both when ../shared/bin has them); `--skip` leaves out columns by choice.

Goals: (b) at least as fast as (c) BuildKit `COPY --link` at 1 GiB; (b) at least 10x faster
than (d) Kaniko; (b)'s time does not grow with the layer size (1 GiB median within 25% of the
256 MiB one); (b) at least 20x faster than (a) at 1 GiB and 10x at 256 MiB, and within 2x of
the floor. Missed goals are reported, not asserted. Other work may share the machine: the load
average is printed before, between sizes and after. Where (b)'s time goes is printed too: its
start-up (interpreter, imports, exit: the wall time outside the record's own timings) and the
record's phases.

Run (takes minutes; needs docker-registry, buildah, busybox: scripts/system-packages):

    KANIKO_EXECUTOR=../shared/bin/kaniko/executor BUILDKIT_BIN=../shared/bin \\
        .venv/bin/python bench/code_change.py
    .venv/bin/python bench/code_change.py --sizes 256 --runs 7 --skip kaniko,buildah --keep
"""

from __future__ import annotations

import argparse
import contextlib
import io
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests.support.services

from _latency import DelayProxy
from _synthrepo import CliFailure, bench_env, describe_failure, resolve_cli, timed_run
from startup import ImportRecord, parse_importtime

if TYPE_CHECKING:
    from tests.support.services.buildkitd import BuildkitDaemon

GOALS = {256: 10.0, 1024: 20.0}  # layer MiB -> append at least this many times faster than (a)
BUILDKIT_GOAL_MIB = 1024  # append at least as fast as BuildKit COPY --link at this size
KANIKO_GOAL = 10.0
GROWTH_LIMIT = 1.25
FLOOR_LIMIT = 2.0
TOP_MODULES = 15
BUSYBOX = Path("/usr/bin/busybox")
COLUMNS = ("fresh-runner", "buildkit", "kaniko", "buildah")
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)

DOCKERFILE = """\
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]

FROM base AS deps
COPY requirements.txt /deps/requirements.txt
RUN dd if=/dev/urandom of=/deps/weights.bin bs=1M count={mib} 2>/dev/null

FROM deps AS code
WORKDIR /app
COPY {link}app/ /app/
CMD ["/bin/sh", "-c", "cat /app/main.py"]
"""

FLOOR = """\
import hashlib, http.client, json, sys
from urllib.parse import urlsplit

registry, repo, layer_path, config_path = sys.argv[1:5]
host, port = registry.rsplit(":", 1)
connection = http.client.HTTPConnection(host, int(port), timeout=60)


def call(method, target, body=None, headers=None):
    connection.request(method, target, body=body, headers=headers or {})
    answer = connection.getresponse()
    answer.read()
    if answer.status >= 300:
        sys.exit(f"{method} {target}: HTTP {answer.status}")
    return answer


def upload(data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    location = urlsplit(call("POST", f"/v2/{repo}/blobs/uploads/").getheader("Location"))
    target = location.path + (f"?{location.query}&" if location.query else "?")
    call("PUT", f"{target}digest={digest}", data, {"Content-Type": "application/octet-stream"})
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
raw = json.dumps(manifest).encode()
call("PUT", f"/v2/{repo}/manifests/floor", raw, {"Content-Type": manifest["mediaType"]})
print(len(layer) + len(config) + len(raw))  # bytes sent, as the kit counts
"""


@dataclass
class Series:
    label: str
    seconds: list[float] = field(default_factory=list)
    uploaded: list[int] = field(default_factory=list)
    stored: list[int] = field(default_factory=list)
    skipped: str | None = None  # why the column did not run
    phases: list[dict[str, float]] = field(default_factory=list)  # the kit's record timings

    def add(self, seconds: float, uploaded: int | None, stored: int) -> None:
        self.seconds.append(seconds)
        if uploaded is not None:
            self.uploaded.append(uploaded)
        self.stored.append(stored)

    @property
    def ran(self) -> bool:
        return bool(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


@dataclass
class SizeResult:
    mib: int
    series: dict[str, Series]
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    imports: tuple[list[ImportRecord], list[ImportRecord]] | None = None  # (b)'s, the floor's

    def __getitem__(self, key: str) -> Series:
        return self.series[key]


@dataclass(frozen=True)
class Executors:
    buildkit: Path | None  # directory with buildkitd and buildctl
    kaniko: Path | None  # the executor file (never run outside the sandbox)
    skipped: dict[str, str]  # column -> why it does not run


class Registry:
    """docker-registry on a free loopback port, in its own directory; with ``rtt_ms``, ``host``
    is a proxy that puts that round trip between every client and it (bench/_latency.py)."""

    def __init__(self, workdir: Path, rtt_ms: float = 0) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.host = f"127.0.0.1:{sock.getsockname()[1]}"
        self.data = workdir / "data"
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.data)},
                "cache": {"blobdescriptor": "inmemory"},  # as Debian's default config has it
            },
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
        self.proxy: DelayProxy | None = None
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise SystemExit(
                        f"docker-registry did not start; see {workdir / 'log'}"
                    ) from None
                time.sleep(0.1)
        if rtt_ms:
            self.proxy = DelayProxy(self.host, rtt_ms)
            self.host = self.proxy.host

    def _get(self, repo: str, reference: str, method: str) -> Any:
        request = urllib.request.Request(
            f"http://{self.host}/v2/{repo}/manifests/{reference}",
            headers={"Accept": MANIFEST_TYPES},
            method=method,
        )
        return urllib.request.urlopen(request, timeout=30)

    def manifest(self, repo: str, reference: str) -> dict[str, Any]:
        with self._get(repo, reference, "GET") as answer:
            body: dict[str, Any] = json.load(answer)
            return body

    def digest(self, repo: str, tag: str) -> str:
        """The digest the registry serves for ``repo:tag``."""
        with self._get(repo, tag, "HEAD") as answer:
            return str(answer.headers["Docker-Content-Digest"])

    def stored_bytes(self) -> int:
        """Bytes in the blob store (each blob once, whichever repositories link it)."""
        blobs = self.data / "docker" / "registry" / "v2" / "blobs"
        return sum(path.stat().st_size for path in blobs.rglob("data"))

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
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
    (path / "Dockerfile").write_text(DOCKERFILE.format(mib=mib, link="--link "))
    (path / "ci" / "Dockerfile.plain").write_text(DOCKERFILE.format(mib=mib, link=""))
    (path / ".dockerignore").write_text("ci/\n")
    (path / "requirements.txt").write_text("torch==2.4.0\n")
    (path / "app" / "main.py").write_text("VERSION = 0\n")
    image = f"{registry.host}/bench/svc-{mib}"
    # (b): append only, so no builder settings.
    (path / "pipeline-kit.yaml").write_text(f"image: {image}\n")
    # (a): plain COPY, its own repository and cache, a local store emptied before every run.
    (path / "ci" / "buildah.yaml").write_text(
        f"image: {image}-buildah\ndockerfile: Dockerfile.plain\ncontext: ..\n"
        f"build: {{builder: buildah, {_storage(path.parent / 'buildah-store')}}}\n"
    )
    # (d): the same Dockerfile as (b), Kaniko's cache in <image>/cache.
    (path / "ci" / "kaniko.yaml").write_text(
        f"image: {image}-kaniko\ndockerfile: ../Dockerfile\ncontext: ..\n"
        "build: {builder: kaniko}\n"
    )
    _git(path, "init", "-q", "-b", "main")
    _git(path, "add", "-A")
    _git(path, "commit", "-qm", "service")
    return path


def _remove(path: Path) -> None:
    if path.exists():
        subprocess.run(["chmod", "-R", "u+w", str(path)], check=False, capture_output=True)
        shutil.rmtree(path, ignore_errors=True)


def run_cli(
    cli: Path, repo: Path, env: dict[str, str], *args: str, config: str | None = None
) -> tuple[float, dict[str, Any]]:
    """One whole `pipeline-kit [--config FILE] COMMAND ... --format json`: (seconds, record)."""
    argv = [str(cli), *(["--config", config] if config else []), *args, "--format", "json"]
    seconds, proc = timed_run(argv, repo, env)
    if proc.returncode != 0:
        raise CliFailure(describe_failure(argv, proc))
    record: dict[str, Any] = json.loads(proc.stdout)
    return seconds, record


def check_digest(registry: Registry, repo: str, tag: str, digest: str, who: str) -> None:
    served = registry.digest(repo, tag)
    if served != digest:
        raise CliFailure(f"{who} reported {digest}, the registry serves {served} for {repo}:{tag}")


def code_change(repo: Path, number: str) -> None:
    (repo / "app" / "main.py").write_text(f"VERSION = {number!r}\n")
    _git(repo, "commit", "-qam", f"code change {number}")


def measured(registry: Registry, call: Callable[..., Any], *args: Any) -> tuple[float, Any, int]:
    """(wall seconds, what ``call(*args)`` returned, bytes the blob store grew by)."""
    before = registry.stored_bytes()
    start = time.perf_counter()
    result = call(*args)
    return time.perf_counter() - start, result, registry.stored_bytes() - before


def record_of(cli: Path, repo: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    """The record of one CLI call (``measured`` times it)."""
    return run_cli(cli, repo, env, *args)[1]


def output_of(
    argv: list[str], cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)


# -- (c) BuildKit --------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_buildkitd(bin_dir: Path, work: Path) -> Iterator[BuildkitDaemon]:
    """A buildkitd with an empty state, ready (``buildctl debug workers`` answers)."""
    from tests.support.services.buildkitd import BuildkitDaemon

    root = Path(tempfile.mkdtemp(prefix="buildkitd-", dir=work))
    daemon = BuildkitDaemon(bin_dir, root / "state").start()
    try:
        yield daemon
    finally:
        daemon.stop()
        _remove(root)


def buildkit_build(
    bin_dir: Path, registry: Registry, repo: Path, work: Path, mib: int, tags: Sequence[str]
) -> tuple[float, int]:
    """One `buildctl build` (the kit's argv) against a fresh daemon: (seconds, stored).

    The registry cache is the one the kit's own BuildKit build of the first image exported.
    """
    from pipeline_kit.build.builders.base import BuildRequest
    from pipeline_kit.build.builders.buildkit import buildctl_argv, read_metadata_digest

    image = f"{registry.host}/bench/svc-{mib}-buildkit"
    request = BuildRequest(
        image=image,
        dockerfile=repo / "Dockerfile",
        context=repo,
        target=None,
        build_args={},
        labels={},
        tags=tuple(tags),
        cache_repo=f"{registry.host}/bench/svc-{mib}/cache",
        cache_ttl="336h0m0s",
        insecure_hosts=frozenset({registry.host}),
    )
    metadata = work / "buildkit-metadata.json"
    argv = buildctl_argv(request, metadata)
    with fresh_buildkitd(bin_dir, work) as daemon:
        env = {**bench_env(), **daemon.env}
        seconds, proc, stored = measured(registry, output_of, argv, repo, env)
    if proc.returncode != 0:
        raise CliFailure(describe_failure(argv, proc))
    digest = read_metadata_digest(metadata)
    check_digest(registry, f"bench/svc-{mib}-buildkit", tags[0], digest, "(c) BuildKit")
    return seconds, stored


# -- (d) Kaniko ----------------------------------------------------------------------------


class KanikoColumn:
    """The kit's Kaniko builds, in process, with the executor started in the sandbox."""

    def __init__(self, executor: Path, work: Path) -> None:
        from tests.support.services.kaniko import KanikoSandbox

        work.mkdir(parents=True, exist_ok=True)
        self.sandbox = KanikoSandbox(executor, work)
        self.builder = self.sandbox.builder()
        self.executor_seconds: list[float] = []
        run_executor = self.builder.run_executor

        def timed(argv: list[str], env: dict[str, str], log: Any) -> tuple[int, str]:
            start = time.perf_counter()
            try:
                return run_executor(argv, env, log)
            finally:
                self.executor_seconds.append(time.perf_counter() - start)

        self.builder.run_executor = timed  # type: ignore[method-assign]

    def run(self, repo: Path, config: Path) -> dict[str, Any]:
        """``build --strategy builder`` for ``config``, in process: the build record."""
        from pipeline_kit.build.builders import BUILDERS
        from pipeline_kit.commands.build import BuildOptions, run

        options = BuildOptions(
            config_path=config,
            cwd=repo,
            strategy="builder",
            format="json",
            environ=bench_env(),
        )
        out, log = io.StringIO(), io.StringIO()
        saved = BUILDERS["kaniko"]
        BUILDERS["kaniko"] = self.builder
        try:
            code = run(options, out, log)
        finally:
            BUILDERS["kaniko"] = saved
        if code != 0:
            raise CliFailure(f"(d) Kaniko build exited {code}: {log.getvalue()[-3000:]}")
        record: dict[str, Any] = json.loads(out.getvalue())
        if record["strategy"] != "builder" or record["builder"] != "kaniko":
            raise CliFailure(f"(d) did not run Kaniko: {json.dumps(record)[:2000]}")
        return record

    def build(
        self, registry: Registry, repo: Path, config: Path, repo_name: str
    ) -> tuple[float, int, dict[str, Any]]:
        """``run``, checked against the registry: (executor seconds, stored, record)."""
        _, record, stored = measured(registry, self.run, repo, config)
        check_digest(registry, repo_name, record["tags"][0], record["digest"], "Kaniko")
        return self.executor_seconds[-1], stored, record


# -- one layer size ------------------------------------------------------------------------


def measure(
    cli: Path,
    registry: Registry,
    work: Path,
    mib: int,
    args: argparse.Namespace,
    executors: Executors,
) -> SizeResult:
    env = {
        **bench_env(),
        "PYTHONPYCACHEPREFIX": str(work / "pycache"),
        "XDG_CACHE_HOME": str(work / "cache"),  # the kit's validated-config marker
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    base = work / f"size-{mib}"
    repo = make_repo(base / "repo", registry, mib)
    names = {
        "append": "(b) pipeline-kit build, append",
        "fresh-runner": "(b) same, fresh runner (cold ~/.cache)",
        "baseline": "(b) same, the --baseline-cli kit",
        "buildkit": "(c) BuildKit COPY --link, fresh daemon",
        "kaniko": "(d) Kaniko --cache=true (executor run)",
        "buildah": "(a) buildah plain COPY, empty store",
        "floor": "floor: layer + config + 1 manifest",
    }
    result = SizeResult(mib, {key: Series(label) for key, label in names.items()})
    for column, why in executors.skipped.items():
        result[column].skipped = why
    if not args.baseline_cli:
        result["baseline"].skipped = "no --baseline-cli"
    repo_name = f"bench/svc-{mib}"

    kaniko = None
    if executors.kaniko is not None:
        kaniko = KanikoColumn(executors.kaniko, base / "kaniko")
    print(f"\n{mib} MiB deps layer: the first image, built by the kit ...", flush=True)
    # Append needs an image of this Dockerfile that a builder made (buildah cannot: --link).
    strategy = ("build", "--strategy", "builder")
    if executors.buildkit is not None:
        with fresh_buildkitd(executors.buildkit, base) as daemon:
            seconds, first = run_cli(
                cli, repo, {**env, **daemon.env}, *strategy, "--builder", "buildkit"
            )  # its registry cache is (c)'s
    else:
        assert kaniko is not None
        seconds, _, first = kaniko.build(registry, repo, repo / "pipeline-kit.yaml", repo_name)
    print(f"  {first['builder']}: {seconds:.1f} s; {first['digest'][:19]}")
    if result["buildah"].skipped is None:
        seconds, _ = run_cli(cli, repo, env, "build", config="ci/buildah.yaml")
        print(f"  buildah, cold, plain COPY (fills (a)'s cache): {seconds:.1f} s")

    for number in range(args.runs + 1):  # run 0 warms up (bytecode, registry, caches)
        code_change(repo, f"{number}.1")
        seconds, record = append_run(cli, registry, repo, env, result["append"], number)
        tags = record["tags"]
        floor_seconds = floor_run(registry, base, env, record, result["floor"], number)
        line = f"  run {number}: (b) {seconds:.3f} s, floor {floor_seconds:.3f} s"
        if args.baseline_cli:
            code_change(repo, f"{number}.0")
            seconds, _ = append_run(
                args.baseline_cli, registry, repo, env, result["baseline"], number
            )
            line += f", baseline kit {seconds:.3f} s"
        if result["fresh-runner"].skipped is None:
            code_change(repo, f"{number}.2")
            fresh = {**env, "XDG_CACHE_HOME": str(Path(tempfile.mkdtemp(dir=base)))}
            seconds, record = append_run(cli, registry, repo, fresh, result["fresh-runner"], number)
            tags = record["tags"]
            line += f", fresh runner {seconds:.3f} s"
        if executors.buildkit is not None and number <= args.buildkit_runs:
            seconds, stored = buildkit_build(executors.buildkit, registry, repo, base, mib, tags)
            if number > 0:
                result["buildkit"].add(seconds, None, stored)
            line += f", BuildKit {seconds:.3f} s" + (" (warm-up)" if number == 0 else "")
        if kaniko is not None and number <= args.kaniko_runs:
            config = repo / "ci" / "kaniko.yaml"
            seconds, stored, _ = kaniko.build(registry, repo, config, f"{repo_name}-kaniko")
            if number > 0:
                result["kaniko"].add(seconds, None, stored)
            line += f", Kaniko {seconds:.1f} s" + (" (fills the cache)" if number == 0 else "")
        if result["buildah"].skipped is None and 1 <= number <= args.builder_runs:
            _remove(base / "buildah-store")  # an empty local store: a fresh CI runner
            buildah = ("--config", "ci/buildah.yaml", "build", "--strategy", "builder")
            seconds, built, stored = measured(registry, record_of, cli, repo, env, *buildah)
            if built["strategy"] != "builder":
                raise CliFailure(f"(a) did not run the builder: {json.dumps(built)[:2000]}")
            check_digest(registry, f"{repo_name}-buildah", built["tags"][0], built["digest"], "(a)")
            result["buildah"].add(seconds, built["bytes_uploaded"] or 0, stored)
            line += f", buildah {seconds:.1f} s"
        print(line, flush=True)
    if mib == min(args.sizes_mib):
        result.imports = import_breakdown(cli, registry, repo, base, env)
    result.load = os.getloadavg()
    if not args.keep:
        _remove(base)
    return result


def import_breakdown(
    cli: Path, registry: Registry, repo: Path, base: Path, env: dict[str, str]
) -> tuple[list[ImportRecord], list[ImportRecord]]:
    """The imports of one more (b) and one more floor run (``-X importtime``, not timed):
    what the kit's process loads that the floor's does not."""
    code_change(repo, "imports")
    profiled = {**env, "PYTHONPROFILEIMPORTTIME": "1"}
    argv = [str(cli), "build", "--strategy", "append", "--format", "json"]
    proc = output_of(argv, repo, profiled)
    if proc.returncode != 0:
        raise CliFailure(describe_failure(argv, proc))
    kit = parse_importtime(proc.stderr.decode(errors="replace"))
    script = base / "floor.py"  # with the layer and config of the last floor run
    floor_argv = [sys.executable, str(script), registry.host, "bench/floor"]
    floor_argv += [str(base / "floor-layer"), str(base / "floor-config")]
    proc = output_of(floor_argv, base, profiled)
    if proc.returncode != 0:
        raise CliFailure(describe_failure(floor_argv, proc))
    return kit, parse_importtime(proc.stderr.decode(errors="replace"))


def _by_package(records: Sequence[ImportRecord]) -> dict[str, int]:
    """Microseconds spent importing each top-level package's own modules (self times, so
    nothing is counted twice); the standard library's as one."""
    totals: dict[str, int] = {}
    for rec in records:
        package = rec.name.split(".")[0]
        if package in sys.stdlib_module_names or package.startswith("_"):
            package = "(standard library)"
        totals[package] = totals.get(package, 0) + rec.self_us
    return totals


def print_imports(results: Sequence[SizeResult]) -> None:
    """Where (b)'s start-up goes beyond the floor's, import by import (one profiled run each;
    -X importtime adds its own cost, so the figures are larger than in the timed runs)."""
    profiled = [r for r in results if r.imports is not None]
    if not profiled:
        return
    assert profiled[0].imports is not None
    kit, floor = (_by_package(records) for records in profiled[0].imports)
    print(f"\nImports of one (b) and one floor run at {profiled[0].mib} MiB (-X importtime):")
    print(f"  {'package (its own modules)':<28} {'(b) ms':>8} {'floor ms':>9}")
    for package in sorted(kit, key=lambda name: -kit[name]):
        if kit[package] >= 1000 or package in floor:
            print(f"  {package:<28} {kit[package] / 1000:8.1f} {floor.get(package, 0) / 1000:9.1f}")
    rest = sum(us for name, us in kit.items() if us < 1000 and name not in floor)
    print(f"  {'(others, each < 1 ms)':<28} {rest / 1000:8.1f}")
    print(f"  {'all':<28} {sum(kit.values()) / 1000:8.1f} {sum(floor.values()) / 1000:9.1f}")
    floor_names = {rec.name for rec in profiled[0].imports[1]}
    extra = [rec for rec in profiled[0].imports[0] if rec.name not in floor_names]
    print(f"  the {TOP_MODULES} modules the floor does not import that take longest (self time):")
    for rec in sorted(extra, key=lambda r: -r.self_us)[:TOP_MODULES]:
        print(f"    {rec.self_us / 1000:6.1f} ms  {rec.name}")


def append_run(
    cli: Path, registry: Registry, repo: Path, env: dict[str, str], series: Series, number: int
) -> tuple[float, dict[str, Any]]:
    """(b): one `build --strategy append`, checked; counted unless it is run 0."""
    argv = ("build", "--strategy", "append")
    seconds, record, stored = measured(registry, record_of, cli, repo, env, *argv)
    check_append(registry, repository_of(record), record, series.label)
    if number > 0:
        series.add(seconds, record["bytes_uploaded"], stored)
        series.phases.append({**record["timings"], "wall": seconds})
    return seconds, record


def floor_run(
    registry: Registry,
    base: Path,
    env: dict[str, str],
    record: dict[str, Any],
    series: Series,
    number: int,
) -> float:
    """The floor for the layer and config sizes ``record`` uploaded; counted unless run 0."""
    manifest = registry.manifest(repository_of(record), record["digest"])
    layer, config, script = base / "floor-layer", base / "floor-config", base / "floor.py"
    layer.write_bytes(os.urandom(manifest["layers"][-1]["size"]))
    config.write_bytes(os.urandom(manifest["config"]["size"]))
    script.write_text(FLOOR)
    argv = [sys.executable, str(script), registry.host, "bench/floor", str(layer), str(config)]
    seconds, proc, stored = measured(registry, output_of, argv, base, env)
    if proc.returncode != 0:
        raise CliFailure(describe_failure(argv, proc))
    if number > 0:
        series.add(seconds, int(proc.stdout.decode().split()[-1]), stored)
    return float(seconds)


def repository_of(record: dict[str, Any]) -> str:
    """The repository a build record's image is in (``bench/svc-256``)."""
    return str(record["image"]).split("/", 1)[1]


def check_append(registry: Registry, repo: str, record: dict[str, Any], who: str) -> None:
    summary = record.get("append") or {}
    if record["strategy"] != "append" or summary.get("new_layers") != 1:
        raise CliFailure(f"{who} did not append one layer: {json.dumps(record)[:2000]}")
    if summary["kept_layers"] < 4:
        raise CliFailure(f"{who} kept {summary['kept_layers']} layers, not base and deps")
    check_digest(registry, repo, record["tags"][0], record["digest"], who)


# -- report --------------------------------------------------------------------------------


def _bytes(values: Sequence[int]) -> str:
    if not values:
        return "-"
    n = int(statistics.median(values))
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.1f} KiB"


def _load(values: Sequence[float]) -> str:
    return " ".join(f"{x:.2f}" for x in values)


def print_table(results: Sequence[SizeResult]) -> None:
    head = (
        f"{'variant':<41} {'layer':>8} {'runs':>4} {'median s':>9} {'min':>7} {'max':>7}"
        f" {'uploaded':>10} {'new blobs':>10} {'vs (b)':>8}"
    )
    rule = "─" * len(head)
    print(f"\n{rule}\n{head}\n{rule}")
    for r in results:
        append = r["append"].median
        for key in ("append", "baseline", "fresh-runner", "buildkit", "kaniko", "buildah", "floor"):
            s = r[key]
            if not s.ran:
                print(f"{s.label:<41} {r.mib:>4} MiB  skipped: {s.skipped or 'no runs'}")
                continue
            print(
                f"{s.label:<41} {r.mib:>4} MiB {len(s.seconds):>4} {s.median:>9.3f}"
                f" {min(s.seconds):>7.3f} {max(s.seconds):>7.3f} {_bytes(s.uploaded):>10}"
                f" {_bytes(s.stored):>10} {s.median / append:>7.2f}x"
            )
        print(f"{'':<41} load average after this size: {_load(r.load)}")
    print(rule)
    print("vs (b): the variant's median over (b)'s; above 1, (b) is that many times faster.")
    print("\nWhere (b)'s time goes (medians, ms; start-up: interpreter, imports, exit)")
    for r in results:
        for key in ("append", "baseline", "fresh-runner"):
            if r[key].phases:
                print(f"  {r.mib:>4} MiB {r[key].label}: {_phases(r[key].phases)}")


def _phases(phases: Sequence[dict[str, float]]) -> str:
    def median(name: str) -> float:
        return statistics.median(p.get(name, 0.0) for p in phases) * 1000

    startup = statistics.median(p["wall"] - p["total"] for p in phases) * 1000
    names = ("detect", "plan", "push", "attest")
    inside = ", ".join(f"{name} {median(name):.0f}" for name in names)
    return f"start-up {startup:.0f}, {inside}, total {median('wall'):.0f}"


def _ratio(r: SizeResult, key: str) -> float | None:
    return r[key].median / r["append"].median if r[key].ran else None


def print_ratios(results: Sequence[SizeResult]) -> None:
    print("\nRatios (median of the other / median of (b))")
    for r in results:
        parts = []
        for key, name in (
            ("baseline", "baseline kit"),
            ("buildkit", "BuildKit COPY --link"),
            ("kaniko", "Kaniko"),
            ("buildah", "buildah"),
            ("floor", "floor"),
        ):
            ratio = _ratio(r, key)
            parts.append(f"{name} {ratio:.2f}x" if ratio is not None else f"{name} skipped")
        print(f"  {r.mib:>4} MiB: " + ", ".join(parts))
    if len(results) >= 2:
        small, large = min(results, key=lambda r: r.mib), max(results, key=lambda r: r.mib)
        for key in ("append", "fresh-runner"):
            if small[key].ran and large[key].ran:
                growth = large[key].median / small[key].median
                print(f"  {small[key].label}: {small.mib} -> {large.mib} MiB x{growth:.2f}")


def _verdict(ok: bool | None) -> str:
    return "SKIP" if ok is None else ("HOLD" if ok else "MISS")


def _goal(ok: bool | None, text: str) -> None:
    print(f"  [{_verdict(ok)}] {text}")


def _faster(r: SizeResult, key: str, by: str) -> tuple[float | None, str]:
    """(how many times (b)'s median ``by`` is faster than column ``key``, the figures)."""
    other, mine = r[key], r[by]
    if not other.ran:
        return None, f"skipped ({other.skipped or 'no runs'})"
    ratio = other.median / mine.median
    return ratio, f"{ratio:.2f}x ({mine.median * 1000:.0f} ms vs {other.median * 1000:.0f} ms)"


def print_goals(results: Sequence[SizeResult]) -> None:
    print("\nGoals")
    for by in ("append", "fresh-runner"):
        who = "(b)" if by == "append" else "(b) on a fresh runner"
        if not all(r[by].ran for r in results):
            _goal(None, f"{who}: skipped ({results[0][by].skipped})")
            continue
        for r in results:
            ratio, shown = _faster(r, "buildkit", by)
            role = "goal" if r.mib == BUILDKIT_GOAL_MIB else "for information"
            _goal(
                None if ratio is None else ratio >= 1.0,
                f"{who} at least as fast as BuildKit COPY --link at {r.mib} MiB ({role}): {shown}",
            )
            ratio, shown = _faster(r, "kaniko", by)
            _goal(
                None if ratio is None else ratio >= KANIKO_GOAL,
                f"{who} at least {KANIKO_GOAL:.0f}x faster than Kaniko at {r.mib} MiB: {shown}",
            )
            goal = GOALS.get(r.mib)
            if goal is not None and by == "append":
                ratio, shown = _faster(r, "buildah", by)
                _goal(
                    None if ratio is None else ratio >= goal,
                    f"{who} at least {goal:.0f}x faster than buildah at {r.mib} MiB: {shown}",
                )
            if by == "append":
                near = r[by].median / r["floor"].median
                _goal(
                    near <= FLOOR_LIMIT,
                    f"{who} within {FLOOR_LIMIT:.0f}x of the floor at {r.mib} MiB: {near:.2f}x "
                    f"({r[by].median * 1000:.0f} ms vs {r['floor'].median * 1000:.0f} ms)",
                )
        if len(results) >= 2:
            small, large = min(results, key=lambda r: r.mib), max(results, key=lambda r: r.mib)
            growth = large[by].median / small[by].median
            _goal(
                growth <= GROWTH_LIMIT,
                f"{who}'s time does not grow with the layer ({small.mib} -> {large.mib} MiB): "
                f"x{growth:.2f} (limit x{GROWTH_LIMIT})",
            )


# -- main ----------------------------------------------------------------------------------


def find_executors(args: argparse.Namespace, needs_one: bool = True) -> Executors:
    """The builders' executables from ``args``; those missing or --skip'ped, with why. With
    ``needs_one``, at least BuildKit or Kaniko (the append's first image needs ``--link``)."""
    skipped = {column: "--skip" for column in args.skip}
    buildkit = Path(args.buildkit_bin) if args.buildkit_bin else None
    if "buildkit" not in skipped:
        if buildkit is None:
            skipped["buildkit"] = "BUILDKIT_BIN not set (a directory with buildkitd, buildctl)"
        elif not all((buildkit / name).is_file() for name in ("buildkitd", "buildctl")):
            skipped["buildkit"] = f"no buildkitd and buildctl in BUILDKIT_BIN={buildkit}"
        elif shutil.which("runc") is None:
            skipped["buildkit"] = "runc is not installed (scripts/system-packages)"
    kaniko = Path(args.kaniko_executor) if args.kaniko_executor else None
    if "kaniko" not in skipped:
        if kaniko is None:
            skipped["kaniko"] = "KANIKO_EXECUTOR not set"
        elif not kaniko.is_file():
            skipped["kaniko"] = f"KANIKO_EXECUTOR={kaniko} is not a file"
    if needs_one and "buildkit" in skipped and "kaniko" in skipped:
        raise SystemExit(
            "error: (b) appends to an image of a COPY --link Dockerfile, which BuildKit or Kaniko "
            "must build first (buildah cannot): set BUILDKIT_BIN or KANIKO_EXECUTOR "
            f"(buildkit: {skipped['buildkit']}; kaniko: {skipped['kaniko']})"
        )
    return Executors(
        buildkit if "buildkit" not in skipped else None,
        kaniko if "kaniko" not in skipped else None,
        skipped,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="256,1024", help="deps layer sizes in MiB")
    parser.add_argument("--runs", type=int, default=7, help="measured (b) and floor runs")
    parser.add_argument("--buildkit-runs", type=int, help="measured (c) runs (default: --runs)")
    parser.add_argument("--kaniko-runs", type=int, default=2, help="measured (d) runs")
    parser.add_argument("--builder-runs", type=int, default=2, help="measured (a) buildah runs")
    parser.add_argument(
        "--skip", default="", help=f"columns to leave out, comma-separated: {','.join(COLUMNS)}"
    )
    parser.add_argument(
        "--buildkit-bin",
        default=os.environ.get("BUILDKIT_BIN"),
        help="directory with buildkitd and buildctl (default: $BUILDKIT_BIN)",
    )
    parser.add_argument(
        "--kaniko-executor",
        default=os.environ.get("KANIKO_EXECUTOR"),
        help="the Kaniko executor, run only in the sandbox (default: $KANIKO_EXECUTOR)",
    )
    parser.add_argument("--cli", help="pipeline-kit executable (default: next to python)")
    parser.add_argument(
        "--baseline-cli",
        type=Path,
        help="another pipeline-kit (an earlier release) run beside (b), on commits of its own",
    )
    parser.add_argument(
        "--rtt-ms",
        type=float,
        default=0,
        help="a network round trip (ms) between every column and the registry (a delaying proxy)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the working directory (repositories, registry)"
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    args.sizes_mib = sizes
    args.skip = [s for s in args.skip.split(",") if s]
    if args.buildkit_runs is None:
        args.buildkit_runs = args.runs
    unknown = [s for s in args.skip if s not in COLUMNS]
    if unknown:
        parser.error(f"--skip {','.join(unknown)}: choose from {','.join(COLUMNS)}")
    if (
        args.runs < 1
        or not sizes
        or not all(
            1 <= n <= args.runs for n in (args.builder_runs, args.kaniko_runs, args.buildkit_runs)
        )
    ):
        parser.error("need --runs >= 1, the other --*-runs between 1 and --runs, and a size")
    tools = ("docker-registry", *(() if "buildah" in args.skip else ("buildah",)))
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing or not BUSYBOX.is_file():
        raise SystemExit(f"missing {missing or [str(BUSYBOX)]}: run scripts/system-packages")
    cli = resolve_cli(args.cli)
    executors = find_executors(args)
    print("pipeline-kit code-change benchmark: append vs BuildKit, Kaniko, buildah and the floor")
    print(f"  cli: {cli}; python {platform.python_version()}; {os.cpu_count()} CPUs")
    print("  (a) buildah builds ci/Dockerfile.plain (plain COPY): buildah 1.28 rejects --link")
    for column, why in executors.skipped.items():
        print(f"  {column}: skipped ({why})")
    if args.rtt_ms:
        print(f"  every column reaches the registry {args.rtt_ms:g} ms (round trip) away")
    print(f"  load average at start: {_load(os.getloadavg())}")
    work = Path(tempfile.mkdtemp(prefix="pk-bench-append-"))
    registry = Registry(work / "registry", args.rtt_ms)
    try:
        results = [measure(cli, registry, work, mib, args, executors) for mib in sizes]
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
    print_imports(results)
    print_ratios(results)
    print_goals(results)
    print(f"\n  load average at the end: {_load(os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

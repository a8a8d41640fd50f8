"""The kit's BuildKit builder against a real buildkitd (tests/support/services/buildkitd.py).

``pipeline-kit build`` runs as a CLI process with ``BUILDKIT_HOST`` and ``buildctl`` on PATH, as
in a CI job. The images are the busybox service of tests/support/builds.py: each RUN writes a
random UUID, so a layer that keeps its digest was not rebuilt. Before the builds that must be
served from the registry cache, the daemon's local cache is pruned: what is reused then came from
``<cache>:buildkit``. One repository goes through the rows of the flag table
(docs/build-strategies.md) in order.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.attested import assert_attested_by
from tests.support.builds import layer_digests, manifest
from tests.support.gitrepo import traced_cli
from tests.support.kitbuild import build_cli, busybox_service, manifest_with_auth
from tests.support.services.buildkitd import BuildkitDaemon
from tests.support.services.registry import RegistryServer

ZERO_SHA = "0" * 40
BASE_RUNS = (
    'RUN ["/bin/busybox", "--install", "-s", "/bin"]',
    "RUN cat /proc/sys/kernel/random/uuid > /base-built",
)
DEPS_RUN = (
    "RUN cp /app/requirements.txt /deps-installed && cat /proc/sys/kernel/random/uuid > /deps-built"
)


def cached_steps(log: str) -> set[str]:
    """The Dockerfile steps (``[stage n/m] INSTR``) BuildKit's plain progress shows as reused.

    A reused step is marked ``CACHED``, except the last one before a miss, whose layers are
    fetched from the registry cache instead (``extracting sha256:...`` under the step).
    """
    names: dict[str, str] = {}
    cached: set[str] = set()
    for line in log.splitlines():
        if match := re.match(r"#(\d+) \[[^\]]+\] (.*)$", line):
            names.setdefault(match[1], match[2].strip())
        elif match := re.match(r"#(\d+) (CACHED$|extracting sha256:)", line):
            cached.add(match[1])
    return {names[step] for step in cached if step in names}


@pytest.fixture(scope="module")
def rows(
    tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer, buildkitd: BuildkitDaemon
) -> dict[str, Any]:
    """One service through cold, code, deps, base, docs-only and unknown-history builds."""
    root = tmp_path_factory.mktemp("buildkit-rows")
    repo = busybox_service(root / "repo", f"{registry.host}/buildkit/rows", "buildkit")
    steps: dict[str, Any] = {"repo": repo}

    def step(name: str, files: dict[str, str] | None, *args: str) -> None:
        if files is not None:
            repo.commit(files, message=name)
        buildkitd.forget_local_cache()
        before = buildkitd.build_count()
        record = build_cli(repo, "--tag", name, *args, env=buildkitd.env)
        record["_builds"] = buildkitd.build_count() - before
        steps[name] = record

    step("cold", None)
    # A code change would be appended (tests/integration/build/test_builder_equivalence.py):
    # this row is the builder's, as when append cannot apply.
    step("code", {"app/main.txt": "hello v2\n"}, "--strategy", "builder")
    step("deps", {"requirements.txt": "numpy==2.2.0\n"})
    dockerfile = (repo.path / "Dockerfile").read_text()
    step("base", {"Dockerfile": dockerfile.replace("> /base-built", "> /base-built-v2")})
    step("docs", {"docs/index.md": "# more docs\n"})
    # Content keys need no history, so auto would append this code change: the builder row.
    step("unknown", {"app/main.txt": "hello v3\n"}, "--base", ZERO_SHA, "--strategy", "builder")
    return steps


def test_cold_build_pushes_every_tag_with_the_metadata_digest(
    rows: dict[str, Any], registry: RegistryServer
) -> None:
    cold = rows["cold"]
    assert cold["strategy"] == "builder" and cold["builder"] == "buildkit"
    assert cold["_builds"] == 1
    for tag in ("cold", f"pk-{cold['image_key']}"):
        assert manifest(registry, "buildkit/rows", tag)["_digest"] == cold["digest"]
    assert manifest(registry, "buildkit/rows/cache", "buildkit")["layers"]  # the cache export
    assert cached_steps(cold["_stderr"]) == set()


def test_code_only_change_reuses_base_and_deps_from_the_registry_cache(
    rows: dict[str, Any], registry: RegistryServer
) -> None:
    code = rows["code"]
    assert code["rebuild_from"] == "code"
    log = code["_stderr"]
    assert f"importing cache manifest from {registry.host}/buildkit/rows/cache:buildkit" in log
    assert {*BASE_RUNS, DEPS_RUN, "COPY busybox /bin/busybox"} <= cached_steps(log)
    assert "COPY app/ /app/" not in cached_steps(log)
    before = layer_digests(registry, "buildkit/rows", "cold")
    after = layer_digests(registry, "buildkit/rows", "code")
    assert after[:5] == before[:5]
    assert after[5] != before[5]


def test_deps_change_rebuilds_deps_and_code(rows: dict[str, Any], registry: RegistryServer) -> None:
    deps = rows["deps"]
    assert deps["rebuild_from"] == "deps"
    cached = cached_steps(deps["_stderr"])
    assert set(BASE_RUNS) <= cached and DEPS_RUN not in cached
    before = layer_digests(registry, "buildkit/rows", "code")
    after = layer_digests(registry, "buildkit/rows", "deps")
    assert after[:3] == before[:3]
    assert after[3] != before[3] and after[4] != before[4]


def test_base_change_rewrites_every_later_layer(
    rows: dict[str, Any], registry: RegistryServer
) -> None:
    base = rows["base"]
    assert base["rebuild_from"] == "base"
    cached = cached_steps(base["_stderr"])
    assert BASE_RUNS[0] in cached and DEPS_RUN not in cached
    before = layer_digests(registry, "buildkit/rows", "deps")
    after = layer_digests(registry, "buildkit/rows", "base")
    assert after[:2] == before[:2]
    # Both RUNs after the change ran again. (A COPY that runs again can give the same blob:
    # BuildKit's COPY layer holds only the copied files, whatever lies below it.)
    assert after[2] != before[2] and after[4] != before[4]


def test_docs_only_change_runs_no_build(rows: dict[str, Any], registry: RegistryServer) -> None:
    docs = rows["docs"]
    assert docs["strategy"] == "retag" and docs["builder"] is None
    assert docs["_builds"] == 0  # the daemon's own history: no build ran
    assert docs["digest"] == rows["base"]["digest"]
    assert manifest(registry, "buildkit/rows", "docs")["_digest"] == docs["digest"]


def test_unknown_history_rebuilds_and_still_uses_the_cache(
    rows: dict[str, Any], registry: RegistryServer
) -> None:
    unknown = rows["unknown"]
    assert unknown["strategy"] == "builder" and "rebuilding everything" in unknown["reason"]
    assert unknown["_builds"] == 1
    before = layer_digests(registry, "buildkit/rows", "base")
    after = layer_digests(registry, "buildkit/rows", "unknown")
    assert after[:5] == before[:5] and after[5] != before[5]


def test_basic_auth_reaches_buildctl_only_through_the_docker_config(
    tmp_path: Path, auth_registry: Any, buildkitd: BuildkitDaemon
) -> None:
    """Credentials in the kit's 0600 docker config; the password in no argv and no log."""
    password = "buildkit-Passw0rd-9c2e51"
    server = auth_registry(user="builder", password=password)
    repo = busybox_service(tmp_path / "repo", f"{server.host}/team/secret", "buildkit")
    env = {
        **buildkitd.env,
        "PIPELINE_KIT_REGISTRY": server.host,
        "PIPELINE_KIT_REGISTRY_USER": "builder",
        "PIPELINE_KIT_REGISTRY_PASSWORD": password,
    }
    home = tmp_path / "home"
    home.mkdir()
    run = traced_cli("build", "--format", "json", cwd=repo.path, env={**env, "HOME": str(home)})
    assert run.result.returncode == 0, run.result.stderr[-3000:]
    record = {**json.loads(run.result.stdout), "_stderr": run.result.stderr}
    # Every process started, recorded as it started: buildctl ran, the password is in no
    # command line and in no environment but the kit's own.
    builds = [e.argv[:3] for e in run.execs if e.ok and e.tool == "buildctl"]
    assert builds == [("buildctl", "debug", "workers"), ("buildctl", "build", "--progress=plain")]
    assert run.argv_holding(password) == []
    assert run.env_holding(password) == {"python": ["PIPELINE_KIT_REGISTRY_PASSWORD"]}
    assert password not in record["_stderr"]
    assert password not in buildkitd.log_path.read_text(errors="replace")
    assert password not in server.log_path.read_text(errors="replace")
    assert manifest_with_auth(server, "team/secret", record["digest"], password)
    cache = f"{server.host}/team/secret/cache:buildkit"
    assert "exporting cache to registry" in record["_stderr"] and cache in record["_stderr"]


@pytest.mark.parametrize("answering", [True, False])
def test_auto_picks_buildkit_where_a_daemon_answers_else_buildah(
    tmp_path: Path, registry: RegistryServer, buildkitd: BuildkitDaemon, answering: bool
) -> None:
    repo = busybox_service(tmp_path / "repo", f"{registry.host}/buildkit/auto", "auto")
    env = dict(buildkitd.env)
    if not answering:
        env["BUILDKIT_HOST"] = f"unix://{tmp_path}/no-daemon.sock"
    record = build_cli(repo, "--dry-run", env=env)
    assert record["builder"] == ("buildkit" if answering else "buildah")
    assert record["commands"][0][0] == ("buildctl" if answering else "buildah")


def test_cache_gc_keeps_the_buildkit_cache_manifest(
    rows: dict[str, Any], registry: RegistryServer
) -> None:
    """BuildKit's cache manifest has no creation time in its config: gc keeps it, unharmed."""
    import json

    from tests.support.gitrepo import cli

    repository = f"{registry.host}/buildkit/rows/cache"
    result = cli(
        "cache",
        "gc",
        "--repository",
        repository,
        "--ttl",
        "1s",
        "--keep",
        "0",
        "--dry-run",
        "--format",
        "json",
        cwd=rows["repo"].path,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["entries"], report["kept"], report["deleted"]) == (1, 1, [])


def test_the_cold_build_is_attested_and_verifies(
    rows: dict[str, Any], registry: RegistryServer
) -> None:
    """The builder's digest gets provenance naming the builder and an SBOM; verify passes."""
    assert_attested_by(registry, "buildkit/rows", rows["cold"], "buildkit")

"""Shared test settings and the real services tests share (registry, the example image)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.builder_image import BuiltBuilder, built_builder_image
from tests.support.example_image import (
    EXAMPLE,
    BuiltExample,
    MissingTestImages,
    build_example,
    remove_storage,
)
from tests.support.services.buildkitd import BuildkitDaemon
from tests.support.services.docker_engine import DockerEngine, EngineUnavailable
from tests.support.services.kaniko import KanikoSandbox
from tests.support.services.registry import RegistryServer, running_registry

# Fixtures that start a real part: a test using one is an integration test wherever it lives.
REAL_PARTS = frozenset(
    {
        "registry",
        "auth_registry",
        "kaniko",
        "buildkitd",
        "example_image",
        "builder_image",
        "docker_engine",
    }
)

# Set by .ci/run: a test that skips (or xfails) fails the run, listed with its reason.
NO_SKIPS = "PIPELINE_KIT_NO_SKIPS"


class SkipsFailTheRun:
    """Collects every skipped test (and collector) and turns a passing exit status into a
    failing one when there is any, under ``PIPELINE_KIT_NO_SKIPS=1``."""

    def __init__(self) -> None:
        self.skipped: list[tuple[str, str]] = []

    def _record(self, report: pytest.CollectReport | pytest.TestReport) -> None:
        if not report.skipped:
            return
        if isinstance(report, pytest.TestReport) and hasattr(report, "wasxfail"):
            reason = f"xfail: {report.wasxfail}"
        elif isinstance(report.longrepr, tuple):  # (path, line, "Skipped: reason")
            reason = str(report.longrepr[2]).removeprefix("Skipped: ")
        else:
            reason = str(report.longrepr)
        self.skipped.append((report.nodeid, reason))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.skipped and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.skipped:
            return
        terminalreporter.section(f"skipped tests fail this run ({NO_SKIPS}=1)", red=True)
        for nodeid, reason in self.skipped:
            terminalreporter.line(f"SKIPPED {nodeid}: {reason}")


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get(NO_SKIPS) == "1":
        config.pluginmanager.register(SkipsFailTheRun(), "pipeline-kit-no-skips")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``integration``: everything under tests/integration/, and any test a real part serves;
    ``scripts/test --fast`` runs the rest (``-m "not integration"``)."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if "integration" in item.path.parts or fixtures & REAL_PARTS:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    cache = tmp_path_factory.mktemp("xdg-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(cache))
        yield cache


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """An anonymous registry on loopback, shared by the session (tests use their own repos)."""
    with running_registry(tmp_path_factory.mktemp("registry")) as server:
        yield server


@pytest.fixture(scope="session")
def auth_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., RegistryServer]]:
    """Start registries with htpasswd basic auth: ``auth_registry(user=..., password=...)``."""
    started: list[RegistryServer] = []

    def start(user: str, password: str) -> RegistryServer:
        workdir = tmp_path_factory.mktemp("auth-registry")
        htpasswd = workdir / "htpasswd"
        subprocess.run(
            ["htpasswd", "-Bbc", str(htpasswd), user, password],
            check=True,
            capture_output=True,
        )
        auth = {"htpasswd": {"realm": "pipeline-kit-tests", "path": str(htpasswd)}}
        server = RegistryServer(workdir=workdir, auth=auth).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def kaniko(tmp_path_factory: pytest.TempPathFactory) -> KanikoSandbox:
    """The real Kaniko executor, runnable only in throwaway roots (support/services/kaniko.py)."""
    executor = os.environ.get("KANIKO_EXECUTOR")
    if not executor:
        pytest.skip("KANIKO_EXECUTOR is not set: no real Kaniko executor (.ci/run sets it)")
    return KanikoSandbox(Path(executor), tmp_path_factory.mktemp("kaniko"))


@pytest.fixture(scope="session")
def buildkitd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuildkitDaemon]:
    """A real buildkitd for the session (support/services/buildkitd.py), from ``BUILDKIT_BIN``."""
    bin_dir = os.environ.get("BUILDKIT_BIN")
    if not bin_dir:
        pytest.skip("BUILDKIT_BIN is not set: no buildkitd/buildctl to run (.ci/run sets it)")
    daemon = BuildkitDaemon(Path(bin_dir), tmp_path_factory.mktemp("buildkitd") / "root")
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """A real Docker Engine for the session, private to it (support/services/docker_engine.py).
    One that cannot start fails the test that needs it, with dockerd's own words: a job run in
    containers has no other way to run."""
    # Short: a unix socket's path is limited to 107 bytes, and pytest's tmp paths are long.
    engine = DockerEngine(Path(tempfile.mkdtemp(prefix="pk-docker-")) / "engine")
    try:
        engine.start()
    except EngineUnavailable as exc:
        shutil.rmtree(engine.workdir.parent, ignore_errors=True)
        pytest.fail(str(exc))
    try:
        yield engine
    finally:
        engine.stop()
        shutil.rmtree(engine.workdir.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def builder_image(
    tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer, kaniko: KanikoSandbox
) -> Iterator[BuiltBuilder]:
    """The kit's Kaniko builder image (images/kaniko), built by the kit once per session into
    ``registry`` (support/builder_image.py)."""
    try:
        with built_builder_image(
            tmp_path_factory.mktemp("builder-image"), registry, kaniko.source
        ) as built:
            yield built
    except MissingTestImages as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example model's weights, trained by its own train.py."""
    out = tmp_path_factory.mktemp("weights")
    subprocess.run(
        [sys.executable, "train.py", str(out)], cwd=EXAMPLE, check=True, capture_output=True
    )
    return out


@pytest.fixture(scope="session")
def example_image(
    tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer
) -> Iterator[BuiltExample]:
    """The example service built once per session with buildah and pushed to ``registry``."""
    workdir = tmp_path_factory.mktemp("example-image")
    runroot = Path(tempfile.mkdtemp(prefix="pk-preview-"))
    try:
        try:
            built = build_example(workdir, runroot, registry)
        except MissingTestImages as exc:
            pytest.fail(str(exc))
        yield built
        # Whatever a failed test left in this session's scope (and only that) goes.
        scope = f"--filter=label=pipeline-kit.dev/scope={built.scope}"
        found = subprocess.run(
            [*built.podman, "ps", "--all", "--quiet", scope],
            capture_output=True, text=True, env=built.podman_env, check=False,
        )  # fmt: skip
        ids = found.stdout.split()
        if ids:
            subprocess.run(
                [*built.podman, "rm", "--force", "--time=0", *ids],
                capture_output=True, env=built.podman_env, check=False,
            )  # fmt: skip
    finally:
        remove_storage(workdir)
        remove_storage(runroot)

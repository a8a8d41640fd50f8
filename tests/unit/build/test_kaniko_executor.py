"""Which executor the Kaniko builder runs: only ``/kaniko/executor`` (its container's), never an
``executor`` found on PATH, and what a run that leaves no digest means.

No real Kaniko executor runs here (it deletes ``/`` outside its container): the executors are
shell scripts that leave a marker file when they run, so a test can tell whether the kit
started one.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline_kit.build.builders.kaniko import KANIKO_EXECUTOR, KanikoBuilder
from pipeline_kit.errors import EnvironmentFault, ExitCode
from tests.support.kaniko_executor import DIGEST, request, script


@pytest.fixture
def on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ``executor`` first on PATH that would report a digest if it ran."""
    digest_writer = 'for a; do case "$a" in --digest-file=*) echo ' + DIGEST
    digest_writer += ' > "${a#--digest-file=}";; esac; done'
    stub = script(tmp_path / "path-bin" / "executor", digest_writer)
    monkeypatch.setenv("PATH", f"{stub.parent}{os.pathsep}{os.environ['PATH']}")
    return stub


def ran(executor: Path) -> bool:
    return Path(f"{executor}.ran").exists()


@pytest.mark.parametrize("home_exists", [True, False], ids=["empty-kaniko-dir", "no-kaniko-dir"])
def test_an_executor_on_path_is_never_run(tmp_path: Path, on_path: Path, home_exists: bool) -> None:
    home = tmp_path / "kaniko"
    if home_exists:
        home.mkdir()
    builder = KanikoBuilder(home)
    workdir = tmp_path / "work"
    workdir.mkdir()
    assert not builder.available()
    with pytest.raises(EnvironmentFault) as raised:
        builder.build(request(tmp_path), workdir, None, lambda line: None)
    assert raised.value.exit_code is ExitCode.INFRA
    assert raised.value.message == (
        f"Kaniko's executor is not at {home}/executor: the kit runs Kaniko only inside its own "
        "container, never an `executor` found on PATH."
    )
    assert not ran(on_path)
    assert builder.commands(request(tmp_path), workdir)[0][0] == f"{home}/executor"


def test_the_machines_own_builder_refuses_too(tmp_path: Path, on_path: Path) -> None:
    """The builder the kit uses (``/kaniko``): this machine has no ``/kaniko/executor``."""
    assert not KANIKO_EXECUTOR.exists(), "a Kaniko executor on this machine: remove it"
    with pytest.raises(EnvironmentFault, match=r"not at /kaniko/executor"):
        KanikoBuilder().build(request(tmp_path), tmp_path, None, lambda line: None)
    assert not ran(on_path)


def test_the_executor_in_its_home_is_the_one_run(tmp_path: Path, on_path: Path) -> None:
    own = script(tmp_path / "kaniko" / "executor", on_path.read_text().split("\n", 2)[2])
    builder = KanikoBuilder(tmp_path / "kaniko")
    assert builder.available()
    output = builder.build(request(tmp_path), tmp_path, None, lambda line: None)
    assert output.digest == DIGEST
    assert ran(own) and not ran(on_path)

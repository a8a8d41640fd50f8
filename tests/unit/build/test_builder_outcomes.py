"""What a builder's run means: a builder that fails is a verdict against the change (exit 1);
a builder that says it succeeded but reports no digest is a fault of the builder, not of the
change (exit 3).

The builders run stand-ins, never a real executor: a shell script at Kaniko's executor path and
a ``buildctl`` first on PATH, each exiting as the test says and writing a digest or not.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline_kit.build.builders.base import Builder, BuildFailed
from pipeline_kit.build.builders.buildkit import BuildkitBuilder
from pipeline_kit.build.builders.kaniko import KanikoBuilder
from pipeline_kit.errors import EnvironmentFault, ExitCode, KitError
from tests.support.kaniko_executor import DIGEST, request, script

KANIKO_DIGEST = (
    'for a; do case "$a" in --digest-file=*) echo '
    + DIGEST
    + ' > "${a#--digest-file=}";; esac; done'
)
BUILDKIT_METADATA = (
    'for a; do case "$a" in --metadata-file=*) echo \'{"containerimage.digest": "'
    + DIGEST
    + '"}\' > "${a#--metadata-file=}";; esac; done'
)


def kaniko(tmp_path: Path, body: str) -> KanikoBuilder:
    script(tmp_path / "kaniko" / "executor", body)
    return KanikoBuilder(tmp_path / "kaniko")


def buildkit(tmp_path: Path, body: str, monkeypatch: pytest.MonkeyPatch) -> BuildkitBuilder:
    """A ``buildctl`` that answers ``debug workers`` and runs ``body`` for ``build``."""
    stub = script(
        tmp_path / "bin" / "buildctl",
        f'[ "$1" = debug ] && exit 0\n[ "$1" = build ] || exit 9\n{body}',
    )
    monkeypatch.setenv("PATH", f"{stub.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("BUILDKIT_HOST", raising=False)
    return BuildkitBuilder()


def check(
    builder: Builder,
    tmp_path: Path,
    error: type[KitError] | None,
    code: ExitCode,
    message: str | None,
) -> None:
    """The build gives the digest, or raises ``error`` with exit ``code`` and ``message``."""
    if error is None:
        assert builder.build(request(tmp_path), tmp_path, None, lambda line: None).digest == DIGEST
        return
    with pytest.raises(error) as raised:
        builder.build(request(tmp_path), tmp_path, None, lambda line: None)
    assert raised.value.exit_code is code
    assert message is not None and raised.value.message.startswith(message), raised.value


@pytest.mark.parametrize(
    ("body", "error", "code", "message"),
    [
        (KANIKO_DIGEST, None, ExitCode.OK, None),
        ("exit 0", EnvironmentFault, ExitCode.INFRA, "Kaniko reported success but wrote no digest"),
        ("echo 'error building image: RUN false: exit 1'; exit 1", BuildFailed, ExitCode.VERDICT,
         "Kaniko failed with exit code 1: error building image: RUN false: exit 1"),
    ],
    ids=["digest", "no-digest", "failed"],
)  # fmt: skip
def test_kaniko(
    tmp_path: Path, body: str, error: type[KitError] | None, code: ExitCode, message: str | None
) -> None:
    check(kaniko(tmp_path, body), tmp_path, error, code, message)


@pytest.mark.parametrize(
    ("body", "error", "code", "message"),
    [
        (BUILDKIT_METADATA, None, ExitCode.OK, None),
        ("exit 0", EnvironmentFault, ExitCode.INFRA,
         "BuildKit reported success but wrote no image digest"),
        ("echo 'error: failed to solve: process \"/bin/sh -c false\" did not complete'; exit 1",
         BuildFailed, ExitCode.VERDICT, "BuildKit (buildctl) failed with exit code 1: error: "),
    ],
    ids=["digest", "no-digest", "failed"],
)  # fmt: skip
def test_buildkit(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    body: str,
    error: type[KitError] | None,
    code: ExitCode,
    message: str | None,
) -> None:
    check(buildkit(tmp_path, body, monkeypatch), tmp_path, error, code, message)

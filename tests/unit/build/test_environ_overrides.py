"""What a runner's environment sets for ``build`` over the config file
(docs/configuration.md, "Environment variables"): the repository the image is pushed to
(``PIPELINE_KIT_IMAGE_REPOSITORY``) and build arguments (``PIPELINE_KIT_BUILD_ARGS``), under
``--build-arg``."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.gitrepo import GitRepo, cli

CONFIG = "image: ghcr.io/team/svc\nbuild_args: {BASE: from-file, KEEP: kept}\n"
DOCKERFILE = "ARG BASE=x\nFROM scratch\nARG BASE\nARG KEEP\nARG EXTRA\nCOPY app /app\n"


def _dry_run(path: Path, *args: str, env: dict[str, str]) -> dict[str, object]:
    proc = cli(
        "build", "--dry-run", "--builder", "buildkit", "--format", "json", *args,
        cwd=path, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    record: dict[str, object] = json.loads(proc.stdout)
    return record


def _argv(record: dict[str, object]) -> list[str]:
    (argv,) = record["commands"]  # type: ignore[misc]
    return list(argv)


def test_the_environment_names_the_repository_and_build_arguments(tmp_path: Path) -> None:
    GitRepo.init(tmp_path).commit(
        {"Dockerfile": DOCKERFILE, "app": "x\n", "pipeline-kit.yaml": CONFIG}
    )
    env = {
        "PIPELINE_KIT_IMAGE_REPOSITORY": "127.0.0.1:9/mirror/svc",
        "PIPELINE_KIT_BUILD_ARGS": "BASE=from-env\n\nEXTRA=a=b c\n",
    }
    argv = _argv(_dry_run(tmp_path, env=env))
    output = next(arg for arg in argv if arg.startswith("--output="))
    assert '"name=127.0.0.1:9/mirror/svc:' in output and "ghcr.io" not in output
    assert "--opt=build-arg:BASE=from-env" in argv
    assert "--opt=build-arg:EXTRA=a=b c" in argv
    assert "--opt=build-arg:KEEP=kept" in argv
    # --build-arg wins over the environment.
    flagged = _argv(_dry_run(tmp_path, "--build-arg", "BASE=from-flag", env=env))
    assert "--opt=build-arg:BASE=from-flag" in flagged
    # Without them, the file's values.
    plain = _argv(_dry_run(tmp_path, env={}))
    assert "--opt=build-arg:BASE=from-file" in plain
    assert any('"name=ghcr.io/team/svc:' in arg for arg in plain)


def test_a_build_argument_line_that_is_not_name_value_is_refused(tmp_path: Path) -> None:
    GitRepo.init(tmp_path).commit(
        {"Dockerfile": DOCKERFILE, "app": "x\n", "pipeline-kit.yaml": CONFIG}
    )
    proc = cli(
        "build",
        "--dry-run",
        cwd=tmp_path,
        env={"PIPELINE_KIT_BUILD_ARGS": "BASE=ok\ns3cr3t-token\n"},
    )
    assert proc.returncode == 2, proc.stderr
    assert "PIPELINE_KIT_BUILD_ARGS: line 2 is not NAME=value." in proc.stderr
    assert "s3cr3t-token" not in proc.stderr  # a value without its name is not shown

"""A real git repository in a temporary directory, driven the way a user would drive it."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline_kit.commands.detect import DetectOptions, run
from tests.support.processes import Traced, traced

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


class GitRepo:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    @classmethod
    def init(cls, path: Path) -> GitRepo:
        repo = cls(path)
        repo.git("init", "-q", "-b", "main")
        return repo

    def git(self, *args: str) -> str:
        proc = subprocess.run(
            ["git", *args],
            cwd=self.path,
            env={**os.environ, **GIT_ENV},
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
        return proc.stdout.strip()

    def write(self, files: Mapping[str, str | None]) -> None:
        """Write (or, for None, delete) files relative to the repository root."""
        for name, content in files.items():
            target = self.path / name
            if content is None:
                target.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)

    def commit(self, files: Mapping[str, str | None] | None = None, message: str = "change") -> str:
        if files:
            self.write(files)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def detect(
        self,
        *,
        base: str | None = None,
        head: str | None = None,
        environ: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """``pipeline-kit detect --format json`` run in-process; returns the parsed JSON."""
        out = io.StringIO()
        options = DetectOptions(
            config_path=None,
            cwd=self.path,
            base=base,
            head=head,
            environ=dict(environ or {}),
            format="json",
            **kwargs,
        )
        assert run(options, out) == 0
        result: dict[str, Any] = json.loads(out.getvalue())
        return result


def cli_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment the CLI runs in for tests: no CI variables unless given, test git."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GITLAB", "CI"))}
    clean.update(GIT_ENV)
    clean.update(env or {})
    return clean


def cli(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The installed CLI as a separate process, with CI variables removed unless given."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline_kit", *args],
        cwd=cwd,
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def traced_cli(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 300
) -> Traced:
    """``cli`` under strace: its result and every process it started (support/processes)."""
    return traced(
        [sys.executable, "-m", "pipeline_kit", *args], cwd=cwd, env=cli_env(env), timeout=timeout
    )


def changed(result: dict[str, Any]) -> dict[str, bool]:
    return {name: layer["changed"] for name, layer in result["layers"].items()}

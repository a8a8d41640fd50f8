"""Where a build reads its Dockerfile and context: inside the repository, or an error that names
the config line that chose the path (on a real directory tree and config file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline_kit.adapters.checkout import LeavesRoot
from pipeline_kit.build.plan import CheckoutPaths
from pipeline_kit.config.loader import load_config
from pipeline_kit.errors import ExitCode, InputError


def repository(tmp_path: Path, config: str) -> Path:
    root = tmp_path / "repo"
    (root / "app").mkdir(parents=True)
    (root / "app" / "Dockerfile").write_text("FROM scratch\n")
    (root / "pipeline-kit.yaml").write_text(config)
    return root


def test_paths_inside_the_repository_are_resolved(tmp_path: Path) -> None:
    root = repository(tmp_path, "image: r.example/a\ndockerfile: app/Dockerfile\ncontext: app\n")
    paths = CheckoutPaths.of(load_config(None, root), root)
    assert paths == CheckoutPaths(root / "app" / "Dockerfile", root / "app")


def test_a_dockerfile_outside_names_the_config_line(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "Dockerfile").write_text("FROM scratch\n")
    root = repository(tmp_path, "image: r.example/a\n\ndockerfile: ../elsewhere/Dockerfile\n")
    with pytest.raises(InputError) as error:
        CheckoutPaths.of(load_config(None, root), root)
    assert error.value.message.startswith("pipeline-kit.yaml:3:1: dockerfile: ")
    assert "is outside" in error.value.message and error.value.exit_code == ExitCode.USAGE


def test_a_context_symlink_that_leaves_names_the_config_line(tmp_path: Path) -> None:
    root = repository(tmp_path, "image: r.example/a\ncontext: out\n")
    (root / "out").symlink_to(tmp_path)
    with pytest.raises(LeavesRoot) as error:
        CheckoutPaths.of(load_config(None, root), root)
    assert error.value.message.startswith("pipeline-kit.yaml:2:1: context: ")

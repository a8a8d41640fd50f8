"""The golden image configs, derived by buildah: every case of tests/support/golden_configs.py
is built with ``buildah bud --layers`` and read back with ``buildah inspect``, and buildah's
config must be the table's expected fields and what append computes for the same Dockerfile.

A case on a base image gets one made with buildah itself (``buildah from scratch``, ``buildah
config`` with the case's base config, ``buildah commit`` under the name FROM gives), so buildah
resolves FROM from its own storage, offline.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.golden_configs import CASES, FIELDS, GoldenConfig, config_of, fields_of


class Buildah:
    """buildah with its own storage under ``root`` (vfs, chroot isolation)."""

    def __init__(self, root: Path) -> None:
        self.flags = [
            "--storage-driver=vfs",
            f"--root={root / 'root'}",
            f"--runroot={root / 'run'}",
        ]

    def __call__(self, *args: str, cwd: Path | None = None) -> str:
        proc = subprocess.run(
            ["buildah", *self.flags, *args], cwd=cwd, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, f"buildah {' '.join(args)}: {proc.stderr[-2000:]}"
        return proc.stdout.strip()

    def make_base(self, reference: str, config: dict[str, Any]) -> None:
        """An empty image named ``reference`` whose config is ``config``."""
        container = self("from", "scratch")
        flags = []
        if "User" in config:
            flags.append(f"--user={config['User']}")
        flags += [f"--port={port}" for port in config.get("ExposedPorts", {})]
        flags += [f"--env={env}" for env in config.get("Env", [])]
        if "Entrypoint" in config:
            flags.append(f"--entrypoint={json.dumps(config['Entrypoint'])}")
        if "Cmd" in config:
            flags.append(f"--cmd={json.dumps(config['Cmd'])}")
        flags += [f"--volume={volume}" for volume in config.get("Volumes", {})]
        if "WorkingDir" in config:
            flags.append(f"--workingdir={config['WorkingDir']}")
        flags += [f"--label={k}={v}" for k, v in config.get("Labels", {}).items()]
        if "StopSignal" in config:
            flags.append(f"--stop-signal={config['StopSignal']}")
        self("config", *flags, container)
        self("commit", "--quiet", container, reference)
        self("rm", container)

    def build(self, case: GoldenConfig, context: Path, name: str) -> dict[str, Any]:
        """The config buildah writes for ``case`` (OCI format), built cold: buildah's layer
        cache would answer one case's steps with another's images, and a cached image keeps
        the config its own build gave (an ENTRYPOINT step cached from a stage without a CMD
        of its own comes back with no CMD)."""
        context.mkdir(parents=True)
        (context / "Dockerfile").write_text(case.dockerfile)
        args = [f"--build-arg={k}={v}" for k, v in case.build_args.items()]
        args += [f"--label={k}={v}" for k, v in case.labels.items()]
        self(
            "bud", "--layers", "--no-cache", "--isolation=chroot", "--pull=never", "--format=oci",
            *args, f"--tag={name}", str(context),
        )  # fmt: skip
        inspected = json.loads(self("inspect", "--type=image", name))
        config: dict[str, Any] = inspected["OCIv1"]["config"]
        return config


@pytest.fixture(scope="module")
def derived(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every case's config as buildah writes it, by case name."""
    root = tmp_path_factory.mktemp("golden")
    buildah = Buildah(root / "storage")
    out = {}
    try:
        for index, case in enumerate(CASES):
            if case.base is not None:
                reference = case.base_reference
                assert reference is not None
                buildah.make_base(reference, dict(case.base))
            out[case.name] = buildah.build(case, root / f"ctx{index}", f"localhost/golden:{index}")
    finally:
        subprocess.run(["buildah", *buildah.flags, "rm", "--all"], capture_output=True, timeout=120)
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_buildah_gives_the_table_s_config(
    derived: dict[str, dict[str, Any]], case: GoldenConfig
) -> None:
    assert fields_of(derived[case.name], case.expected) == case.expected


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_append_computes_buildah_s_config(
    derived: dict[str, dict[str, Any]], case: GoldenConfig
) -> None:
    """Every field a Dockerfile decides, not only those the table lists."""
    computed = config_of(case.dockerfile, case.base, case.labels, case.build_args)
    assert fields_of(computed, FIELDS) == fields_of(derived[case.name], FIELDS)

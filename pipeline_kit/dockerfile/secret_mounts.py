"""``RUN --mount=type=secret``: which instructions read a build secret, and which id they name.

BuildKit and buildah mount the secret at ``/run/secrets/<id>`` for that one step; a builder
that does not know the mount (Kaniko) runs the step without it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from pipeline_kit.dockerfile.stages import Instruction, Stage, parse_mount


class SecretMount(NamedTuple):
    instruction: Instruction
    id: str  # BuildKit's default: the target's file name, else the id is required
    required: bool


def secret_mounts(stages: Iterable[Stage]) -> Iterator[SecretMount]:
    """Every ``RUN --mount=type=secret`` of ``stages``, in order."""
    for stage in stages:
        for ins in stage.instructions:
            if ins.cmd != "RUN":
                continue
            for spec in ins.flag_values("mount"):
                mount = parse_mount(spec)
                if mount["type"].lower() != "secret":
                    continue
                name = mount.get("id") or posixpath.basename(mount.get("target", ""))
                required = mount.get("required", "false").lower() in ("true", "1", "")
                yield SecretMount(ins, name, required)

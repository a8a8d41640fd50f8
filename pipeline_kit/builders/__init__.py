"""Image builders behind one Protocol, in a registry keyed by name.

``auto`` picks Kaniko inside a Kaniko container (``/kaniko/executor`` exists) and buildah
elsewhere. CLI choices and docs come from ``BUILDERS``.
"""

from __future__ import annotations

from pipeline_kit.builders.base import Builder
from pipeline_kit.builders.buildah import BuildahBuilder
from pipeline_kit.builders.kaniko import KANIKO_EXECUTOR, KanikoBuilder
from pipeline_kit.errors import EnvironmentFault, InputError

BUILDERS: dict[str, Builder] = {"kaniko": KanikoBuilder(), "buildah": BuildahBuilder()}
CHOICES = ("auto", *BUILDERS)


def choose_builder(name: str) -> Builder:
    if name == "auto":
        if KANIKO_EXECUTOR.exists():
            return BUILDERS["kaniko"]
        if BUILDERS["buildah"].available():
            return BUILDERS["buildah"]
        raise EnvironmentFault(
            "No image builder found: not in a Kaniko container (/kaniko/executor) and "
            "buildah is not on PATH.",
            hint="Install buildah (apt-get install buildah), or run in the Kaniko builder image.",
        )
    builder = BUILDERS.get(name)
    if builder is None:
        raise InputError(
            f"--builder {name}: unknown builder.", hint=f"Choose one of: {', '.join(CHOICES)}."
        )
    return builder

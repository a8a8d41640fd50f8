"""Image builders behind one Protocol, in a registry keyed by name.

``auto`` picks Kaniko inside a Kaniko container (``/kaniko/executor`` exists), BuildKit where a
daemon answers ``buildctl`` (``BUILDKIT_HOST``) or ``docker buildx`` answers, and buildah
elsewhere. CLI choices and docs come from ``BUILDERS`` (tests/test_builders.py holds the CLI to
it: importing every builder to start the CLI would cost more than the CLI's own start-up).
"""

from __future__ import annotations

from pipeline_kit.builders.base import Builder
from pipeline_kit.builders.buildah import BuildahBuilder
from pipeline_kit.builders.buildkit import BuildkitBuilder
from pipeline_kit.builders.kaniko import KANIKO_EXECUTOR, KanikoBuilder
from pipeline_kit.errors import EnvironmentFault, InputError

BUILDERS: dict[str, Builder] = {
    "kaniko": KanikoBuilder(),
    "buildkit": BuildkitBuilder(),
    "buildah": BuildahBuilder(),
}
CHOICES = ("auto", *BUILDERS)


def choose_builder(name: str) -> Builder:
    if name == "auto":
        if KANIKO_EXECUTOR.exists():
            return BUILDERS["kaniko"]
        for candidate in ("buildkit", "buildah"):
            if BUILDERS[candidate].available():
                return BUILDERS[candidate]
        raise EnvironmentFault(
            "No image builder found: not in a Kaniko container (/kaniko/executor), no BuildKit "
            "answering (buildctl at BUILDKIT_HOST, or docker buildx), and buildah is not on PATH.",
            hint="Install buildah (apt-get install buildah), start buildkitd and set "
            "BUILDKIT_HOST, or run in the Kaniko builder image.",
        )
    builder = BUILDERS.get(name)
    if builder is None:
        raise InputError(
            f"--builder {name}: unknown builder.", hint=f"Choose one of: {', '.join(CHOICES)}."
        )
    return builder

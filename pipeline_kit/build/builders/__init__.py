"""Image builders behind one Protocol, in a registry keyed by name.

``auto`` picks Kaniko inside a Kaniko container (``/kaniko/executor`` exists), BuildKit where a
daemon answers ``buildctl`` (``BUILDKIT_HOST``) or ``docker buildx`` answers, and buildah
elsewhere. CLI choices and docs come from ``CHOICES`` (tests/test_builders.py holds the CLI and
``BUILDERS`` to it: importing every builder to start the CLI would cost more than the CLI's own
start-up). ``BUILDERS`` itself is made on first use, for the same reason: a build that needs no
builder (retag, append) imports ``builders.base`` for its request type, and with it this
package, but no builder module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline_kit.errors import EnvironmentFault, InputError

if TYPE_CHECKING:
    from pipeline_kit.build.builders.base import Builder

BUILDERS: dict[str, Builder]  # name -> builder; made by _builders() on first use
CHOICES = ("auto", "kaniko", "buildkit", "buildah")


def _builders() -> dict[str, Builder]:
    made: dict[str, Builder] | None = globals().get("BUILDERS")
    if made is None:
        from pipeline_kit.build.builders.buildah import BuildahBuilder
        from pipeline_kit.build.builders.buildkit import BuildkitBuilder
        from pipeline_kit.build.builders.kaniko import KanikoBuilder

        made = {
            "kaniko": KanikoBuilder(),
            "buildkit": BuildkitBuilder(),
            "buildah": BuildahBuilder(),
        }
        globals()["BUILDERS"] = made
    return made


def __getattr__(name: str) -> object:
    """``from pipeline_kit.build.builders import BUILDERS`` makes the table (PEP 562)."""
    if name == "BUILDERS":
        return _builders()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def choose_builder(name: str) -> Builder:
    builders = _builders()
    if name == "auto":
        from pipeline_kit.build.builders.kaniko import KANIKO_EXECUTOR

        if KANIKO_EXECUTOR.exists():
            return builders["kaniko"]
        for candidate in ("buildkit", "buildah"):
            if builders[candidate].available():
                return builders[candidate]
        raise EnvironmentFault(
            "No image builder found: not in a Kaniko container (/kaniko/executor), no BuildKit "
            "answering (buildctl at BUILDKIT_HOST, or docker buildx), and buildah is not on PATH.",
            hint="Install buildah (apt-get install buildah), start buildkitd and set "
            "BUILDKIT_HOST, or run in the Kaniko builder image.",
        )
    builder = builders.get(name)
    if builder is None:
        raise InputError(
            f"--builder {name}: unknown builder.", hint=f"Choose one of: {', '.join(CHOICES)}."
        )
    return builder

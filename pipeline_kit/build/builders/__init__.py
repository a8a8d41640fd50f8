"""Image builders behind one Protocol, in a catalog keyed by name.

``auto`` picks Kaniko inside a Kaniko container (``/kaniko/executor`` exists), BuildKit where a
daemon answers ``buildctl`` (``BUILDKIT_HOST``) or ``docker buildx`` answers, and buildah
elsewhere. The CLI's choices, the schema's ``build.builder`` enum and the docs come from
``BUILDERS`` (``pipeline_kit.catalog``); a builder module is imported only when a build needs
it, so a build that runs none (retag, append) never loads one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline_kit.catalog import Catalog
from pipeline_kit.errors import EnvironmentFault

if TYPE_CHECKING:
    from pipeline_kit.build.builders.base import Builder

BUILDERS: Catalog[Builder] = Catalog(
    "builder",
    {
        "kaniko": "pipeline_kit.build.builders.kaniko:KanikoBuilder",
        "buildkit": "pipeline_kit.build.builders.buildkit:BuildkitBuilder",
        "buildah": "pipeline_kit.build.builders.buildah:BuildahBuilder",
    },
    extra=("auto",),
)


def choose_builder(name: str) -> Builder:
    if name == "auto":
        from pipeline_kit.build.builders.kaniko import KANIKO_EXECUTOR

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
    return BUILDERS.get(name, given_as="--builder")

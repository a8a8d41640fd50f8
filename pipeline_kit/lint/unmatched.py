"""Sources without wildcards that take nothing from the context on disk: lint stops on them.

The same rule as detect's (pipeline_kit/detect/sources.py), read from the working tree:
BuildKit fails a build whose COPY, ADD or bind mount names a path the context lacks or that
.dockerignore excludes, and a lint of such a context would judge files that are not there.
"""

from __future__ import annotations

import os

from pipeline_kit.dockerfile.dockerignore import DockerIgnore
from pipeline_kit.dockerfile.stages import ContextSource, StageGraph
from pipeline_kit.lint.context_files import ContextFiles


def unmatched_source(
    graph: StageGraph, target: int, files: ContextFiles
) -> tuple[ContextSource, int | None] | None:
    """The first source of a stage ``target`` builds on that takes nothing, with the
    .dockerignore line that excludes it (None: the path is not there)."""
    exceptions = DockerIgnore(tuple(p for p in files.ignore.patterns if p.exception))
    for index in graph.upstream(target):
        for source in graph.stages[index].sources:
            if source.has_glob or source.path == ".":
                continue  # BuildKit copies nothing for a wildcard that matches nothing
            path = files.disk(source.path)
            if path is None:
                continue  # leaves the context: other checks say so
            if not os.path.lexists(path):
                return source, None
            if files.ignore.excluded(source.path):
                reincluded = path.is_dir() and exceptions.may_touch(source.path)
                if not reincluded:
                    return source, files.ignore.excluding_line(source.path)
    return None

"""A COPY/ADD source that takes nothing from the context is an input error, not an answer.

BuildKit stops a build whose COPY, ADD or bind mount names a path (without wildcards) that
the context does not hold or that .dockerignore excludes. Keys computed over such a context
would compare nothing with nothing: the usual cause is a wrong ``context:`` (a Dockerfile in
a subdirectory built with that folder as its context), and every answer would be wrong
without a word. Only the stages the target builds on count, as BuildKit builds only those.
"""

from __future__ import annotations

import posixpath

from pipeline_kit.adapters.git import Git
from pipeline_kit.dockerfile.context_tree import ContextSnapshot
from pipeline_kit.dockerfile.stages import ContextSource, StageGraph
from pipeline_kit.errors import InputError


def check_sources(
    graph: StageGraph,
    target: int,
    snapshot: ContextSnapshot,
    *,
    dockerfile: str,
    context: str,
    revision: str,
    treeish: str,
) -> None:
    """Raise when a stage ``target`` builds on takes a source that matches nothing."""
    needed = graph.upstream(target)
    for found in snapshot.unmatched.values():
        source = found.source
        if not any(source in graph.stages[i].sources for i in needed):
            continue
        elsewhere = None
        if found.excluded_by is None:
            elsewhere = _context_holding(snapshot.git, treeish, dockerfile, context, source.path)
        raise unmatched_error(
            source,
            found.excluded_by,
            dockerfile=dockerfile,
            where=f"the build context {context or '.'} at {revision}",
            ignore_file=snapshot.ignore.source,
            elsewhere=elsewhere,
        )


def _context_holding(
    git: Git, treeish: str, dockerfile: str, context: str, path: str
) -> str | None:
    """The folder, of the Dockerfile's and those above it, whose tree holds ``path``."""
    parent, _, name = path.rpartition("/")
    folder = posixpath.dirname(dockerfile)
    while True:
        # Trees only: the path may name a large file, never read for this.
        tree = git.tree_of(treeish, posixpath.join(folder, parent).strip("/"))
        if folder != context and tree and any(e.name == name for e in git.read_tree(tree)):
            return folder or "."
        if not folder:
            return None
        folder = posixpath.dirname(folder)


def unmatched_error(
    source: ContextSource,
    excluded_by: int | None,
    *,
    dockerfile: str,
    where: str,
    ignore_file: str,
    elsewhere: str | None = None,
) -> InputError:
    """The error for a source that takes nothing: what, where, and what to do."""
    if excluded_by is not None:
        return InputError(
            f"{dockerfile}:{source.line}: {source.via} {source.path}: excluded by "
            f"{ignore_file}:{excluded_by}, so {where} does not send it "
            '(BuildKit fails with "not found").',
            hint=f"Take the line out of {ignore_file}, or fix the path in the Dockerfile.",
        )
    return InputError(
        f"{dockerfile}:{source.line}: {source.via} {source.path}: matches nothing in "
        f'{where} (BuildKit fails with "not found").',
        hint=(
            f"It is in {elsewhere}: set `context: {elsewhere}` in pipeline-kit.yaml if the "
            "image is built from there, or fix the path."
            if elsewhere is not None
            else "Set `context:` in pipeline-kit.yaml to the directory the image is built "
            "from, or fix the path."
        ),
    )

"""The ``append`` strategy: publish a code-only change by registry operations alone.

When everything from the first changed instruction to the end of the target's FROM chain is a
``COPY``/``ADD`` from the build context or a metadata instruction, the new image is the previous
image's layers up to that instruction (same digests, nothing transferred), one reproducible tar
per new ``COPY``/``ADD``, and a config evaluated the way the builder evaluates it.

Modules: ``provenance`` (what every published image records, and the history alignment),
``image_config`` (the config a builder would write), ``steps`` (which instructions can be
appended, or why not), ``copy_sources`` and ``layer_tar`` (the new layers), ``parents`` (the
directories above what a layer writes, as the previous image shows them), ``planner`` (all of
it against one previous image) and ``remote`` (the registry side).
"""

from __future__ import annotations


class CannotAppend(Exception):
    """The change is outside what append can build exactly; the message says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

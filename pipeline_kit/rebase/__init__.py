"""The ``rebase`` strategy: publish a base image's new content under an unchanged image."""

from __future__ import annotations


class CannotRebase(Exception):
    """The base's change is more than new content under the same instructions."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

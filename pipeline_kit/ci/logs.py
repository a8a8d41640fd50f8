"""Live build logs, folded into collapsible groups the way each CI shows them."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

_SECTION_ID = re.compile(r"[^a-z0-9_]+")


class LogGroups:
    """``::group::`` on GitHub, ``section_start``/``section_end`` on GitLab, a rule locally."""

    def __init__(self, provider: str, stream: TextIO) -> None:
        self.provider = provider
        self.stream = stream

    @contextmanager
    def group(self, title: str) -> Iterator[None]:
        section = _SECTION_ID.sub("_", title.lower()).strip("_")[:40] or "step"
        # A build's own output must not issue GitHub workflow commands (::set-output:: and
        # the like): stop command processing inside the group with a one-time token.
        resume = secrets.token_hex(16)
        if self.provider == "github":
            self._write(f"::group::{title}")
            self._write(f"::stop-commands::{resume}")
        elif self.provider == "gitlab":
            self._write(
                f"\x1b[0Ksection_start:{int(time.time())}:{section}[collapsed=true]\r\x1b[0K{title}"
            )
        else:
            self._write(f"── {title}")
        try:
            yield
        finally:
            if self.provider == "github":
                self._write(f"::{resume}::")
                self._write("::endgroup::")
            elif self.provider == "gitlab":
                self._write(f"\x1b[0Ksection_end:{int(time.time())}:{section}\r\x1b[0K")

    def line(self, text: str) -> None:
        self._write(text)

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

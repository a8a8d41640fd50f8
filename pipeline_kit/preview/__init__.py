"""Preview environments behind one Protocol, in a registry keyed by name.

A provider brings a digest up under a name derived from the ref, says where it answers, and
takes it down again; what it creates carries the preview's owner, ref, digest and expiry, so
``status`` and ``gc`` read them back from the platform. The CLI's choices, the schema's
``preview.provider`` enum and the docs come from ``PROVIDERS`` (``pipeline_kit.catalog``).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

from pipeline_kit.catalog import Catalog

if TYPE_CHECKING:
    from pipeline_kit.preview.model import Preview, PreviewSpec
    from pipeline_kit.preview.settings import PreviewContext


class PreviewProvider(Protocol):
    @property
    def name(self) -> str: ...

    def up(self, ctx: PreviewContext, spec: PreviewSpec) -> Preview:
        """Bring ``spec`` up (replacing a preview of the same name) and return it."""

    def down(self, ctx: PreviewContext, name: str) -> bool:
        """Remove the preview; False when there was none (not an error)."""

    def previews(self, ctx: PreviewContext) -> list[Preview]:
        """Every preview of the scope, as the platform reports it."""

    def find(self, ctx: PreviewContext, name: str) -> Preview | None: ...

    def alive(self, ctx: PreviewContext, name: str) -> str | None:
        """None while the preview runs, else why it stopped (the gate stops waiting)."""

    def logs(self, ctx: PreviewContext, name: str, lines: int) -> str:
        """The server's last lines (best effort), shown when the gate fails."""

    def reach(self, ctx: PreviewContext, preview: Preview) -> AbstractContextManager[str]:
        """A URL the gate can reach while the block runs."""


PROVIDERS: Catalog[PreviewProvider] = Catalog(
    "preview provider",
    {
        "local": "pipeline_kit.preview.local:LocalProvider",
        "kubernetes": "pipeline_kit.preview.kubernetes:KubernetesProvider",
        "command": "pipeline_kit.preview.command:CommandProvider",
    },
)

"""The ``preview`` config section and what every provider is handed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline_kit.config.durations import parse_duration
from pipeline_kit.config.loader import Config
from pipeline_kit.config.service import ServiceSpec
from pipeline_kit.preview.model import dns_name, label_value

DEFAULT_PROVIDER = "local"
DEFAULT_TTL = "24h"


@dataclass(frozen=True)
class PreviewSettings:
    provider: str
    ttl_seconds: int
    scope: str  # label value; status and gc see only previews of this scope
    prefix: str  # preview names are <prefix>-<ref slug>
    weights: Path | None  # absolute
    section: Mapping[str, Any]  # the whole section: each provider reads its own part

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        provider: str | None = None,
        ttl: str | None = None,
        weights: Path | None = None,
        cwd: Path | None = None,
    ) -> PreviewSettings:
        section = config.section("preview")
        image_name = (config.image or "").rsplit("/", 1)[-1]
        ttl_text = ttl or str(section.get("ttl", DEFAULT_TTL))
        what = "--ttl" if ttl else f"{config.where('preview', 'ttl')}: preview.ttl"
        if weights is not None:
            weights = ((cwd or Path.cwd()) / weights).resolve()
        elif section.get("weights"):
            weights = (config.root / str(section["weights"])).resolve()
        prefix = str(section.get("prefix") or image_name or "preview")
        return cls(
            provider=provider or str(section.get("provider", DEFAULT_PROVIDER)),
            ttl_seconds=parse_duration(ttl_text, what=what),
            scope=label_value(str(section.get("scope") or config.image or prefix)),
            prefix=dns_name(prefix),
            weights=weights,
            section=section,
        )

    def part(self, name: str) -> Mapping[str, Any]:
        """A provider's own subsection (``preview.local``, ``preview.kubernetes``, ...)."""
        value = self.section.get(name)
        return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class PreviewContext:
    """Everything a provider may use; ``workdir`` is private to this command and removed after."""

    config: Config
    service: ServiceSpec
    settings: PreviewSettings
    environ: Mapping[str, str]
    workdir: Path
    say: Callable[[str], None]

    @property
    def insecure_registries(self) -> frozenset[str]:
        return frozenset(self.config.section("registry").get("insecure", ()))

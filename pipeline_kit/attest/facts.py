"""A build's facts for its provenance, taken from what the build already read: the config,
the CI context, the detection and the record. Nothing else is looked at."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from pipeline_kit.adapters.registry.references import ImageRef
from pipeline_kit.attest.provenance import BuildFacts
from pipeline_kit.build.record import BuildRecord
from pipeline_kit.ci.context import CIContext
from pipeline_kit.config.loader import Config


def build_facts(
    record: BuildRecord,
    config: Config,
    ci: CIContext,
    dockerfile: str,  # repository-relative
    root: Path,
    *,
    started: str,
    finished: str,
    parent: str | None = None,
    base_images: Sequence[tuple[str, str | None]] = (),
    secrets: Sequence[str] = (),
) -> BuildFacts:
    ref = ImageRef.parse(record.image)
    strategy = (
        record.builder if record.strategy == "builder" and record.builder else record.strategy
    )
    return BuildFacts(
        image=f"{ref.registry}/{ref.repository}",
        strategy=strategy,
        started=started,
        finished=finished,
        repository_url=ci.repository_url,
        revision=ci.sha or record.head,
        dockerfile=dockerfile,
        dockerfile_sha256=_sha256(root / dockerfile),
        build_args=dict(config.build_args),
        target=config.target,
        parent=f"{ref.registry}/{parent}" if parent else None,
        base_images=tuple(base_images),
        secrets=tuple(secrets),
        run_url=ci.run_url,
    )


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None

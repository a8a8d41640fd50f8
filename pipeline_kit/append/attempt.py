"""One append attempt for a build: previous image, base image, plan (nothing is written here)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pipeline_kit.adapters.registry.client import Manifest
from pipeline_kit.append.layer_tar import layer_mtime
from pipeline_kit.append.planner import AppendInputs, AppendPlan, plan_append
from pipeline_kit.append.remote import AppendRemote
from pipeline_kit.ci.trust import TRUSTED, Trust
from pipeline_kit.detect.changes import Detection
from pipeline_kit.detect.provenance import Provenance
from pipeline_kit.detect.records import previous_candidates


def prepare_append(
    remote: AppendRemote,
    detection: Detection,
    *,
    context: Path,
    dockerfile: Path,
    build_args: Mapping[str, str],
    labels: Mapping[str, str],
    created: str,
    environ: Mapping[str, str],
    manifests: Mapping[str, Manifest | None] | None = None,
    trust: Trust = TRUSTED,
) -> AppendPlan:
    """The append plan for this build, or ``CannotAppend`` saying why there is none."""
    assert detection.chain is not None
    mine = Provenance.of(detection.chain, detection.chain_stages)
    target = detection.chain.instructions[-1].stage if detection.chain.instructions else None
    below_target = sum(1 for key in detection.chain.instructions if key.stage != target)
    candidates = previous_candidates(detection, trust)
    previous = remote.find_previous(candidates, mine, below_target, manifests)
    platform = {k: previous.config.get(k) for k in ("os", "architecture", "variant")}
    base = remote.base_image(detection.chain.from_ref, platform)
    inputs = AppendInputs(
        chain=detection.chain,
        provenance=mine,
        build_args=build_args,
        labels=labels,
        context=context,
        dockerfile=dockerfile,
        mtime=layer_mtime(environ),
        created=created,
    )
    return plan_append(inputs, previous, base, remote.read_layers)

"""One append attempt for a build: previous image, base image, plan (nothing is written here)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pipeline_kit.adapters.registry.client import Manifest
from pipeline_kit.append import CannotAppend
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
    refuse_before_the_last_layer(detection)
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


def refuse_before_the_last_layer(detection: Detection) -> None:
    """Append replays the last layer only: a change that starts before it is the builder's.

    The rebuild point is detect's (the first instruction that differs from the base commit),
    so build and detect agree on what a change is; unknown history decides nothing here (the
    previous image's provenance does).
    """
    point = detection.rebuild_point
    if point is None or point.trailing or not point.certain:
        return
    last = detection.layers[-1].name if detection.layers else "the target"
    raise CannotAppend(
        f"the change starts at {point.file}:{point.line} {point.text}"
        + (f", in {point.layer}" if point.layer else "")
        + f": only a change inside the last layer ({last}) can be appended"
    )

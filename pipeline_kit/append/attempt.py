"""One append attempt for a build: previous image, base image, plan (nothing is written here)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pipeline_kit.adapters.registry.client import Manifest
from pipeline_kit.adapters.registry.references import platform_name
from pipeline_kit.append import CannotAppend
from pipeline_kit.append.layer_tar import LayerBlob, layer_mtime
from pipeline_kit.append.planner import (
    AppendInputs,
    AppendPlan,
    IndexAppendPlan,
    PreviousImage,
    plan_append,
)
from pipeline_kit.append.remote import AppendRemote
from pipeline_kit.ci.trust import TRUSTED, Trust
from pipeline_kit.detect.changes import Detection
from pipeline_kit.detect.provenance import Provenance
from pipeline_kit.detect.records import previous_candidates
from pipeline_kit.dockerfile.platform import automatic_args, parse_platform


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
    on_candidate: Callable[[str], None] | None = None,
) -> AppendPlan | IndexAppendPlan:
    """The append plan for this build, or ``CannotAppend`` saying why there is none.

    Onto a multi-platform index, each platform's image is planned against its own base
    image's platform; one that cannot be appended to refuses the whole, naming it.
    ``on_candidate`` hears of each image that may be the previous one (``repository@digest``)
    before it is read (reads about it may start then)."""
    assert detection.chain is not None
    refuse_before_the_last_layer(detection)
    mine = Provenance.of(detection.chain, detection.chain_stages)
    target = detection.chain.instructions[-1].stage if detection.chain.instructions else None
    below_target = sum(1 for key in detection.chain.instructions if key.stage != target)
    candidates = previous_candidates(detection, trust)
    previous = remote.find_previous(candidates, mine, below_target, manifests, on_candidate)
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
    if not previous.children:
        base = remote.base_image(detection.chain.from_ref, _platform(previous))
        return plan_append(inputs, previous, base, remote.read_layers)
    made: dict[tuple[Any, ...], LayerBlob] = {}  # a layer equal for every platform, made once
    plans = []
    for child in previous.children:
        name = platform_name(child.config)
        # Each platform's image was built with the builder's platform ARGs for it.
        automatic = automatic_args(parse_platform(name, what=f"{child.reference}: its config"))
        child_inputs = inputs._replace(build_args={**automatic, **build_args})
        try:
            base = remote.base_image(detection.chain.from_ref, _platform(child))
            plans.append(plan_append(child_inputs, child, base, remote.read_layers, made))
        except CannotAppend as refusal:
            raise CannotAppend(
                f"{previous.reference} is a multi-platform index, and its {name} image "
                f"cannot be appended to: {refusal.reason}"
            ) from None
    return IndexAppendPlan(previous, plans)


def _platform(image: PreviousImage) -> dict[str, Any]:
    return {k: image.config.get(k) for k in ("os", "architecture", "variant")}


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

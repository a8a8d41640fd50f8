"""Renderers of a Detection: json (the contract), text, its CI outputs and a Markdown summary."""

from __future__ import annotations

import json

from pipeline_kit.detect.changes import Detection, LayerChange
from pipeline_kit.report.outputs import flag, output_name, record_json
from pipeline_kit.report.table import render_table


def as_json(detection: Detection) -> str:
    return json.dumps(detection.to_json(), indent=2) + "\n"


def as_text(detection: Detection) -> str:
    rng = detection.range
    head = rng.head[:12] + (" + working tree" if rng.worktree else "")
    base = rng.base[:12] if rng.base else "unknown"
    lines = [f"{detection.dockerfile}: {base} ({rng.base_from}) -> {head}"]
    if rng.fail_safe:
        lines.append(f"fail safe: {rng.fail_safe}")
    rows = [
        [
            layer.name,
            _where(layer),
            "yes" if layer.changed else "no",
            layer.key[:12],
            "fail safe" if rng.fail_safe else "; ".join(layer.reasons) or "-",
        ]
        for layer in detection.layers
    ]
    lines.append(render_table(["layer", "stage", "changed", "key", "reasons"], rows))
    rebuild = detection.rebuild_from or "nothing"
    lines.append(
        f"rebuild from: {rebuild}; image changed: {'yes' if detection.image_changed else 'no'}"
    )
    point = detection.rebuild_point
    if point is not None:
        lines.append(f"rebuild point: {point.file}:{point.line} {point.text}")
    return "\n".join(lines) + "\n"


def outputs(detection: Detection) -> list[tuple[str, str]]:
    """Step outputs ``<layer>-changed``, ``<layer>-key``, ``rebuild-from``, ``image-changed``
    and ``json`` (the dotenv report takes all but ``json``)."""
    values: list[tuple[str, str]] = []
    for layer in detection.layers:
        values.append((f"{output_name(layer.name)}-changed", flag(layer.changed)))
        values.append((f"{output_name(layer.name)}-key", layer.key))
    values.append(("rebuild-from", detection.rebuild_from or ""))
    values.append(("image-changed", flag(detection.image_changed)))
    values.append(record_json(detection.to_json()))
    return values


def github_summary(detection: Detection) -> str:
    """A Markdown table for ``$GITHUB_STEP_SUMMARY``."""
    lines = ["### pipeline-kit detect", ""]
    rng = detection.range
    if rng.fail_safe:
        lines += [f"> **Fail safe:** {rng.fail_safe}", ""]
    lines += ["| layer | stage | changed | key | reasons |", "|---|---|---|---|---|"]
    for layer in detection.layers:
        reasons = "<br>".join(_md(r) for r in layer.reasons) or "-"
        changed = "**yes**" if layer.changed else "no"
        lines.append(
            f"| {layer.name} | {_where(layer)} | {changed} | `{layer.key[:12]}` | {reasons} |"
        )
    lines += [
        "",
        f"Rebuild from: **{detection.rebuild_from or 'nothing'}** · image changed: "
        f"**{'yes' if detection.image_changed else 'no'}**",
        "",
    ]
    point = detection.rebuild_point
    if point is not None:
        lines += [f"Rebuild point: `{point.file}:{point.line}` `{_md(point.text)}`", ""]
    return "\n".join(lines)


def _where(layer: LayerChange) -> str:
    """The stage a configured layer is; for an inferred range, its stage and lines too."""
    if layer.origin == "config":
        return layer.stage
    first, last = layer.lines
    return f"{layer.stage} (lines {first}-{last})"


def _md(text: str) -> str:
    return text.replace("|", "\\|")

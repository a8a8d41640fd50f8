"""Renderers of a Detection: json (the contract), text, GitHub step outputs, GitLab dotenv."""

from __future__ import annotations

import json
import re
import secrets

from pipeline_kit.changes import Detection
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
            layer.stage,
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
    return "\n".join(lines) + "\n"


def output_name(layer: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", layer.lower())


def github_outputs(detection: Detection) -> str:
    """``name=value`` lines for ``$GITHUB_OUTPUT`` (multi-line values as heredocs)."""
    values: list[tuple[str, str]] = []
    for layer in detection.layers:
        values.append((f"{output_name(layer.name)}-changed", _bool(layer.changed)))
        values.append((f"{output_name(layer.name)}-key", layer.key))
    values.append(("rebuild-from", detection.rebuild_from or ""))
    values.append(("image-changed", _bool(detection.image_changed)))
    values.append(("json", json.dumps(detection.to_json(), separators=(",", ":"))))
    out = []
    for name, value in values:
        if "\n" in value:
            delimiter = f"EOF_{secrets.token_hex(8)}"
            out.append(f"{name}<<{delimiter}\n{value}\n{delimiter}")
        else:
            out.append(f"{name}={value}")
    return "\n".join(out) + "\n"


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
            f"| {layer.name} | {layer.stage} | {changed} | `{layer.key[:12]}` | {reasons} |"
        )
    lines += [
        "",
        f"Rebuild from: **{detection.rebuild_from or 'nothing'}** · image changed: "
        f"**{'yes' if detection.image_changed else 'no'}**",
        "",
    ]
    return "\n".join(lines)


def gitlab_dotenv(detection: Detection) -> str:
    """A dotenv report: ``PIPELINE_KIT_<LAYER>_CHANGED``, ``_KEY``, rebuild-from, image."""
    lines = []
    for layer in detection.layers:
        var = re.sub(r"[^A-Z0-9]+", "_", layer.name.upper())
        lines.append(f"PIPELINE_KIT_{var}_CHANGED={_bool(layer.changed)}")
        lines.append(f"PIPELINE_KIT_{var}_KEY={layer.key}")
    lines.append(f"PIPELINE_KIT_REBUILD_FROM={detection.rebuild_from or ''}")
    lines.append(f"PIPELINE_KIT_IMAGE_CHANGED={_bool(detection.image_changed)}")
    return "\n".join(lines) + "\n"


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _md(text: str) -> str:
    return text.replace("|", "\\|")

"""The build record as text, its CI outputs and a Markdown summary."""

from __future__ import annotations

from pipeline_kit.build.record import BuildRecord
from pipeline_kit.report.outputs import flag, output_name, record_json


def as_text(record: BuildRecord) -> str:
    lines = [f"{record.strategy}: {record.reason}"]
    if record.offline:
        lines.append(f"planned without the registry: {record.offline['reason']}")
        lines += [f"  not looked up: {lookup}" for lookup in record.offline["lookups"]]
    if record.fallback:
        lines.append(f"not appended: {record.fallback}")
    if record.append:
        summary = record.append
        lines.append(
            f"appended to {summary['previous']}: {summary['kept_layers']} layers kept, "
            f"{summary['new_layers']} new, {summary['reused_layers']} reused"
        )
        lines += [f"  {line}" for line in summary["applied"]]
    if record.bytes_uploaded is not None:
        lines.append(f"uploaded: {record.bytes_uploaded} bytes")
    if record.digest:
        lines.append(f"digest: {record.digest}")
    lines += [f"  {ref}" for ref in record.references]
    lines += _attestations(record)
    lines += ["  $ " + " ".join(argv) for argv in record.commands or ()]
    timings = ", ".join(f"{k} {v:.1f}s" for k, v in record.timings.items())
    lines.append(f"timings: {timings}")
    return "\n".join(lines) + "\n"


def _attestations(record: BuildRecord) -> list[str]:
    found = record.attestations
    if not found:
        return []
    lines = []
    for name in ("provenance", "sbom"):
        if found.get(name):
            new = "attached" if name in found.get("attached", ()) else "already attached"
            lines.append(f"{name}: {found[name]} ({new})")
    if found.get("packages") is not None:
        source = f", extends {found['sbom_from']}" if found.get("sbom_from") else ""
        lines.append(
            f"  sbom lists {found['packages']} packages ({found['layers_read']} layers read"
            f"{source})"
        )
    return lines


def outputs(record: BuildRecord) -> list[tuple[str, str]]:
    """``digest``, ``image`` (repository@digest: what to deploy), ``tags`` (comma-separated),
    ``strategy``, the layer outputs of ``detect`` and ``json``."""
    digest = record.digest or ""
    values = [
        ("digest", digest),
        ("image", f"{record.image}@{digest}" if digest else ""),
        ("tags", ",".join(record.tags)),
        ("strategy", record.strategy),
    ]
    for name, layer in record.layers.items():
        values.append((f"{output_name(name)}-changed", flag(layer.changed)))
        values.append((f"{output_name(name)}-key", layer.key))
    values.append(("rebuild-from", record.rebuild_from or ""))
    values.append(("image-changed", flag(record.image_changed)))
    values.append(record_json(record.to_json()))
    return values


def markdown(record: BuildRecord) -> str:
    lines = [f"### pipeline-kit build: {record.strategy}", "", record.reason, ""]
    if record.fallback:
        lines += [f"Not appended: {record.fallback}", ""]
    if record.digest:
        lines += [f"Digest: `{record.digest}`", ""]
    lines += [f"- `{ref}`" for ref in record.references]
    timings = ", ".join(f"{k} {v:.1f}s" for k, v in record.timings.items())
    lines += ["", f"Timings: {timings}", ""]
    return "\n".join(lines)

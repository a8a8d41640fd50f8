"""The merged index as text and as CI outputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline_kit.report.outputs import record_json


def as_text(record: Mapping[str, Any]) -> str:
    lines = [f"digest: {record['digest']}"]
    lines += [f"  {platform}: {digest}" for platform, digest in record["children"].items()]
    lines += [f"  {reference}" for reference in record["references"]]
    return "\n".join(lines) + "\n"


def outputs(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``digest``, ``image`` (repository@digest: what to deploy), ``tags`` and ``json``, as
    ``build`` names them."""
    return [
        ("digest", record["digest"]),
        ("image", f"{record['image']}@{record['digest']}"),
        ("tags", ",".join(record["tags"])),
        record_json(record),
    ]

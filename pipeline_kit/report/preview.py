"""Preview records as text and JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pipeline_kit.report.table import render_table


def to_json_text(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


def _until(expires: str | None, now: datetime) -> str:
    if not expires:
        return "unknown"
    moment = datetime.fromisoformat(expires.replace("Z", "+00:00"))
    seconds = int((moment - now).total_seconds())
    span = abs(seconds)
    if span >= 3600:
        text = f"{span // 3600}h{span % 3600 // 60:02d}m"
    else:
        text = f"{span // 60}m" if span >= 60 else f"{span}s"
    return f"in {text}" if seconds > 0 else f"expired {text} ago"


def record_text(record: Mapping[str, Any]) -> str:
    """``up``: the URL first (what a person looks for), then the facts."""
    lines = [f"preview {record['name']}: {record.get('url') or '(no URL)'}"]
    for key in ("provider", "image", "ref", "owner", "scope", "expires"):
        lines.append(f"  {key}: {record.get(key)}")
    return "\n".join(lines) + "\n"


def previews_table(records: Sequence[Mapping[str, Any]], now: datetime) -> str:
    if not records:
        return "no previews\n"
    rows = [
        [
            str(r["name"]),
            str(r.get("state")),
            str(r.get("url") or "-"),
            str(r.get("ref") or "-"),
            str(r.get("owner") or "-"),
            _until(r.get("expires"), now),
        ]
        for r in records
    ]
    return render_table(["name", "state", "url", "ref", "owner", "expires"], rows) + "\n"


def gc_text(document: Mapping[str, Any], now: datetime) -> str:
    verb = "would remove" if document["dry_run"] else "removed"
    lines = [f"{verb} {r['name']} ({_until(r.get('expires'), now)})" for r in document["removed"]]
    lines.append(
        f"gc: {len(document['removed'])} {verb}, {len(document['kept'])} kept "
        f"(scope {document['scope']})"
    )
    return "\n".join(lines) + "\n"


def down_text(document: Mapping[str, Any]) -> str:
    if document["removed"]:
        return f"preview {document['name']}: removed\n"
    return f"preview {document['name']}: {document.get('note', 'nothing to remove')}\n"


def outputs(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``preview-name``, ``preview-url``, ``digest`` and ``image`` of a preview that is up."""
    return [
        ("preview-name", str(record["name"])),
        ("preview-url", str(record.get("url") or "")),
        ("digest", str(record.get("digest") or "")),
        ("image", str(record.get("image") or "")),
    ]

"""CI contexts as the kit meets them: a GitHub job's variables and event payload."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SECRET = "pk-test-secret-7c1e0a"  # in the kit's environment, as a CI token would be


def github_env(
    tmp_path: Path,
    *,
    event: str,
    ref: str,
    sha: str,
    before: str | None = None,
    pull: tuple[int, str] | None = None,
    head_ref: str = "",
) -> dict[str, str]:
    """The variables and payload of a GitHub job (``pull``: number and base commit)."""
    payload: dict[str, Any] = {"repository": {"default_branch": "main"}}
    if before:
        payload["before"] = before
    if pull is not None:
        payload["pull_request"] = {"number": pull[0], "base": {"sha": pull[1]}}
    path = tmp_path / f"event-{sha[:12]}-{event}.json"
    path.write_text(json.dumps(payload))
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event,
        "GITHUB_EVENT_PATH": str(path),
        "GITHUB_REF": ref,
        "GITHUB_REF_PROTECTED": "false",
        "GITHUB_SHA": sha,
        "GITHUB_HEAD_REF": head_ref,
        "GITHUB_REPOSITORY": "acme/llm-service",
        "GITHUB_SERVER_URL": "https://github.com",
        "PIPELINE_KIT_TEST_TOKEN": SECRET,
    }

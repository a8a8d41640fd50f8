"""CI contexts as the kit meets them: a GitHub job's variables and event payload."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support import FIXTURES

CI_FIXTURES = FIXTURES / "ci"  # environment dumps shaped like real runners'
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


# A release tag gets version tags only where the CI says it is protected (pipeline_kit.ci.trust);
# the dumps come from repositories without tag protection.
PROTECTED = {"GITHUB_REF_PROTECTED": "true", "CI_COMMIT_REF_PROTECTED": "true"}


def load_environ(name: str, tmp_path: Path) -> dict[str, str]:
    data = json.loads((CI_FIXTURES / f"{name}.json").read_text())
    env: dict[str, str] = dict(data["env"])
    if name.endswith("tag"):
        env.update(PROTECTED)
    if data["event"] is not None:
        event = tmp_path / "event.json"
        event.write_text(json.dumps(data["event"]))
        env["GITHUB_EVENT_PATH"] = str(event)
    return env

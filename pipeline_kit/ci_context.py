"""The CI run the kit is in, read once at the edge from the environment.

Nothing deeper in the kit reads CI variables: commands receive a ``CIContext``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline_kit.errors import InputError


@dataclass(frozen=True)
class CIContext:
    provider: str  # "github", "gitlab" or "local"
    event: str | None = None  # "push", "pull_request", "merge_request_event", ...
    sha: str | None = None  # the commit under test
    before: str | None = None  # the previous tip of the branch, on a push
    pr_base: str | None = None  # the target branch's tip, on a pull request
    mr_diff_base: str | None = None  # GitLab: the merge base, already computed

    @property
    def is_ci(self) -> bool:
        return self.provider != "local"


def from_environ(env: Mapping[str, str]) -> CIContext:
    if env.get("GITHUB_ACTIONS") == "true":
        return _github(env)
    if env.get("GITLAB_CI") == "true":
        return CIContext(
            provider="gitlab",
            event=env.get("CI_PIPELINE_SOURCE"),
            sha=env.get("CI_COMMIT_SHA") or None,
            before=env.get("CI_COMMIT_BEFORE_SHA") or None,
            mr_diff_base=env.get("CI_MERGE_REQUEST_DIFF_BASE_SHA") or None,
        )
    return CIContext(provider="local")


def _github(env: Mapping[str, str]) -> CIContext:
    event_name = env.get("GITHUB_EVENT_NAME")
    payload: dict[str, Any] = {}
    path = env.get("GITHUB_EVENT_PATH")
    if path:
        try:
            payload = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise InputError(
                f"GITHUB_EVENT_PATH={path}: cannot read the event payload ({exc}).",
                hint="Pass --base and --head explicitly.",
            ) from None
    pr_base = None
    pull = payload.get("pull_request")
    if isinstance(pull, dict):
        base = pull.get("base")
        if isinstance(base, dict) and isinstance(base.get("sha"), str):
            pr_base = base["sha"]
    before = payload.get("before")
    return CIContext(
        provider="github",
        event=event_name,
        sha=env.get("GITHUB_SHA") or None,
        before=before if isinstance(before, str) else None,
        pr_base=pr_base,
    )

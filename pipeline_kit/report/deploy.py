"""A deploy's result: JSON, text, and the CI outputs (digest, namespace, revisions, verdict)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pipeline_kit.report.outputs import Outputs, flag, record_json
from pipeline_kit.report.smoke import as_json as smoke_json
from pipeline_kit.report.smoke import as_text as smoke_text
from pipeline_kit.report.smoke import verdict_word

if TYPE_CHECKING:
    from pipeline_kit.deploy.rollout import DeployOutcome


def as_json(outcome: DeployOutcome) -> dict[str, Any]:
    target = outcome.target
    return {
        "passed": outcome.passed,
        "image": outcome.image,
        "digest": outcome.image.rpartition("@")[2],
        "namespace": target.namespace,
        "deployment": target.deployment,
        "revision_before": outcome.revision_before,
        "revision_after": outcome.revision_after,
        "verdict": verdict_word(outcome.passed),
        "failed_step": outcome.failed_step,
        "failure": outcome.failure,
        "rolled_back": outcome.rolled_back,
        "scaled_down": outcome.scaled_down,
        "recovery_failure": outcome.recovery_failure,
        "smoke": smoke_json(outcome.verdict) if outcome.verdict is not None else None,
        "timings": outcome.timings,
    }


def to_json_text(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


def outputs(document: dict[str, Any]) -> Outputs:
    def revision(value: int | None) -> str:
        return "" if value is None else str(value)

    return [
        ("verdict", str(document["verdict"])),
        ("digest", str(document["digest"])),
        ("namespace", str(document["namespace"])),
        ("revision-before", revision(document["revision_before"])),
        ("revision-after", revision(document["revision_after"])),
        ("rolled-back", flag(bool(document["rolled_back"]))),
        record_json(document),
    ]


def as_text(outcome: DeployOutcome) -> str:
    target = outcome.target
    name = f"deployment/{target.deployment} in {target.namespace}"
    before = outcome.revision_before
    lines = [smoke_text(outcome.verdict).rstrip("\n")] if outcome.verdict is not None else []
    if outcome.passed:
        was = f"was {before}" if before is not None else "a first deploy"
        lines.append(f"deployed {outcome.image}: {name}, revision {outcome.revision_after} ({was})")
    else:
        lines.append(f"deploy FAILED at {outcome.failed_step}: {outcome.failure}")
        if outcome.rolled_back:
            lines.append(
                f"rolled back: {name} is at revision {outcome.revision_after}, "
                f"the template of revision {before}"
            )
        elif outcome.scaled_down:
            lines.append(f"no revision before this one: {name} scaled to zero replicas")
        else:
            lines.append(f"not rolled back: {name} was already running this digest")
        if outcome.recovery_failure:
            lines.append(outcome.recovery_failure)
    return "\n".join(lines) + "\n"

"""What a deploy reports: its CI outputs (GitHub step outputs and GitLab dotenv names) and
its text for each way a deploy ends."""

from __future__ import annotations

import pytest

from pipeline_kit.deploy.rollout import DeployOutcome, Target
from pipeline_kit.report import deploy as report
from pipeline_kit.report.outputs import dotenv_text

IMAGE = "registry.example.com/ml/llm@sha256:" + "d" * 64
TARGET = Target(namespace="production", deployment="llm", budget=90)


def test_outputs_name_the_digest_namespace_revisions_and_the_way_back() -> None:
    outcome = DeployOutcome(TARGET, IMAGE, revision_before=None, revision_after=1)
    document = report.as_json(outcome)
    assert document["passed"] is True and document["digest"] == "sha256:" + "d" * 64
    assert dotenv_text(report.outputs(document)).splitlines() == [
        "PIPELINE_KIT_VERDICT=passed",
        f"PIPELINE_KIT_DIGEST=sha256:{'d' * 64}",
        "PIPELINE_KIT_NAMESPACE=production",
        "PIPELINE_KIT_REVISION_BEFORE=",  # a first deploy
        "PIPELINE_KIT_REVISION_AFTER=1",
        "PIPELINE_KIT_ROLLED_BACK=false",
    ]


@pytest.mark.parametrize(
    ("fields", "line"),
    [
        ({"rolled_back": True, "revision_before": 4, "revision_after": 6},
         "rolled back: deployment/llm in production is at revision 6, the template of revision 4"),
        ({"scaled_down": True},
         "no revision before this one: deployment/llm in production scaled to zero replicas"),
        ({"redeploy": True, "revision_before": 4},
         "not rolled back: deployment/llm in production was already running this digest"),
    ],
)  # fmt: skip
def test_a_failed_deploy_says_what_was_done_about_it(fields: dict[str, object], line: str) -> None:
    outcome = DeployOutcome(TARGET, IMAGE, failed_step="rollout", failure="not ready")
    for name, value in fields.items():
        setattr(outcome, name, value)
    text = report.as_text(outcome)
    assert text.splitlines() == ["deploy FAILED at rollout: not ready", line]
    document = report.as_json(outcome)
    assert (document["passed"], document["verdict"]) == (False, "failed")
    assert dict(report.outputs(document))["rolled-back"] == str(outcome.rolled_back).lower()


def test_a_passed_deploy_names_both_revisions() -> None:
    outcome = DeployOutcome(TARGET, IMAGE, revision_before=4, revision_after=5)
    assert report.as_text(outcome) == (
        f"deployed {IMAGE}: deployment/llm in production, revision 5 (was 4)\n"
    )

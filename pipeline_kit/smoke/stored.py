"""The gate's results in the registry: the baseline read and compared, a pass recorded.

The baseline is the newest result attached to the digest ``smoke.baseline.reference`` names in
the image's repository (``stable`` by default: what runs now). A trusted run (a protected ref,
a local run) compares only against results trusted runs recorded. An untrusted run (a pull
request) records only when ``--record`` asks for it, on its own digest, and what it records
never becomes what a protected branch compares against.
Registry trouble is a failed case, not a crash: the gate that cannot compare does not pass.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline_kit.adapters.registry.references import ImageRef
from pipeline_kit.errors import KitError
from pipeline_kit.smoke.baseline import (
    ARTIFACT_TYPE,
    BadBaseline,
    BaselinePlan,
    GateResult,
    compare,
    result_of,
)
from pipeline_kit.smoke.gate import SmokeCase, SmokeVerdict

if TYPE_CHECKING:
    from pipeline_kit.adapters.registry.client import RegistryClient


@dataclass(frozen=True)
class Judged:
    """The image the gate judged and how this run may treat the registry."""

    image: ImageRef | None  # repository@digest; None when the gate was given no digest
    environ: Mapping[str, str]
    insecure_hosts: Collection[str] = ()

    @property
    def trusted(self) -> bool:
        from pipeline_kit.ci.context import from_environ

        return from_environ(self.environ).trust.trusted

    @property
    def ref(self) -> str:
        from pipeline_kit.ci.context import from_environ

        ci = from_environ(self.environ)
        return ci.ref or ci.branch or ci.tag or ""


def judge_and_record(
    verdict: SmokeVerdict, plan: BaselinePlan, judged: Judged, say: Callable[[str], None]
) -> None:
    """Compare against the baseline (its cases join the verdict); then, if everything passed,
    attach this gate's result to the judged digest."""
    if not verdict.cases or not verdict.cases[0].passed:
        return  # never ready: nothing was asked, nothing to compare or keep
    if judged.image is None:
        message = "no digest was judged, so there is no repository to read a baseline from"
        verdict.cases.append(SmokeCase("baseline", False, message, 0.0))
        return
    for case in _against_baseline(verdict, plan, judged, say):
        say(f"{case.name}: {'pass' if case.passed else 'FAIL'}: {case.message}")
        verdict.cases.append(case)
    if verdict.passed and plan.record and (judged.trusted or plan.record_untrusted):
        verdict.cases.append(_record(verdict, judged, say))


def _client(judged: Judged) -> RegistryClient:
    from pipeline_kit.adapters.registry.client import RegistryClient

    assert judged.image is not None
    return RegistryClient.connect(judged.image.registry, judged.environ, judged.insecure_hosts)


def _against_baseline(
    verdict: SmokeVerdict, plan: BaselinePlan, judged: Judged, say: Callable[[str], None]
) -> list[SmokeCase]:
    from pipeline_kit.publish.referrers import latest

    assert judged.image is not None
    image = judged.image
    where = f"{image.registry}/{image.repository}"
    reference = plan.reference
    try:
        client = _client(judged)
        found = client.head_manifest(image.repository, reference)
        if found is None:
            return [_none(plan, f"{where}:{reference} does not exist (nothing deployed yet?)")]
        trusted = judged.trusted
        artifact = latest(
            client,
            image.repository,
            found.digest,
            ARTIFACT_TYPE,
            accept=lambda data: _readable(data, trusted),
        )
    except (KitError, BadBaseline) as exc:
        message = f"reading the baseline of {where}:{reference}: {exc}"
        return [SmokeCase("baseline", False, message, 0.0)]
    if artifact is None:
        whose = " by a trusted run" if judged.trusted else ""
        return [_none(plan, f"{where}:{reference} ({found.digest[:19]}) has no gate result "
                            f"recorded{whose}")]  # fmt: skip
    baseline = GateResult.from_json(artifact.data)
    say(
        f"baseline: {where}:{reference} ({found.digest[:19]}), judged {baseline.recorded}"
        f"{' for ' + baseline.ref if baseline.ref else ''}"
    )
    return compare(plan, verdict, baseline)


def _readable(data: bytes, trusted_only: bool) -> bool:
    """A result the kit can read, recorded by a trusted run where only those count."""
    try:
        result = GateResult.from_json(data)
    except BadBaseline:
        return False  # written by something else (or garbled): the next older one counts
    return result.trusted or not trusted_only


def _none(plan: BaselinePlan, why: str) -> SmokeCase:
    if plan.required:
        return SmokeCase("baseline", False, f"{why}; smoke.baseline.required is set", 0.0)
    return SmokeCase("baseline", True, f"{why}: nothing to compare against", 0.0)


def _record(verdict: SmokeVerdict, judged: Judged, say: Callable[[str], None]) -> SmokeCase:
    from pipeline_kit.publish.referrers import attach, subject_of

    image = judged.image
    assert image is not None and image.digest is not None
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    result = result_of(verdict, f"{image.repository}@{image.digest}", judged.ref,
                       judged.trusted, now)  # fmt: skip
    try:
        client = _client(judged)
        subject = subject_of(client, image.repository, image.digest)
        digest = attach(client, image.repository, subject, ARTIFACT_TYPE, result.to_json(), now)
    except KitError as exc:
        return SmokeCase("result recorded", False, f"attaching the gate's result: {exc}", 0.0)
    message = f"attached to {image.digest[:19]} as {digest[:19]} ({ARTIFACT_TYPE})"
    say(f"result recorded: {message}")
    return SmokeCase("result recorded", True, message, 0.0)

"""One deploy: apply, wait for the rollout, gate the production Service, undo on a failure.

The steps run in order and each failure has one answer: a rollout that never gets ready or a
post-deploy gate that fails goes back to the revision before (``kubectl rollout undo``), and a
first deploy, which has no revision before, is scaled to zero replicas by applying the same
manifests with ``replicas: 0`` under the same field manager (so the next deploy owns the field
again, with no conflict). A signal while the new revision is on its way is answered the same
way, without waiting, and the log says what was left.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline_kit.adapters.kubectl import Kubectl
    from pipeline_kit.errors import KitError
    from pipeline_kit.smoke.gate import SmokeVerdict

APPLY, ROLLOUT, SMOKE = "apply", "rollout", "smoke"


@dataclass(frozen=True)
class DeploySettings:
    """The ``deploy`` section."""

    url: str | None = None  # a template: {namespace}, {service}
    context: str | None = None
    rollout_timeout: int | None = None  # seconds; default from the load budget

    @classmethod
    def from_section(cls, section: Mapping[str, Any], where: str) -> DeploySettings:
        from pipeline_kit.config.durations import parse_duration

        timeout = section.get("rollout_timeout")
        return cls(
            url=section.get("url"),
            context=section.get("context"),
            rollout_timeout=parse_duration(str(timeout), what=f"{where}: deploy.rollout_timeout")
            if timeout
            else None,
        )


@dataclass(frozen=True)
class Target:
    namespace: str
    deployment: str  # also the Service's name
    budget: int  # seconds each rollout wait may take
    url: str | None = None  # the production Service's URL; None: through a port-forward


@dataclass
class DeployOutcome:
    target: Target
    image: str  # the digest reference deployed
    revision_before: int | None = None
    image_before: str | None = None  # what the Deployment ran before
    revision_after: int | None = None
    verdict: SmokeVerdict | None = None
    failed_step: str | None = None  # apply, rollout or smoke
    failure: str | None = None  # what went wrong, in a line
    rolled_back: bool = False  # to revision_before, by rollout undo
    scaled_down: bool = False  # a first deploy that failed: zero replicas
    recovery_failure: str | None = None  # the undo's own rollout did not get ready
    redeploy: bool = False  # the digest was already running: nothing earlier is this one's
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.failed_step is None


class Clock:
    """Elapsed seconds since the deploy started, on every progress line."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.started = time.monotonic()
        self._say = say

    def elapsed(self) -> float:
        return round(time.monotonic() - self.started, 1)

    def say(self, message: str) -> None:
        self._say(f"[{self.elapsed():.1f}s] {message}")


def deploy(
    kubectl: Kubectl,
    image: str,
    manifests: str,
    scaled_to_zero: str,
    target: Target,
    gate: Callable[[str], SmokeVerdict],
    say: Callable[[str], None],
) -> DeployOutcome:
    """Apply ``manifests``, wait, gate; undo (or apply ``scaled_to_zero``) when a step fails."""
    from pipeline_kit.adapters.process import CommandFailed
    from pipeline_kit.ci.signals import Interrupted, cancellable, shielded
    from pipeline_kit.errors import KitError

    clock = Clock(say)
    unrun: KitError | None = None  # why the gate could not run, raised once the way back is done
    name, namespace = f"deployment/{target.deployment}", target.namespace
    outcome = DeployOutcome(target, image)
    before, running = kubectl.revision(namespace, target.deployment)
    outcome.revision_before, outcome.image_before = before, running
    outcome.redeploy = running == image
    clock.say(f"{name} in {namespace}: " + (f"revision {before}" if before else "a first deploy")
              + (f", already running {image}" if outcome.redeploy else ""))  # fmt: skip
    step = APPLY
    with cancellable():
        try:
            clock.say(f"applying {name} and its Service (server-side, field manager pipeline-kit)")
            kubectl.apply_server_side(manifests)
            outcome.timings[APPLY] = clock.elapsed()
            step = ROLLOUT
            clock.say(f"waiting up to {target.budget}s for the rollout of {name}")
            try:
                kubectl.rollout_status(namespace, target.deployment, target.budget)
            except CommandFailed as exc:
                outcome.failed_step = ROLLOUT
                outcome.failure = (
                    f"{name} in {namespace} did not become ready within {target.budget}s: "
                    f"{exc.stderr.strip()[-500:]}"
                )
            outcome.timings[ROLLOUT] = clock.elapsed()
            if outcome.failed_step is None:
                step = SMOKE
                clock.say(f"{name} rolled out; gating it through its Service")
                try:
                    with reach(kubectl, target) as url:
                        outcome.verdict = gate(url)
                except Interrupted:
                    raise
                except KitError as exc:  # a gate that cannot run fails closed
                    outcome.failed_step = SMOKE
                    outcome.failure = f"the post-deploy smoke gate could not run: {exc}"
                    unrun = exc
                outcome.timings[SMOKE] = clock.elapsed()
                if outcome.verdict is not None and not outcome.verdict.passed:
                    failed = ", ".join(case.name for case in outcome.verdict.failures)
                    outcome.failed_step = SMOKE
                    outcome.failure = f"the post-deploy smoke gate failed: {failed}"
        except Interrupted:
            with shielded():  # the way back is one call: it is made, whatever arrives now
                _interrupted(kubectl, scaled_to_zero, outcome, step, clock)
            raise
    if outcome.failed_step is not None:
        clock.say(f"{outcome.failed_step} failed: {outcome.failure}")
        with cancellable():
            try:
                _recover(kubectl, scaled_to_zero, outcome, clock)
            except Interrupted:
                _interrupted_recovery(outcome, clock)
                raise
    if unrun is not None:
        unrun.message = f"{unrun.message} ({_way_back(outcome)})"
        raise unrun
    outcome.revision_after = kubectl.revision(namespace, target.deployment)[0]
    outcome.timings["total"] = clock.elapsed()
    return outcome


def _way_back(outcome: DeployOutcome) -> str:
    name = f"deployment/{outcome.target.deployment}"
    if outcome.rolled_back:
        return f"the deploy was rolled back: {name} is back at revision {outcome.revision_before}"
    if outcome.scaled_down:
        return f"a first deploy: {name} was scaled to zero replicas"
    return f"{name} was already running this digest and is left as it is"


def _recover(kubectl: Kubectl, scaled_to_zero: str, outcome: DeployOutcome, clock: Clock) -> None:
    """Back to the revision before and wait for it; a first deploy goes to zero replicas."""
    from pipeline_kit.adapters.process import CommandFailed

    target = outcome.target
    name = f"deployment/{target.deployment}"
    if outcome.redeploy:
        clock.say(f"{name} was already running this digest: there is nothing of its own to go "
                  "back to, and an undo would run an older one; left as it is")  # fmt: skip
        return
    if outcome.revision_before is None:
        clock.say(f"no revision before this one: scaling {name} to zero replicas")
        kubectl.apply_server_side(scaled_to_zero)
        outcome.scaled_down = True
        return
    clock.say(f"rolling {name} back to revision {outcome.revision_before} (rollout undo)")
    kubectl.undo(target.namespace, target.deployment)
    outcome.rolled_back = True
    clock.say(f"waiting up to {target.budget}s for the rollback of {name}")
    try:
        kubectl.rollout_status(target.namespace, target.deployment, target.budget)
    except CommandFailed as exc:
        outcome.recovery_failure = (
            f"the rollback of {name} did not become ready within {target.budget}s either: "
            f"{exc.stderr.strip()[-500:]}"
        )
        clock.say(outcome.recovery_failure)
    outcome.timings["rollback"] = clock.elapsed()


def _interrupted(
    kubectl: Kubectl, scaled_to_zero: str, outcome: DeployOutcome, step: str, clock: Clock
) -> None:
    """Say what a signal left, after sending the way back (not waiting for it)."""
    from pipeline_kit.errors import KitError

    target = outcome.target
    name = f"deployment/{target.deployment}"
    where = f"-n {target.namespace}"
    clock.say(f"interrupted during {step}: the new revision of {name} may be partly rolled out")
    try:
        unchanged = (outcome.revision_before, outcome.image_before)
        if step == APPLY and kubectl.revision(target.namespace, target.deployment) == unchanged:
            clock.say(f"the apply had not reached {name}: it is as it was")
        elif outcome.redeploy:
            clock.say(f"{name} was already running this digest: left as it is")
        elif outcome.revision_before is None:
            kubectl.apply_server_side(scaled_to_zero)
            clock.say(f"scaled {name} to zero replicas (it had no revision before); "
                      f"see `kubectl get {name} {where}`")  # fmt: skip
        else:
            kubectl.undo(target.namespace, target.deployment)
            outcome.rolled_back = True
            clock.say(f"rollout undo sent: {name} is going back to revision "
                      f"{outcome.revision_before}, not waited for; "
                      f"see `kubectl rollout status {name} {where}`")  # fmt: skip
    except KitError as exc:
        clock.say(f"could not roll {name} back ({exc}): it is left as the signal found it; "
                  f"run `kubectl rollout undo {name} {where}`")  # fmt: skip


def _interrupted_recovery(outcome: DeployOutcome, clock: Clock) -> None:
    target = outcome.target
    name = f"deployment/{target.deployment}"
    where = f"-n {target.namespace}"
    if outcome.rolled_back:
        clock.say(f"interrupted while waiting for the rollback: the undo was sent and {name} is "
                  f"going back to revision {outcome.revision_before}, not waited for; "
                  f"see `kubectl rollout status {name} {where}`")  # fmt: skip
    else:
        clock.say(f"interrupted before the way back was sent: {name} may still run the failed "
                  f"digest; see `kubectl rollout history {name} {where}`")  # fmt: skip


@contextlib.contextmanager
def reach(kubectl: Kubectl, target: Target) -> Iterator[str]:
    """The production Service's URL, or a port-forward to it while the gate runs."""
    from pipeline_kit.preview.kubernetes import SERVICE_PORT

    if target.url:
        yield target.url
        return
    with kubectl.port_forward(target.namespace, target.deployment, SERVICE_PORT) as port:
        yield f"http://127.0.0.1:{port}"

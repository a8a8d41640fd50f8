"""``verify``'s result as text: what each attestation says, then the verdict and why."""

from __future__ import annotations

from pipeline_kit.attest.statement import PROVENANCE, SPDX
from pipeline_kit.attest.verify import Verification

KINDS = {PROVENANCE: "provenance", SPDX: "sbom"}


def as_text(result: Verification) -> str:
    lines = [f"{result.image}: {len(result.checked)} in-toto attestations"]
    for checked in result.checked:
        kind = KINDS.get(checked.predicate_type, checked.predicate_type or "?")
        facts = checked.facts
        if kind == "provenance":
            said = f"builder {facts.get('builder')}, strategy {facts.get('strategy')}, " + (
                f"revision {facts.get('revision') or 'unknown'}"
            )
            if facts.get("parent"):
                said += f", parent {facts['parent']}"
        elif kind == "sbom":
            said = f"{facts.get('packages')} packages"
        else:
            said = ""
        state = "ok" if not checked.problems else "INCONSISTENT"
        lines.append(f"  {kind} {checked.manifest}: {state}{': ' + said if said else ''}")
    problems = result.problems
    lines += [f"  problem: {problem}" for problem in problems]
    lines.append("verified" if not problems else f"NOT verified: {len(problems)} problems")
    return "\n".join(lines) + "\n"

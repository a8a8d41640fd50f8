"""``verify``'s result as text: what each attestation says, then the verdict and why."""

from __future__ import annotations

from pipeline_kit.attest.statement import PROVENANCE, SPDX
from pipeline_kit.attest.verify import Verification

KINDS = {PROVENANCE: "provenance", SPDX: "sbom"}


def as_text(result: Verification) -> str:
    lines = [f"{result.image}: {len(result.checked)} in-toto attestations"]
    lines += _attestation_lines(result, "  ")
    for platform, child in result.children:
        lines.append(f"  {platform} {child.digest}: {len(child.checked)} in-toto attestations")
        lines += _attestation_lines(child, "    ")
    problems = result.problems
    lines += [f"  problem: {problem}" for problem in problems]
    lines.append("verified" if not problems else f"NOT verified: {len(problems)} problems")
    return "\n".join(lines) + "\n"


def _attestation_lines(result: Verification, indent: str) -> list[str]:
    lines = []
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
        lines.append(f"{indent}{kind} {checked.manifest}: {state}{': ' + said if said else ''}")
    return lines

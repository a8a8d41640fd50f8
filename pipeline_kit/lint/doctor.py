"""Run the enabled rules over one Dockerfile and its context; return the findings in order."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from pipeline_kit.config.loader import Config
from pipeline_kit.errors import ConfigError
from pipeline_kit.lint.model import Finding, Hit, LintInput
from pipeline_kit.lint.rules import RULES, Rule


def diagnose(lint: LintInput, rules: Iterable[Rule]) -> list[Finding]:
    findings = {
        Finding(
            rule=rule.id,
            name=rule.name,
            severity=rule.severity,
            path=lint.display(hit.path),
            line=hit.line,
            message=hit.message,
            fix=hit.fix or rule.fix,
            targets=_targets(lint, hit),
        )
        for rule in rules
        for hit in rule.check(lint)
    }
    return sorted(findings, key=Finding.sort_key)


def _targets(lint: LintInput, hit: Hit) -> tuple[str, ...]:
    """The final stages that take what the hit is about (none for a file outside them)."""
    index = hit.stage
    if index is None and hit.path == lint.dockerfile:
        stage = lint.stage_at(hit.line)
        index = None if stage is None else stage.index
    return () if index is None else lint.targets_of(index)


def enabled_rules(config: Config) -> list[Rule]:
    """Every rule but those ``lint.disable`` names by id or by name."""
    disabled = {resolve_rule(entry, config).id for entry in config.lint_disable}
    return [rule for rule in RULES.values() if rule.id not in disabled]


def resolve_rule(entry: str, config: Config) -> Rule:
    by_name = {rule.name: rule for rule in RULES.values()}
    found = RULES.get(entry.upper()) or by_name.get(entry.lower())
    if found is not None:
        return found
    known: Sequence[str] = [*RULES, *by_name]
    close = difflib.get_close_matches(entry, known, n=1, cutoff=0.5)
    close = close or difflib.get_close_matches(entry.upper(), known, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    listing = ", ".join(f"{rule.id} {rule.name}" for rule in RULES.values())
    raise ConfigError(
        f"{config.where('lint', 'disable')}: lint.disable: unknown rule '{entry}'.{hint} "
        f"Rules: {listing}."
    )

"""Renderers of lint findings: text for people, JSON, GitHub annotations, GitLab Code Quality."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence

from pipeline_kit.lint.model import Finding, Severity

_GITHUB_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}
# An error fails the lint job, so it ranks above a warning that only asks for a look.
_GITLAB_SEVERITY = {Severity.ERROR: "critical", Severity.WARNING: "major", Severity.INFO: "info"}


def summary(findings: Sequence[Finding]) -> str:
    """``3 findings: 1 error, 2 warnings``."""
    total = f"{len(findings)} finding{'' if len(findings) == 1 else 's'}"
    counts = []
    for severity in Severity:
        n = sum(1 for f in findings if f.severity is severity)
        if n:
            counts.append(f"{n} {severity.value}{'' if n == 1 else 's'}")
    return f"{total}: {', '.join(counts)}" if counts else total


def as_text(findings: Sequence[Finding]) -> str:
    lines = []
    for f in findings:
        lines.append(f"{f.path}:{f.line}: {f.severity.value}: {f.title}: {f.message}")
        if f.targets:
            lines.append(f"    targets: {', '.join(f.targets)}")
        lines.append(f"    fix: {f.fix}")
    lines.append(summary(findings))
    return "\n".join(lines) + "\n"


def as_json(findings: Sequence[Finding]) -> str:
    counts = {s.value: sum(1 for f in findings if f.severity is s) for s in Severity}
    document = {"findings": [f.to_json() for f in findings], "counts": counts}
    return json.dumps(document, indent=2) + "\n"


def github_annotations(findings: Sequence[Finding]) -> str:
    """Workflow commands that GitHub shows on the pull request's diff."""
    lines = []
    for f in findings:
        level = _GITHUB_LEVEL[f.severity]
        properties = ",".join(
            f"{key}={_escape_property(value)}"
            for key, value in (("file", f.path), ("line", str(f.line)), ("title", f.title))
        )
        lines.append(f"::{level} {properties}::{_escape_data(f'{_described(f)} Fix: {f.fix}')}")
    return "".join(line + "\n" for line in lines)


def _described(finding: Finding) -> str:
    """The message, with the final stages that take what it is about."""
    if not finding.targets:
        return finding.message
    return f"{finding.message} Targets: {', '.join(finding.targets)}."


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def gitlab_code_quality(findings: Sequence[Finding]) -> str:
    """A Code Quality report (``artifacts: reports: codequality``)."""
    issues = [
        {
            "description": f"{f.title}: {_described(f)} Fix: {f.fix}",
            "check_name": f.rule,
            "fingerprint": fingerprint(f),
            "severity": _GITLAB_SEVERITY[f.severity],
            "location": {"path": f.path, "lines": {"begin": f.line}},
        }
        for f in findings
    ]
    return json.dumps(issues, indent=2) + "\n"


def fingerprint(finding: Finding) -> str:
    """Stable across runs, so GitLab can tell a new finding from one the branch already had."""
    material = "\0".join((finding.rule, finding.path, str(finding.line), finding.message))
    return hashlib.sha256(material.encode()).hexdigest()


RENDERERS: dict[str, Callable[[Sequence[Finding]], str]] = {
    "text": as_text,
    "json": as_json,
    "github": github_annotations,
    "gitlab": gitlab_code_quality,
}

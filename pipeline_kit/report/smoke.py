"""The smoke verdict as JUnit XML, Markdown, JSON and text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET

from pipeline_kit.adapters.checkout import append_file, write_file
from pipeline_kit.report.outputs import record_json
from pipeline_kit.smoke.gate import SmokeVerdict

if TYPE_CHECKING:
    from pipeline_kit.smoke.session import SmokeOptions


def as_json(verdict: SmokeVerdict) -> dict[str, Any]:
    plan = verdict.plan
    return {
        "passed": verdict.passed,
        "url": plan.url,
        "protocol": plan.protocol.name,
        "model": plan.model,
        "digest": plan.digest,
        "cases": [
            {
                "name": c.name,
                "passed": c.passed,
                "message": c.message,
                "seconds": round(c.seconds, 3),
                "output": c.output,
                **({} if c.baseline is None else {"baseline": c.baseline}),
            }
            for c in verdict.cases
        ],
    }


def junit(verdict: SmokeVerdict) -> str:
    suite = ET.Element(
        "testsuite",
        name=f"pipeline-kit smoke {verdict.plan.protocol.name}",
        tests=str(len(verdict.cases)),
        failures=str(len(verdict.failures)),
        errors="0",
        time=f"{sum(c.seconds for c in verdict.cases):.3f}",
    )
    if verdict.plan.digest:
        properties = ET.SubElement(suite, "properties")
        ET.SubElement(properties, "property", name="digest", value=verdict.plan.digest)
    for case in verdict.cases:
        element = ET.SubElement(
            suite, "testcase", classname="smoke", name=case.name, time=f"{case.seconds:.3f}"
        )
        if not case.passed:
            ET.SubElement(element, "failure", message=case.message).text = case.message
        if case.baseline is not None:
            both = f"baseline:  {case.baseline}\ncandidate: {case.output}"
            ET.SubElement(element, "system-out").text = both
        elif case.passed and case.output:
            ET.SubElement(element, "system-out").text = case.output
    text: str = ET.tostring(suite, encoding="unicode", xml_declaration=True)
    return text + "\n"


def markdown(verdict: SmokeVerdict) -> str:
    plan = verdict.plan
    head = "passed" if verdict.passed else "FAILED"
    lines = [
        f"### Smoke inference {head}",
        "",
        f"`{plan.protocol.name}` at `{plan.url}`"
        + (f", image `{plan.digest}`" if plan.digest else ""),
        "",
        "| check | result | time | detail |",
        "|---|---|---|---|",
    ]
    for case in verdict.cases:
        detail = _cell(case.message)
        result = "pass" if case.passed else "**fail**"
        lines.append(f"| {case.name} | {result} | {case.seconds:.2f}s | {detail} |")
    compared = [case for case in verdict.cases if case.baseline is not None]
    if compared:
        lines += ["", "| against the baseline | result | baseline | candidate |"]
        lines.append("|---|---|---|---|")
        for case in compared:
            result = "pass" if case.passed else "**fail**"
            name = case.name.removeprefix("baseline: ")
            lines.append(f"| {name} | {result} | {_cell(case.baseline or '')} | "
                         f"{_cell(case.output)} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def as_text(verdict: SmokeVerdict) -> str:
    lines = [f"{'pass' if c.passed else 'FAIL'}  {c.name}: {c.message}" for c in verdict.cases]
    lines.append(
        f"smoke: {'passed' if verdict.passed else 'failed'} ({len(verdict.failures)} failed)"
    )
    return "\n".join(lines) + "\n"


def to_json_text(verdict: SmokeVerdict) -> str:
    return json.dumps(as_json(verdict), indent=2) + "\n"


def verdict_word(passed: bool) -> str:
    return "passed" if passed else "failed"


def outputs(verdict: SmokeVerdict) -> list[tuple[str, str]]:
    """``verdict`` (passed or failed), ``digest`` (the image judged) and ``json``."""
    return [
        ("verdict", verdict_word(verdict.passed)),
        ("digest", verdict.plan.digest or ""),
        record_json(as_json(verdict)),
    ]


def write_files(verdict: SmokeVerdict, options: SmokeOptions) -> None:
    """JUnit XML and the Markdown summary, where asked for."""

    if options.junit:
        write_file(options.junit, junit(verdict))
    summary = options.summary or (
        Path(options.environ["GITHUB_STEP_SUMMARY"])
        if options.environ.get("GITHUB_STEP_SUMMARY")
        else None
    )
    if summary:
        append_file(summary, markdown(verdict))

"""The kit in a repository's GitHub Actions: the ready-to-copy caller workflows (the files in
the kit's ``workflows/``, shipped with the package) under ``.github/workflows/``."""

from __future__ import annotations

from importlib import resources

CALLERS = ("pull-request", "main", "cleanup")


def caller_workflows(default_branch: str) -> dict[str, str]:
    """``.github/workflows/pipeline-kit-<name>.yml`` -> its text, the main-branch pipeline on
    ``default_branch``."""
    files = resources.files("pipeline_kit.onboard").joinpath("workflows")
    callers = {}
    for name in CALLERS:
        text = files.joinpath(f"{name}.yml").read_text(encoding="utf-8")
        if name == "main" and default_branch != "main":
            text = text.replace("branches: [main]", f"branches: [{default_branch}]")
        callers[f".github/workflows/pipeline-kit-{name}.yml"] = text
    return callers

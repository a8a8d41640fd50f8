"""The kit in a repository's ``.gitlab-ci.yml``: the template's ``include`` with its inputs, and
the stages its jobs run in, added to the file as its author wrote it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline_kit import __version__
from pipeline_kit.onboard.yaml_edit import edit, separate_top_level_key

TEMPLATE_FILE = ".gitlab-ci-template.yml"
TEMPLATE_URL = (
    f"https://raw.githubusercontent.com/pipeline-kit/pipeline-kit/v{__version__}/{TEMPLATE_FILE}"
)
# The template's stage inputs and their defaults, in pipeline order.
STAGE_INPUTS = (("stage-build", "build"), ("stage-test", "test"), ("stage-deploy", "deploy"))
# Keys that conventionally open a .gitlab-ci.yml: the include goes after the last of them.
_HEADER_KEYS = ("workflow", "stages", "variables", "default", "include")


def add_kit(text: str, display: str, inputs: Mapping[str, str]) -> str | None:
    """``text`` with the template included (and its stages declared where the file declares
    stages), or None when it already includes the template."""

    def change(document: Any) -> bool:
        if _includes_template(document.get("include")):
            return False
        entry: dict[str, Any] = {"remote": TEMPLATE_URL}
        if inputs:
            entry["inputs"] = dict(inputs)
        _add_include(document, entry)
        _add_stages(document)
        return True

    edited = edit(text, display, change)
    return None if edited is None else separate_top_level_key(edited, "include")


def _includes_template(include: Any) -> bool:
    entries = include if isinstance(include, list) else [include] if include else []
    for entry in entries:
        values = entry.values() if isinstance(entry, Mapping) else [entry]
        if any(isinstance(v, str) and v.rstrip("/").endswith(TEMPLATE_FILE) for v in values):
            return True
    return False


def _add_include(document: Any, entry: dict[str, Any]) -> None:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    include = document.get("include")
    if isinstance(include, list):
        include.append(CommentedMap(entry))
        return
    seq = CommentedSeq([include] if include else [])
    seq.append(CommentedMap(entry))
    if "include" in document:
        document["include"] = seq
        return
    keys = list(document)
    position = max((keys.index(k) + 1 for k in _HEADER_KEYS if k in keys), default=0)
    document.insert(position, "include", seq)


def _add_stages(document: Any) -> None:
    """Where the file lists its stages, the template's must be among them, in order."""
    from ruamel.yaml.comments import CommentedSeq

    stages = document.get("stages")
    if not isinstance(stages, CommentedSeq):
        return  # GitLab's default stages (build, test, deploy) already hold the kit's jobs
    order = [stage for _, stage in STAGE_INPUTS]
    for i, stage in enumerate(order):
        if stage in stages:
            continue
        following = [stages.index(s) for s in order[i + 1 :] if s in stages]
        if following:
            stages.insert(min(following), stage)
            continue
        stages.append(stage)
        # What followed the old last item (a blank line before the next key) follows the new one.
        last = len(stages) - 2
        if last in stages.ca.items:
            stages.ca.items[last + 1] = stages.ca.items.pop(last)

"""Image tags from the CI context: prioritized rules, each switchable, with prefix and suffix.

The rules follow docker/metadata-action's well-known defaults: ``X.Y.Z``, ``X.Y`` and ``X`` on a
version tag (not for pre-releases, and no ``X`` for major version 0), ``latest`` on the default
branch, the branch slug, ``pr-<n>`` (``mr-<n>`` on GitLab) and ``sha-<short>``. Every tag is
cleaned to ``[A-Za-z0-9._-]`` (first character not ``.`` or ``-``) and cut to 128 characters.

An untrusted run (a pull request, an unprotected ref: ``pipeline_kit.ci.trust``) gets no tag a
protected ref owns: no ``latest``, no version, nothing the kit records content keys under,
whatever its branch is called or its config's rules say.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from pipeline_kit.ci.context import CIContext

MAX_TAG_LENGTH = 128
RULES = ("semver", "latest", "branch", "pull_request", "sha")
_DEFAULT_PREFIX = {"sha": "sha-", "pull_request": None}  # None: pr- or mr- by provider
_SEMVER = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+(?P<build>[0-9A-Za-z.-]+))?$"
)
_INVALID = re.compile(r"[^A-Za-z0-9._-]+")
# What only a trusted ref writes: a version (1, 1.2, 1.2.3, 1.2.3-rc.1, v1.2), latest, key records.
_PROTECTED_TAG = re.compile(r"^(v?\d+(\.\d+){0,2}([-+][0-9A-Za-z.-]*)?|latest|pkx?-.*)$", re.I)


def is_protected_tag(name: str) -> bool:
    """Whether only a trusted run may write the tag ``name``."""
    return bool(_PROTECTED_TAG.match(name))


class Rule(NamedTuple):
    enabled: bool = True
    prefix: str | None = None
    suffix: str = ""
    length: int = 7  # sha only


class Tag(NamedTuple):
    name: str
    rule: str  # which rule made it


def rules_from_section(section: Mapping[str, Any]) -> dict[str, Rule]:
    """The ``tags`` config section (validated by the schema) as rules; absent rules are on."""
    rules: dict[str, Rule] = {}
    for name in RULES:
        raw = section.get(name, {})
        if isinstance(raw, bool):
            raw = {"enabled": raw}
        rules[name] = Rule(
            enabled=bool(raw.get("enabled", True)),
            prefix=raw.get("prefix", _DEFAULT_PREFIX.get(name, "")),
            suffix=str(raw.get("suffix", "")),
            length=int(raw.get("length", 7)),
        )
    return rules


def clean_tag(text: str) -> str:
    """A valid tag from any ref name: invalid runs become '-', no leading '.'/'-', <= 128."""
    cleaned = _INVALID.sub("-", text).lstrip(".-")
    return cleaned[:MAX_TAG_LENGTH].rstrip(".-") or "-"


def compute_tags(ci: CIContext, rules: Mapping[str, Rule]) -> list[Tag]:
    """Tags for the build in ``ci``, highest priority first, without duplicates."""
    out: list[Tag] = []

    trusted = ci.trust.trusted

    def add(rule: str, value: str) -> None:
        spec = rules[rule]
        prefix = spec.prefix if spec.prefix is not None else ""
        name = clean_tag(f"{prefix}{value}{spec.suffix}")
        if not trusted and is_protected_tag(name):
            return  # a branch called "latest" or "1.2", or rules written to make one
        if name not in {tag.name for tag in out}:
            out.append(Tag(name, rule))

    if rules["semver"].enabled and ci.tag and (version := _SEMVER.match(ci.tag)):
        major, minor, patch = version["major"], version["minor"], version["patch"]
        if version["pre"]:
            add("semver", f"{major}.{minor}.{patch}-{version['pre']}")
        else:
            add("semver", f"{major}.{minor}.{patch}")
            add("semver", f"{major}.{minor}")
            if major != "0":
                add("semver", major)
    if rules["latest"].enabled and ci.is_default_branch:
        add("latest", "latest")
    if rules["branch"].enabled and ci.branch and ci.pr_number is None:
        add("branch", ci.branch)
    if rules["pull_request"].enabled and ci.pr_number is not None:
        spec = rules["pull_request"]
        if spec.prefix is None:
            prefix = "mr-" if ci.provider == "gitlab" else "pr-"
            rules = {**rules, "pull_request": Rule(True, prefix, spec.suffix)}
        add("pull_request", str(ci.pr_number))
    if rules["sha"].enabled and ci.sha:
        add("sha", ci.sha[: rules["sha"].length])
    return out

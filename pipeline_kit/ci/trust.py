"""How far this run is trusted: what it may publish, and whose config reaches the runner.

A pull or merge request, and a push to any ref the CI does not mark protected, is untrusted:
whoever opened it shaped the checkout. Such a build never writes a tag that a protected ref
believes (``latest``, versions, the content-key records ``pk-``); its own records live under
``pkx-<scope>-``. In a pull request, the config keys that reach the runner come from the base
commit's config. See docs/trust-model.md for the whole model.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline_kit.ci.context import CIContext

TRUSTED_REFS_VARIABLE = "PIPELINE_KIT_TRUSTED_REFS"
MAX_SCOPE = 40  # pkx-<scope>-on-<64 hex digits> stays within a tag's 128 characters
_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Trust:
    trusted: bool
    why: str  # said in logs: "a pull request (#12)", "refs/heads/main is protected"
    scope: str = ""  # an untrusted run's own namespace: pr-12, mr-7, ref-<branch slug>
    config_base: str | None = None  # a pull request's base commit, whose config is trusted
    pull_request: bool = False

    @property
    def key_prefix(self) -> str:
        """Where this run records content keys: ``pk-``, or ``pkx-<scope>-`` when untrusted."""
        return TRUSTED_KEY_PREFIX if self.trusted else f"{UNTRUSTED_KEY_PREFIX}{self.scope}-"


TRUSTED_KEY_PREFIX = "pk-"
UNTRUSTED_KEY_PREFIX = "pkx-"
TRUSTED = Trust(True, "a local run")


def trust_of(ci: CIContext) -> Trust:
    """The trust a CI context earns; a local run (a person's own machine) is trusted."""
    if not ci.is_ci:
        return TRUSTED
    if ci.is_pull_request:
        kind = "merge request" if ci.provider == "gitlab" else "pull request"
        if ci.pr_number is not None:
            scope = f"{'mr' if ci.provider == 'gitlab' else 'pr'}-{ci.pr_number}"
            why = f"a {kind} (#{ci.pr_number})"
        else:
            scope, why = _ref_scope(ci.branch or ci.sha or "unknown"), f"a {kind}"
        return Trust(False, why, scope, ci.pr_base or ci.mr_diff_base, pull_request=True)
    ref = ci.ref or _full_ref(ci)
    if ci.ref_protected:
        return Trust(True, f"{ref} is protected")
    if ci.is_default_branch:
        return Trust(True, f"{ref} is the default branch")
    short = ci.tag or ci.branch or ""
    for pattern in ci.trusted_refs:
        if fnmatch.fnmatchcase(ref, pattern) or (short and fnmatch.fnmatchcase(short, pattern)):
            return Trust(True, f"{ref} matches {TRUSTED_REFS_VARIABLE} ({pattern})")
    return Trust(False, f"{ref} is not protected", _ref_scope(short or ci.sha or "unknown"))


def _full_ref(ci: CIContext) -> str:
    if ci.tag:
        return f"refs/tags/{ci.tag}"
    if ci.branch:
        return f"refs/heads/{ci.branch}"
    return ci.sha or "an unknown ref"


def _ref_scope(name: str) -> str:
    slug = _SLUG.sub("-", name.lower()).strip("-")[: MAX_SCOPE - 4].strip("-")
    return f"ref-{slug or 'unnamed'}"


def parse_trusted_refs(text: str | None) -> tuple[str, ...]:
    """``PIPELINE_KIT_TRUSTED_REFS``: globs over ref names, separated by commas or spaces."""
    return tuple(part for part in re.split(r"[\s,]+", text or "") if part)


TRUST_LABEL = "dev.pipeline-kit.trust"
PROTECTED = "protected"  # the label's value on images a trusted run built


def vouched(tag: str, labels: Mapping[str, str] | None) -> bool:
    """Whether an image found under ``tag`` may be reused: a protected record (``pk-``) must
    hold an image whose label says a trusted run built it; a run's own records hold its own."""
    if not tag.startswith(TRUSTED_KEY_PREFIX):
        return True
    return (labels or {}).get(TRUST_LABEL) == PROTECTED

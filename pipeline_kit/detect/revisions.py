"""Which two commits to compare, and when history is too uncertain to compare at all.

The rule is fail safe: when the base cannot be trusted (all-zero sha of a new branch, an
object missing from a shallow clone, a base that is not an ancestor after a force push),
the range carries the reason and every layer counts as changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline_kit.adapters.git import Git, is_null_sha, looks_like_sha
from pipeline_kit.ci.context import CIContext
from pipeline_kit.errors import InputError


@dataclass(frozen=True)
class RevisionRange:
    base: str | None  # resolved sha, None when unknown
    head: str  # resolved sha of the head commit
    head_tree: str  # what is compared: the head commit's tree, or the working tree's
    worktree: bool  # True when head_tree holds uncommitted changes
    base_from: str  # how the base was chosen, for people reading the output
    fail_safe: str | None  # why everything counts as changed, or None


def choose_range(
    git: Git,
    ci: CIContext,
    *,
    base: str | None,
    head: str | None,
    merge_base: bool = False,
    worktree: bool | None = None,
) -> RevisionRange:
    head_rev = head or ci.sha or "HEAD"
    if worktree is None and head is None and not ci.is_ci:
        git.ask_dirty()  # git status runs while the head is resolved
    head_sha = git.resolve_commit(head_rev)
    if head_sha is None:
        raise InputError(
            f"--head {head_rev}: no such commit in {git.root}.",
            hint="Check the revision name, or fetch it first.",
        )
    if worktree is None:
        worktree = head is None and not ci.is_ci and git.is_dirty()
    head_tree = git.worktree_tree() if worktree else git.tree_of(head_sha)
    assert head_tree is not None

    candidate, base_from, use_merge_base = _base_candidate(ci, base, head_rev, merge_base, worktree)

    def unsafe(reason: str, resolved: str | None = None) -> RevisionRange:
        return RevisionRange(resolved, head_sha, head_tree, worktree, base_from, reason)

    if is_null_sha(candidate):
        return unsafe(
            f"base is the all-zero sha ({base_from}): a new branch or a first push, "
            "so what changed is unknown"
        )
    base_sha = git.resolve_commit(candidate)
    if base_sha is None:
        if base is not None and not git.shallow and not looks_like_sha(base):
            raise InputError(
                f"--base {base}: no such revision in {git.root}.",
                hint="Check the branch or tag name, or fetch it first.",
            )
        if base is None and candidate == f"{head_rev}~1" and not git.shallow:
            return unsafe(f"head {head_sha[:12]} is the first commit: there is nothing before it")
        where = "this shallow clone" if git.shallow else "this clone"
        return unsafe(
            f"base {candidate} ({base_from}) is not in {where}; fetch more history "
            "(actions/checkout fetch-depth: 0, or GIT_DEPTH: 0 on GitLab) to compare"
        )
    if use_merge_base:
        found = git.merge_base(base_sha, head_sha)
        if found is None:
            return unsafe(
                f"no merge base of {base_sha[:12]} and {head_sha[:12]} in "
                f"{'this shallow clone' if git.shallow else 'this clone'}; fetch more history"
            )
        base_sha = found
        base_from += ", merge base"
    if not git.is_ancestor(base_sha, head_sha):
        return unsafe(
            f"base {base_sha[:12]} is not an ancestor of head {head_sha[:12]} "
            "(history was rewritten, e.g. by a force push"
            + (", or the clone is shallow" if git.shallow else "")
            + "); use --merge-base to compare branches",
            base_sha,
        )
    return RevisionRange(base_sha, head_sha, head_tree, worktree, base_from, None)


def _base_candidate(
    ci: CIContext, base: str | None, head_rev: str, merge_base: bool, worktree: bool
) -> tuple[str, str, bool]:
    """``(revision, how it was chosen, take the merge base)`` for the base side.

    Uncommitted changes are compared with the commit they sit on, as ``git diff`` does.
    """
    if base is not None:
        return base, "--base", merge_base
    if ci.provider == "github":
        if ci.pr_base:
            return ci.pr_base, "pull request base", True
        if ci.before:
            return ci.before, "push event 'before'", False
    if ci.provider == "gitlab":
        if ci.mr_diff_base:
            return ci.mr_diff_base, "CI_MERGE_REQUEST_DIFF_BASE_SHA", False
        if ci.before:
            return ci.before, "CI_COMMIT_BEFORE_SHA", False
    if worktree:
        return head_rev, f"{head_rev} (uncommitted changes)", False
    return f"{head_rev}~1", f"{head_rev}~1", False

"""The CI run the kit is in, read once at the edge from the environment.

Nothing deeper in the kit reads CI variables: commands receive a ``CIContext``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline_kit.errors import InputError

if TYPE_CHECKING:
    from pipeline_kit.adapters.git import Git
    from pipeline_kit.ci.trust import Trust

DEFAULT_DOTENV = Path("pipeline-kit.env")  # where GitLab jobs leave their dotenv report
_PULL_REF = re.compile(r"^refs/pull/(\d+)/")
# Events whose checkout is a proposed change (the CI definition may be the base's own).
PULL_REQUEST_EVENTS = frozenset(
    {"pull_request", "pull_request_target", "merge_request_event", "external_pull_request_event"}
)


@dataclass(frozen=True)
class CIContext:
    provider: str  # "github", "gitlab" or "local"
    event: str | None = None  # "push", "pull_request", "merge_request_event", ...
    sha: str | None = None  # the commit under test
    before: str | None = None  # the previous tip of the branch, on a push
    pr_base: str | None = None  # the target branch's tip, on a pull request
    mr_diff_base: str | None = None  # GitLab: the merge base, already computed
    branch: str | None = None  # the branch built (a pull request's source branch)
    tag: str | None = None  # the git tag built, on a tag pipeline
    pr_number: int | None = None  # the pull / merge request number
    default_branch: str | None = None
    repository_url: str | None = None  # for the image's source label
    actor: str | None = None  # who triggered the run (owner of a preview environment)
    ref: str | None = None  # the full ref built: refs/heads/x, refs/tags/v1, refs/pull/3/merge
    ref_protected: bool = False  # the CI itself says the ref is protected
    trusted_refs: tuple[str, ...] = ()  # PIPELINE_KIT_TRUSTED_REFS, from the CI definition
    run_url: str | None = None  # the CI job or run, as its provider shows it (provenance)

    @property
    def is_ci(self) -> bool:
        return self.provider != "local"

    @property
    def is_pull_request(self) -> bool:
        return self.pr_number is not None or self.event in PULL_REQUEST_EVENTS

    @property
    def trust(self) -> Trust:
        from pipeline_kit.ci.trust import trust_of

        return trust_of(self)

    @property
    def is_default_branch(self) -> bool:
        return (
            self.pr_number is None
            and self.tag is None
            and self.branch is not None
            and self.branch == self.default_branch
        )


def with_git_facts(ci: CIContext, git: Git, head: str) -> CIContext:
    """A local run: branch, tag, default branch and source from the repository itself."""
    if ci.is_ci:
        return ci
    branch, tags, default_branch, url = git.local_facts(head)
    version_tags = [tag for tag in tags if tag[:1] in "v0123456789"]
    return dataclasses.replace(
        ci,
        sha=ci.sha or head,
        branch=branch,
        tag=version_tags[-1] if version_tags else None,
        default_branch=default_branch,
        repository_url=url,
    )


def from_environ(env: Mapping[str, str]) -> CIContext:
    from pipeline_kit.ci.trust import TRUSTED_REFS_VARIABLE, parse_trusted_refs

    if env.get("GITHUB_ACTIONS") == "true":
        ci = _github(env)
    elif env.get("GITLAB_CI") == "true":
        ci = _gitlab(env)
    else:
        return CIContext(provider="local", actor=env.get("USER") or env.get("LOGNAME") or None)
    trusted_refs = parse_trusted_refs(env.get(TRUSTED_REFS_VARIABLE))
    return dataclasses.replace(ci, trusted_refs=trusted_refs) if trusted_refs else ci


def _gitlab(env: Mapping[str, str]) -> CIContext:
    iid = env.get("CI_MERGE_REQUEST_IID") or env.get("CI_EXTERNAL_PULL_REQUEST_IID")
    project_url = env.get("CI_PROJECT_URL")
    branch, tag = env.get("CI_COMMIT_BRANCH"), env.get("CI_COMMIT_TAG")
    ref = f"refs/tags/{tag}" if tag else f"refs/heads/{branch}" if branch else None
    if iid and iid.isdigit() and ref is None:
        ref = f"refs/merge-requests/{iid}/head"
    return CIContext(
        provider="gitlab",
        event=env.get("CI_PIPELINE_SOURCE"),
        sha=env.get("CI_COMMIT_SHA") or None,
        before=env.get("CI_COMMIT_BEFORE_SHA") or None,
        mr_diff_base=env.get("CI_MERGE_REQUEST_DIFF_BASE_SHA") or None,
        # CI_COMMIT_BRANCH is absent in merge request pipelines; the source branch is named.
        branch=env.get("CI_COMMIT_BRANCH")
        or env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME")
        or None,
        tag=env.get("CI_COMMIT_TAG") or None,
        pr_number=int(iid) if iid and iid.isdigit() else None,
        default_branch=env.get("CI_DEFAULT_BRANCH") or None,
        repository_url=project_url or None,
        actor=env.get("GITLAB_USER_LOGIN") or None,
        ref=ref,
        ref_protected=env.get("CI_COMMIT_REF_PROTECTED") == "true",
        run_url=env.get("CI_JOB_URL") or env.get("CI_PIPELINE_URL") or None,
    )


def _github(env: Mapping[str, str]) -> CIContext:
    event_name = env.get("GITHUB_EVENT_NAME")
    payload: dict[str, Any] = {}
    path = env.get("GITHUB_EVENT_PATH")
    if path:
        try:
            payload = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise InputError(
                f"GITHUB_EVENT_PATH={path}: cannot read the event payload ({exc}).",
                hint="Pass --base and --head explicitly.",
            ) from None
    pr_base = None
    pr_number = None
    pull = payload.get("pull_request")
    if isinstance(pull, dict):
        base = pull.get("base")
        if isinstance(base, dict) and isinstance(base.get("sha"), str):
            pr_base = base["sha"]
        if isinstance(pull.get("number"), int):
            pr_number = pull["number"]
    ref = env.get("GITHUB_REF", "")
    if pr_number is None and (match := _PULL_REF.match(ref)):
        pr_number = int(match.group(1))
    branch = tag = None
    if ref.startswith("refs/heads/"):
        branch = ref.removeprefix("refs/heads/")
    elif ref.startswith("refs/tags/"):
        tag = ref.removeprefix("refs/tags/")
    if pr_number is not None:
        branch = env.get("GITHUB_HEAD_REF") or branch
    repo = payload.get("repository")
    default_branch = repo.get("default_branch") if isinstance(repo, dict) else None
    server, slug = env.get("GITHUB_SERVER_URL"), env.get("GITHUB_REPOSITORY")
    before = payload.get("before")
    run_id, attempt = env.get("GITHUB_RUN_ID"), env.get("GITHUB_RUN_ATTEMPT")
    run_url = f"{server}/{slug}/actions/runs/{run_id}" if server and slug and run_id else None
    if run_url and attempt:
        run_url += f"/attempts/{attempt}"
    return CIContext(
        provider="github",
        event=event_name,
        sha=env.get("GITHUB_SHA") or None,
        before=before if isinstance(before, str) else None,
        pr_base=pr_base,
        branch=branch,
        tag=tag,
        pr_number=pr_number,
        default_branch=default_branch if isinstance(default_branch, str) else None,
        repository_url=f"{server}/{slug}" if server and slug else None,
        actor=env.get("GITHUB_ACTOR") or None,
        ref=ref or None,
        ref_protected=env.get("GITHUB_REF_PROTECTED") == "true",
        run_url=run_url,
    )


def resolve_context(
    root: Path, environ: Mapping[str, str], head: str | None, git: Git | None = None
) -> CIContext:
    """The CI context, with git's facts filled in on a local run (``git``: one already open)."""
    ci = from_environ(environ)
    if ci.is_ci and head is None:
        return ci
    if git is not None:
        return _with_git(ci, git, head)
    from pipeline_kit.adapters.git import Git

    with Git(root) as opened:
        return _with_git(ci, opened, head)


def _with_git(ci: CIContext, git: Git, head: str | None) -> CIContext:
    rev = head or ci.sha or "HEAD"
    sha = git.resolve_commit(rev)
    if sha is None:
        raise InputError(f"--head {rev}: no such commit.", hint="Give a branch, tag or SHA.")
    if ci.is_ci:
        return dataclasses.replace(ci, sha=sha)
    return with_git_facts(ci, git, sha)

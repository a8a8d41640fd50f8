"""Tags from CI contexts: environment dumps shaped like real runners' (GitHub and GitLab)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline_kit.ci.context import from_environ
from pipeline_kit.publish.tags import Rule, clean_tag, compute_tags, rules_from_section
from tests.support.ci_contexts import load_environ
from tests.support.ci_outputs import parse_github_outputs
from tests.support.gitrepo import GitRepo, cli

SHA7 = "9f46be4"


@pytest.mark.parametrize(
    ("dump", "expected"),
    [
        ("github-push-branch", ["feature-Faster_Builds", f"sha-{SHA7}"]),
        ("github-push-default", ["latest", "main", f"sha-{SHA7}"]),
        ("github-version-tag", ["1.4.2", "1.4", "1", f"sha-{SHA7}"]),
        ("github-pull-request", ["pr-57", "sha-3c2f1e0"]),
        ("gitlab-branch", ["Feature-KV-cache", f"sha-{SHA7}"]),
        ("gitlab-tag", ["0.9.0", "0.9", f"sha-{SHA7}"]),
        ("gitlab-merge-request", ["mr-12", f"sha-{SHA7}"]),
    ],
)
def test_tags_from_runner_environments(dump: str, expected: list[str], tmp_path: Path) -> None:
    ci = from_environ(load_environ(dump, tmp_path))
    assert [tag.name for tag in compute_tags(ci, rules_from_section({}))] == expected


def test_rules_switch_off_and_take_prefix_and_suffix(tmp_path: Path) -> None:
    ci = from_environ(load_environ("github-version-tag", tmp_path))
    rules = rules_from_section(
        {"sha": {"prefix": "git-", "length": 10}, "semver": {"suffix": "-cuda12"}}
    )
    names = [tag.name for tag in compute_tags(ci, rules)]
    assert names == ["1.4.2-cuda12", "1.4-cuda12", "1-cuda12", "git-9f46be48e9"]
    rules = rules_from_section({"semver": False, "sha": {"enabled": False}})
    assert compute_tags(ci, rules) == []


def test_prerelease_gets_only_its_full_version(tmp_path: Path) -> None:
    env = load_environ("github-version-tag", tmp_path)
    env["GITHUB_REF"] = "refs/tags/v2.0.0-rc.1"
    names = [t.name for t in compute_tags(from_environ(env), rules_from_section({}))]
    assert names == ["2.0.0-rc.1", f"sha-{SHA7}"]


@pytest.mark.parametrize(
    ("ref", "tag"),
    [
        ("feature/x", "feature-x"),
        ("-leading.dots", "leading.dots"),
        ("ünïcode branch!", "n-code-branch"),
        ("a" * 200, "a" * 128),
        ("x" * 127 + "/y", "x" * 127),
    ],
)
def test_clean_tag(ref: str, tag: str) -> None:
    assert clean_tag(ref) == tag


def test_every_tag_is_valid_and_short(tmp_path: Path) -> None:
    env = load_environ("github-push-branch", tmp_path)
    env["GITHUB_REF"] = "refs/heads/" + "deep/" * 40 + "Bränch"
    for tag in compute_tags(from_environ(env), {**rules_from_section({}), "sha": Rule(False)}):
        assert len(tag.name) <= 128
        assert tag.name[0] not in ".-"
        assert all(c.isascii() and (c.isalnum() or c in "._-") for c in tag.name)


def test_cli_tags_locally_from_git(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path)
    sha = repo.commit({"pipeline-kit.yaml": "image: 127.0.0.1:5000/team/llm\n"})
    repo.git("tag", "v3.1.0")
    result = cli("tags", "--format", "json", cwd=repo.path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["tags"] == ["3.1.0", "3.1", "3", "main", f"sha-{sha[:7]}"]
    assert data["references"][0] == "127.0.0.1:5000/team/llm:3.1.0"
    assert data["provider"] == "local"


def test_cli_tags_in_github_from_the_event(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "r")
    repo.commit({"pipeline-kit.yaml": "image: ghcr.io/acme/llm\n"})
    env = load_environ("github-pull-request", tmp_path)
    result = cli("tags", "--format", "json", cwd=repo.path, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tags"] == ["pr-57", "sha-3c2f1e0"]
    outputs = tmp_path / "outputs"
    result = cli(
        "tags", "--format", "github", cwd=repo.path, env={**env, "GITHUB_OUTPUT": str(outputs)}
    )
    assert result.returncode == 0, result.stderr
    assert parse_github_outputs(outputs.read_text())["tags"] == "pr-57,sha-3c2f1e0"


def test_local_git_facts_asked_at_once_match_the_one_by_one_answers(tmp_path: Path) -> None:
    from pipeline_kit.adapters.git import Git

    origin = GitRepo.init(tmp_path / "origin")
    origin.commit({"a": "1"})
    repo = GitRepo(tmp_path / "clone")
    repo.git("clone", "-q", str(origin.path), ".")
    repo.git("checkout", "-q", "-b", "feature")
    sha = repo.commit({"b": "2"})
    repo.git("tag", "v1.0.0")
    repo.git("tag", "other")
    with Git(repo.path) as git:
        facts = git.local_facts(sha)
        expected = (git.current_branch(), git.tags_at(sha), git.default_branch(), git.remote_url())
    assert facts == expected == ("feature", ["other", "v1.0.0"], "main", str(origin.path))

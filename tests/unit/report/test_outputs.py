"""CI outputs: one list of (name, value) pairs as GitHub step outputs and a GitLab dotenv report.

The format rules checked here are GitHub's (`name<<DELIMITER` heredocs for values on several
lines, in `$GITHUB_OUTPUT`) and GitLab's dotenv report (`KEY=value`, one line each, no quotes
or comments, at most 5 KiB). The commands' own outputs are tested with real runs in
test_build, test_smoke, test_preview, test_registry (promote) and test_tags.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from pipeline_kit.errors import InputError
from pipeline_kit.report.outputs import (
    dotenv_text,
    export,
    github_text,
    output_name,
    variable_name,
)
from tests.support.ci_outputs import parse_github_outputs


def test_names_map_to_step_outputs_and_variables() -> None:
    assert output_name("Deps Stage") == "deps-stage"
    assert output_name("code") == "code"
    assert variable_name("rebuild-from") == "PIPELINE_KIT_REBUILD_FROM"
    assert variable_name("deps-stage-key") == "PIPELINE_KIT_DEPS_STAGE_KEY"


def test_github_text_heredoc_for_lines_and_plain_otherwise() -> None:
    text = github_text([("digest", "sha256:ab"), ("notes", "one\ntwo=2"), ("empty", "")])
    assert parse_github_outputs(text) == {
        "digest": "sha256:ab",
        "notes": "one\ntwo=2",
        "empty": "",
    }
    assert text.startswith("digest=sha256:ab\nnotes<<EOF_")


def test_dotenv_keeps_json_out_and_refuses_lines() -> None:
    text = dotenv_text([("digest", "sha256:ab"), ("json", '{"a":1}'), ("tags", "a,b")])
    assert text == "PIPELINE_KIT_DIGEST=sha256:ab\nPIPELINE_KIT_TAGS=a,b\n"
    with pytest.raises(ValueError, match="spans lines"):
        dotenv_text([("notes", "one\ntwo")])


def test_export_github_needs_its_file_and_appends(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="GITHUB_OUTPUT is not set"):
        export("github", [("a", "1")], environ={}, dotenv=tmp_path / "x.env")
    out = tmp_path / "out"
    out.write_text("earlier=1\n")
    summary = tmp_path / "summary.md"
    env = {"GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary)}
    export("github", [("a", "1")], environ=env, dotenv=tmp_path / "x.env", summary="# s\n")
    assert out.read_text() == "earlier=1\na=1\n"
    assert summary.read_text() == "# s\n"
    assert not (tmp_path / "x.env").exists()


def test_export_gitlab_writes_the_report_and_warns_past_gitlabs_limit(tmp_path: Path) -> None:
    log = io.StringIO()
    dotenv = tmp_path / "sub" / "report.env"
    export("gitlab", [("digest", "sha256:ab")], environ={}, dotenv=dotenv, log=log)
    assert dotenv.read_text() == "PIPELINE_KIT_DIGEST=sha256:ab\n"
    assert log.getvalue() == ""
    export("gitlab", [("big", "x" * 6000)], environ={}, dotenv=dotenv, log=log)
    assert "GitLab refuses a dotenv report over 5120" in log.getvalue()
    export("text", [("digest", "other")], environ={}, dotenv=dotenv, log=log)
    assert dotenv.read_text().startswith("PIPELINE_KIT_BIG=")  # text writes nothing

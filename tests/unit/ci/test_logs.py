"""Build logs fold into the group syntax each CI renders."""

from __future__ import annotations

import io
import re

from pipeline_kit.ci.logs import LogGroups


def folded(provider: str) -> str:
    out = io.StringIO()
    groups = LogGroups(provider, out)
    with groups.group("buildah: build registry.example/app"):
        groups.line("::set-output name=digest::sha256:evil")
    return out.getvalue()


def test_github_groups_and_stops_workflow_commands_inside() -> None:
    lines = folded("github").splitlines()
    assert lines[0] == "::group::buildah: build registry.example/app"
    token = re.fullmatch(r"::stop-commands::([0-9a-f]{32})", lines[1])
    assert token is not None
    assert lines[2] == "::set-output name=digest::sha256:evil"
    assert lines[3] == f"::{token.group(1)}::"
    assert lines[4] == "::endgroup::"


def test_gitlab_collapsible_sections() -> None:
    text = folded("gitlab")
    start = re.search(r"\x1b\[0Ksection_start:(\d+):(\w+)\[collapsed=true\]\r\x1b\[0K(.*)\n", text)
    end = re.search(r"\x1b\[0Ksection_end:(\d+):(\w+)\r\x1b\[0K\n", text)
    assert start is not None and end is not None
    assert start.group(2) == end.group(2) == "buildah_build_registry_example_app"
    assert start.group(3) == "buildah: build registry.example/app"


def test_local_output_is_plain() -> None:
    assert folded("local").splitlines()[0].endswith("buildah: build registry.example/app")

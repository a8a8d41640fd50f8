"""Where BuildKit's semantics go beyond its parser: the automatic platform ARGs, and what it
refuses before building. The tables here are also run through the real BuildKit
(tests/integration/build/test_buildkit_semantics.py), which is where their truth comes from.
"""

from __future__ import annotations

import pytest

from pipeline_kit.dockerfile.platform import (
    AUTOMATIC_ARGS,
    Platform,
    automatic_args,
    parse_platform,
    runner_platform,
)
from pipeline_kit.dockerfile.stages import parse_dockerfile
from pipeline_kit.errors import InputError
from tests.support.buildkit_semantics import FLAVOURED, INSTRUCTIONS, PLATFORMS


def _graph(line: str) -> None:
    parse_dockerfile(f"FROM scratch\n{line}\n", source="svc/Dockerfile")


@pytest.mark.parametrize(("line", "refused"), INSTRUCTIONS.items(), ids=INSTRUCTIONS.keys())
def test_the_kit_refuses_what_buildkit_refuses(line: str, refused: bool) -> None:
    if not refused:
        _graph(line)
        return
    with pytest.raises(InputError) as caught:
        _graph(line)
    assert caught.value.message.startswith("svc/Dockerfile:2: "), caught.value.message


def test_a_refusal_says_what_the_instruction_takes() -> None:
    with pytest.raises(InputError) as caught:
        _graph("COPY --bogus f /x")
    assert "COPY has no flag --bogus" in str(caught.value)
    assert "--from, --chown, --chmod, --link, --parents, --exclude" in str(caught.value)
    with pytest.raises(InputError) as caught:
        _graph("HEALTHCHECK --interval=x CMD true")
    assert "--interval=x: not a duration" in str(caught.value)


def test_a_parser_error_names_its_line() -> None:
    text = "FROM scratch\nRUN a \\\n  b\nENV a\nRUN x\n"
    with pytest.raises(InputError) as caught:
        parse_dockerfile(text)
    assert caught.value.message.startswith("Dockerfile:4: BuildKit's parser rejects it")


@pytest.mark.parametrize(("given", "expected"), PLATFORMS.items(), ids=PLATFORMS.keys())
def test_platforms_read_as_buildkit_normalises_them(
    given: str, expected: tuple[str, str, str, str]
) -> None:
    plat = parse_platform(given)
    args = automatic_args(plat, Platform("linux", "amd64"))
    got = tuple(args[f"TARGET{part}"] for part in ("PLATFORM", "OS", "ARCH", "VARIANT"))
    assert got == expected
    assert args["BUILDPLATFORM"] == "linux/amd64"


@pytest.mark.parametrize("given", ["", "linux", "a/b/c/d", "linux/amd 64", "linux//amd64"])
def test_a_platform_that_is_not_one_is_refused(given: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_platform(given)
    assert "--platform" in str(caught.value)


def test_the_runner_platform_is_this_machine() -> None:
    import platform

    machine = platform.machine()
    expected = {"x86_64": "linux/amd64", "aarch64": "linux/arm64"}.get(machine)
    if expected is None:
        pytest.skip(f"no expectation written for a {machine} machine")
    assert str(runner_platform()) == expected
    graph = parse_dockerfile(FLAVOURED)
    assert graph.stages[-1].from_ref == f"base-{expected.split('/')[1]}"


@pytest.mark.parametrize(
    ("platform", "stage"),
    [("linux/amd64", "base-amd64"), ("linux/arm64", "base-arm64"), ("linux/arm/v7", "base-arm")],
)
def test_a_global_arg_defaulting_to_an_automatic_arg_chooses_the_stage(
    platform: str, stage: str
) -> None:
    graph = parse_dockerfile(FLAVOURED, platform=platform)
    final = graph.stages[-1]
    assert final.from_ref == stage
    assert final.parent is not None and graph.stages[final.parent].name == stage
    args = dict(final.args)
    assert args["TARGETPLATFORM"] == str(parse_platform(platform))
    assert args["TARGETARCH"] == parse_platform(platform).arch


def test_automatic_args_are_global_but_not_in_a_stage_undeclared() -> None:
    graph = parse_dockerfile(
        "FROM scratch AS base-arm64\nFROM base-${TARGETARCH}\nCOPY f /x${TARGETARCH}\n",
        platform="linux/arm64",
    )
    final = graph.stages[-1]
    assert final.from_ref == "base-arm64"
    assert [source.path for source in final.sources] == ["f"]
    assert "TARGETARCH" not in dict(final.args)


@pytest.mark.parametrize(
    ("text", "build_args", "expected"),
    [
        # Declared again without a default: keeps the platform's value.
        ("ARG TARGETARCH\nFROM base-${TARGETARCH}\n", {}, "base-arm64"),
        # A default of its own wins over the platform's.
        ("ARG TARGETARCH=foo\nFROM base-${TARGETARCH}\n", {}, "base-foo"),
        # So does a build arg, declared or not.
        ("FROM base-${TARGETARCH}\n", {"TARGETARCH": "foo"}, "base-foo"),
        # Any other ARG declared again without a default is empty, as in BuildKit.
        ("ARG A=amd64\nARG A\nFROM base-${A}\n", {}, "base-"),
    ],
)
def test_redeclared_and_overridden_platform_args(
    text: str, build_args: dict[str, str], expected: str
) -> None:
    graph = parse_dockerfile(text, platform="linux/arm64", build_args=build_args)
    assert graph.stages[0].from_ref == expected


def test_the_automatic_args_are_the_eight_buildkit_defines() -> None:
    assert {
        f"{side}{part}"
        for side in ("TARGET", "BUILD")
        for part in ("PLATFORM", "OS", "ARCH", "VARIANT")
    } == AUTOMATIC_ARGS

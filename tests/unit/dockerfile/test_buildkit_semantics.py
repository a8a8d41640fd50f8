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

# --platform as given -> (TARGETPLATFORM, TARGETOS, TARGETARCH, TARGETVARIANT), as BuildKit
# v0.32 set them.
PLATFORMS: dict[str, tuple[str, str, str, str]] = {
    "linux/amd64": ("linux/amd64", "linux", "amd64", ""),
    "linux/arm64": ("linux/arm64", "linux", "arm64", ""),
    "linux/arm": ("linux/arm/v7", "linux", "arm", "v7"),
    "linux/arm/v6": ("linux/arm/v6", "linux", "arm", "v6"),
    "linux/arm64/v8": ("linux/arm64", "linux", "arm64", ""),
    "aarch64": ("linux/arm64", "linux", "arm64", ""),
    "arm64": ("linux/arm64", "linux", "arm64", ""),
    "x86_64": ("linux/amd64", "linux", "amd64", ""),
    "linux/386": ("linux/386", "linux", "386", ""),
    "windows/amd64": ("windows/amd64", "windows", "amd64", ""),
    "Linux/AMD64": ("linux/amd64", "linux", "amd64", ""),
    "linux/riscv64": ("linux/riscv64", "linux", "riscv64", ""),
    "linux/amd64/v3": ("linux/amd64/v3", "linux", "amd64", "v3"),
}

# A stage per architecture, chosen through a global ARG whose default is an automatic ARG.
FLAVOURED = (
    "ARG FLAVOR=${TARGETARCH}\n"
    "FROM scratch AS base-amd64\nCOPY f /amd\n"
    "FROM scratch AS base-arm64\nCOPY f /arm\n"
    "FROM scratch AS base-arm\nCOPY f /arm32\n"
    "FROM scratch AS base-386\nCOPY f /i386\n"
    "FROM scratch AS base-riscv64\nCOPY f /riscv\n"
    "FROM base-${FLAVOR}\n"
    "ARG TARGETPLATFORM\nARG TARGETOS\nARG TARGETARCH\nARG TARGETVARIANT\nARG BUILDPLATFORM\n"
    "COPY f /tp/${TARGETPLATFORM}/os=${TARGETOS}/arch=${TARGETARCH}/v=${TARGETVARIANT}"
    "/b=${BUILDPLATFORM}\n"
)

# One line after `FROM scratch` -> whether BuildKit refuses the Dockerfile before building.
INSTRUCTIONS: dict[str, bool] = {
    "COPY --bogus f /x": True,
    "ADD --bogus f /x": True,
    "RUN --bogus true": True,
    "ENV --foo a=b": True,
    "WORKDIR --x /w": True,
    "FROM --bogus scratch": True,
    "ONBUILD --x RUN x": True,
    "ARG --chown=1 a": False,  # BuildKit reads no flags on ARG, and says nothing
    "STOPSIGNAL --chown=1 9": False,
    "COPY --from f /x": True,
    "COPY --exclude f /x": True,
    "COPY --from=a --from=b f /x": True,
    "COPY --exclude=a --exclude=b f /x": False,
    "COPY --link f /x": False,
    "COPY --link=false f /x": False,
    "COPY --link=TRUE f /x": False,
    "COPY --link=maybe f /x": True,
    "COPY --link= f /x": True,
    "COPY --parents --chmod=755 --chown=1:1 f /x": False,
    "ADD --link --keep-git-dir --unpack --exclude=x --chown=1 --chmod=644 f /x": False,
    "ONBUILD": True,
    "ONBUILD RUN --bogus x": False,  # a trigger is read where the image is used
    "ONBUILD FROM x": True,
    "ONBUILD ONBUILD RUN x": True,
    "ONBUILD MAINTAINER x": True,
    "ONBUILD RUN true": False,
    "HEALTHCHECK --interval=x CMD true": True,
    "HEALTHCHECK --interval=30 CMD true": True,
    "HEALTHCHECK --interval=30s --timeout=5s --start-period=1h30m --retries=3 CMD true": False,
    "HEALTHCHECK --start-interval=1.5s CMD true": False,
    "HEALTHCHECK --interval=0 CMD true": False,
    "HEALTHCHECK --interval=0.5ms CMD true": True,
    "HEALTHCHECK --interval=1ms CMD true": False,
    "HEALTHCHECK --timeout=-1s CMD true": True,
    "HEALTHCHECK --interval= CMD true": False,
    "HEALTHCHECK --retries=x CMD true": True,
    "HEALTHCHECK --retries=-1 CMD true": True,
    "HEALTHCHECK --retries=0 CMD true": False,
    "HEALTHCHECK --bogus=1 CMD true": True,
    "HEALTHCHECK FOO": True,
    "HEALTHCHECK cmd true": False,
    "HEALTHCHECK NONE": False,
    "HEALTHCHECK NONE x": True,
    "HEALTHCHECK CMD": True,
    "HEALTHCHECK": True,
    "RUN --network=none true": False,
    "RUN --network=bogus true": True,
    "RUN --security=bogus true": True,
    "RUN --mount=type=bogus true": True,
    "RUN --mount=type=tmpfs,target=/t --mount=type=cache,target=/c true": False,
    "ENV": True,
    "EXPOSE": True,
    "LABEL": True,
    "VOLUME": True,
    "ARG": True,
    "WORKDIR": True,
    "USER": True,
    "STOPSIGNAL": True,
    "MAINTAINER": True,
    "SHELL sh": True,
    "SHELL []": True,
    'SHELL ["/bin/sh", "-c"]': False,
    "CMD": False,
    "ENTRYPOINT": False,
}


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

"""Which platforms a build runs RUN steps as, read from the Dockerfile's stages."""

from __future__ import annotations

import pytest

from pipeline_kit.dockerfile.platform import Platform, parse_platform
from pipeline_kit.dockerfile.run_platforms import runs_by_platform

AMD64, ARM64 = parse_platform("linux/amd64"), parse_platform("linux/arm64")


@pytest.fixture(autouse=True)
def _build_on_amd64(monkeypatch: pytest.MonkeyPatch) -> None:
    """BUILDPLATFORM is the machine's: these tables are for an amd64 one."""
    monkeypatch.setattr("pipeline_kit.dockerfile.platform.runner_platform", lambda: AMD64)


def runs(text: str, *platforms: Platform, target: str | None = None) -> dict[str, int]:
    """Each platform a RUN step runs as, with that step's line."""
    found = runs_by_platform(
        text, source="Dockerfile", build_args={}, target=target, platforms=platforms
    )
    return {str(run.platform): run.instruction.line for run in found}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the built platform runs the RUN step
        ("FROM busybox\nRUN true\n", {"linux/arm64": 2}),
        # COPY alone runs nothing
        ("FROM busybox\nCOPY a /a\n", {}),
        # a stage of the build platform runs natively; the target only copies from it
        (
            "FROM --platform=$BUILDPLATFORM golang AS make\nRUN go build\n"
            "FROM busybox\nCOPY --from=make /out /out\n",
            {"linux/amd64": 2},
        ),
        # a stage built FROM such a stage inherits its platform
        (
            "FROM --platform=$BUILDPLATFORM golang AS tools\nFROM tools AS make\nRUN go build\n"
            "FROM busybox\nCOPY --from=make /out /out\n",
            {"linux/amd64": 3},
        ),
        # a literal platform, through a global ARG
        (
            "ARG TOOLS=linux/arm64\nFROM --platform=${TOOLS} alpine AS t\nRUN true\n"
            "FROM busybox\nCOPY --from=t /x /x\n",
            {"linux/arm64": 3},
        ),
        # a stage the target does not need is not built
        ("FROM busybox AS unused\nRUN true\nFROM busybox\nCOPY a /a\n", {}),
        # the first RUN of each platform
        (
            "FROM --platform=$BUILDPLATFORM golang AS make\nRUN go build\nRUN go vet\n"
            "FROM busybox\nRUN true\nCOPY --from=make /out /out\n",
            {"linux/amd64": 2, "linux/arm64": 5},
        ),
    ],
)
def test_runs_by_platform_when_building_arm64_on_amd64(text: str, expected: dict[str, int]) -> None:
    assert runs(text, ARM64) == expected


def test_each_platform_of_a_multi_platform_build() -> None:
    assert runs("FROM busybox\nRUN true\n", AMD64, ARM64) == {"linux/amd64": 2, "linux/arm64": 2}


def test_the_target_chooses_the_stages() -> None:
    text = "FROM busybox AS a\nRUN true\nFROM busybox AS b\nCOPY x /x\n"
    assert runs(text, ARM64, target="a") == {"linux/arm64": 2}
    assert runs(text, ARM64, target="b") == {}

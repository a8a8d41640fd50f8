"""Which child of a multi-platform base index append reads: the one of the previous image's
platform (os, architecture, and variant when the previous image has one), never the first."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline_kit.append import CannotAppend
from pipeline_kit.append.remote import _platform_digest


def _entry(name: str, os: str, architecture: str, variant: str | None = None) -> dict[str, Any]:
    platform = {"os": os, "architecture": architecture}
    if variant:
        platform["variant"] = variant
    return {"digest": name, "platform": platform}


INDEX = {
    "manifests": [
        {"digest": "sha256:attestation"},  # no platform: an attestation manifest
        _entry("sha256:arm-v7", "linux", "arm", "v7"),
        _entry("sha256:arm64", "linux", "arm64", "v8"),
        _entry("sha256:arm-v6", "linux", "arm", "v6"),
        _entry("sha256:windows", "windows", "amd64"),
        _entry("sha256:amd64", "linux", "amd64"),
    ]
}


@pytest.mark.parametrize(
    ("platform", "digest"),
    [
        ({"os": "linux", "architecture": "amd64"}, "sha256:amd64"),
        ({"os": "windows", "architecture": "amd64"}, "sha256:windows"),
        ({"os": "linux", "architecture": "arm", "variant": "v6"}, "sha256:arm-v6"),
        ({"os": "linux", "architecture": "arm", "variant": "v7"}, "sha256:arm-v7"),
        ({"os": "linux", "architecture": "arm64", "variant": None}, "sha256:arm64"),
        ({"os": "linux", "architecture": "arm"}, "sha256:arm-v7"),  # no variant: the first arm
    ],
)
def test_the_child_of_the_previous_image_s_platform(platform: dict[str, Any], digest: str) -> None:
    assert _platform_digest(INDEX, platform) == digest


@pytest.mark.parametrize(
    ("platform", "message"),
    [
        (
            {"os": "linux", "architecture": "s390x"},
            "the base image has no manifest for {'os': 'linux', 'architecture': 's390x'}",
        ),
        (
            {"os": "linux", "architecture": "arm", "variant": "v5"},
            "the base image has no manifest for {'os': 'linux', 'architecture': 'arm'}",
        ),
    ],
)
def test_no_child_of_that_platform_is_no_append(platform: dict[str, Any], message: str) -> None:
    with pytest.raises(CannotAppend) as raised:
        _platform_digest(INDEX, platform)
    assert str(raised.value) == message

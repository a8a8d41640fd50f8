"""The docker config a builder gets: exactly the registries the build touches, each with the
credential bound to it, resolved (helpers' answers written as values, no helper passed on)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline_kit.adapters.registry import credential_helpers
from pipeline_kit.build.builders.base import BuildRequest
from pipeline_kit.dockerfile.pulls import pulled_images
from pipeline_kit.dockerfile.stages import parse_dockerfile
from pipeline_kit.publish.publisher import Publisher, build_registries
from tests.support.credential_helpers import CredentialHelper, docker_config

IMAGE_HOST = "images.example.com"
BASE_HOST = "private.example.com:5000"
SECRET = "base-Secr3t-c41d22"

DOCKERFILE = """\
ARG BASE_REGISTRY=private.example.com:5000
FROM ${BASE_REGISTRY}/team/base:1 AS base
RUN --mount=type=bind,from=tools.example.com/team/tools:2,target=/t true

FROM base AS code
COPY --from=ghcr.io/team/weights:3 /w /w
COPY --from=base /etc/os-release /os-release

FROM unused.example.com/team/other:4 AS unused
COPY --from=evil.example/x /x /x

FROM scratch AS empty
"""


@pytest.fixture(autouse=True)
def fresh_answers() -> Iterator[None]:
    credential_helpers.forget_answers()
    yield
    credential_helpers.forget_answers()


@pytest.mark.parametrize(
    ("target", "build_args", "expected"),
    [
        (
            "code",
            {},
            (
                "private.example.com:5000/team/base:1",
                "tools.example.com/team/tools:2",
                "ghcr.io/team/weights:3",
            ),
        ),
        (
            "base",
            {"BASE_REGISTRY": "mirror.lan"},
            ("mirror.lan/team/base:1", "tools.example.com/team/tools:2"),
        ),
        ("unused", {}, ("unused.example.com/team/other:4", "evil.example/x")),
        ("empty", {}, ()),
    ],
)
def test_the_images_a_target_pulls(
    target: str, build_args: dict[str, str], expected: tuple[str, ...]
) -> None:
    """FROM after ARG expansion, ``COPY --from=<image>``, ``RUN --mount=from=<image>``, in the
    stages the target builds on; stages by name and ``scratch`` pull nothing."""
    graph = parse_dockerfile(DOCKERFILE, build_args=build_args)
    assert pulled_images(graph, target) == expected


def _request(tmp_path: Path, target: str = "code") -> BuildRequest:
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    return BuildRequest(
        image=f"{IMAGE_HOST}/ml/llm",
        dockerfile=tmp_path / "Dockerfile",
        context=tmp_path,
        target=target,
        build_args={},
        labels={},
        tags=("sha-abc1234",),
        cache_repo="cache.example.com/ml/llm-cache",
        cache_ttl="336h",
    )


def test_the_registries_a_build_touches(tmp_path: Path) -> None:
    assert build_registries(_request(tmp_path)) == [
        "cache.example.com",
        "ghcr.io",
        IMAGE_HOST,
        BASE_HOST,
        "tools.example.com",
    ]


def test_the_builders_config_holds_every_bound_registry_the_build_needs_and_no_other(
    tmp_path: Path,
) -> None:
    """The image's registry bound by the kit's variables, the private base's through a helper
    the runner set up; a helper entry and an ``auths`` entry for registries the build does not
    touch stay out, and the helper is asked about no host but the one it is for."""
    helper = CredentialHelper(tmp_path / "bin", "pktest", {BASE_HOST: ("base-bot", SECRET)})
    config = {
        "credHelpers": {BASE_HOST: "pktest", "unused.example.com": "pktest"},
        "auths": {"saved.example.com": {"auth": base64.b64encode(b"s:s").decode()}},
    }
    environ = {
        "PIPELINE_KIT_REGISTRY": IMAGE_HOST,
        "PIPELINE_KIT_REGISTRY_USER": "kit",
        "PIPELINE_KIT_REGISTRY_PASSWORD": "kit-pass",
        "DOCKER_CONFIG": str(docker_config(tmp_path / "docker", config)),
        "HOME": str(tmp_path / "home"),
        "PATH": helper.path_with({"PATH": "/usr/bin:/bin"}),
    }
    publisher = Publisher(f"{IMAGE_HOST}/ml/llm", (), environ, io.StringIO())
    written = publisher.docker_config(tmp_path / "out", _request(tmp_path))
    assert written == tmp_path / "out"
    auths = json.loads((written / "config.json").read_text())
    assert auths == {
        "auths": {
            IMAGE_HOST: {"auth": base64.b64encode(b"kit:kit-pass").decode()},
            BASE_HOST: {"auth": base64.b64encode(f"base-bot:{SECRET}".encode()).decode()},
        }
    }
    assert helper.servers() == [BASE_HOST]
    assert (written / "config.json").stat().st_mode & 0o777 == 0o600

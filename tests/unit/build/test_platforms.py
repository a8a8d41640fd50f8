"""Several platforms: the config and flags that name them, what each builder gets, and the index
``merge`` writes (the pure parts; the registry side: tests/integration/build/test_platforms.py)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline_kit.adapters.registry.references import ImageRef, is_attestation, platform_name
from pipeline_kit.build.builders.base import BuildRequest, refuse_unrunnable_platforms
from pipeline_kit.build.builders.buildah import BuildahBuilder
from pipeline_kit.build.builders.buildkit import (
    buildctl_argv,
    buildx_argv,
    parse_worker_platforms,
)
from pipeline_kit.build.builders.kaniko import KanikoBuilder
from pipeline_kit.config.loader import Config, load_config
from pipeline_kit.dockerfile.platform import (
    Platform,
    child_of,
    parse_platforms,
    platform_of,
    platforms_of,
    tag_suffix,
)
from pipeline_kit.errors import ConfigError, EnvironmentFault, InputError
from pipeline_kit.publish.index import (
    OCI_INDEX,
    Child,
    check_children,
    index_body,
    parse_child,
)
from tests.support.gitrepo import GitRepo, cli

REQUEST = BuildRequest(
    image="registry.example.com/ml/llm",
    dockerfile=Path("/src/Dockerfile"),
    context=Path("/src"),
    target=None,
    build_args={},
    labels={},
    tags=("main", "pk-k"),
    cache_repo="registry.example.com/ml/llm/cache",
    cache_ttl="336h",
)
AMD64, ARM64 = Platform("linux", "amd64"), Platform("linux", "arm64")
IMAGE = ImageRef.parse("registry.example.com/ml/llm")
DIGEST = "sha256:" + "ab" * 32


def _config(tmp_path: Path, text: str) -> Config:
    (tmp_path / "pipeline-kit.yaml").write_text(text)
    return load_config(None, tmp_path)


def test_platforms_are_read_in_order_and_normalised(tmp_path: Path) -> None:
    config = _config(tmp_path, "platforms: [linux/amd64, aarch64, linux/arm/v7]\n")
    assert platforms_of(config) == (AMD64, ARM64, Platform("linux", "arm", "v7"))
    assert platform_of(config) == AMD64  # the Dockerfile is read for the first
    assert child_of(config) is None  # the whole list: one multi-platform build


def test_platform_and_platforms_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        _config(tmp_path, "platform: linux/amd64\nplatforms: [linux/arm64]\n")
    assert refused.value.message == (
        "pipeline-kit.yaml:2:1: platforms: `platform` is set too (pipeline-kit.yaml:1:1); "
        "give one or the other."
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("platforms: []\n", "platforms: [] should be non-empty"),
        ("platforms: [linux/amd64, linux/amd64]\n", "has non-unique elements"),
        ("platforms: linux/amd64\n", "platforms: expected array, got str"),
        ("platforms: [linux/amd 64]\n", "platforms[0]: 'linux/amd 64' does not match"),
    ],
)
def test_the_schema_refuses_a_bad_list(tmp_path: Path, text: str, error: str) -> None:
    with pytest.raises(ConfigError) as refused:
        _config(tmp_path, text)
    assert error in refused.value.message


def test_two_names_of_one_platform_are_refused() -> None:
    with pytest.raises(InputError) as refused:
        parse_platforms(["linux/arm64", "aarch64"], what="--platforms")
    assert refused.value.message == "--platforms: 'aarch64' is 'linux/arm64' again (linux/arm64)."


def test_platform_picks_one_child_of_the_configured_list(tmp_path: Path) -> None:
    config = _config(tmp_path, "platforms: [linux/amd64, linux/arm64]\n")
    child = config.with_platform("arm64")
    assert child_of(child) == ARM64
    assert platforms_of(child) == (ARM64,)
    assert tag_suffix(ARM64) == "-linux-arm64"
    assert tag_suffix(Platform("linux", "arm", "v7")) == "-linux-arm-v7"
    with pytest.raises(InputError) as refused:
        child_of(config.with_platform("linux/s390x"))
    assert "--platform linux/s390x: not one of the platforms" in refused.value.message


def test_platforms_flag_overrides_the_config(tmp_path: Path) -> None:
    config = _config(tmp_path, "platform: linux/amd64\n").with_platforms(
        ["linux/amd64", "linux/arm64"]
    )
    assert (config.platform, platforms_of(config)) == (None, (AMD64, ARM64))
    assert config.origins["platforms"] == "--platforms"


def test_buildkit_gets_every_platform_in_one_option() -> None:
    both = dataclasses.replace(REQUEST, platforms=("linux/amd64", "linux/arm64"))
    assert "--opt=platform=linux/amd64,linux/arm64" in buildctl_argv(both, Path("/m"))
    assert "--platform=linux/amd64,linux/arm64" in buildx_argv(both, Path("/m"))


@pytest.mark.parametrize(
    ("builder", "name"), [(KanikoBuilder(), "Kaniko"), (BuildahBuilder(), "buildah")]
)
def test_one_platform_builders_refuse_a_list(
    tmp_path: Path, builder: KanikoBuilder | BuildahBuilder, name: str
) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY app /app\n")
    request = dataclasses.replace(REQUEST, dockerfile=tmp_path / "Dockerfile", context=tmp_path)
    both = dataclasses.replace(request, platforms=("linux/amd64", "linux/arm64"))
    with pytest.raises(InputError) as refused:
        builder.preflight(both)
    assert refused.value.message == (
        f"platforms (linux/amd64, linux/arm64): {name} builds one platform per run."
    )
    assert "pipeline-kit merge" in (refused.value.hint or "")
    builder.preflight(dataclasses.replace(request, platform="linux/arm64"))


def test_the_request_carries_one_platform_or_the_list(tmp_path: Path) -> None:
    from pipeline_kit.build.plan import _platforms

    assert _platforms(_config(tmp_path, "image: r.io/a/b\n")) == {}
    several = _config(tmp_path, "platforms: [linux/amd64, arm64]\n")
    assert _platforms(several) == {"platforms": ("linux/amd64", "linux/arm64")}
    assert _platforms(several.with_platform("linux/arm64")) == {"platform": "linux/arm64"}
    assert _platforms(_config(tmp_path, "platforms: [arm64]\n")) == {"platform": "linux/arm64"}


def test_platform_and_platforms_flags_together_are_refused(tmp_path: Path) -> None:
    GitRepo.init(tmp_path).commit(
        {"Dockerfile": "FROM scratch\n", "pipeline-kit.yaml": "image: r.io/a/b\n"}
    )
    proc = cli(
        "build", "--dry-run", "--platform", "linux/amd64", "--platforms", "linux/amd64,linux/arm64",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert (
        "--platform linux/amd64 and --platforms linux/amd64,linux/arm64: give one or the other."
        in proc.stderr
    )


def test_a_multi_platform_dry_run_plans_one_buildkit_run(tmp_path: Path) -> None:
    GitRepo.init(tmp_path).commit(
        {
            "Dockerfile": "FROM scratch\nCOPY app /app\n",
            "app": "x\n",
            "pipeline-kit.yaml": "image: 127.0.0.1:9/a/b\nplatforms: [linux/amd64, linux/arm64]\n",
        }
    )
    proc = cli("build", "--dry-run", "--builder", "buildkit", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (argv,) = json.loads(proc.stdout)["commands"]
    assert "--opt=platform=linux/amd64,linux/arm64" in argv
    refused = cli("build", "--dry-run", "--builder", "buildah", cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "buildah builds one platform per run" in refused.stderr


def test_one_platform_s_job_tags_end_in_its_platform(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path)
    repo.commit(
        {
            "Dockerfile": "FROM scratch\nCOPY app /app\n",
            "app": "x\n",
            "pipeline-kit.yaml": "image: 127.0.0.1:9/a/b\nplatforms: [linux/amd64, linux/arm64]\n",
        }
    )
    args = ("build", "--dry-run", "--builder", "buildah", "--format", "json", "--tag", "main")
    arm = json.loads(cli(*args, "--platform", "linux/arm64", cwd=tmp_path).stdout)
    amd = json.loads(cli(*args, "--platform", "linux/amd64", cwd=tmp_path).stdout)
    assert "main-linux-arm64" in arm["tags"] and "main" not in arm["tags"]
    assert "main-linux-amd64" in amd["tags"]
    assert arm["image_key"] != amd["image_key"]  # each platform's content key
    assert any(arg == "--platform=linux/arm64" for arg in arm["commands"][0])


def test_a_child_names_a_platform_and_a_reference() -> None:
    assert parse_child(f"linux/arm64={DIGEST}", IMAGE) == Child(ARM64, IMAGE.with_digest(DIGEST))
    assert parse_child("amd64=main-linux-amd64", IMAGE) == Child(
        AMD64, IMAGE.with_tag("main-linux-amd64")
    )
    other = parse_child(f"arm64=registry.example.com/ml/other@{DIGEST}", IMAGE)
    assert other.reference.repository == "ml/other"
    with pytest.raises(InputError, match="not PLATFORM=REFERENCE"):
        parse_child(DIGEST, IMAGE)


def test_children_are_checked_before_any_request() -> None:
    amd = Child(AMD64, IMAGE.with_tag("a"))
    with pytest.raises(InputError) as twice:
        check_children([amd, Child(AMD64, IMAGE.with_tag("b"))], IMAGE)
    assert twice.value.message.startswith("linux/amd64: listed twice")
    elsewhere = Child(ARM64, ImageRef.parse(f"registry.example.com/ml/other@{DIGEST}"))
    with pytest.raises(InputError) as other:
        check_children([amd, elsewhere], IMAGE)
    assert "not in registry.example.com/ml/llm, the repository the index goes to" in (
        other.value.message
    )
    with pytest.raises(InputError, match="no children to merge"):
        check_children([], IMAGE)
    check_children([amd, Child(ARM64, IMAGE.with_tag("b"))], IMAGE)


def test_the_index_lists_each_child_with_its_platform() -> None:
    manifest = "application/vnd.oci.image.manifest.v1+json"
    raw = index_body(
        [(AMD64, manifest, DIGEST, 400), (Platform("linux", "arm", "v7"), manifest, DIGEST, 401)]
    )
    body = json.loads(raw)
    assert body["mediaType"] == OCI_INDEX and body["schemaVersion"] == 2
    assert [m["platform"] for m in body["manifests"]] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm", "os": "linux", "variant": "v7"},
    ]
    assert [m["size"] for m in body["manifests"]] == [400, 401]
    assert platform_name(body["manifests"][1]["platform"]) == "linux/arm/v7"
    attestation = {"platform": {"os": "unknown", "architecture": "unknown"}}
    assert is_attestation(attestation) and not is_attestation(body["manifests"][0])


def test_a_file_only_another_platform_copies_changes_the_image_key(tmp_path: Path) -> None:
    """The Dockerfile is read for the first platform; arm64's own file still counts, and only
    at its own instruction: a code change is still a change of the code alone."""
    repo = GitRepo.init(tmp_path)
    repo.commit(
        {
            "Dockerfile": "FROM scratch\nARG TARGETARCH\nCOPY tool-${TARGETARCH} /tool\n"
            "COPY app /app\n",
            "tool-amd64": "amd64 v1\n",
            "tool-arm64": "arm64 v1\n",
            "app": "v1\n",
            "pipeline-kit.yaml": "image: r.io/a/b\nplatforms: [linux/amd64, linux/arm64]\n",
        }
    )

    def key() -> str:
        proc = cli("detect", "--format", "json", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        return str(json.loads(proc.stdout)["image_key"])

    first = key()
    repo.commit({"tool-arm64": "arm64 v2\n"})
    second = key()
    assert second != first
    repo.commit({"app": "v2\n"})
    detected = json.loads(cli("detect", "--format", "json", cwd=tmp_path).stdout)
    assert detected["image_key"] != second
    assert detected["rebuild_point"]["line"] == 4  # the change starts at the code


def _request(tmp_path: Path, dockerfile: str, **fields: Any) -> BuildRequest:
    (tmp_path / "Dockerfile").write_text(dockerfile)
    return BuildRequest(
        image="registry.example/svc", dockerfile=tmp_path / "Dockerfile", context=tmp_path,
        target=None, build_args={}, labels={}, tags=("t",), cache_repo="registry.example/c",
        cache_ttl="1h", **fields,
    )  # fmt: skip


def test_a_run_step_of_a_platform_the_builder_cannot_run_is_refused(tmp_path: Path) -> None:
    request = _request(tmp_path, "FROM busybox\nCOPY a /a\nRUN true\n", platform="linux/arm64")
    asked: list[str] = []

    def runs(platform: Platform) -> bool | None:
        asked.append(str(platform))
        return platform.arch != "arm64"

    with pytest.raises(EnvironmentFault) as refused:
        refuse_unrunnable_platforms(request, "buildah", runs)
    assert asked == ["linux/arm64"]
    assert str(refused.value).startswith(
        "Dockerfile:3: RUN as linux/arm64: this machine does not run linux/arm64 programs, so "
        "buildah would fail at this step with `exec format error`."
    )
    assert "tonistiigi/binfmt --install arm64" in str(refused.value)


@pytest.mark.parametrize("answer", [True, None])
def test_a_platform_that_runs_or_cannot_be_told_is_left_to_the_builder(
    tmp_path: Path, answer: bool | None
) -> None:
    request = _request(
        tmp_path, "FROM busybox\nRUN true\n", platforms=("linux/amd64", "linux/arm64")
    )
    refuse_unrunnable_platforms(request, "BuildKit", lambda platform: answer)


def test_a_build_that_runs_nothing_asks_nothing(tmp_path: Path) -> None:
    request = _request(tmp_path, "FROM busybox\nCOPY a /a\n", platform="linux/arm64")
    refuse_unrunnable_platforms(request, "buildah", lambda platform: pytest.fail("asked"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[{"platforms":[{"architecture":"amd64","os":"linux"},{"architecture":"386","os":"linux"}]}]',
            {("linux", "amd64"), ("linux", "386")},
        ),
        ('[{"platforms":null}]', set()),
        ("not json", None),
        ('[{"platforms":[{"os":"linux"}]}]', None),
    ],
)
def test_worker_platforms_as_buildctl_lists_them(
    text: str, expected: set[tuple[str, str]] | None
) -> None:
    """The shape of ``buildctl debug workers --format '{{json .}}'`` (BuildKit v0.32; the
    integration test asks a real daemon)."""
    assert parse_worker_platforms(text) == (None if expected is None else frozenset(expected))

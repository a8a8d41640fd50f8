"""Build secrets: the config's list, checked before a builder starts; the builders' argv as a
table; the values written 0600 where only the builder reads them; Kaniko refused.

Real builds with secrets (BuildKit, buildah) are in tests/integration/build/test_build_secrets.py.
"""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path

import pytest

from pipeline_kit.build.builders.base import BuildRequest, BuildSecret
from pipeline_kit.build.builders.buildah import bud_argv
from pipeline_kit.build.builders.buildkit import buildctl_argv, buildx_argv
from pipeline_kit.build.builders.kaniko import KanikoBuilder, executor_argv
from pipeline_kit.build.secrets import (
    BUNDLE_VARIABLE,
    bundle,
    configured,
    resolve_secrets,
    write_secrets,
)
from pipeline_kit.config.loader import Config, load_config
from pipeline_kit.errors import ConfigError, InputError
from tests.support.gitrepo import GitRepo

SECRETS = (BuildSecret("hf_token", env="HF_TOKEN"), BuildSecret("pip", file="/run/pip-token"))
REQUEST = BuildRequest(
    image="registry.example.com/ml/llm",
    dockerfile=Path("/src/Dockerfile"),
    context=Path("/src"),
    target=None,
    build_args={},
    labels={},
    tags=("sha-abc1234",),
    cache_repo="registry.example.com/ml/llm/cache",
    cache_ttl="336h",
    secrets=SECRETS,
)
WORK = Path("/tmp/pipeline-kit-build-x")
FLAGS = [
    "--secret=id=hf_token,src=/tmp/pipeline-kit-build-x/secrets/hf_token",
    "--secret=id=pip,src=/tmp/pipeline-kit-build-x/secrets/pip",
]


def _secret_args(argv: list[str]) -> list[str]:
    return [arg for arg in argv if arg.startswith("--secret")]


@pytest.mark.parametrize(
    "argv",
    [
        buildctl_argv(REQUEST, WORK / "metadata.json"),
        buildx_argv(REQUEST, WORK / "metadata.json"),
        bud_argv(REQUEST, WORK / "docker" / "config.json", WORK),
    ],
    ids=["buildctl", "buildx", "buildah"],
)
def test_every_builder_gets_each_secret_as_a_file_in_its_private_directory(
    argv: list[str],
) -> None:
    assert _secret_args(argv) == FLAGS
    # Before the positional context (buildx, buildah) and among the options (buildctl).
    assert argv.index(FLAGS[-1]) < len(argv) - 1


@pytest.mark.parametrize(
    "argv",
    [
        buildctl_argv(dataclasses.replace(REQUEST, secrets=()), WORK / "metadata.json"),
        buildx_argv(dataclasses.replace(REQUEST, secrets=()), WORK / "metadata.json"),
        bud_argv(dataclasses.replace(REQUEST, secrets=()), None),
    ],
    ids=["buildctl", "buildx", "buildah"],
)
def test_no_secrets_no_secret_flag(argv: list[str]) -> None:
    assert _secret_args(argv) == []


def test_kaniko_argv_never_names_a_secret() -> None:
    assert _secret_args(executor_argv(REQUEST, WORK / "digest")) == []


def repo_with(tmp_path: Path, secrets: str, dockerfile: str = "FROM scratch\n") -> GitRepo:
    repo = GitRepo.init(tmp_path / "repo")
    repo.commit(
        {
            "pipeline-kit.yaml": f"image: 127.0.0.1:5000/t/llm\n{secrets}",
            "Dockerfile": dockerfile,
        }
    )
    return repo


def config_of(tmp_path: Path, secrets: str) -> tuple[Config, Path]:
    repo = repo_with(tmp_path, secrets)
    return load_config(None, repo.path), repo.path


def test_configured_reads_ids_and_sources(tmp_path: Path) -> None:
    config, _ = config_of(
        tmp_path, "secrets:\n  - {id: hf_token, env: HF_TOKEN}\n  - {id: pip, file: /x/y}\n"
    )
    assert configured(config) == (
        BuildSecret("hf_token", env="HF_TOKEN"),
        BuildSecret("pip", file="/x/y"),
    )


@pytest.mark.parametrize(
    ("secrets", "message"),
    [
        ("secrets:\n  - {id: a}\n", r"secrets\[0\]: give exactly one of `env`"),
        ("secrets:\n  - {id: a, env: A, file: /a}\n", r"secrets\[0\]: give exactly one of `env`"),
        ("secrets:\n  - {id: 'a,b', env: A}\n", r"secrets\[0\]\.id: 'a,b' does not match"),
        ("secrets:\n  - {id: a, env: 'A=B'}\n", r"secrets\[0\]\.env: 'A=B' does not match"),
        ("secrets:\n  - {id: a, value: x}\n", r"secrets\[0\]\.value: unknown key"),
        ("secrets: {id: a}\n", r"secrets: expected array"),
    ],
)
def test_the_schema_refuses_malformed_secrets(tmp_path: Path, secrets: str, message: str) -> None:
    repo = repo_with(tmp_path, secrets)
    with pytest.raises(ConfigError, match=message):
        load_config(None, repo.path)


def test_an_id_given_twice_is_refused_with_both_places(tmp_path: Path) -> None:
    config, _ = config_of(tmp_path, "secrets:\n  - {id: a, env: A}\n  - {id: a, env: B}\n")
    with pytest.raises(ConfigError, match=r"pipeline-kit.yaml:4:\d+: secrets\[1\]: id 'a' is "):
        configured(config)


def test_an_env_secret_needs_its_variable_set_and_not_empty(tmp_path: Path) -> None:
    config, root = config_of(tmp_path, "secrets:\n  - {id: hf_token, env: HF_TOKEN}\n")
    assert resolve_secrets(config, {"HF_TOKEN": "v"}, (root,)) == (
        BuildSecret("hf_token", env="HF_TOKEN"),
    )
    for environ, state in (({}, "not set"), ({"HF_TOKEN": ""}, "empty")):
        with pytest.raises(ConfigError) as refused:
            resolve_secrets(config, environ, (root,))
        assert refused.value.message.startswith("pipeline-kit.yaml:3:5: secrets[0] (hf_token): ")
        assert f"the environment variable HF_TOKEN is {state}" in refused.value.message
        assert "Set HF_TOKEN in the build job's environment" in str(refused.value.hint)


def test_the_bundle_holds_values_the_environment_lacks(tmp_path: Path) -> None:
    config, root = config_of(tmp_path, "secrets:\n  - {id: hf_token, env: HF_TOKEN}\n")
    environ = {BUNDLE_VARIABLE: "\nOTHER=1\nHF_TOKEN=a=b c\n"}
    assert bundle(environ) == {"OTHER": "1", "HF_TOKEN": "a=b c"}
    assert resolve_secrets(config, environ, (root,))
    work = tmp_path / "work"
    work.mkdir()
    write_secrets(configured(config), work, environ)
    assert (work / "secrets" / "hf_token").read_bytes() == b"a=b c"


def test_a_malformed_bundle_line_is_named_by_number_never_shown() -> None:
    with pytest.raises(ConfigError) as refused:
        bundle({BUNDLE_VARIABLE: "A=1\nhunter2-the-value\n"})
    assert str(refused.value).startswith(f"{BUNDLE_VARIABLE}: line 2 is not NAME=value.")
    assert "hunter2" not in str(refused.value)


def test_a_file_secret_is_expanded_and_resolved(tmp_path: Path) -> None:
    holder = tmp_path / "runner-temp"
    holder.mkdir()
    (holder / "token").write_text("file-value")
    (holder / "link").symlink_to(holder / "token")
    config, root = config_of(tmp_path, "secrets:\n  - {id: pip, file: '${RUNNER_TEMP}/link'}\n")
    resolved = resolve_secrets(config, {"RUNNER_TEMP": str(holder)}, (root,))
    assert resolved == (BuildSecret("pip", file=str(holder / "token")),)
    work = tmp_path / "work"
    work.mkdir(mode=0o700)
    write_secrets(resolved, work, {})
    written = work / "secrets" / "pip"
    assert written.read_text() == "file-value"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(written.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize(
    ("file", "message"),
    [
        ("$NOT_SET/token", "the environment variable NOT_SET is not set"),
        ("relative/token", "not an absolute path"),
        ("{root}/token", "is inside the checkout"),
        ("{root}/link-out", "is inside the checkout"),  # a committed link to a runner file
        ("{outside}/link-in", "is inside the checkout"),  # a link into the checkout
        ("/proc/self/environ", "a kernel file"),
        ("{outside}/link-environ", "a kernel file"),
        ("{outside}/missing", "does not exist"),
        ("{outside}", "is not a regular file"),
        ("{outside}/a,b", "a path with a comma"),
    ],
)
def test_a_file_secret_is_checked_as_an_attacker_would_place_it(
    tmp_path: Path, file: str, message: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "runner-file").write_text("RUNNER-ONLY")
    (outside / "link-environ").symlink_to("/proc/self/environ")
    repo = repo_with(tmp_path, "")
    (repo.path / "token").write_text("committed")
    (repo.path / "link-out").symlink_to(outside / "runner-file")
    (outside / "link-in").symlink_to(repo.path / "token")
    path = file.format(root=repo.path, outside=outside)
    (repo.path / "pipeline-kit.yaml").write_text(
        f"image: 127.0.0.1:5000/t/llm\nsecrets:\n  - {{id: pip, file: '{path}'}}\n"
    )
    config = load_config(None, repo.path)
    with pytest.raises(ConfigError) as refused:
        resolve_secrets(config, {}, (repo.path,))
    assert refused.value.message.startswith("pipeline-kit.yaml:3:5: secrets[0] (pip): file: ")
    assert message in refused.value.message
    assert "RUNNER-ONLY" not in str(refused.value)


def test_a_file_gone_before_the_build_is_an_error_naming_the_secret(tmp_path: Path) -> None:
    holder = tmp_path / "outside"
    holder.mkdir()
    (holder / "token").write_text("v")
    config, root = config_of(tmp_path, f"secrets:\n  - {{id: pip, file: {holder}/token}}\n")
    resolved = resolve_secrets(config, {}, (root,))
    (holder / "token").unlink()
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(ConfigError, match=r"secrets \(pip\): file: .*/token: cannot read it"):
        write_secrets(resolved, work, {})


DOCKERFILE = """\
FROM scratch AS tools
RUN --mount=type=secret,id=unused true

FROM scratch AS base
COPY busybox /bin/busybox

FROM base AS app
RUN --mount=type=secret,id=hf_token,required sh -c 'test -s /run/secrets/hf_token'
"""


def kaniko_request(tmp_path: Path, dockerfile: str, **change: object) -> BuildRequest:
    (tmp_path / "Dockerfile").write_text(dockerfile)
    base = dataclasses.replace(
        REQUEST, dockerfile=tmp_path / "Dockerfile", context=tmp_path, secrets=()
    )
    return dataclasses.replace(base, **change)


def test_kaniko_refuses_configured_secrets_before_it_starts(tmp_path: Path) -> None:
    request = kaniko_request(tmp_path, "FROM scratch\n", secrets=SECRETS)
    with pytest.raises(ConfigError) as refused:
        KanikoBuilder(tmp_path / "no-kaniko").preflight(request)
    assert "secrets (hf_token, pip): Kaniko builds get no build secrets" in str(refused.value)
    assert "--builder buildkit or buildah" in str(refused.value.hint)


def test_kaniko_refuses_a_secret_mount_in_a_stage_it_builds(tmp_path: Path) -> None:
    request = kaniko_request(tmp_path, DOCKERFILE)
    with pytest.raises(InputError) as refused:
        KanikoBuilder(tmp_path / "no-kaniko").preflight(request)
    assert refused.value.message.startswith(
        "Dockerfile:8: RUN --mount=type=secret,id=hf_token: Kaniko builds get no build secrets"
    )
    # A stage the target does not build is skipped (--skip-unused-stages): nothing to refuse.
    KanikoBuilder(tmp_path / "no-kaniko").preflight(dataclasses.replace(request, target="base"))
    KanikoBuilder(tmp_path / "no-kaniko").preflight(
        kaniko_request(tmp_path, "FROM scratch\nRUN --mount=type=cache,target=/c true\n")
    )


def test_secrets_change_no_content_key(tmp_path: Path) -> None:
    """A secret never reaches the image: neither its value nor the list changes a key."""
    repo = repo_with(tmp_path, "", "FROM scratch\nRUN --mount=type=secret,id=a true\n")
    before = repo.detect()
    repo.commit({"pipeline-kit.yaml": "image: 127.0.0.1:5000/t/llm\n"
                 "secrets:\n  - {id: a, env: A}\n"})  # fmt: skip
    after = repo.detect(environ={"A": "value"})
    assert {name: layer["key"] for name, layer in after["layers"].items()} == {
        name: layer["key"] for name, layer in before["layers"].items()
    }
    assert not after["image_changed"]

"""`pipeline-kit build` for real: buildah builds, a real registry on loopback, real git.

The images are `FROM scratch` + busybox-static, so a build takes seconds. Each RUN step writes
something that differs on every execution (a random UUID), so a layer that keeps its
digest across builds proves the step was not executed again.
"""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path
from typing import Any

import pytest

from tests.support.builds import layer_digests, make_service, manifest
from tests.support.ci_outputs import parse_dotenv, parse_github_outputs
from tests.support.gitrepo import GitRepo, cli, traced_cli
from tests.support.kitbuild import manifest_with_auth
from tests.support.services.registry import RegistryServer


def build(repo: GitRepo, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = cli("build", "--format", "json", *args, cwd=repo.path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    record: dict[str, Any] = json.loads(result.stdout)
    record["_stderr"] = result.stderr
    return record


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer) -> dict[str, Any]:
    """One repository taken through cold build, code change (fresh storage), docs change."""
    root = tmp_path_factory.mktemp("build")
    repo = make_service(root / "repo", registry, "team/svc", root / "storage1")
    cold = build(repo, "--tag", "cold")

    # A second machine: empty local storage, so base and deps can only come from the cache repo.
    config = (repo.path / "pipeline-kit.yaml").read_text().replace("storage1", "storage2")
    repo.commit({"pipeline-kit.yaml": config, "app/main.txt": "hello v2\n"}, message="code")
    # The builder on purpose (auto would append): this is the remote layer cache's test.
    code = build(repo, "--tag", "code", "--strategy", "builder")

    repo.commit({"docs/index.md": "# more docs\n"}, message="docs")
    docs = build(repo, "--tag", "docs")
    return {"repo": repo, "cold": cold, "code": code, "docs": docs}


def test_cold_build_pushes_every_tag(built: dict[str, Any], registry: RegistryServer) -> None:
    cold = built["cold"]
    assert cold["strategy"] == "builder" and cold["builder"] == "buildah"
    assert cold["digest"].startswith("sha256:")
    # The branch tag (main) has moved on with later builds; these name this build only.
    own = [
        t
        for t in cold["tags"]
        if t == "cold" or (t.startswith(("sha-", "pk-")) and not t.startswith("pk-on-"))
    ]
    assert len(own) == 3 and f"pk-{cold['image_key']}" in own
    for tag in own:
        assert manifest(registry, "team/svc", tag)["_digest"] == cold["digest"]
    assert set(cold["timings"]) >= {"detect", "plan", "build", "push", "total"}


def test_code_change_reuses_base_and_deps_layers_from_the_remote_cache(
    built: dict[str, Any], registry: RegistryServer
) -> None:
    cold, code = built["cold"], built["code"]
    assert code["strategy"] == "builder" and code["rebuild_from"] == "code"
    before = layer_digests(registry, "team/svc", "cold")
    after = layer_digests(registry, "team/svc", "code")
    # busybox COPY, install RUN, base RUN, requirements COPY, deps RUN: same bytes, not re-run.
    assert after[:5] == before[:5]
    assert after[5:] != before[5:]
    assert code["digest"] != cold["digest"]


def test_docs_change_publishes_by_retag_without_a_builder(
    built: dict[str, Any], registry: RegistryServer
) -> None:
    code, docs = built["code"], built["docs"]
    assert docs["strategy"] == "retag"
    assert docs["builder"] is None
    assert "build" not in docs["timings"]
    assert docs["digest"] == code["digest"]
    assert manifest(registry, "team/svc", "docs")["_digest"] == code["digest"]
    assert "buildah" not in docs["_stderr"]


def test_ci_outputs_name_the_published_digest(
    built: dict[str, Any], registry: RegistryServer, tmp_path: Path
) -> None:
    """--format github and gitlab: what later steps and jobs read (the build is a retag)."""
    repo = built["repo"]
    github_output, summary = tmp_path / "github_output", tmp_path / "summary.md"
    env = {"GITHUB_OUTPUT": str(github_output), "GITHUB_STEP_SUMMARY": str(summary)}
    result = cli("build", "--format", "github", "--tag", "gh", cwd=repo.path, env=env)
    assert result.returncode == 0, result.stderr
    outputs = parse_github_outputs(github_output.read_text())
    digest = manifest(registry, "team/svc", "gh")["_digest"]
    assert outputs["digest"] == digest == built["docs"]["digest"]
    assert outputs["image"] == f"{registry.host}/team/svc@{digest}"
    assert "gh" in outputs["tags"].split(",") and outputs["strategy"] == "retag"
    assert outputs["code-changed"] == "false" and outputs["image-changed"] == "false"
    assert json.loads(outputs["json"])["digest"] == digest
    assert f"Digest: `{digest}`" in summary.read_text()
    assert f"digest: {digest}" in result.stdout  # the log keeps the text report

    result = cli("build", "--format", "gitlab", "--dotenv", "out/build.env", cwd=repo.path)
    assert result.returncode == 0, result.stderr
    dotenv = parse_dotenv(repo.path / "out/build.env")
    assert dotenv["PIPELINE_KIT_DIGEST"] == digest
    assert dotenv["PIPELINE_KIT_IMAGE"] == f"{registry.host}/team/svc@{digest}"
    assert dotenv["PIPELINE_KIT_REBUILD_FROM"] == ""
    assert "PIPELINE_KIT_JSON" not in dotenv

    outside = cli("build", "--format", "github", "--tag", "never", cwd=repo.path)
    assert outside.returncode == 2 and "GITHUB_OUTPUT is not set" in outside.stderr
    with pytest.raises(urllib.error.HTTPError):  # it failed before publishing anything
        manifest(registry, "team/svc", "never")


def test_no_credentials_file_inside_the_checkout(tmp_path: Path, registry: RegistryServer) -> None:
    """Python's temporary directory falls back to the working directory where /tmp is missing
    (Kaniko's image has none): a builder's docker config there would be in the build context."""
    repo = make_service(tmp_path / "repo", registry, "team/tmpdir", tmp_path / "storage")
    inside = repo.path / "scratch"
    inside.mkdir()
    result = cli("build", "--strategy", "builder", cwd=repo.path, env={"TMPDIR": str(inside)})
    assert result.returncode == 3, result.stderr
    assert f"the temporary directory {inside} is inside {repo.path}" in result.stderr
    assert "Set TMPDIR to a writable directory outside the checkout" in result.stderr
    assert list(inside.iterdir()) == [] and not (tmp_path / "storage").exists()


def test_dry_run_prints_commands_and_runs_nothing(tmp_path: Path, registry: RegistryServer) -> None:
    repo = make_service(tmp_path / "repo", registry, "team/dry", tmp_path / "storage")
    record = build(repo, "--dry-run")
    assert record["strategy"] == "builder"
    assert record["digest"] is None
    assert [argv[0] for argv in record["commands"]] == ["buildah", "buildah"]
    assert "bud" in record["commands"][0] and "push" in record["commands"][1]
    assert not (tmp_path / "storage").exists()


def test_no_secret_in_argv_env_or_logs(tmp_path: Path, auth_registry: Any) -> None:
    """A build with a known password: every process the build starts is recorded as it
    starts (strace), and the password is in no argv, in no environment but the kit's own
    (buildah reads it from the 0600 authfile), and in no log."""
    password = "fake-Passw0rd-7f3a9c"
    server = auth_registry(user="builder", password=password)
    repo = make_service(tmp_path / "repo", server, "team/secret", tmp_path / "storage")
    env = {
        "PIPELINE_KIT_REGISTRY": server.host,
        "PIPELINE_KIT_REGISTRY_USER": "builder",
        "PIPELINE_KIT_REGISTRY_PASSWORD": password,
    }
    run = traced_cli("build", "--format", "json", cwd=repo.path, env=env)
    result = run.result
    assert result.returncode == 0, result.stderr[-3000:]
    # The record saw the kit, git, buildah and the Dockerfile's RUN steps start.
    assert [tool for tool in run.tools() if tool in ("python", "git", "buildah", "sh")] == [
        "python",
        "git",
        "buildah",
        "sh",
    ]
    assert run.argv_holding(password) == []
    assert run.env_holding(password) == {"python": ["PIPELINE_KIT_REGISTRY_PASSWORD"]}
    assert password not in result.stdout + result.stderr
    assert password not in server.log_path.read_text(errors="replace")
    digest = json.loads(result.stdout)["digest"]
    assert manifest_with_auth(server, "team/secret", digest, password)


def test_wrong_credentials_exit_3_and_push_nothing(tmp_path: Path, auth_registry: Any) -> None:
    server = auth_registry(user="builder", password="the-right-one")
    repo = make_service(tmp_path / "repo", server, "team/denied", tmp_path / "storage")
    env = {
        "PIPELINE_KIT_REGISTRY": server.host,
        "PIPELINE_KIT_REGISTRY_USER": "builder",
        "PIPELINE_KIT_REGISTRY_PASSWORD": "wrong",
    }
    result = cli("build", cwd=repo.path, env=env)
    assert result.returncode == 3, result.stderr
    assert "credentials refused as 'builder'" in result.stderr
    assert "Traceback" not in result.stderr
    assert "wrong" not in result.stderr.replace("wrong credentials", "")
    storage = server.workdir / "storage" / "docker" / "registry" / "v2" / "repositories"
    assert not (storage / "team" / "denied").exists()


@pytest.mark.parametrize(
    ("config", "args", "message"),
    [
        ("dockerfile: Dockerfile\n", [], "no `image` to build"),
        ("image: 127.0.0.1:9/x\n", ["--head", "HEAD~1"], "is not the checked-out commit"),
        ("image: 127.0.0.1:9/x\n", ["--build-arg", "NOEQUALS"], "is not NAME=VALUE"),
    ],
)
def test_bad_input_is_exit_2(tmp_path: Path, config: str, args: list[str], message: str) -> None:
    repo = GitRepo.init(tmp_path)
    repo.commit({"pipeline-kit.yaml": config, "Dockerfile": "FROM scratch\nCOPY a /a\n", "a": "1"})
    repo.commit({"a": "2"})
    result = cli("build", *args, cwd=repo.path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_unreachable_registry_is_exit_3(tmp_path: Path) -> None:
    from tests.support.services.registry import free_port

    repo = GitRepo.init(tmp_path)
    config = f"image: 127.0.0.1:{free_port()}/x\nbuild: {{buildah: {{root: {tmp_path}/s}}}}\n"
    repo.commit({"pipeline-kit.yaml": config, "Dockerfile": "FROM scratch\nCOPY a /a\n", "a": "1"})
    result = cli("build", cwd=repo.path)
    assert result.returncode == 3, result.stderr
    assert "reachable" in result.stderr


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_dry_run_plans_without_the_registry(
    built: dict[str, Any], registry: RegistryServer
) -> None:
    """With the registry up, the dry run finds the content recorded and plans a retag; with
    nothing listening where the image's registry should be, it plans the builder, exit 0, and
    says which lookups it could not do and what each would have decided. Without --dry-run the
    same config is an infrastructure error that names the address."""
    repo = built["repo"]
    live = build(repo, "--dry-run")
    assert live["strategy"] == "retag" and "offline" not in live
    port = _closed_port()
    text = (repo.path / "pipeline-kit.yaml").read_text()
    offline_config = repo.path / "offline.yaml"
    offline_config.write_text(text.replace(registry.host, f"127.0.0.1:{port}"))
    try:
        dry = cli("--config", "offline.yaml", "build", "--dry-run", "--format", "json",
                  cwd=repo.path)  # fmt: skip
        real = cli("--config", "offline.yaml", "build", cwd=repo.path)
    finally:
        offline_config.unlink()
    assert dry.returncode == 0, dry.stderr[-3000:]
    record = json.loads(dry.stdout)
    assert record["strategy"] == "builder" and record["digest"] is None
    assert record["image_key"] == live["image_key"]
    assert [argv[:2] for argv in record["commands"]] == [["buildah", "--storage-driver=vfs"]] * 2
    offline = record["offline"]
    assert f"connection refused at 127.0.0.1:{port}: nothing listens there" in offline["reason"]
    key_lookup = f"127.0.0.1:{port}/team/svc:pk-{live['image_key']}: if it is there"
    assert offline["lookups"][0].startswith(key_lookup) and "retagged" in offline["lookups"][0]
    assert any("appended" in lookup for lookup in offline["lookups"])
    assert "dry run without the registry" in dry.stderr

    assert real.returncode == 3, real.stderr[-3000:]
    assert f"connection refused at 127.0.0.1:{port}: nothing listens there" in real.stderr
    assert "Check that the registry is running" in real.stderr
    for jargon in ("Errno", "ConnectionRefusedError", "NewConnectionError", "Traceback"):
        assert jargon not in real.stderr

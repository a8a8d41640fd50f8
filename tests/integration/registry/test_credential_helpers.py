"""A private base image, reached through a docker credential helper the runner set up.

Two real docker-registries with htpasswd auth on loopback: the image's, bound by the kit's
variables, and a second one holding the base image, whose credential only a credential helper
(a real ``docker-credential-*`` program on PATH, tests/support/credential_helpers.py) gives. A
buildah build ``FROM`` that base succeeds because the docker config the kit hands buildah holds
the base registry's entry, written as a value; without the helper entry the same build cannot
pull its base. A recording ``buildah`` first on PATH keeps the config the kit wrote. BuildKit
reads the same config through buildctl, and Kaniko through the config under /kaniko.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.builds import BUSYBOX
from tests.support.credential_helpers import AuthfileRecorder, CredentialHelper, docker_config
from tests.support.example_image import remove_storage
from tests.support.gitrepo import GitRepo, cli, traced_cli
from tests.support.kitbuild import build_in_process, manifest_with_auth
from tests.support.services.buildkitd import BuildkitDaemon
from tests.support.services.kaniko import KanikoSandbox
from tests.support.services.registry import RegistryServer

IMAGE_USER, IMAGE_PASSWORD = "builder", "image-Passw0rd-81d4c2"
BASE_USER, BASE_PASSWORD = "base-bot", "base-Passw0rd-5e90ab"
SAVED_PASSWORD = "saved-Passw0rd-0c7f13"
BASE_DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
"""


def _config(image: str, storage: Path) -> str:
    return (
        f"image: {image}\n"
        f"build:\n  builder: buildah\n  buildah:\n    storage_driver: vfs\n"
        f"    root: {storage}/root\n    runroot: {storage}/run\n"
    )


def _bound(server: RegistryServer, user: str, password: str) -> dict[str, str]:
    return {
        "PIPELINE_KIT_REGISTRY": server.host,
        "PIPELINE_KIT_REGISTRY_USER": user,
        "PIPELINE_KIT_REGISTRY_PASSWORD": password,
    }


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def registries(
    tmp_path_factory: pytest.TempPathFactory, auth_registry: Callable[..., RegistryServer]
) -> Iterator[dict[str, Any]]:
    """The image's registry, and a second one holding ``team/base:v1`` (pushed by the kit with
    that registry's own credentials bound)."""
    images = auth_registry(user=IMAGE_USER, password=IMAGE_PASSWORD)
    private = auth_registry(user=BASE_USER, password=BASE_PASSWORD)
    root = tmp_path_factory.mktemp("private-base")
    repo = GitRepo.init(root / "base")
    config = _config(f"{private.host}/team/base", root / "storage")
    repo.commit({"Dockerfile": BASE_DOCKERFILE, "pipeline-kit.yaml": config}, message="base")
    shutil.copy(BUSYBOX, repo.path / "busybox")
    repo.commit(message="busybox")
    env = _bound(private, BASE_USER, BASE_PASSWORD)
    result = cli("build", "--tag", "v1", "--format", "json", cwd=repo.path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    yield {"images": images, "private": private}
    remove_storage(root / "storage")


def _service(root: Path, images: RegistryServer, private: RegistryServer, name: str) -> GitRepo:
    """A service FROM the private base, named through an ARG as model images often do."""
    repo = GitRepo.init(root / "repo")
    dockerfile = (
        f"ARG BASE={private.host}/team/base:v1\n"
        "FROM ${BASE}\n"
        "COPY app/ /app/\n"
        "RUN cp /app/main.txt /app/copied\n"
        'CMD ["/bin/cat", "/app/copied"]\n'
    )
    files = {
        "Dockerfile": dockerfile,
        "app/main.txt": f"{name}\n",  # a content of its own: nothing to retag
        "pipeline-kit.yaml": _config(f"{images.host}/team/{name}", root / "storage"),
    }
    repo.commit(files, message="service")
    return repo


def test_a_private_base_is_pulled_with_the_credential_a_helper_gives(
    tmp_path: Path, registries: dict[str, Any]
) -> None:
    images, private = registries["images"], registries["private"]
    repo = _service(tmp_path, images, private, "app")
    helper = CredentialHelper(
        tmp_path / "helper",
        "pktest",
        {private.host: (BASE_USER, BASE_PASSWORD), "unused.example": ("x", "unused-secret")},
    )
    recorder = AuthfileRecorder(tmp_path / "recorder")
    config = {
        "credHelpers": {private.host: "pktest", "unused.example": "pktest"},
        "auths": {"saved.example:5000": {"auth": _auth("saved", SAVED_PASSWORD)}},
    }
    env = {
        **_bound(images, IMAGE_USER, IMAGE_PASSWORD),
        "DOCKER_CONFIG": str(docker_config(tmp_path / "docker", config)),
        "PATH": f"{recorder.directory}:{helper.path_with()}",
    }
    try:
        run = traced_cli("build", "--format", "json", cwd=repo.path, env=env)
        result = run.result
        assert result.returncode == 0, result.stderr[-3000:]
        # The helper was asked about the base's registry alone, with no secret on its argv.
        assert set(helper.servers()) == {private.host}
        assert {tuple(call["argv"]) for call in helper.calls()} == {(str(helper.program), "get")}
        # buildah got the image's and the base's registries, each as a value; nothing for the
        # registries the build does not touch, and no helper to run.
        assert recorder.configs() == [
            {
                "auths": {
                    images.host: {"auth": _auth(IMAGE_USER, IMAGE_PASSWORD)},
                    private.host: {"auth": _auth(BASE_USER, BASE_PASSWORD)},
                }
            }
        ]
        for secret in (BASE_PASSWORD, IMAGE_PASSWORD):
            assert run.argv_holding(secret) == []
            assert secret not in result.stdout + result.stderr
        assert run.env_holding(BASE_PASSWORD) == {}
        digest = json.loads(result.stdout)["digest"]
        assert manifest_with_auth(images, "team/app", digest, IMAGE_PASSWORD)
        assert BASE_PASSWORD not in private.log_path.read_text(errors="replace")
    finally:
        remove_storage(tmp_path / "storage")


def test_without_the_helper_the_private_base_cannot_be_pulled(
    tmp_path: Path, registries: dict[str, Any]
) -> None:
    """The failing direction: the same build with no helper for the base's registry; buildah
    has no entry for it, its anonymous pull is refused and the build fails (exit 1)."""
    images, private = registries["images"], registries["private"]
    repo = _service(tmp_path, images, private, "anonymous")
    helper = CredentialHelper(tmp_path / "helper", "pktest", {})
    recorder = AuthfileRecorder(tmp_path / "recorder")
    env = {
        **_bound(images, IMAGE_USER, IMAGE_PASSWORD),
        "DOCKER_CONFIG": str(docker_config(tmp_path / "docker", {})),
        "PATH": f"{recorder.directory}:{helper.path_with()}",
    }
    try:
        result = cli("build", "--format", "json", cwd=repo.path, env=env)
        assert result.returncode == 1, result.stderr[-3000:]
        assert "buildah bud failed" in result.stderr
        assert "unauthorized" in result.stderr or "authentication required" in result.stderr
        assert helper.calls() == []
        assert recorder.configs() == [
            {"auths": {images.host: {"auth": _auth(IMAGE_USER, IMAGE_PASSWORD)}}}
        ]
    finally:
        remove_storage(tmp_path / "storage")


def test_a_failing_helper_for_the_base_stops_the_build_before_the_builder(
    tmp_path: Path, registries: dict[str, Any]
) -> None:
    """A helper the runner set up for the base's registry fails (an expired cloud session):
    exit 3, a message naming the helper and the host, and buildah never started."""
    images, private = registries["images"], registries["private"]
    repo = _service(tmp_path, images, private, "failing")
    helper = CredentialHelper(tmp_path / "helper", "pktest", {private.host: ("!fail", "")})
    recorder = AuthfileRecorder(tmp_path / "recorder")
    env = {
        **_bound(images, IMAGE_USER, IMAGE_PASSWORD),
        "DOCKER_CONFIG": str(
            docker_config(tmp_path / "docker", {"credHelpers": {private.host: "pktest"}})
        ),
        "PATH": f"{recorder.directory}:{helper.path_with()}",
    }
    result = cli("build", "--format", "json", cwd=repo.path, env=env)
    assert result.returncode == 3, result.stderr[-3000:]
    assert (
        f"the credential helper docker-credential-pktest failed for {private.host} (exit code 2)"
    ) in result.stderr
    assert "Traceback" not in result.stderr
    assert recorder.configs() == []


def test_buildkit_pulls_the_private_base_with_the_helpers_credential(
    tmp_path: Path, registries: dict[str, Any], buildkitd: BuildkitDaemon
) -> None:
    """BuildKit reads the same docker config (``DOCKER_CONFIG`` for buildctl): the daemon pulls
    the private base through buildctl's session, with no helper of its own."""
    images, private = registries["images"], registries["private"]
    repo = _service(tmp_path, images, private, "buildkit")
    config = (
        (repo.path / "pipeline-kit.yaml")
        .read_text()
        .replace("builder: buildah", "builder: buildkit")
    )
    repo.commit({"pipeline-kit.yaml": config}, message="buildkit")
    helper = CredentialHelper(
        tmp_path / "helper", "pktest", {private.host: (BASE_USER, BASE_PASSWORD)}
    )
    env = {
        **buildkitd.env,
        **_bound(images, IMAGE_USER, IMAGE_PASSWORD),
        "DOCKER_CONFIG": str(
            docker_config(tmp_path / "docker", {"credHelpers": {private.host: "pktest"}})
        ),
    }
    env["PATH"] = helper.path_with(env)
    result = cli("build", "--format", "json", cwd=repo.path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(result.stdout)
    assert (record["strategy"], record["builder"]) == ("builder", "buildkit")
    assert set(helper.servers()) == {private.host}
    assert BASE_PASSWORD not in result.stdout + result.stderr
    assert BASE_PASSWORD not in buildkitd.log_path.read_text(errors="replace")
    assert manifest_with_auth(images, "team/buildkit", record["digest"], IMAGE_PASSWORD)


def test_kaniko_pulls_the_private_base_with_the_helpers_credential(
    tmp_path: Path, registries: dict[str, Any], kaniko: KanikoSandbox
) -> None:
    """Kaniko wipes the root filesystem between stages and runs no helper: the kit asks the
    helper before the executor starts, and the executor finds the answer in the docker config
    under /kaniko (tests/support/services/kaniko.py is the only way the executor runs)."""
    images, private = registries["images"], registries["private"]
    repo = _service(tmp_path, images, private, "kaniko")
    config = (repo.path / "pipeline-kit.yaml").read_text()
    repo.commit({"pipeline-kit.yaml": config.replace("builder: buildah", "builder: kaniko")})
    helper = CredentialHelper(
        tmp_path / "helper", "pktest", {private.host: (BASE_USER, BASE_PASSWORD)}
    )
    environ = {
        **_bound(images, IMAGE_USER, IMAGE_PASSWORD),
        "DOCKER_CONFIG": str(
            docker_config(tmp_path / "docker", {"credHelpers": {private.host: "pktest"}})
        ),
        "PATH": helper.path_with(),
    }
    before = len(kaniko.runs)
    record = build_in_process(repo, kaniko.builder(), environ=environ)
    assert (record["strategy"], record["builder"]) == ("builder", "kaniko"), record["_stderr"]
    (run,) = kaniko.runs[before:]
    assert set(helper.servers()) == {private.host}
    assert [arg for arg in run.argv if BASE_PASSWORD in arg] == []
    assert [name for name, value in run.env.items() if BASE_PASSWORD in value] == []
    assert BASE_PASSWORD not in record["_stderr"] + run.text
    assert f"{private.host}/team/base:v1" in run.text  # the executor pulled the private base
    assert manifest_with_auth(images, "team/kaniko", record["digest"], IMAGE_PASSWORD)

"""Registry credentials go to the registry they are bound to, and nowhere a change points them.

Each test is an attack a pull request could make on a CI job that holds registry credentials:
name a ``FROM`` base, an ``image`` or a ``cache.repository`` on a host of its choosing, or have a
registry redirect the kit elsewhere. The trusted registry is a real docker-registry with
htpasswd auth; the attacker's host is a recording server on loopback (another port of the same
127.0.0.1, so the binding must include the port) that answers every request with a Basic
challenge and keeps each request's ``Authorization`` header. The kit must send it none.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from pipeline_kit import github_action
from pipeline_kit.adapters.registry.client import RegistryClient, RetryPolicy
from pipeline_kit.adapters.registry.credentials import (
    Credential,
    resolve_credential,
    write_docker_config,
)
from pipeline_kit.adapters.registry.references import sha256_digest
from pipeline_kit.errors import ConfigError, EnvironmentFault, InputError
from pipeline_kit.github_action import ActionInputs, credentials_environ
from tests.support.builds import BUSYBOX
from tests.support.credential_helpers import CredentialHelper, docker_config
from tests.support.example_image import remove_storage
from tests.support.gitrepo import GitRepo, cli
from tests.support.services import QuietHandler
from tests.support.services.registry import RegistryServer

USER = "ci-bot"
PASSWORD = "bound-Passw0rd-3e9a71"
DOCKERFILE = """\
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "touch", "/built"]

FROM base AS code
WORKDIR /srv
COPY app/ /srv/app/
CMD ["/bin/cat", "/srv/app/main.txt"]
"""


class Seen(NamedTuple):
    method: str
    path: str
    authorization: str | None


Answer = tuple[int, dict[str, str], bytes]
NOTHING = (None, "", "Basic " + base64.b64encode(b":").decode())


class LoopbackServer:
    """An HTTP server on 127.0.0.1 that records every request and answers with ``answer``."""

    def __init__(self, answer: Callable[[Seen], Answer]) -> None:
        self.answer = answer
        self.seen: list[Seen] = []
        server = self

        class Handler(QuietHandler):
            def _handle(self) -> None:
                self.read_body()
                request = Seen(self.command, self.path, self.headers.get("Authorization"))
                server.seen.append(request)
                status, headers, body = server.answer(request)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.httpd.server_address[1]}"

    def authorizations(self) -> list[str]:
        """Every Authorization header this server was sent that carries a credential.

        ``Basic Og==`` (an empty user and password: ``:``) is left out: containers/image, in
        buildah and podman, answers a Basic challenge with it when it has no credential for the
        host, and it carries nothing.
        """
        return [seen.authorization for seen in self.seen if seen.authorization not in NOTHING]


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def evil() -> Iterator[LoopbackServer]:
    """The attacker's registry: 401 with a Basic challenge for every request, each recorded."""
    challenge = {"WWW-Authenticate": 'Basic realm="x"', "Content-Type": "application/json"}
    body = b'{"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}'
    with LoopbackServer(lambda seen: (401, challenge, body)) as server:
        yield server


@pytest.fixture(scope="module")
def trusted(auth_registry: Callable[..., RegistryServer]) -> RegistryServer:
    return auth_registry(user=USER, password=PASSWORD)


def _bound_env(trusted: RegistryServer) -> dict[str, str]:
    """A CI job's credentials, bound to the trusted registry."""
    return {
        "PIPELINE_KIT_REGISTRY": trusted.host,
        "PIPELINE_KIT_REGISTRY_USER": USER,
        "PIPELINE_KIT_REGISTRY_PASSWORD": PASSWORD,
    }


def _config(image: str, storage: Path, extra: str = "", relative: bool = True) -> str:
    paths = "dockerfile: ../Dockerfile\ncontext: ..\n" if relative else ""
    return (
        f"image: {image}\n{paths}"
        f"build:\n  builder: buildah\n  buildah:\n    storage_driver: vfs\n"
        f"    root: {storage}/root\n    runroot: {storage}/run\n{extra}"
    )


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, trusted: RegistryServer
) -> Iterator[dict[str, Any]]:
    """A busybox service built once with buildah into the trusted registry (with the bound
    credentials): the previous image a later change would be appended to."""
    root = tmp_path_factory.mktemp("credential-binding")
    storage = root / "storage"
    repo = GitRepo.init(root / "repo")
    repo.commit(
        {
            "Dockerfile": DOCKERFILE,
            ".dockerignore": "ci/\n",
            "app/main.txt": "v1\n",
            "pipeline-kit.yaml": _config(f"{trusted.host}/bind/svc", storage, relative=False),
        },
        message="service",
    )
    shutil.copy(BUSYBOX, repo.path / "busybox")
    base = repo.commit(message="busybox")
    result = cli("build", "--format", "json", cwd=repo.path, env=_bound_env(trusted))
    assert result.returncode == 0, result.stderr[-3000:]
    yield {"repo": repo, "base": base, "storage": storage, "previous": json.loads(result.stdout)}
    remove_storage(storage)


def _branch(service: dict[str, Any], name: str, files: dict[str, str]) -> GitRepo:
    """A pull request's branch from the built commit: a code change plus ``files``."""
    repo: GitRepo = service["repo"]
    repo.git("checkout", "-q", "-B", name, service["base"])
    repo.commit({"app/main.txt": f"{name}\n", **files}, message=name)
    return repo


# -- the attacks -----------------------------------------------------------------------------


def test_a_from_line_on_another_host_gets_no_credentials_from_append(
    service: dict[str, Any], trusted: RegistryServer, evil: LoopbackServer
) -> None:
    """A pull request changes ``FROM`` to the attacker's host. A change that starts at FROM
    is not appended (the build says why), and the builder pulls that base with a docker
    config that holds only the bound registry's credential: the attacker gets none, its
    anonymous pull is refused, and the build fails (exit 1)."""
    dockerfile = DOCKERFILE.replace("FROM scratch AS base", f"FROM {evil.host}/team/base AS base")
    repo = _branch(service, "evil-from", {"Dockerfile": dockerfile})
    result = cli("build", "--format", "json", cwd=repo.path, env=_bound_env(trusted))
    assert evil.seen, "the attacker's host was never asked: the test proves nothing"
    assert evil.authorizations() == []
    assert result.returncode == 1, result.stderr[-3000:]
    assert (
        f"not appended: the change starts at Dockerfile:1 FROM {evil.host}/team/base AS base, "
        "in base: only a change inside the last layer (code) can be appended"
    ) in result.stderr
    assert "buildah bud failed" in result.stderr and "unauthorized" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_a_from_line_on_another_host_makes_the_kit_ask_no_helper_bound_elsewhere(
    service: dict[str, Any], trusted: RegistryServer, evil: LoopbackServer, tmp_path: Path
) -> None:
    """The same attack on a runner whose docker config names credential helpers: a
    ``credHelpers`` entry for the trusted registry, and a ``credsStore`` that holds the trusted
    registry's login only. The helper bound to the trusted registry is never asked about the
    attacker's host; the store is (it is not keyed by host), answers "not found", and the
    attacker still gets no credential."""
    helper = CredentialHelper(tmp_path / "helper", "pkbound", {trusted.host: (USER, PASSWORD)})
    store = CredentialHelper(tmp_path / "store", "pkstore", {trusted.host: (USER, PASSWORD)})
    config = {"credHelpers": {trusted.host: "pkbound"}, "credsStore": "pkstore"}
    dockerfile = DOCKERFILE.replace("FROM scratch AS base", f"FROM {evil.host}/team/base AS base")
    repo = _branch(service, "evil-from-helpers", {"Dockerfile": dockerfile})
    env = {
        "DOCKER_CONFIG": str(docker_config(tmp_path / "docker", config)),
        "PATH": f"{helper.directory}:{store.path_with()}",
    }
    result = cli("build", "--format", "json", cwd=repo.path, env=env)
    assert evil.seen, "the attacker's host was never asked: the test proves nothing"
    assert evil.authorizations() == []
    assert result.returncode == 1, result.stderr[-3000:]
    assert evil.host not in helper.servers()
    assert set(helper.servers()) == {trusted.host}  # the image's registry, through its helper
    assert evil.host in store.servers()  # asked, and had nothing
    assert PASSWORD not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_an_image_on_another_host_gets_no_credentials(
    service: dict[str, Any], trusted: RegistryServer, evil: LoopbackServer
) -> None:
    """A pull request points ``image`` at the attacker's host. ``build --dry-run`` first asks
    that registry for the image's records: anonymously, and the refusal ends the build with
    exit 3 and a message that names the host."""
    config = _config(f"{evil.host}/team/svc", service["storage"])
    repo = _branch(service, "evil-image", {"ci/evil-image.yaml": config})
    result = cli(
        "--config", "ci/evil-image.yaml", "build", "--dry-run", "--format", "json",
        cwd=repo.path, env=_bound_env(trusted),
    )  # fmt: skip
    assert evil.seen, "the attacker's host was never asked: the test proves nothing"
    assert evil.authorizations() == []
    assert result.returncode == 3, result.stderr[-3000:]
    assert f"{evil.host} asks for credentials and none were found" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


def test_a_cache_repository_on_another_host_is_not_in_the_builders_docker_config(
    service: dict[str, Any], trusted: RegistryServer, evil: LoopbackServer
) -> None:
    """A pull request points ``cache.repository`` at the attacker's host. buildah reads and
    writes its layer cache there with the docker config the kit wrote for it: that config has
    no entry for the host, so buildah sends the attacker no credential; its anonymous cache push
    is refused and the build fails (exit 1)."""
    extra = f"cache:\n  repository: {evil.host}/team/cache\n"
    config = _config(f"{trusted.host}/bind/cached", service["storage"], extra)
    repo = _branch(service, "evil-cache", {"ci/evil-cache.yaml": config})
    result = cli(
        "--config", "ci/evil-cache.yaml", "build", "--strategy", "builder", "--format", "json",
        cwd=repo.path, env=_bound_env(trusted),
    )  # fmt: skip
    assert any("/team/cache" in seen.path for seen in evil.seen), (
        "buildah never asked the attacker's host for the cache: the test proves nothing",
        result.stderr[-3000:],
    )
    assert evil.authorizations() == []
    assert result.returncode == 1, result.stderr[-3000:]
    assert "failed pushing cache" in result.stderr and "unauthorized" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_a_preview_of_an_image_on_another_host_gets_no_authfile(
    tmp_path: Path, trusted: RegistryServer, evil: LoopbackServer
) -> None:
    """``preview up`` of an image on the attacker's host: podman gets no authfile for it, so
    its pull is anonymous; the refused pull ends with exit 3."""
    runroot = Path(tempfile.mkdtemp(prefix="pk-bind-"))
    root = tmp_path / "svc"
    (root / "weights").mkdir(parents=True)
    (root / "pipeline-kit.yaml").write_text(
        f"image: {evil.host}/team/private\n"
        f"preview:\n  scope: pk-test-bind-{runroot.name}\n  weights: weights\n"
        f"  local: {{containers_conf: relaxed, storage_driver: vfs, root: {tmp_path}/p,"
        f" runroot: {runroot}, stop_timeout: 0s}}\n"
    )
    image = f"{evil.host}/team/private@sha256:{'1' * 64}"
    try:
        result = cli(
            "preview", "up", "--image", image, "--name", "bind", cwd=root, env=_bound_env(trusted)
        )
        assert evil.seen, "podman never asked the attacker's host: the test proves nothing"
        assert evil.authorizations() == []
        assert result.returncode == 3, result.stderr[-3000:]
        assert "podman" in result.stderr
        assert PASSWORD not in result.stdout + result.stderr
    finally:
        cli("preview", "down", "bind", cwd=root)
        remove_storage(runroot)
        remove_storage(tmp_path / "p")


def test_credentials_without_their_registry_are_a_configuration_error(
    service: dict[str, Any], trusted: RegistryServer
) -> None:
    """User and password with no ``PIPELINE_KIT_REGISTRY``: the kit cannot tell where they may
    go, so a command that needs a credential stops with exit 2 and says which variable to set;
    the password is in no output. A command that talks to no registry is not stopped."""
    env = {k: v for k, v in _bound_env(trusted).items() if k != "PIPELINE_KIT_REGISTRY"}
    repo = _branch(service, "unbound", {})
    result = cli("build", "--dry-run", cwd=repo.path, env=env)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "PIPELINE_KIT_REGISTRY is not" in result.stderr
    assert "Set PIPELINE_KIT_REGISTRY to the registry host they are for" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    detect = cli("detect", cwd=repo.path, env=env)
    assert detect.returncode == 0, detect.stderr


# -- redirects and token services ---------------------------------------------------------


def test_a_blob_redirect_to_another_host_carries_no_authorization() -> None:
    """The bound registry redirects a blob GET to its storage on another host (as S3-backed
    registries do): the client follows it without the credential."""
    blob = b"layer bytes"
    digest = sha256_digest(blob)
    with LoopbackServer(lambda seen: (200, {}, blob)) as storage:

        def registry_answer(seen: Seen) -> Answer:
            if seen.authorization != _basic(USER, PASSWORD):
                return 401, {"WWW-Authenticate": 'Basic realm="r"'}, b""
            return 307, {"Location": f"http://{storage.host}/blobs/{digest}"}, b""

        with LoopbackServer(registry_answer) as registry:
            client = _client(registry.host, _bound_env_for(registry.host))
            assert client.get_blob("team/svc", digest) == blob
    assert _basic(USER, PASSWORD) in registry.authorizations()  # the registry did get it
    assert storage.seen and storage.authorizations() == []


def test_a_host_a_redirect_leads_to_gets_no_credentials_when_it_asks() -> None:
    """The registry's redirect leads to a host that answers with its own bearer challenge: its
    token realm is not the bound registry's choice, so the client sends it no credential and
    stops, saying where it was sent."""

    def storage_answer(seen: Seen) -> Answer:
        realm = f'Bearer realm="http://{storage.host}/token",service="s"'
        if seen.path.startswith("/token"):
            return 200, {"Content-Type": "application/json"}, b'{"token": "t"}'
        return 401, {"WWW-Authenticate": realm}, b""

    with LoopbackServer(storage_answer) as storage:

        def registry_answer(seen: Seen) -> Answer:
            if seen.authorization != _basic(USER, PASSWORD):
                return 401, {"WWW-Authenticate": 'Basic realm="r"'}, b""
            if seen.path == "/v2/":
                return 200, {}, b"{}"
            return 307, {"Location": f"http://{storage.host}{seen.path}"}, b""

        with LoopbackServer(registry_answer) as registry:
            client = _client(registry.host, _bound_env_for(registry.host))
            client.ping()  # logged in: the blob request carries the credential from the start
            with pytest.raises(EnvironmentFault) as error:
                client.get_blob("team/svc", "sha256:" + "2" * 64)
    assert storage.seen and storage.authorizations() == []
    assert not [seen for seen in storage.seen if seen.path.startswith("/token")]
    assert f"{storage.host}, where the registry sent the request" in str(error.value)
    assert "the credentials for this registry go to it alone" in str(error.value)


def test_the_token_service_the_bound_registry_names_gets_the_credential() -> None:
    """GitLab and GHCR send clients to a token service on another host: when the bound
    registry's own challenge names it, the credential goes there (and a bearer token comes
    back to the registry). What the bound registry chooses keeps working."""
    with LoopbackServer(lambda seen: (200, {}, b'{"token": "granted"}')) as tokens:

        def registry_answer(seen: Seen) -> Answer:
            if seen.authorization == "Bearer granted":
                return 200, {}, b"{}"
            realm = f'Bearer realm="http://{tokens.host}/jwt/auth",service="registry"'
            return 401, {"WWW-Authenticate": realm}, b""

        with LoopbackServer(registry_answer) as registry:
            _client(registry.host, _bound_env_for(registry.host)).ping()
    assert tokens.authorizations() == [_basic(USER, PASSWORD)]
    assert "Bearer granted" in registry.authorizations()


def _bound_env_for(host: str) -> dict[str, str]:
    return {
        "PIPELINE_KIT_REGISTRY": host,
        "PIPELINE_KIT_REGISTRY_USER": USER,
        "PIPELINE_KIT_REGISTRY_PASSWORD": PASSWORD,
    }


def _client(host: str, environ: dict[str, str]) -> RegistryClient:
    client = RegistryClient.connect(host, environ)
    client.retry = RetryPolicy(attempts=1)
    return client


# -- which source binds to which host ---------------------------------------------------------


@pytest.mark.parametrize(
    ("bound", "host", "gets_it"),
    [
        ("127.0.0.1:5000", "127.0.0.1:5000", True),
        ("127.0.0.1:5000", "127.0.0.1:5001", False),  # another port is another registry
        ("127.0.0.1:5000", "127.0.0.1", False),
        ("https://registry.example.com/", "registry.example.com", True),
        ("Registry.Example.com", "registry.example.com", True),
        ("registry.example.com", "evil.example", False),
        ("registry.example.com", "registry.example.com.evil.example", False),
        ("index.docker.io", "docker.io", True),
        ("https://index.docker.io/v1/", "docker.io", True),
        ("docker.io", "registry-1.docker.io", True),
        ("docker.io", "ghcr.io", False),
    ],
)
def test_kit_credentials_go_to_the_host_they_name(bound: str, host: str, gets_it: bool) -> None:
    """``PIPELINE_KIT_REGISTRY`` binds the user and password to one host (port included;
    Docker Hub's names are one host; a scheme and a trailing slash are tolerated)."""
    found = resolve_credential(host, {**_bound_env_for(bound), "HOME": "/nonexistent"})
    assert (found is not None) is gets_it
    if found is not None:
        assert (found.username, found.password) == (USER, PASSWORD)


def test_the_other_sources_stay_with_their_own_hosts(tmp_path: Path) -> None:
    """GitLab's job credentials go to ``CI_REGISTRY``, ``GITHUB_TOKEN`` to ghcr.io, a docker
    config entry to its own host: none of them to a host a change names."""
    docker = tmp_path / "docker"
    write_docker_config(docker, {"saved.example:5000": Credential("saved", "saved-pass")})
    env = {
        "CI_REGISTRY": "registry.gitlab.example",
        "CI_REGISTRY_USER": "gitlab-ci-token",
        "CI_REGISTRY_PASSWORD": "job-token",
        "GITHUB_TOKEN": "gh-token",
        "DOCKER_CONFIG": str(docker),
    }
    assert _password("registry.gitlab.example", env) == "job-token"
    assert _password("ghcr.io", env) == "gh-token"
    assert _password("saved.example:5000", env) == "saved-pass"
    for other in ("evil.example", "saved.example", "saved.example:5001", "ghcr.io.evil.example"):
        assert resolve_credential(other, env) is None, other


def _password(host: str, environ: dict[str, str]) -> str | None:
    found = resolve_credential(host, environ)
    return found.password if found else None


def test_a_repository_path_is_not_a_registry_host() -> None:
    env = {**_bound_env_for("registry.example.com/team"), "HOME": "/nonexistent"}
    with pytest.raises(ConfigError, match="names a repository, not a registry host") as error:
        resolve_credential("registry.example.com", env)
    assert PASSWORD not in str(error.value)


# -- the GitHub action ------------------------------------------------------------------------


def test_the_action_refuses_a_username_and_password_without_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``registry-username`` and ``registry-password`` without ``registry``: a usage error
    (exit 2) with an annotation that names the input, before any command runs; the password is
    only ever in the mask line."""
    with pytest.raises(InputError, match="registry is empty"):
        credentials_environ(ActionInputs("build", registry_username="bot", registry_password="p"))
    outputs = tmp_path / "github-output"
    outputs.write_text("")
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    monkeypatch.setenv("RUNNER_TEMP", str(tmp_path))
    for name in ("PIPELINE_KIT_REGISTRY", "PIPELINE_KIT_REGISTRY_USER", "GITHUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("PIPELINE_KIT_REGISTRY_PASSWORD", raising=False)
    monkeypatch.setenv("PK_COMMAND", "build")
    monkeypatch.setenv("PK_REGISTRY_USERNAME", "bot")
    monkeypatch.setenv("PK_REGISTRY_PASSWORD", PASSWORD)
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    code = github_action.run(os.environ, out)
    log = out.getvalue()
    assert code == 2
    assert "::error title=pipeline-kit build::exit 2 (usage or configuration error): " in log
    assert "registry-username and registry-password are set but registry is empty" in log
    assert log.count(PASSWORD) == 1 and log.startswith(f"::add-mask::{PASSWORD}\n")
    assert outputs.read_text() == "exit-code=2\n"
    assert "PIPELINE_KIT_REGISTRY_PASSWORD" not in os.environ

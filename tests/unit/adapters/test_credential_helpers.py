"""Credentials from Docker credential helpers and stores, with a real helper program on PATH.

Docker's order for a host is ``credHelpers[host]``, else ``credsStore``, else ``auths``; the
environment's own variables come before the docker config, and a ``.netrc`` after it. A helper
that holds nothing for the host passes it on; one that fails, hangs, answers garbage or is not
installed stops the command (exit 3) with a message naming the helper and the host.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline_kit.adapters.registry import credential_helpers
from pipeline_kit.adapters.registry.credentials import (
    Credential,
    resolve_credential,
    write_docker_config,
)
from pipeline_kit.errors import ConfigError, EnvironmentFault, ExitCode
from tests.support.credential_helpers import (
    FAIL,
    GARBAGE,
    HANG,
    CredentialHelper,
    docker_config,
)

HOST = "registry.example.com:5000"
SECRET = "helper-Secr3t-5b1f07"


@pytest.fixture(autouse=True)
def fresh_answers() -> Iterator[None]:
    credential_helpers.forget_answers()
    yield
    credential_helpers.forget_answers()


def _env(tmp_path: Path, config: dict[str, object], *helpers: CredentialHelper) -> dict[str, str]:
    path = str(tmp_path / "bin")
    for helper in helpers:
        path = f"{helper.directory}:{path}"
    return {
        "DOCKER_CONFIG": str(docker_config(tmp_path / "docker", config)),
        "HOME": str(tmp_path / "home"),
        "PATH": f"{path}:/usr/bin:/bin",
    }


def _auth(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def _found(host: str, env: dict[str, str]) -> tuple[str, str] | None:
    credential = resolve_credential(host, env)
    return None if credential is None else (credential.username, credential.password)


def test_credhelpers_come_before_the_store_and_the_store_before_auths(tmp_path: Path) -> None:
    helper = CredentialHelper(tmp_path / "h", "pkhelper", {HOST: ("from-helper", SECRET)})
    store = CredentialHelper(tmp_path / "s", "pkstore", {HOST: ("from-store", "store-pass")})
    config: dict[str, object] = {
        "credHelpers": {HOST: "pkhelper"},
        "credsStore": "pkstore",
        "auths": {HOST: _auth("from-auths", "auths-pass")},
    }
    env = _env(tmp_path, config, helper, store)
    assert _found(HOST, env) == ("from-helper", SECRET)
    assert store.calls() == []

    del config["credHelpers"]
    env = _env(tmp_path, config, helper, store)
    credential_helpers.forget_answers()
    assert _found(HOST, env) == ("from-store", "store-pass")

    del config["credsStore"]
    env = _env(tmp_path, config, helper, store)
    assert _found(HOST, env) == ("from-auths", "auths-pass")


def test_a_miss_passes_the_host_on_to_the_next_source(tmp_path: Path) -> None:
    """The helper has nothing for the host ("credentials not found"): the store is asked, then
    the ``auths`` entry; with nothing anywhere the host gets no credential (anonymous)."""
    helper = CredentialHelper(tmp_path / "h", "pkhelper", {})
    store = CredentialHelper(tmp_path / "s", "pkstore", {})
    config: dict[str, object] = {"credHelpers": {HOST: "pkhelper"}, "credsStore": "pkstore"}
    env = _env(tmp_path, config, helper, store)
    assert _found(HOST, env) is None
    assert helper.servers() == [HOST] and store.servers() == [HOST]

    config["auths"] = {HOST: _auth("saved", "saved-pass")}
    credential_helpers.forget_answers()
    assert _found(HOST, _env(tmp_path, config, helper, store)) == ("saved", "saved-pass")


def test_the_environments_own_variables_come_before_the_docker_config(tmp_path: Path) -> None:
    """The precedence stays as it was: a bound variable wins, and no helper is asked."""
    helper = CredentialHelper(tmp_path / "h", "pkhelper", {HOST: ("from-helper", SECRET)})
    env = {
        **_env(tmp_path, {"credHelpers": {HOST: "pkhelper"}}, helper),
        "PIPELINE_KIT_REGISTRY": HOST,
        "PIPELINE_KIT_REGISTRY_USER": "kit",
        "PIPELINE_KIT_REGISTRY_PASSWORD": "kit-pass",
    }
    assert _found(HOST, env) == ("kit", "kit-pass")
    assert helper.calls() == []


def test_a_netrc_comes_after_the_docker_config(tmp_path: Path) -> None:
    helper = CredentialHelper(tmp_path / "h", "pkhelper", {})
    netrc = tmp_path / "netrc"
    netrc.write_text("machine registry.example.com login from-netrc password netrc-pass\n")
    netrc.chmod(0o600)
    env = {**_env(tmp_path, {"credHelpers": {HOST: "pkhelper"}}, helper), "NETRC": str(netrc)}
    assert _found(HOST, env) == ("from-netrc", "netrc-pass")
    assert helper.servers() == [HOST]


def test_a_helper_is_asked_only_for_the_host_it_is_configured_for(tmp_path: Path) -> None:
    """A change that names another host (``FROM evil.example/x``) makes the kit ask no helper
    that the runner set up for some other registry; with no store, that host is anonymous."""
    helper = CredentialHelper(tmp_path / "h", "pkhelper", {HOST: ("from-helper", SECRET)})
    env = _env(tmp_path, {"credHelpers": {HOST: "pkhelper"}}, helper)
    for other in ("evil.example", "registry.example.com", "registry.example.com:5001"):
        assert _found(other, env) is None, other
    assert helper.calls() == []


def test_a_store_is_asked_for_any_host_and_answers_only_for_its_own(tmp_path: Path) -> None:
    """``credsStore`` is not keyed by host: it is asked about any host a build touches, and holds
    only what the runner logged into. An unknown host is a miss: anonymous."""
    store = CredentialHelper(tmp_path / "s", "pkstore", {HOST: ("from-store", SECRET)})
    env = _env(tmp_path, {"credsStore": "pkstore"}, store)
    assert _found("evil.example", env) is None
    assert _found(HOST, env) == ("from-store", SECRET)
    assert store.servers() == ["evil.example", HOST]


def test_docker_hub_is_asked_for_under_its_login_url(tmp_path: Path) -> None:
    helper = CredentialHelper(
        tmp_path / "h", "pkhelper", {"https://index.docker.io/v1/": ("hubuser", SECRET)}
    )
    env = _env(tmp_path, {"credHelpers": {"docker.io": "pkhelper"}}, helper)
    assert _found("registry-1.docker.io", env) == ("hubuser", SECRET)
    assert helper.servers() == ["https://index.docker.io/v1/"]


def test_an_answer_is_kept_for_the_process(tmp_path: Path) -> None:
    """A build opens several clients for one registry: the helper runs once."""
    helper = CredentialHelper(tmp_path / "h", "pkhelper", {HOST: ("from-helper", SECRET)})
    env = _env(tmp_path, {"credHelpers": {HOST: "pkhelper"}}, helper)
    for _ in range(3):
        assert _found(HOST, env) == ("from-helper", SECRET)
    assert helper.servers() == [HOST]


def test_no_secret_on_the_helpers_command_line(tmp_path: Path) -> None:
    """The server URL goes on stdin and the secret comes back on stdout: the argv the helper
    saw is its own path and ``get``."""
    helper = CredentialHelper(tmp_path / "h", "pkhelper", {HOST: ("from-helper", SECRET)})
    env = _env(tmp_path, {"credHelpers": {HOST: "pkhelper"}}, helper)
    credential = resolve_credential(HOST, env)
    assert [call["argv"] for call in helper.calls()] == [[str(helper.program), "get"]]
    assert credential is not None and SECRET not in repr(credential)
    assert "docker-credential-pkhelper" in credential.source and SECRET not in credential.source


def test_an_identity_token_is_written_as_one(tmp_path: Path) -> None:
    """Username ``<token>``: the Secret is an identity token, and the builder's docker config
    holds it as ``identitytoken`` (as ``docker login`` writes one), not as a password."""
    helper = CredentialHelper(tmp_path / "h", "pkhelper", {HOST: ("<token>", SECRET)})
    env = _env(tmp_path, {"credHelpers": {HOST: "pkhelper"}}, helper)
    credential = resolve_credential(HOST, env)
    assert credential is not None and credential.username == "<token>"
    written = write_docker_config(tmp_path / "out", {HOST: credential})
    assert json.loads(written.read_text()) == {"auths": {HOST: {"identitytoken": SECRET}}}
    plain = write_docker_config(tmp_path / "plain", {HOST: Credential("u", "p")})
    assert json.loads(plain.read_text()) == {"auths": {HOST: _auth("u", "p")}}


@pytest.mark.parametrize(
    ("answer", "message", "hint"),
    [
        (
            FAIL,
            "the credential helper docker-credential-pkhelper failed for "
            f"{HOST} (exit code 2): error getting credentials: the session token has expired",
            "Fix the helper's own login on the runner",
        ),
        (
            GARBAGE,
            "the credential helper docker-credential-pkhelper answered for "
            f"{HOST} with something that is not the JSON Docker's protocol gives",
            "Check that docker-credential-pkhelper is a Docker credential helper",
        ),
        (
            HANG,
            f"the credential helper docker-credential-pkhelper gave no answer for {HOST} "
            "within 1 s",
            "Check what docker-credential-pkhelper waits for on the runner",
        ),
    ],
)
def test_a_helper_that_fails_stops_the_command_and_says_which(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    answer: tuple[str, str],
    message: str,
    hint: str,
) -> None:
    monkeypatch.setattr(credential_helpers, "TIMEOUT", 1.0)
    helper = CredentialHelper(tmp_path / "h", "pkhelper", {HOST: answer})
    env = _env(tmp_path, {"credHelpers": {HOST: "pkhelper"}}, helper)
    with pytest.raises(EnvironmentFault) as error:
        resolve_credential(HOST, env)
    assert error.value.exit_code == ExitCode.INFRA
    assert f"{tmp_path}/docker/config.json (credHelpers.{HOST}): {message}" in error.value.message
    assert error.value.hint is not None and hint in error.value.hint
    assert "Username=" not in str(error.value)  # what a garbage answer printed is not shown


def test_a_helper_missing_from_path_names_itself_the_host_and_what_to_do(tmp_path: Path) -> None:
    env = _env(tmp_path, {"credHelpers": {HOST: "ecr-login"}})
    with pytest.raises(EnvironmentFault) as error:
        resolve_credential(HOST, env)
    assert error.value.exit_code == ExitCode.INFRA
    assert (
        f"(credHelpers.{HOST}): the credential helper docker-credential-ecr-login for {HOST} "
        "is not on PATH"
    ) in error.value.message
    assert error.value.hint is not None
    assert "Install docker-credential-ecr-login on the runner" in error.value.hint


@pytest.mark.parametrize("name", ["../../bin/sh", "/usr/bin/env", " pass"])
def test_a_helper_name_that_is_a_path_is_refused(tmp_path: Path, name: str) -> None:
    env = _env(tmp_path, {"credHelpers": {HOST: name}})
    with pytest.raises(ConfigError, match="is not a credential helper's name"):
        resolve_credential(HOST, env)


def test_an_empty_secret_is_a_miss(tmp_path: Path) -> None:
    helper = CredentialHelper(tmp_path / "h", "pkhelper", {HOST: ("someone", "")})
    env = _env(tmp_path, {"credHelpers": {HOST: "pkhelper"}}, helper)
    assert resolve_credential(HOST, env) is None


def test_the_helper_gets_the_environment_less_what_the_kit_withholds(tmp_path: Path) -> None:
    """Cloud helpers read their credentials from the environment (``AWS_*``, ...): they get
    the kit's, but never the kit's own registry password."""
    script = tmp_path / "h" / "docker-credential-pkenv"
    script.parent.mkdir()
    script.write_text(
        "#!/bin/sh\nread server\n"
        'printf \'{"ServerURL":"%s","Username":"%s","Secret":"%s"}\' '
        '"$server" "$AWS_PROFILE" "${PIPELINE_KIT_REGISTRY_PASSWORD:-withheld}"\n'
    )
    script.chmod(0o755)
    env = {
        **_env(tmp_path, {"credHelpers": {HOST: "pkenv"}}),
        "PATH": f"{script.parent}:/usr/bin:/bin",
        "AWS_PROFILE": "ci-role",
        "PIPELINE_KIT_REGISTRY": "elsewhere.example",
        "PIPELINE_KIT_REGISTRY_USER": "kit",
        "PIPELINE_KIT_REGISTRY_PASSWORD": "kit-pass",
    }
    assert _found(HOST, env) == ("ci-role", "withheld")

"""Registry credentials: found in the environment or a docker config, handed on in a 0600 file.

Every credential is bound to the one registry it names, and is given for that host only:
``PIPELINE_KIT_REGISTRY_USER``/``PASSWORD`` for ``PIPELINE_KIT_REGISTRY``,
``CI_REGISTRY_USER``/``PASSWORD`` for ``CI_REGISTRY``, ``GITHUB_TOKEN`` for ghcr.io, then the
docker config as Docker reads it for a host: its ``credHelpers`` entry for that host, else its
``credsStore``, else its ``auths`` entry for that key (a helper's miss passes on to the next),
then a ``.netrc`` (``$NETRC``, else ``~/.netrc``) ``machine`` entry for its host name (a netrc
names no port; its ``default`` entry, meant for any host, is not used). A host a change names
(a ``FROM`` line, the image, a cache repository) gets none unless the environment bound one to
it: the docker config is the runner's, and a ``credHelpers`` entry names its host; a
``credsStore`` is asked for any host a build touches, and answers only for the registries the
runner logged into (``docs/trust-model.md``).
Secrets never go into argv or logs; builders get them only through ``write_docker_config``,
as resolved values, so a builder needs no helper of its own.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline_kit.adapters.registry.credential_helpers import TOKEN_USERNAME, ask_helper
from pipeline_kit.errors import ConfigError

REGISTRY_VARIABLE = "PIPELINE_KIT_REGISTRY"
USER_VARIABLE = "PIPELINE_KIT_REGISTRY_USER"
PASSWORD_VARIABLE = "PIPELINE_KIT_REGISTRY_PASSWORD"
DOCKER_HUB_NAMES = ("index.docker.io", "registry-1.docker.io")


@dataclass(frozen=True)
class Credential:
    username: str
    password: str = field(repr=False)
    source: str = ""  # where it came from, for error messages (never the secret)


def resolve_credential(host: str, environ: Mapping[str, str]) -> Credential | None:
    """The credential bound to ``host``; the first source that has one wins, none for a host
    that no source names."""
    wanted = registry_host(host)
    kit = _kit_credential(environ)
    if kit is not None and kit[0] == wanted:
        return kit[1]
    ci_registry = environ.get("CI_REGISTRY", "")
    if ci_registry and registry_host(ci_registry) == wanted and environ.get("CI_REGISTRY_PASSWORD"):
        return Credential(
            environ.get("CI_REGISTRY_USER", "gitlab-ci-token"),
            environ["CI_REGISTRY_PASSWORD"],
            "CI_REGISTRY_USER/CI_REGISTRY_PASSWORD",
        )
    if wanted == "ghcr.io" and environ.get("GITHUB_TOKEN"):
        return Credential(
            environ.get("GITHUB_ACTOR") or "x-access-token", environ["GITHUB_TOKEN"], "GITHUB_TOKEN"
        )
    return _from_docker_config(wanted, environ) or _from_netrc(wanted, environ)


def registry_host(text: str) -> str:
    """A registry as credentials are bound to it: ``https://Index.Docker.IO/v1/`` ->
    ``docker.io``; ``https://host:5000/`` -> ``host:5000`` (the port is part of it)."""
    host = text.strip().split("://", 1)[-1].split("/", 1)[0].lower()
    return "docker.io" if host in DOCKER_HUB_NAMES else host


def _kit_credential(environ: Mapping[str, str]) -> tuple[str, Credential] | None:
    """``PIPELINE_KIT_REGISTRY_USER``/``PASSWORD`` and the host they are for."""
    user, password = environ.get(USER_VARIABLE, ""), environ.get(PASSWORD_VARIABLE, "")
    if not (user and password):
        return None
    named = environ.get(REGISTRY_VARIABLE, "").strip()
    if not named:
        raise ConfigError(
            f"{USER_VARIABLE} and {PASSWORD_VARIABLE} are set, but {REGISTRY_VARIABLE} is not: "
            "the kit sends credentials only to the registry they are for.",
            hint=f"Set {REGISTRY_VARIABLE} to the registry host they are for (host or host:port, "
            "e.g. registry.example.com).",
        )
    _, _, path = named.split("://", 1)[-1].partition("/")
    if path.strip("/") not in ("", "v1", "v2"):  # docker login's https://index.docker.io/v1/
        raise ConfigError(
            f"{REGISTRY_VARIABLE}={named}: names a repository, not a registry host.",
            hint=f"Set {REGISTRY_VARIABLE} to the host alone (host or host:port, e.g. "
            "registry.example.com): the credentials are for all of that registry.",
        )
    return registry_host(named), Credential(user, password, f"{USER_VARIABLE}/PASSWORD")


def docker_config_path(environ: Mapping[str, str]) -> Path:
    directory = environ.get("DOCKER_CONFIG")
    if directory:
        return Path(directory) / "config.json"
    return Path(environ.get("HOME", str(Path.home()))) / ".docker" / "config.json"


def _from_docker_config(host: str, environ: Mapping[str, str]) -> Credential | None:
    """Docker's order for ``host``: ``credHelpers[host]``, ``credsStore``, ``auths``."""
    path = docker_config_path(environ)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{path}: not a readable docker config ({exc}).",
            hint="Fix or remove the file, or give credentials in "
            f"{USER_VARIABLE}/PASSWORD (with {REGISTRY_VARIABLE}).",
        ) from None
    if not isinstance(data, dict):
        return None
    helpers = data.get("credHelpers")
    for key, helper in helpers.items() if isinstance(helpers, dict) else ():
        if registry_host(key) == host and isinstance(helper, str) and helper:
            found = _from_helper(helper, host, environ, f"{path} (credHelpers.{key})")
            if found is not None:
                return found
            break
    store = data.get("credsStore")
    if isinstance(store, str) and store:
        found = _from_helper(store, host, environ, f"{path} (credsStore)")
        if found is not None:
            return found
    return _from_auths(host, data.get("auths"), path)


def _from_helper(
    helper: str, host: str, environ: Mapping[str, str], origin: str
) -> Credential | None:
    answer = ask_helper(helper, host, environ, origin)
    if answer is None:
        return None
    username, secret = answer
    return Credential(username, secret, f"{origin}: docker-credential-{helper}")


def _from_auths(host: str, auths: object, path: Path) -> Credential | None:
    if not isinstance(auths, dict):
        return None
    for key, entry in auths.items():
        if registry_host(key) != host or not isinstance(entry, dict):
            continue
        source = f"{path} (auths.{key})"
        if entry.get("identitytoken"):
            return Credential(TOKEN_USERNAME, str(entry["identitytoken"]), source)
        if entry.get("username") and entry.get("password"):
            return Credential(str(entry["username"]), str(entry["password"]), source)
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise ConfigError(
                    f"{source}: 'auth' is not base64 of user:password.",
                    hint="Log in again (docker login / buildah login) to rewrite it.",
                ) from None
            return Credential(user, password, source)
    return None


def _from_netrc(host: str, environ: Mapping[str, str]) -> Credential | None:
    import netrc

    named = environ.get("NETRC")
    path = Path(named) if named else Path(environ.get("HOME", str(Path.home()))) / ".netrc"
    if not path.is_file():
        return None
    try:
        entries = netrc.netrc(str(path))
    except (OSError, netrc.NetrcParseError) as exc:
        raise ConfigError(
            f"{path}: not a readable netrc file ({exc}).",
            hint="Fix the file (machine NAME login USER password SECRET), or remove it.",
        ) from None
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host  # no port in a netrc
    found = entries.hosts.get(name.strip("[]"))  # not authenticators(): it falls to "default"
    if not found or not found[0] or not found[2]:
        return None
    login, _, password = found
    return Credential(login, password, f"{path} (machine {name})")


def write_docker_config(directory: Path, entries: Mapping[str, Credential]) -> Path:
    """Write ``directory/config.json`` (0600, directory 0700, never briefly readable by others)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    path = directory / "config.json"
    auths = {host: _auth_entry(c) for host, c in entries.items()}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"auths": auths}, fh)
    path.chmod(0o600)
    return path


def _auth_entry(credential: Credential) -> dict[str, str]:
    """An ``auths`` entry: an identity token as Docker writes one, else user and password."""
    if credential.username == TOKEN_USERNAME:
        return {"identitytoken": credential.password}
    pair = f"{credential.username}:{credential.password}".encode()
    return {"auth": base64.b64encode(pair).decode()}

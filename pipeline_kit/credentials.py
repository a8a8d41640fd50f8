"""Registry credentials: found in the environment or a docker config, handed on in a 0600 file.

Secrets never go into argv or logs; builders get them only through ``write_docker_config``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline_kit.errors import ConfigError


@dataclass(frozen=True)
class Credential:
    username: str
    password: str = field(repr=False)
    source: str = ""  # where it came from, for error messages (never the secret)


def resolve_credential(host: str, environ: Mapping[str, str]) -> Credential | None:
    """The credential for ``host``; the first source that has one wins."""
    user, password = (
        environ.get("PIPELINE_KIT_REGISTRY_USER"),
        environ.get("PIPELINE_KIT_REGISTRY_PASSWORD"),
    )
    if user and password:
        return Credential(user, password, "PIPELINE_KIT_REGISTRY_USER/PASSWORD")
    if host == environ.get("CI_REGISTRY") and environ.get("CI_REGISTRY_PASSWORD"):
        return Credential(
            environ.get("CI_REGISTRY_USER", "gitlab-ci-token"),
            environ["CI_REGISTRY_PASSWORD"],
            "CI_REGISTRY_USER/CI_REGISTRY_PASSWORD",
        )
    if host == "ghcr.io" and environ.get("GITHUB_TOKEN"):
        return Credential(
            environ.get("GITHUB_ACTOR") or "x-access-token", environ["GITHUB_TOKEN"], "GITHUB_TOKEN"
        )
    return _from_docker_config(host, environ)


def docker_config_path(environ: Mapping[str, str]) -> Path:
    directory = environ.get("DOCKER_CONFIG")
    if directory:
        return Path(directory) / "config.json"
    return Path(environ.get("HOME", str(Path.home()))) / ".docker" / "config.json"


def _from_docker_config(host: str, environ: Mapping[str, str]) -> Credential | None:
    path = docker_config_path(environ)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{path}: not a readable docker config ({exc}).",
            hint="Fix or remove the file, or give credentials in "
            "PIPELINE_KIT_REGISTRY_USER/PASSWORD.",
        ) from None
    auths = data.get("auths") if isinstance(data, dict) else None
    if not isinstance(auths, dict):
        return None
    for key, entry in auths.items():
        if _auth_host(key) != host or not isinstance(entry, dict):
            continue
        source = f"{path} (auths.{key})"
        if entry.get("identitytoken"):
            return Credential("<token>", str(entry["identitytoken"]), source)
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


def _auth_host(key: str) -> str:
    """``https://index.docker.io/v1/`` -> ``docker.io``; ``https://host/`` -> ``host``."""
    host = key.split("://", 1)[-1].split("/", 1)[0]
    return "docker.io" if host in ("index.docker.io", "registry-1.docker.io") else host


def write_docker_config(directory: Path, entries: Mapping[str, Credential]) -> Path:
    """Write ``directory/config.json`` (0600, directory 0700, never briefly readable by others)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    path = directory / "config.json"
    auths = {
        host: {"auth": base64.b64encode(f"{c.username}:{c.password}".encode()).decode()}
        for host, c in entries.items()
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"auths": auths}, fh)
    path.chmod(0o600)
    return path

"""Docker credential helpers: ``docker-credential-<name> get``, asked for one registry at a time.

The protocol is Docker's own: the server URL on stdin, ``{"ServerURL", "Username", "Secret"}``
as JSON on stdout; a helper that holds nothing for the server says "credentials not found in
native keychain" and exits non-zero, which is a miss, not an error. The secret comes back on
stdout only: the argv is the helper and ``get``, and no message here shows what it printed on
success. Answers are kept for the life of the process (a build asks once per registry, however
many clients it opens).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Mapping

from pipeline_kit.adapters.process import WITHHELD, TimedOut, run
from pipeline_kit.errors import ConfigError, EnvironmentFault

PROGRAM_PREFIX = "docker-credential-"
TIMEOUT = 30.0  # seconds: ecr-login and gcr ask their cloud's token service, once
NOT_FOUND = "credentials not found in native keychain"
TOKEN_USERNAME = "<token>"  # Docker's mark: the Secret is an identity (refresh) token
DOCKER_HUB_SERVER = "https://index.docker.io/v1/"  # the name Docker asks helpers for Hub by
_OUTPUT_TAIL = 500

_answers: dict[tuple[str, str], tuple[str, str] | None] = {}
_lock = threading.Lock()


def server_url(host: str) -> str:
    """What Docker sends a helper for ``host`` (the key ``docker login`` stored it under)."""
    return DOCKER_HUB_SERVER if host == "docker.io" else host


def program_name(helper: str, origin: str) -> str:
    """``docker-credential-<helper>``; a name that could reach another program is refused."""
    if not helper or "/" in helper or "\\" in helper or helper.strip() != helper:
        raise ConfigError(
            f"{origin}: '{helper}' is not a credential helper's name.",
            hint="Name the helper as Docker does, without its prefix or a path (ecr-login for "
            "docker-credential-ecr-login).",
        )
    return PROGRAM_PREFIX + helper


def ask_helper(
    helper: str, host: str, environ: Mapping[str, str], origin: str
) -> tuple[str, str] | None:
    """(username, secret) from ``docker-credential-<helper> get`` for ``host``; None on a miss.

    ``origin`` names where the helper was configured (the docker config and its key), for
    messages. The helper runs with the kit's environment (its cloud credentials are there),
    less what the kit withholds from every tool, and is found on that environment's ``PATH``.
    """
    program = program_name(helper, origin)
    where = shutil.which(program, path=environ.get("PATH", os.defpath))
    if where is None:
        raise EnvironmentFault(
            f"{origin}: the credential helper {program} for {host} is not on PATH.",
            hint=f"Install {program} on the runner (on PATH), or remove the entry from the "
            "docker config to pull anonymously.",
        )
    key = (where, server_url(host))
    with _lock:
        if key in _answers:
            return _answers[key]
    answer = _run_helper(where, program, host, environ, origin)
    with _lock:
        _answers[key] = answer
    return answer


def _run_helper(
    where: str, program: str, host: str, environ: Mapping[str, str], origin: str
) -> tuple[str, str] | None:
    env = {name: value for name, value in environ.items() if name not in WITHHELD}
    try:
        proc = run(
            [where, "get"],
            input=server_url(host).encode(),
            env=env,
            clean_env=True,
            check=False,
            timeout=TIMEOUT,
        )
    except TimedOut:
        raise EnvironmentFault(
            f"{origin}: the credential helper {program} gave no answer for {host} within "
            f"{TIMEOUT:g} s.",
            hint=f"Check what {program} waits for on the runner (a cloud login, a token "
            "service it cannot reach), or remove the entry from the docker config to pull "
            "anonymously.",
        ) from None
    out = proc.stdout.decode("utf-8", "replace").strip()
    err = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        if NOT_FOUND in out or NOT_FOUND in err:
            return None
        said = (err or out)[-_OUTPUT_TAIL:]
        raise EnvironmentFault(
            f"{origin}: the credential helper {program} failed for {host} (exit code "
            f"{proc.returncode})" + (f": {said}" if said else "."),
            hint="Fix the helper's own login on the runner (its message says what it lacks), "
            "or remove the entry from the docker config to pull anonymously.",
        )
    try:
        data = json.loads(out)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("Secret", ""), str):
        raise _garbage(program, host, origin)
    username, secret = data.get("Username") or "", data.get("Secret") or ""
    if not isinstance(username, str):
        raise _garbage(program, host, origin)
    if not secret:
        return None  # nothing stored: what some helpers answer instead of "not found"
    return username, secret


def _garbage(program: str, host: str, origin: str) -> EnvironmentFault:
    # What it printed is not shown: it may hold the secret.
    return EnvironmentFault(
        f"{origin}: the credential helper {program} answered for {host} with something that is "
        'not the JSON Docker\'s protocol gives ({"ServerURL", "Username", "Secret"}).',
        hint=f"Check that {program} is a Docker credential helper of a version that speaks "
        "that protocol, or remove the entry from the docker config.",
    )


def forget_answers() -> None:
    """Drop the kept answers (tests, and a long-lived process whose tokens expired)."""
    with _lock:
        _answers.clear()

"""Build secrets: the config's ``secrets``, checked before any builder starts, and their values
written where only the builder reads them.

A value comes from an environment variable or from a file outside the checkout, and reaches the
builder as a 0600 file in the build's private directory (``--secret id=X,src=FILE``): never an
argument, never a log line. A file is checked as a pull request would attack it: one in the
checkout or the build context is refused (a request can commit a link there, to
``/proc/self/environ`` or the runner's docker config, and the context is sent to the builder
anyway), and so is anything that is not a regular file. In a pull request the list itself is
the base commit's (``config.loader.HOST_KEYS``).

A secret's value is not part of any content key: it never reaches the image, and a rotated
token must not rebuild it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from pipeline_kit.build.builders.base import BuildSecret, secret_file
from pipeline_kit.config.loader import Config
from pipeline_kit.errors import ConfigError

# The reusable workflow's ``build-secrets`` secret: NAME=value lines, looked up by ``env`` names
# the job's environment does not have (a called workflow's caller cannot set its env).
BUNDLE_VARIABLE = "PIPELINE_KIT_BUILD_SECRETS"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REFERENCE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
# Kernel views of processes and devices, never a file a secret is kept in.
_PSEUDO = (Path("/proc"), Path("/sys"), Path("/dev"))


def configured(config: Config) -> tuple[BuildSecret, ...]:
    """The ``secrets`` as written (``file`` not yet expanded); an id given twice is refused."""
    entries = config.data.get("secrets") or ()
    seen: dict[str, int] = {}
    out = []
    for index, entry in enumerate(entries):
        name = str(entry["id"])
        if name in seen:
            raise ConfigError(
                f"{config.where('secrets', index, 'id')}: secrets[{index}]: id '{name}' is "
                f"already secrets[{seen[name]}].",
                hint="Give each secret its own id.",
            )
        seen[name] = index
        out.append(BuildSecret(name, env=entry.get("env"), file=entry.get("file")))
    return tuple(out)


def resolve_secrets(
    config: Config, environ: Mapping[str, str], keep_out: Sequence[Path]
) -> tuple[BuildSecret, ...]:
    """The configured secrets, each checked to have a value: a variable that is set and not
    empty, or a readable regular file outside ``keep_out`` (``file`` expanded and resolved)."""
    resolved = []
    found = bundle(environ)
    for index, secret in enumerate(configured(config)):
        where = f"{config.where('secrets', index)}: secrets[{index}] ({secret.id})"
        if secret.env is not None:
            if not (environ.get(secret.env) or found.get(secret.env)):
                state = "empty" if secret.env in environ else "not set"
                raise ConfigError(
                    f"{where}: the environment variable {secret.env} is {state}; the build's "
                    f"RUN --mount=type=secret,id={secret.id} would read nothing.",
                    hint=f"Set {secret.env} in the build job's environment (GitHub: `env:` "
                    f"from a secret; GitLab: a masked CI/CD variable), or in the reusable "
                    f"workflow's build-secrets secret as {secret.env}=value.",
                )
            resolved.append(secret)
        else:
            assert secret.file is not None
            path = _checked_file(_expand(secret.file, environ, where), where, keep_out)
            resolved.append(BuildSecret(secret.id, file=str(path)))
    return tuple(resolved)


def write_secrets(
    secrets: Sequence[BuildSecret], workdir: Path, environ: Mapping[str, str]
) -> None:
    """Each value into its 0600 file under ``workdir`` (a private, 0700 directory the build
    removes), where ``secret_flags`` points the builder."""
    if not secrets:
        return
    secret_file(workdir, secrets[0]).parent.mkdir(mode=0o700)
    found = bundle(environ)
    for secret in secrets:
        if secret.env is not None:
            value = (environ.get(secret.env) or found.get(secret.env) or "").encode()
        else:
            assert secret.file is not None
            try:
                value = Path(secret.file).read_bytes()
            except OSError as exc:
                raise ConfigError(
                    f"secrets ({secret.id}): file: {secret.file}: cannot read it ({exc.strerror}).",
                    hint="Make the file readable by the user the build runs as, and leave it "
                    "in place until the build has started.",
                ) from None
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        fd = os.open(secret_file(workdir, secret), flags, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(value)


def bundle(environ: Mapping[str, str]) -> dict[str, str]:
    """``PIPELINE_KIT_BUILD_SECRETS`` as names and values: one ``NAME=value`` a line."""
    values: dict[str, str] = {}
    for number, line in enumerate(environ.get(BUNDLE_VARIABLE, "").splitlines(), 1):
        if not line.strip():
            continue
        name, eq, value = line.partition("=")
        if not eq or not _NAME.fullmatch(name.strip()):
            # The line is a secret's: say where it is, never what it holds.
            raise ConfigError(
                f"{BUNDLE_VARIABLE}: line {number} is not NAME=value.",
                hint="Write one NAME=value a line (the name as a secret's `env` names it).",
            )
        values[name.strip()] = value
    return values


def _expand(text: str, environ: Mapping[str, str], where: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        if not environ.get(name):
            raise ConfigError(
                f"{where}: file: {text}: the environment variable {name} is not set.",
                hint=f"Set {name} in the build job's environment, or write the path out.",
            )
        return environ[name]

    return _REFERENCE.sub(value, text)


def _checked_file(path_text: str, where: str, keep_out: Sequence[Path]) -> Path:
    if "," in path_text:
        # buildah and buildctl split --secret on commas.
        raise ConfigError(
            f"{where}: file: {path_text}: a path with a comma cannot be given to the builders.",
            hint="Move the file to a path without commas.",
        )
    path = Path(path_text)
    if not path.is_absolute():
        raise ConfigError(
            f"{where}: file: {path_text}: not an absolute path.",
            hint="Give the file's absolute path, outside the checkout (e.g. "
            "$RUNNER_TEMP/token, or a GitLab file variable: $HF_TOKEN_FILE).",
        )
    real = Path(os.path.realpath(path))
    for place in keep_out:
        place = Path(os.path.realpath(place))
        for candidate in (Path(os.path.abspath(path)), real):
            if candidate == place or place in candidate.parents:
                raise ConfigError(
                    f"{where}: file: {path_text} is inside the checkout ({place}): a pull "
                    "request could put a link there to any file of the runner, and the build "
                    "context would carry the value into the builder anyway.",
                    hint="Write the secret outside the checkout (e.g. under $RUNNER_TEMP) and "
                    "name that path.",
                )
    if any(real == pseudo or pseudo in real.parents for pseudo in _PSEUDO):
        raise ConfigError(
            f"{where}: file: {path_text} is {real}, a kernel file, not a file a secret is kept in.",
            hint="Name the file that holds the secret's value.",
        )
    if not real.is_file():
        state = "is not a regular file" if real.exists() else "does not exist"
        raise ConfigError(
            f"{where}: file: {path_text} {state}.",
            hint="Write the secret's value to that file before the build (or fix the path).",
        )
    return real

"""A Docker credential helper for the tests: a real executable speaking Docker's protocol.

``CredentialHelper(directory, "pktest")`` writes ``directory/docker-credential-pktest``, a
Python script that answers ``get`` as ``docker-credential-*`` helpers do: the server URL on
stdin, ``{"ServerURL", "Username", "Secret"}`` on stdout, "credentials not found in native
keychain" (exit 1) for a server it holds nothing for. Each call appends its argv and the server
it was asked for to a log, so a test sees which hosts the kit asked about, and that no secret
was on a command line. A server's answer may instead be one of ``FAIL``, ``HANG`` or
``GARBAGE``: exit 2 with a message, sleep past any timeout, or print what is not JSON.

``AuthfileRecorder`` is a ``buildah`` that keeps a copy of the docker config the kit gives it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

FAIL = ("!fail", "")
HANG = ("!hang", "")
GARBAGE = ("!garbage", "")

_SCRIPT = """\
#!{python}
import json, sys, time
store = json.load(open({store!r}))
server = sys.stdin.read().strip()
with open({log!r}, "a") as log:
    log.write(json.dumps({{"argv": sys.argv, "server": server}}) + "\\n")
if sys.argv[1:] != ["get"]:
    sys.stderr.write("only get is supported\\n")
    sys.exit(2)
answer = store.get(server)
if answer is None:
    print("credentials not found in native keychain")
    sys.exit(1)
user, secret = answer
if user == "!fail":
    sys.stderr.write("error getting credentials: the session token has expired\\n")
    sys.exit(2)
if user == "!hang":
    time.sleep(3600)
if user == "!garbage":
    print("Username=" + server)
    sys.exit(0)
print(json.dumps({{"ServerURL": server, "Username": user, "Secret": secret}}))
"""


class CredentialHelper:
    """``docker-credential-<name>`` in ``directory`` (put it first on PATH), with ``answers``:
    server URL -> (username, secret)."""

    def __init__(self, directory: Path, name: str, answers: Mapping[str, tuple[str, str]]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.name = name
        self.log = directory / f"{name}.log"
        self.log.write_text("")
        store = directory / f"{name}.store.json"
        store.write_text(json.dumps(dict(answers)))
        self.program = directory / f"docker-credential-{name}"
        self.program.write_text(
            _SCRIPT.format(python=sys.executable, store=str(store), log=str(self.log))
        )
        self.program.chmod(0o755)

    def calls(self) -> list[dict[str, Any]]:
        """Every call, in order: ``{"argv": [...], "server": "..."}``."""
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def servers(self) -> list[str]:
        return [call["server"] for call in self.calls()]

    def path_with(self, environ: Mapping[str, str] | None = None) -> str:
        """``PATH`` with the helper's directory first."""
        rest = (environ if environ is not None else os.environ).get("PATH", os.defpath)
        return f"{self.directory}{os.pathsep}{rest}"


def docker_config(directory: Path, config: Mapping[str, Any]) -> Path:
    """``directory/config.json`` holding ``config``; the directory, as ``DOCKER_CONFIG`` takes."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(dict(config)))
    return directory


_RECORDER = """\
#!/bin/sh
# Keeps a copy of the docker config buildah is given, then runs the real buildah.
n=0
for arg in "$@"; do
    case "$arg" in
        --authfile=*) n=$((n + 1)); cp "${{arg#--authfile=}}" {keep}/authfile-$$-$n.json ;;
    esac
done
exec {buildah} "$@"
"""


class AuthfileRecorder:
    """A ``buildah`` first on PATH that keeps a copy of each ``--authfile`` it is given (the kit
    removes its own when the build ends), then runs the real one."""

    def __init__(self, directory: Path) -> None:
        real = shutil.which("buildah")
        assert real is not None, "buildah is not installed"
        self.directory = directory
        self.kept = directory / "kept"
        self.kept.mkdir(parents=True)
        script = directory / "buildah"
        script.write_text(_RECORDER.format(keep=shlex.quote(str(self.kept)), buildah=real))
        script.chmod(0o755)

    def configs(self) -> list[dict[str, Any]]:
        """The docker configs buildah was given, in no particular order."""
        return [json.loads(path.read_text()) for path in sorted(self.kept.iterdir())]

"""The image config a builder writes for the target's FROM chain, evaluated without building.

Starting from the base image's own config, every instruction of the chain is replayed with the
rules buildah 1.28 follows (each checked against it in the tests): ``PATH`` added after the
base's variables when it has none; one ENV line expanded with the variables as they were
before that line; absolute WORKDIRs kept as written, relative ones joined and cleaned; a
shell-form CMD or ENTRYPOINT as ``/bin/sh -c``; ENTRYPOINT clearing a CMD not set in the same
stage; EXPOSE ports defaulting to ``/tcp``; the builder's ``--label``s last. In an OCI image
buildah drops HEALTHCHECK and SHELL, so they are dropped here too; where builders disagree
(SHELL before a shell-form command, HEALTHCHECK in a Docker-format image, ONBUILD) the kit
refuses instead.
"""

from __future__ import annotations

import copy
import posixpath
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from pipeline_kit.append import CannotAppend
from pipeline_kit.append.words import process_word
from pipeline_kit.detect.keys import InstructionKey
from pipeline_kit.dockerfile.stages import Instruction

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Set by the builder itself when a stage declares them without a value.
PLATFORM_ARGS = frozenset(
    "TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT "
    "BUILDPLATFORM BUILDOS BUILDARCH BUILDVARIANT".split()
)


def clean_path(path: str) -> str:
    """Go's ``filepath.Clean`` for absolute paths (posixpath keeps a leading ``//``)."""
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


# Which instructions can change each config field a builder writes.
FIELD_SETTERS: dict[str, frozenset[str]] = {
    "Env": frozenset({"ENV"}),
    "Cmd": frozenset({"CMD", "ENTRYPOINT"}),  # ENTRYPOINT clears a CMD from before its stage
    "Entrypoint": frozenset({"ENTRYPOINT"}),
    "WorkingDir": frozenset({"WORKDIR"}),
    "User": frozenset({"USER"}),
    "ExposedPorts": frozenset({"EXPOSE"}),
    "Volumes": frozenset({"VOLUME"}),
    "StopSignal": frozenset({"STOPSIGNAL"}),
    "Healthcheck": frozenset({"HEALTHCHECK"}),
    "Shell": frozenset({"SHELL"}),
    "OnBuild": frozenset({"ONBUILD"}),
    "Labels": frozenset({"LABEL"}),
}


def keep_untouched(
    evaluated: Mapping[str, Any],
    previous: Mapping[str, Any],
    changed_kinds: set[str],
    kit_labels: Mapping[str, str],
    kit_prefix: str,
) -> dict[str, Any]:
    """``evaluated``, with every field no changed instruction can set taken from ``previous``.

    Builders differ on defaults the replay cannot know (BuildKit writes ``WorkingDir: "/"``
    where no WORKDIR is set; buildah drops HEALTHCHECK from OCI images, BuildKit keeps it). A
    field whose setters all lie before the first change, in the previous chain and in this one,
    is what the previous image's builder wrote for the same input: it is kept as written.
    ``changed_kinds``: the instructions from the first change on, in both chains. The kit's own
    labels are replaced by ``kit_labels`` (and those under ``kit_prefix`` dropped first).
    """
    config = dict(evaluated)
    for name, setters in FIELD_SETTERS.items():
        if setters & changed_kinds:
            continue
        if name == "Labels":
            old = previous.get(name) or {}
            kept = {k: v for k, v in old.items() if not k.startswith(kit_prefix)}
            value: Any = {**kept, **kit_labels} or None
        else:
            value = copy.deepcopy(previous.get(name))
        if value is None or value == "" or value == [] or value == {}:
            config.pop(name, None)
        else:
            config[name] = value
    return config


class StepState(NamedTuple):
    """What an instruction sees: the variables in scope, working directory and user."""

    scope: dict[str, str | None]
    workdir: str  # as the config holds it ("" = unset, which is "/")
    user: str  # "" = root

    @property
    def workdir_path(self) -> str:
        return clean_path(self.workdir or "/")


class EvaluatedConfig(NamedTuple):
    config: dict[str, Any]  # the image config's ``config`` object
    author: str | None
    states: list[StepState]  # per chain position, before it


def evaluate(
    base: Mapping[str, Any] | None,
    chain: Sequence[InstructionKey],
    global_args: Mapping[str, str | None],
    build_args: Mapping[str, str],
    labels: Mapping[str, str],
    *,
    docker_format: bool = False,
) -> EvaluatedConfig:
    """The ``config`` object of the image (and each instruction's view on the way)."""
    base_config = copy.deepcopy(dict((base or {}).get("config") or {}))
    if base_config.get("OnBuild"):
        raise CannotAppend("the base image has ONBUILD triggers, which the builder would run")
    env: dict[str, str] = {}
    for item in base_config.get("Env") or []:
        name, _, value = str(item).partition("=")
        env[name] = value
    if "PATH" not in env:  # after the base's own variables, as buildah adds it
        env["PATH"] = DEFAULT_PATH
    state = _Replay(base_config, env, (base or {}).get("author"), docker_format)
    stage = None
    for key in chain:
        if key.stage != stage:
            stage = key.stage
            state.start_stage()
        state.states.append(StepState(state.scope(), state.workdir, state.user))
        state.apply(key.instruction, global_args, build_args)
    config = state.config
    config["Env"] = [f"{name}={value}" for name, value in state.env.items()]
    merged = {**(config.get("Labels") or {}), **state.labels, **labels}
    if merged:
        config["Labels"] = merged
    fields: tuple[tuple[str, Any], ...] = (
        ("WorkingDir", state.workdir),
        ("User", state.user),
        ("ExposedPorts", state.exposed),
        ("Volumes", state.volumes),
    )
    for name, value in fields:
        if value:
            config[name] = value
    for name in ("Cmd", "Entrypoint"):
        if config.get(name) is None:
            config.pop(name, None)
    return EvaluatedConfig(config, state.author, state.states)


class _Replay:
    def __init__(
        self, config: dict[str, Any], env: dict[str, str], author: Any, docker_format: bool
    ) -> None:
        self.config = config
        self.env = env
        self.author = str(author) if author else None
        self.docker_format = docker_format
        self.labels: dict[str, str] = {}
        self.workdir = str(config.get("WorkingDir") or "")
        self.user = str(config.get("User") or "")
        self.exposed: dict[str, Any] = dict(config.get("ExposedPorts") or {})
        self.volumes: dict[str, Any] = dict(config.get("Volumes") or {})
        self.args: dict[str, str | None] = {}
        self.cmd_set = False
        self.shell_set = False
        self.states: list[StepState] = []

    def start_stage(self) -> None:
        self.args = {}  # ARGs are scoped to their stage
        self.cmd_set = False

    def scope(self) -> dict[str, str | None]:
        return {**self.args, **self.env}

    def apply(
        self, ins: Instruction, global_args: Mapping[str, str | None], build_args: Mapping[str, str]
    ) -> None:
        handler = getattr(self, f"_{ins.cmd.lower()}", None)
        if handler is None:
            raise CannotAppend(
                f"line {ins.line}: {ins.cmd} changes the config in ways append does not replay"
            )
        if ins.cmd == "ARG":
            self._arg(ins, global_args, build_args)
        else:
            handler(ins)

    def _arg(
        self, ins: Instruction, global_args: Mapping[str, str | None], build_args: Mapping[str, str]
    ) -> None:
        scope = self.scope()
        for item in ins.args:
            name, eq, default = item.partition("=")
            if name in build_args:
                self.args[name] = build_args[name]
            elif eq:
                self.args[name] = process_word(default, scope)
            elif name in PLATFORM_ARGS:
                raise CannotAppend(
                    f"line {ins.line}: ARG {name} is set by the builder for its platform"
                )
            else:
                self.args[name] = global_args.get(name)

    def _pairs(self, ins: Instruction) -> list[tuple[str, str]]:
        scope = self.scope()  # one line sees the values from before it
        pairs = list(ins.args)
        return [
            (process_word(pairs[i], scope), process_word(pairs[i + 1], scope))
            for i in range(0, len(pairs) - 1, 2)
        ]

    def _env(self, ins: Instruction) -> None:
        for name, value in self._pairs(ins):
            self.env[name] = value  # an existing name keeps its place

    def _label(self, ins: Instruction) -> None:
        self.labels.update(self._pairs(ins))

    def _workdir(self, ins: Instruction) -> None:
        path = process_word(ins.args[0], self.scope()) if ins.args else ""
        if path.startswith("/"):
            self.workdir = path  # buildah keeps an absolute WORKDIR as written
        else:
            self.workdir = clean_path(posixpath.join(self.workdir or "/", path))

    def _user(self, ins: Instruction) -> None:
        self.user = process_word(ins.args[0], self.scope()) if ins.args else ""

    def _command(self, ins: Instruction) -> list[str]:
        if ins.json_form:
            return list(ins.args)
        if self.shell_set:
            raise CannotAppend(
                f"line {ins.line}: a shell-form {ins.cmd} after SHELL: builders disagree on it"
            )
        return ["/bin/sh", "-c", " ".join(ins.args)]

    def _cmd(self, ins: Instruction) -> None:
        self.config["Cmd"] = self._command(ins)
        self.cmd_set = True

    def _entrypoint(self, ins: Instruction) -> None:
        self.config["Entrypoint"] = self._command(ins)
        if not self.cmd_set:
            self.config["Cmd"] = None  # a CMD from before this stage does not survive

    def _expose(self, ins: Instruction) -> None:
        scope = self.scope()
        for item in ins.args:
            port = process_word(item, scope)
            if "-" in port.split("/", 1)[0]:
                raise CannotAppend(f"line {ins.line}: EXPOSE of a port range ({port})")
            self.exposed[port if "/" in port else f"{port}/tcp"] = {}

    def _stopsignal(self, ins: Instruction) -> None:
        self.config["StopSignal"] = process_word(ins.args[0], self.scope())

    def _volume(self, ins: Instruction) -> None:
        scope = self.scope()
        for item in ins.args:
            self.volumes[item if ins.json_form else process_word(item, scope)] = {}

    def _maintainer(self, ins: Instruction) -> None:
        self.author = " ".join(ins.args)

    def _healthcheck(self, ins: Instruction) -> None:
        if self.docker_format:
            raise CannotAppend(
                f"line {ins.line}: HEALTHCHECK in a Docker-format image is not evaluated by append"
            )
        # buildah drops HEALTHCHECK from OCI images (with a warning); so does this replay.

    def _shell(self, ins: Instruction) -> None:
        if self.docker_format:
            raise CannotAppend(
                f"line {ins.line}: SHELL in a Docker-format image is not evaluated by append"
            )
        self.shell_set = True  # ignored in OCI images by buildah; shell forms after it refuse

    def _onbuild(self, ins: Instruction) -> None:
        raise CannotAppend(f"line {ins.line}: ONBUILD is not replayed by append")

    def _run(self, ins: Instruction) -> None:
        pass  # no config change

    def _copy(self, ins: Instruction) -> None:
        pass

    def _add(self, ins: Instruction) -> None:
        pass

"""The Dockerfile as a graph of stages: what each stage builds on and takes from the context.

Parsing is BuildKit's own (the ``dockerfile`` package wraps its Go parser); this module adds
the semantics the parser leaves out: ARG scoping and expansion, stage references by name or
index, context sources after path cleaning, and the errors a builder would give, reported
before any build starts.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from pipeline_kit.dockerfile.checks import check_instructions
from pipeline_kit.dockerfile.expand import expand, uses_variables
from pipeline_kit.dockerfile.platform import (
    AUTOMATIC_ARGS,
    Platform,
    automatic_args,
    parse_platform,
    runner_platform,
)
from pipeline_kit.errors import InputError

KNOWN_INSTRUCTIONS = frozenset(
    (
        "ADD ARG CMD COPY ENTRYPOINT ENV EXPOSE FROM HEALTHCHECK LABEL MAINTAINER ONBUILD RUN "
        "SHELL STOPSIGNAL USER VOLUME WORKDIR"
    ).split()
)
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9._-]*$")
_REMOTE = re.compile(r"^(?:https?://|git@|git://|ssh://)")
GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction as BuildKit parsed it."""

    cmd: str
    flags: tuple[str, ...]
    args: tuple[str, ...]
    line: int
    end_line: int
    original: str
    json_form: bool = False
    heredocs: tuple[str, ...] = ()
    sub_cmd: str | None = None

    def flag(self, name: str) -> str | None:
        """The value of ``--name=value`` (the last one given), or None."""
        prefix = f"--{name}="
        found = None
        for flag in self.flags:
            if flag.startswith(prefix):
                found = flag[len(prefix) :]
            elif flag == f"--{name}":
                found = ""
        return found

    def flag_values(self, name: str) -> list[str]:
        prefix = f"--{name}="
        return [f[len(prefix) :] for f in self.flags if f.startswith(prefix)]

    def normalized(self) -> str:
        """A whitespace- and comment-independent form of the instruction, for content keys."""
        head = self.cmd if self.sub_cmd is None else f"{self.cmd} {self.sub_cmd}"
        body = repr(self.args) if self.json_form else " ".join(self.args)
        text = " ".join(part for part in (head, " ".join(self.flags), body) if part)
        for doc in self.heredocs:
            text += "\n<<\n" + doc
        return text


@dataclass(frozen=True)
class ContextSource:
    """A path a stage takes from the build context, relative to the context root."""

    path: str  # cleaned; "." is the whole context; may hold wildcards
    line: int
    via: str  # "COPY", "ADD" or "RUN --mount"

    @property
    def has_glob(self) -> bool:
        return any(ch in GLOB_CHARS for ch in self.path)


@dataclass(frozen=True)
class StageRef:
    """A reference from one stage to another (``COPY --from``, ``RUN --mount from=``)."""

    stage: int
    line: int
    via: str


@dataclass(frozen=True)
class Stage:
    index: int
    name: str | None
    from_ref: str  # the FROM reference after ARG expansion
    parent: int | None  # the stage FROM names, if it names one
    line: int
    instructions: tuple[Instruction, ...]  # FROM first
    args: tuple[tuple[str, str | None], ...]  # ARGs this stage declares, with effective values
    from_args: tuple[tuple[str, str | None], ...]  # global ARGs its FROM line uses
    sources: tuple[ContextSource, ...]
    stage_refs: tuple[StageRef, ...]
    image_refs: tuple[str, ...]  # external images besides FROM: COPY --from=image, mounts
    remote_sources: tuple[str, ...]  # ADD of URLs and git repositories
    env: tuple[tuple[str, str], ...]  # ENV at the end of the stage, inherited values included
    user: str | None  # USER at the end of the stage, inherited from the parent stage

    @property
    def label(self) -> str:
        return self.name if self.name is not None else str(self.index)

    @property
    def from_image(self) -> str | None:
        """The external image this stage starts from, or None when it starts from a stage."""
        return None if self.parent is not None else self.from_ref

    def depends_on(self) -> list[int]:
        deps = [] if self.parent is None else [self.parent]
        deps.extend(ref.stage for ref in self.stage_refs if ref.stage not in deps)
        return deps


@dataclass(frozen=True)
class StageGraph:
    source: str  # the Dockerfile's name, for messages
    stages: tuple[Stage, ...]
    # The global scope: BuildKit's automatic platform ARGs, then the ARGs before the first FROM.
    global_args: tuple[tuple[str, str | None], ...]
    _by_name: Mapping[str, int] = field(default_factory=dict, repr=False, compare=False)

    def find(self, ref: str) -> Stage | None:
        """A stage by name (case-insensitive) or index, as ``--target`` and ``--from`` take it."""
        index = self._by_name.get(ref.lower())
        if index is None and ref.isdigit() and int(ref) < len(self.stages):
            index = int(ref)
        return None if index is None else self.stages[index]

    def names(self) -> list[str]:
        return [s.label for s in self.stages]

    def target(self, name: str | None = None) -> Stage:
        if name is None:
            return self.stages[-1]
        stage = self.find(name)
        if stage is None:
            raise InputError(
                f"{self.source}: target stage '{name}' is not defined "
                f"(stages: {', '.join(self.names())})."
            )
        return stage

    def upstream(self, index: int) -> list[int]:
        """Every stage ``index`` builds on, directly or not, itself included, in file order."""
        seen: set[int] = set()
        todo = [index]
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(self.stages[current].depends_on())
        return sorted(seen)


def parse_dockerfile(
    text: str,
    *,
    source: str = "Dockerfile",
    build_args: Mapping[str, str] | None = None,
    platform: Platform | str | None = None,
) -> StageGraph:
    """Parse Dockerfile ``text`` into a StageGraph; ``build_args`` override ARG defaults.

    ``platform`` is the target platform (default: this machine's), which sets the automatic
    platform ARGs as BuildKit does.
    """
    import dockerfile  # BuildKit's parser; loaded only by commands that read Dockerfiles

    try:
        commands = dockerfile.parse_string(text)
    except dockerfile.GoParseError as exc:
        line = _parse_error_line(text, str(exc))
        raise InputError(
            f"{source}{'' if line is None else f':{line}'}: BuildKit's parser rejects it: {exc}.",
            hint="Fix the Dockerfile so that `docker build` would accept it.",
        ) from None
    instructions = [_instruction(c, source) for c in commands]
    check_instructions(instructions, source)
    if platform is None:
        target = runner_platform()
    elif isinstance(platform, str):
        target = parse_platform(platform)
    else:
        target = platform
    return _GraphBuilder(source, dict(build_args or {}), target).build(instructions)


def _parse_error_line(text: str, error: str) -> int | None:
    """The line BuildKit's parser stops at: the parser names none, so find the shortest head
    of the file that fails the same way (read only when there is an error)."""
    import dockerfile

    lines = text.splitlines(keepends=True)
    for end in range(1, len(lines) + 1):
        try:
            dockerfile.parse_string("".join(lines[:end]))
        except dockerfile.GoParseError as exc:
            if str(exc) == error:
                return end
    return None


def _instruction(command: object, source: str) -> Instruction:
    cmd = str(getattr(command, "cmd")).upper()  # noqa: B009 - the parser's type is untyped
    line = int(getattr(command, "start_line"))  # noqa: B009
    if cmd not in KNOWN_INSTRUCTIONS:
        raise InputError(
            f"{source}:{line}: unknown instruction '{cmd}'.",
            hint=f"Valid instructions: {', '.join(sorted(KNOWN_INSTRUCTIONS))}.",
        )
    heredocs = tuple(str(h.content) for h in getattr(command, "heredocs", ()) or ())
    return Instruction(
        cmd=cmd,
        flags=tuple(getattr(command, "flags")),  # noqa: B009
        args=tuple(getattr(command, "value")),  # noqa: B009
        line=line,
        end_line=int(getattr(command, "end_line")),  # noqa: B009
        original=str(getattr(command, "original")),  # noqa: B009
        json_form=bool(getattr(command, "json")),  # noqa: B009
        heredocs=heredocs,
        sub_cmd=getattr(command, "sub_cmd", None),
    )


def clean_context_path(raw: str, *, source: str, line: int) -> str:
    """A COPY/ADD source as a path relative to the context root ("." for the root)."""
    norm = posixpath.normpath(raw.strip())
    if norm == ".." or norm.startswith("../"):
        raise InputError(
            f"{source}:{line}: source '{raw}' is outside the build context.",
            hint="COPY and ADD can only take files from inside the context directory.",
        )
    return posixpath.normpath("/" + norm).lstrip("/") or "."


def parse_mount(spec: str) -> dict[str, str]:
    """``type=bind,source=x,from=y`` as a dict (keys lowercased, aliases folded)."""
    aliases = {"src": "source", "dst": "target", "destination": "target"}
    result: dict[str, str] = {}
    for part in spec.split(","):
        key, _, value = part.partition("=")
        key = key.strip().lower()
        result[aliases.get(key, key)] = value.strip()
    result.setdefault("type", "bind")
    return result


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _assignments(args: Iterable[str]) -> list[tuple[str, str | None]]:
    """``ARG A=1 B`` -> [("A", "1"), ("B", None)]."""
    out: list[tuple[str, str | None]] = []
    for arg in args:
        name, eq, value = arg.partition("=")
        out.append((name, _unquote(value) if eq else None))
    return out


class _GraphBuilder:
    def __init__(self, source: str, build_args: dict[str, str], platform: Platform) -> None:
        self.source = source
        self.build_args = build_args
        automatic = automatic_args(platform)
        self.global_args: dict[str, str | None] = {
            name: build_args.get(name, value) for name, value in automatic.items()
        }

    def error(self, line: int, message: str, hint: str | None = None) -> InputError:
        return InputError(f"{self.source}:{line}: {message}", hint=hint)

    def build(self, instructions: list[Instruction]) -> StageGraph:
        if not instructions:
            raise InputError(f"{self.source}: the Dockerfile has no instructions.")
        groups: list[list[Instruction]] = []
        for ins in instructions:
            if ins.cmd == "FROM":
                groups.append([ins])
            elif groups:
                groups[-1].append(ins)
            elif ins.cmd == "ARG":
                for name, default in _assignments(ins.args):
                    value = self.build_args.get(name, default)
                    if value is None and name in AUTOMATIC_ARGS:
                        continue  # declared without a default: keeps the platform's value
                    self.global_args[name] = (
                        None if value is None else expand(value, self.global_args)
                    )
            else:
                raise self.error(
                    ins.line,
                    f"{ins.cmd} before the first FROM.",
                    hint="Only ARG may come before FROM.",
                )
        if not groups:
            raise InputError(f"{self.source}: no FROM instruction, so there is no stage to build.")

        names: dict[str, int] = {}
        headers: list[tuple[str | None, str]] = []
        for group in groups:
            stage_name, ref = self._from_line(group[0])
            if stage_name is not None:
                if stage_name in names:
                    raise self.error(
                        group[0].line,
                        f"stage name '{stage_name}' is already used by the stage at line "
                        f"{groups[names[stage_name]][0].line}.",
                        hint="Give every stage a distinct name.",
                    )
                names[stage_name] = len(headers)
            headers.append((stage_name, ref))

        stages: list[Stage] = []
        for index, group in enumerate(groups):
            stage_name, ref = headers[index]
            parent = names.get(ref.lower())
            if parent is not None and parent >= index:
                parent = None  # FROM only sees earlier stages; a later name is an image
            stages.append(self._stage(index, stage_name, ref, parent, group, names, stages))
        graph = StageGraph(self.source, tuple(stages), tuple(self.global_args.items()), names)
        _check_acyclic(graph)
        return graph

    def _from_line(self, ins: Instruction) -> tuple[str | None, str]:
        args = list(ins.args)
        if not args or not args[0]:
            raise self.error(ins.line, "FROM needs an image or stage name.")
        name = None
        if len(args) == 3 and args[1].lower() == "as":
            name = args[2].lower()
            if not _STAGE_NAME.match(name):
                raise self.error(
                    ins.line,
                    f"invalid stage name '{args[2]}'.",
                    hint="Stage names start with a letter and hold letters, digits, '.', '_', '-'.",
                )
        elif len(args) != 1:
            raise self.error(
                ins.line, f"cannot read '{ins.original}'.", hint="Use FROM IMAGE [AS NAME]."
            )
        ref = expand(args[0], self.global_args)
        if not ref:
            raise self.error(
                ins.line,
                f"FROM '{args[0]}' expands to an empty image name.",
                hint="Give the ARG it uses a default or pass it with --build-arg.",
            )
        return name, ref

    def _stage(
        self,
        index: int,
        name: str | None,
        ref: str,
        parent: int | None,
        group: list[Instruction],
        names: Mapping[str, int],
        earlier: list[Stage],
    ) -> Stage:
        env: dict[str, str] = dict(earlier[parent].env) if parent is not None else {}
        user = earlier[parent].user if parent is not None else None
        args: dict[str, str | None] = {}
        sources: list[ContextSource] = []
        stage_refs: list[StageRef] = []
        image_refs: list[str] = []
        remote: list[str] = []

        def scope() -> dict[str, str | None]:
            return {**args, **env}

        def resolve_from(value: str, line: int, via: str) -> None:
            target = expand(value, scope())
            found = names.get(target.lower())
            if found is None and target.isdigit():
                found = int(target)
                if found >= index:
                    raise self.error(
                        line, f"{via} refers to stage {found}, which is not before it."
                    )
            if found == index:
                raise self.error(line, f"{via} refers to its own stage '{target}'.")
            if found is not None:
                stage_refs.append(StageRef(found, line, via))
            else:
                image_refs.append(target)

        for ins in group[1:]:
            if ins.cmd == "ARG":
                for arg_name, default in _assignments(ins.args):
                    if arg_name in self.build_args:
                        value: str | None = self.build_args[arg_name]
                    elif default is not None:
                        value = expand(default, scope())
                    else:
                        value = self.global_args.get(arg_name)
                    args[arg_name] = value
            elif ins.cmd == "ENV":
                pairs = list(ins.args)
                for i in range(0, len(pairs) - 1, 2):
                    env[pairs[i]] = expand(_unquote(pairs[i + 1]), scope())
            elif ins.cmd == "USER" and ins.args:
                user = expand(ins.args[0], scope())
            elif ins.cmd in ("COPY", "ADD"):
                self._copy(ins, scope(), sources, remote, resolve_from)
            elif ins.cmd == "RUN":
                for spec in ins.flag_values("mount"):
                    mount = parse_mount(expand(spec, scope()))
                    if mount["type"] not in ("bind", "cache"):
                        continue
                    if "from" in mount:
                        resolve_from(mount["from"], ins.line, "RUN --mount from=")
                    elif mount["type"] == "bind":
                        raw = mount.get("source", ".")
                        path = clean_context_path(raw, source=self.source, line=ins.line)
                        sources.append(ContextSource(path, ins.line, "RUN --mount"))

        from_args = tuple(
            (var, self.global_args.get(var)) for var in sorted(uses_variables(group[0].args[0]))
        )
        return Stage(
            index=index,
            name=name,
            from_ref=ref,
            parent=parent,
            line=group[0].line,
            instructions=tuple(group),
            args=tuple(args.items()),
            from_args=from_args,
            sources=tuple(sources),
            stage_refs=tuple(stage_refs),
            image_refs=tuple(image_refs),
            remote_sources=tuple(remote),
            env=tuple(env.items()),
            user=user,
        )

    def _copy(
        self,
        ins: Instruction,
        scope: Mapping[str, str | None],
        sources: list[ContextSource],
        remote: list[str],
        resolve_from: Callable[[str, int, str], None],
    ) -> None:
        if len(ins.args) < 2:
            raise self.error(
                ins.line,
                f"{ins.cmd} needs at least one source and a destination.",
                hint=f"Write {ins.cmd} SOURCE... DEST.",
            )
        from_flag = ins.flag("from")
        if from_flag is not None:
            resolve_from(from_flag, ins.line, f"{ins.cmd} --from")
            return
        for raw in ins.args[:-1]:
            if raw.startswith("<<"):
                continue  # a heredoc: its content is part of the instruction itself
            value = expand(raw, scope)
            if ins.cmd == "ADD" and _REMOTE.match(value):
                remote.append(value)
                continue
            path = clean_context_path(value, source=self.source, line=ins.line)
            sources.append(ContextSource(path, ins.line, ins.cmd))


def _check_acyclic(graph: StageGraph) -> None:
    state: dict[int, int] = {}  # 1 visiting, 2 done

    def visit(index: int, chain: list[int]) -> None:
        if state.get(index) == 2:
            return
        if state.get(index) == 1:
            loop = " -> ".join(graph.stages[i].label for i in [*chain, index])
            raise InputError(
                f"{graph.source}:{graph.stages[index].line}: stages refer to each other in a "
                f"loop: {loop}."
            )
        state[index] = 1
        for dep in graph.stages[index].depends_on():
            visit(dep, [*chain, index])
        state[index] = 2

    for stage in graph.stages:
        visit(stage.index, [])

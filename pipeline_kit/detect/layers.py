"""Layers: the named parts of an image (base, deps, code, ...) and what builds each.

A config maps layer names to stages. Without one the kit infers the layers as ranges of the
target's chain (its FROM stages' instructions, in order) from what the instructions do
(``roles``): the base image and system packages, then the packages of a language and the
files their installs read, then the application's own files. A range is named by its role,
never by a stage's place, and says which lines it covers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from pipeline_kit.config.loader import Config
from pipeline_kit.detect.keys import from_chain
from pipeline_kit.detect.roles import BASE, CODE, DEPS, ROLE_NAMES, Roles
from pipeline_kit.dockerfile.stages import Instruction, StageGraph
from pipeline_kit.errors import ConfigError

# A step of another role inside a range costs 1; the application's own files inside an earlier
# range cost 2, so that a change to them is reported as code wherever that can be said.
_COST_CODE_EARLY = 2
# Instructions a range boundary moves back over, so that a stage's FROM, WORKDIR and ARGs go
# with what the stage does.
_LEADING = frozenset(("FROM", "WORKDIR", "ARG", "ENV", "LABEL"))


class Layer(NamedTuple):
    name: str
    stage: int  # the layer's stage (config), or the stage its range starts in
    origin: str  # "config" or how it was inferred
    steps: range | None = None  # the chain steps of an inferred range; None: the whole stage


class LayerMap(NamedTuple):
    layers: tuple[Layer, ...]  # in build order

    def names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def for_stage(self, index: int) -> Layer | None:
        for layer in self.layers:
            if layer.stage == index and layer.steps is None:
                return layer
        return None

    @property
    def ranged(self) -> bool:
        return any(layer.steps is not None for layer in self.layers)


def configured_layers(graph: StageGraph, mapping: Mapping[str, str]) -> LayerMap:
    """Layers as the config names them; the caller has checked that every stage exists."""
    layers = []
    for name, stage_name in mapping.items():
        stage = graph.find(stage_name)
        assert stage is not None, stage_name
        layers.append(Layer(name, stage.index, "config"))
    return LayerMap(tuple(sorted(layers, key=lambda layer: layer.stage)))


def chain_instructions(graph: StageGraph, target: int) -> list[tuple[int, Instruction]]:
    """(stage, instruction) for each step of the target's chain, FROM lines included."""
    return [(stage.index, ins) for stage in from_chain(graph, target) for ins in stage.instructions]


def step_roles(graph: StageGraph, target: int) -> list[int | None]:
    roles = Roles(graph)
    return [
        roles.of(graph.stages[stage], ins, position == 0)
        for position, (stage, ins) in enumerate(chain_instructions(graph, target))
    ]


def split_roles(
    roles: Sequence[int | None], deps_at: int | None = None, code_at: int | None = None
) -> tuple[int, int]:
    """Where deps and code start: the split that misplaces the fewest steps (the latest of
    equals, so a range starts at its first step of its own role); ``deps_at`` and ``code_at``
    fix a start the Dockerfile declares."""
    n = len(roles)

    def cost(role: int | None, place: int) -> int:
        if role is None or role == place:
            return 0
        return _COST_CODE_EARLY if role == CODE else 1

    # prefix[r][k]: the cost of steps [0, k) placed in range r
    prefix = [[0] * (n + 1) for _ in ROLE_NAMES]
    for place in (BASE, DEPS, CODE):
        for k, role in enumerate(roles):
            prefix[place][k + 1] = prefix[place][k] + cost(role, place)
    best: tuple[int, int, int] | None = None
    for j in range(1, n + 1) if code_at is None else (code_at,):
        for i in range(1, j + 1) if deps_at is None or deps_at > j else (deps_at,):
            total = (
                prefix[BASE][i]
                + prefix[DEPS][j] - prefix[DEPS][i]
                + prefix[CODE][n] - prefix[CODE][j]
            )  # fmt: skip
            if best is None or (total, -j, -i) <= (best[0], -best[2], -best[1]):
                best = (total, i, j)
    assert best is not None
    return best[1], best[2]


def infer_layers(graph: StageGraph, target: int) -> LayerMap:
    """base, deps and code as ranges of the target's chain (an empty range is left out)."""
    steps = chain_instructions(graph, target)
    # A stage of the chain named after a role starts that role's range: the author said so.
    declared = {
        graph.stages[stage].name: at
        for at, (stage, ins) in enumerate(steps)
        if at > 0 and ins.cmd == "FROM" and graph.stages[stage].name in ("deps", "code")
    }
    deps_at, code_at = split_roles(
        step_roles(graph, target), declared.get("deps"), declared.get("code")
    )

    def back(at: int, floor: int) -> int:
        while at > floor and steps[at - 1][1].cmd in _LEADING:
            at -= 1
        return at

    if "code" not in declared and code_at < len(steps):  # an empty code range stays empty
        if deps_at == code_at:
            deps_at = code_at = back(code_at, 1)
        else:
            code_at = back(code_at, deps_at + 1)
    if deps_at < code_at and declared.get("deps") != deps_at:
        deps_at = back(deps_at, 1)
    layers = []
    for name, start, end in (("base", 0, deps_at), ("deps", deps_at, code_at),
                             ("code", code_at, len(steps))):  # fmt: skip
        if start < end:
            first, last = steps[start][1], steps[end - 1][1]
            layers.append(
                Layer(
                    name,
                    steps[start][0],
                    f"lines {first.line}-{last.end_line} of the target's chain, from what they do",
                    range(start, end),
                )
            )
    return LayerMap(tuple(layers))


def whole_stage(graph: StageGraph, target: int, layer: Layer) -> int | None:
    """The stage a layer is, whole; None for a range that is part of one or spans several."""
    if layer.steps is None:
        return layer.stage
    steps = chain_instructions(graph, target)
    (stage, first), (last_stage, last) = steps[layer.steps.start], steps[layer.steps.stop - 1]
    instructions = graph.stages[stage].instructions
    whole = first.line == instructions[0].line and last.line == instructions[-1].line
    return stage if stage == last_stage and whole else None


def describe_layer(graph: StageGraph, target: int, layer: Layer) -> str:
    """The stage's name for a layer that is a whole named stage, else the lines it covers
    (never a stage's number, which moves when a stage is added)."""
    stage = whole_stage(graph, target, layer)
    name = graph.stages[stage].name if stage is not None else None
    if name:
        return name
    if layer.steps is None:  # a config's stage without a name: its own lines
        instructions = graph.stages[layer.stage].instructions
        first, last = instructions[0].line, instructions[-1].end_line
    else:
        steps = chain_instructions(graph, target)
        first, last = steps[layer.steps.start][1].line, steps[layer.steps.stop - 1][1].end_line
    return f"{graph.source}:{first}" + (f"-{last}" if last != first else "")


def layers_for(graph: StageGraph, config: Config) -> tuple[LayerMap, int]:
    """The layer map and target stage index for ``graph`` under ``config``.

    A config that names stages the Dockerfile lacks is a config error pointing at the key.
    """
    import difflib

    names = graph.names()

    def missing(stage_name: str, *key_path: str) -> ConfigError:
        close = difflib.get_close_matches(stage_name.lower(), names, n=1)
        hint = f"Did you mean '{close[0]}'?" if close else "Name one of the stages above."
        return ConfigError(
            f"{config.where(*key_path)}: {'.'.join(key_path)}: stage '{stage_name}' is not in "
            f"{graph.source} (stages: {', '.join(names)}).",
            hint=hint,
        )

    if config.target is not None:
        target_stage = graph.find(config.target)
        if target_stage is None:
            raise missing(config.target, "target")
        target = target_stage.index
    else:
        target = len(graph.stages) - 1
    if config.layers is None:
        return infer_layers(graph, target), target
    for layer_name, stage_name in config.layers.items():
        if graph.find(stage_name) is None:
            raise missing(stage_name, "layers", layer_name)
    _check_in_chain(graph, config, target)
    return configured_layers(graph, config.layers), target


def _check_in_chain(graph: StageGraph, config: Config, target: int) -> None:
    """A layer must be a stage the target builds on (FROM, COPY --from, RUN --mount from=):
    any other stage is not in the image, so its changes would be reported for nothing."""
    assert config.layers is not None
    used = graph.upstream(target)
    for layer_name, stage_name in config.layers.items():
        stage = graph.find(stage_name)
        assert stage is not None
        if stage.index not in used:
            chain = ", ".join(graph.stages[i].label for i in used)
            raise ConfigError(
                f"{config.where('layers', layer_name)}: layers.{layer_name}: stage "
                f"'{stage_name}' is not one the target '{graph.stages[target].label}' builds on "
                f"(it builds on: {chain}).",
                hint="Name a stage of that chain, or set `target` to the stage you build.",
            )

"""Layers: the named parts of an image (base, deps, code, ...) and the stages that build them.

A config maps layer names to stages. Without one the kit infers the mapping from stage names
and, failing that, from the chain of FROM lines leading to the target, and says how.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from pipeline_kit.config.loader import Config
from pipeline_kit.dockerfile.stages import StageGraph
from pipeline_kit.errors import ConfigError

# Stage names that say which layer a stage is, most specific first.
NAME_HINTS: dict[str, tuple[str, ...]] = {
    "base": ("base", "os", "system", "cuda", "base-image", "runtime-base"),
    "deps": (
        "deps",
        "dependencies",
        "builder",
        "build",
        "venv",
        "requirements",
        "python-deps",
        "packages",
        "install",
    ),
    "code": (
        "code",
        "app",
        "application",
        "final",
        "runtime",
        "server",
        "serve",
        "prod",
        "production",
        "release",
    ),
}


class Layer(NamedTuple):
    name: str
    stage: int
    origin: str  # "config" or how it was inferred


class LayerMap(NamedTuple):
    layers: tuple[Layer, ...]  # in stage order

    def names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def for_stage(self, index: int) -> Layer | None:
        for layer in self.layers:
            if layer.stage == index:
                return layer
        return None


def configured_layers(graph: StageGraph, mapping: Mapping[str, str]) -> LayerMap:
    """Layers as the config names them; the caller has checked that every stage exists."""
    layers = []
    for name, stage_name in mapping.items():
        stage = graph.find(stage_name)
        assert stage is not None, stage_name
        layers.append(Layer(name, stage.index, "config"))
    return LayerMap(tuple(sorted(layers, key=lambda layer: layer.stage)))


def infer_layers(graph: StageGraph, target: int) -> LayerMap:
    """Guess base/deps/code for the stages the target uses."""
    used = graph.upstream(target)
    chosen: dict[str, Layer] = {}
    taken: set[int] = set()
    for layer_name, hints in NAME_HINTS.items():
        for hint in hints:
            stage = graph.find(hint)
            if stage is not None and stage.index in used and stage.index not in taken:
                chosen[layer_name] = Layer(layer_name, stage.index, f"stage named '{stage.label}'")
                taken.add(stage.index)
                break

    chain = [target]  # the FROM chain, target first
    while graph.stages[chain[-1]].parent is not None:
        parent = graph.stages[chain[-1]].parent
        assert parent is not None
        chain.append(parent)
    chain.reverse()

    def assign(layer_name: str, index: int, how: str) -> None:
        if layer_name not in chosen and index not in taken:
            chosen[layer_name] = Layer(layer_name, index, how)
            taken.add(index)

    assign("code", target, "the target stage")
    if len(chain) >= 2:
        assign("base", chain[0], "first stage of the target's FROM chain")
    if len(chain) >= 3:
        assign("deps", chain[-2], "the stage the target is built FROM")
    return LayerMap(tuple(sorted(chosen.values(), key=lambda layer: layer.stage)))


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

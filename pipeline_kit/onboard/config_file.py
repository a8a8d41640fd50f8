"""A first ``pipeline-kit.yaml`` from the Dockerfile's stages (what ``init`` writes).

Layers are written as a mapping to stages only where each inferred layer is a whole named
stage; otherwise (a layer inside a stage, or an unnamed stage, whose number would change when
a stage is added) they are left to inference at every run, and a comment says what it finds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from pipeline_kit import __version__
from pipeline_kit.detect.layers import LayerMap, describe_layer, whole_stage
from pipeline_kit.dockerfile.stages import StageGraph
from pipeline_kit.onboard.build_context import FoundContext
from pipeline_kit.onboard.service import ServiceFact

# The schema as the release ships it: the repository serves the file at the release's tag.
SCHEMA_URL = (
    "https://raw.githubusercontent.com/pipeline-kit/pipeline-kit/"
    f"v{__version__}/pipeline_kit/config/schema/pipeline-kit.schema.json"
)
_LAYER_NOTES = {
    "base": "OS, CUDA, system packages",
    "deps": "packages of a language, and their lock files",
    "code": "the application",
}


def image_from_remote(url: str | None) -> str | None:
    """The container repository a forge gives a git remote: GitHub's and GitLab's own."""
    if not url:
        return None
    match = re.match(
        r"^(?:https?://(?:[^@/]+@)?|ssh://(?:[^@/]+@)?|[^@/]+@)(github\.com|gitlab\.com)[:/]"
        r"(?P<path>[^ ]+?)(?:\.git)?/?$",
        url.strip(),
    )
    if not match:
        return None
    registry = {"github.com": "ghcr.io", "gitlab.com": "registry.gitlab.com"}[match.group(1)]
    return f"{registry}/{match.group('path').lower()}"


def config_text(
    graph: StageGraph,
    layers: LayerMap,
    *,
    image: str,
    dockerfile: str,
    target: int,
    service: Sequence[ServiceFact] = (),
    platform: str | None = None,
    context: FoundContext | None = None,
) -> str:
    """The config, commented: each layer's stage (or lines) and what it holds, the build
    context and where it was found, and what the Dockerfile says about the server
    (``service``)."""
    lines = [
        f"# yaml-language-server: $schema={SCHEMA_URL}",
        "# `pipeline-kit config show` explains each value; `pipeline-kit config schema` lists all.",
        f"image: {image}",
    ]
    if dockerfile != "Dockerfile":
        lines.append(f"dockerfile: {dockerfile}")
    if platform is not None:
        lines.append(f"platform: {platform}  # sets TARGETPLATFORM, TARGETARCH, ... for builds")
    if context is not None and context.path != ".":
        origin = " ".join(context.origin.split())
        lines.append(f"context: {_scalar(context.path)}  # {origin}")
    if layers.layers:
        lines += _layer_lines(graph, layers, target)
    if service:
        lines.append("service:  # as the Dockerfile says")
        entries = [f"{fact.key}: {json.dumps(fact.value)}" for fact in service]
        width = max(map(len, entries))
        for entry, fact in zip(entries, service, strict=True):
            lines.append(f"  {entry:<{width}}  # {fact.source}")
    return "\n".join(lines) + "\n"


def _layer_lines(graph: StageGraph, layers: LayerMap, target: int) -> list[str]:
    """A ``layers:`` mapping where every layer is a whole named stage; otherwise a comment
    with each layer's lines (inferred again at every run, never a stage number)."""
    stages = [whole_stage(graph, target, layer) for layer in layers.layers]
    named = all(index is not None and graph.stages[index].name for index in stages)
    entries = [f"{layer.name}: {describe_layer(graph, target, layer)}" for layer in layers.layers]
    width = max(map(len, entries))
    if named:
        lines = [f"layers:  # layer -> stage of {graph.source}, in build order"]
        prefix = "  "
    else:
        lines = [
            "# layers: inferred at every run from what the instructions do (lines of "
            f"{graph.source}):"
        ]
        prefix = "#   "
    for layer, entry in zip(layers.layers, entries, strict=True):
        note = _LAYER_NOTES.get(layer.name, "")
        lines.append(f"{prefix}{entry:<{width}}  # {note}" if note else f"{prefix}{entry}")
    return lines


def _scalar(text: str) -> str:
    """``text`` as a YAML plain scalar where it can be one, else quoted."""
    plain = re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_./-]*", text) is not None
    return text if plain else json.dumps(text)

"""A first ``pipeline-kit.yaml`` from the Dockerfile's stages (what ``init`` writes).

Layers are written as a mapping to stages only where each inferred layer is a whole named
stage; otherwise (a layer inside a stage, or an unnamed stage, whose number would change when
a stage is added) they are left to inference at every run, and a comment says what it finds.
"""

from __future__ import annotations

import re

from pipeline_kit import __version__
from pipeline_kit.detect.layers import LayerMap, describe_layer, whole_stage
from pipeline_kit.dockerfile.stages import StageGraph

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
    graph: StageGraph, layers: LayerMap, *, image: str, dockerfile: str, target: int
) -> str:
    """The config, commented: each layer's stage (or lines) and what it holds."""
    lines = [
        f"# yaml-language-server: $schema={SCHEMA_URL}",
        "# `pipeline-kit config show` explains each value; `pipeline-kit config schema` lists all.",
        f"image: {image}",
    ]
    if dockerfile != "Dockerfile":
        lines.append(f"dockerfile: {dockerfile}")
    if not layers.layers:
        return "\n".join(lines) + "\n"
    stages = [whole_stage(graph, target, layer) for layer in layers.layers]
    named = all(index is not None and graph.stages[index].name for index in stages)
    entries = [f"{layer.name}: {describe_layer(graph, target, layer)}" for layer in layers.layers]
    width = max(map(len, entries))
    if named:
        lines.append(f"layers:  # layer -> stage of {graph.source}, in build order")
        prefix = "  "
    else:
        lines.append(
            "# layers: inferred at every run from what the instructions do (lines of "
            f"{graph.source}):"
        )
        prefix = "#   "
    for layer, entry in zip(layers.layers, entries, strict=True):
        note = _LAYER_NOTES.get(layer.name, "")
        lines.append(f"{prefix}{entry:<{width}}  # {note}" if note else f"{prefix}{entry}")
    return "\n".join(lines) + "\n"

"""A first ``pipeline-kit.yaml`` from the Dockerfile's stages (what ``init`` writes)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from pipeline_kit import __version__
from pipeline_kit.detect.layers import LayerMap
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
    "deps": "Python packages",
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
    service: Sequence[ServiceFact] = (),
    platform: str | None = None,
    context: FoundContext | None = None,
) -> str:
    """The config, commented: each layer's stage and what it holds, where it came from, the
    build context and where it was found, and what the Dockerfile says about the server
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
        lines.append(f"layers:  # layer -> stage of {graph.source}, in build order")
        width = max(len(f"{layer.name}: {_stage(graph, layer.stage)}") for layer in layers.layers)
        for layer in layers.layers:
            entry = f"{layer.name}: {_stage(graph, layer.stage)}"
            note = _LAYER_NOTES.get(layer.name, "")
            lines.append(f"  {entry:<{width}}  # {note}" if note else f"  {entry}")
    if service:
        lines.append("service:  # as the Dockerfile says")
        entries = [f"{fact.key}: {json.dumps(fact.value)}" for fact in service]
        width = max(map(len, entries))
        for entry, fact in zip(entries, service, strict=True):
            lines.append(f"  {entry:<{width}}  # {fact.source}")
    return "\n".join(lines) + "\n"


def _stage(graph: StageGraph, index: int) -> str:
    label = graph.stages[index].label
    return f'"{label}"' if label.isdigit() else label  # an unnamed stage's number, as a name


def _scalar(text: str) -> str:
    """``text`` as a YAML plain scalar where it can be one, else quoted."""
    import json

    plain = re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_./-]*", text) is not None
    return text if plain else json.dumps(text)

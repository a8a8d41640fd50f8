"""The images a build pulls: the external images of the stages the target builds on.

``FROM`` lines (after ARG expansion), ``COPY --from=<image>`` and ``RUN --mount=from=<image>``,
in the stages a build of the target runs: BuildKit, buildah and Kaniko (with
``--skip-unused-stages``) build no others. ``scratch`` is no image.
"""

from __future__ import annotations

from pipeline_kit.dockerfile.stages import StageGraph


def pulled_images(graph: StageGraph, target: str | None = None) -> tuple[str, ...]:
    """Each image the target's stages pull, once, in file order."""
    stage = graph.target(target)
    found: list[str] = []
    for index in graph.upstream(stage.index):
        upstream = graph.stages[index]
        if upstream.from_image is not None:
            found.append(upstream.from_image)
        found.extend(upstream.image_refs)
    return tuple(ref for ref in dict.fromkeys(found) if ref.lower() != "scratch")

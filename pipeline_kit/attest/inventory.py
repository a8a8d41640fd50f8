"""The packages of an image in the registry: its layers read as streams, lowest first
(those the client holds already, as an append's new layer, are read from memory).

Given the SBOM of the image it was made from (an append's or a rebase's previous image), only
the layers that image does not share are read: its SBOM stands for the shared ones. That holds
when the previous image's own layers past the shared ones (those an append replaced) change no
package database; they are read to make sure (they are the small ones), and otherwise every
layer is read.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

from pipeline_kit.adapters.registry.client import RegistryClient, in_parallel
from pipeline_kit.attest.layers import (
    LayerChange,
    PackageState,
    UnreadableLayer,
    apply,
    read_layer,
)
from pipeline_kit.errors import EnvironmentFault


class Parent(NamedTuple):
    """The image this one was made from: its layers, and the databases its SBOM lists."""

    reference: str  # repository@digest
    layers: Sequence[Mapping[str, Any]]
    state: PackageState


class Inventory(NamedTuple):
    state: PackageState
    layers_read: int
    from_parent: str | None  # the parent whose SBOM was taken, or None (every layer read)


def image_inventory(
    client: RegistryClient,
    repo: str,
    layers: Sequence[Mapping[str, Any]],
    parent: Parent | None,
    in_registry: Callable[[], None] | None = None,
) -> Inventory:
    """The image's packages. ``in_registry`` returns once the image's layers are all in the
    registry (they may still be going up): a layer the client does not hold is read after."""
    ready = in_registry or _now
    if parent is not None:
        shared = _shared(layers, parent.layers)
        replaced, added = parent.layers[shared:], layers[shared:]
        # The few small layers side by side: those the parent had past the shared ones, to
        # check they changed no database, and the new ones, to apply over its SBOM.
        reads = [partial(_read, client, repo, layer, parent.state, ready) for layer in replaced]
        reads += [partial(_read, client, repo, layer, parent.state, ready) for layer in added]
        changes = in_parallel(reads)
        if all(change.neutral for change in changes[: len(replaced)]):
            state: PackageState = dict(parent.state)
            for change in changes[len(replaced) :]:
                state = apply(state, change)
            return Inventory(state, len(changes), parent.reference)
    state = {}
    for layer in layers:  # one at a time: the big ones, each read as a stream
        state = apply(state, _read(client, repo, layer, state, ready))
    return Inventory(state, len(layers), None)


def _shared(layers: Sequence[Mapping[str, Any]], parents: Sequence[Mapping[str, Any]]) -> int:
    count = 0
    for mine, theirs in zip(layers, parents, strict=False):
        if mine.get("digest") != theirs.get("digest"):
            break
        count += 1
    return count


def _now() -> None:
    """The layers are in the registry already."""


def _read(
    client: RegistryClient,
    repo: str,
    layer: Mapping[str, Any],
    below: PackageState,
    in_registry: Callable[[], None],
) -> LayerChange:
    digest = str(layer.get("digest", ""))
    held = client.held_blob(digest)  # an append's new layer, the one it replaced
    try:
        if held is not None:
            return read_layer(io.BytesIO(held), below.keys())
        in_registry()
        with client.open_blob(repo, digest) as stream:
            return read_layer(stream, below.keys())
    except UnreadableLayer as exc:
        raise NoSbom(
            f"{client.host}/{repo}@{digest[:19]}: the layer cannot be read for the SBOM ({exc}; "
            f"{layer.get('mediaType', 'no media type')}).",
            hint="The SBOM reads plain and gzip layers; set attest.sbom: false to publish "
            "without one.",
        ) from None


class NoSbom(EnvironmentFault):
    """The image's layers cannot be read for an SBOM: a fact about the image, not a fault of
    the publish, which goes on without the SBOM and says why."""

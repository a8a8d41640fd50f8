"""The rebase plan from manifests and configs alone: what it keeps, maps and refuses."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pipeline_kit.detect.keys import ChainKeys, InstructionKey
from pipeline_kit.detect.provenance import PROVENANCE_LABEL, Provenance, RecordedStep
from pipeline_kit.dockerfile.stages import Instruction
from pipeline_kit.rebase import CannotRebase
from pipeline_kit.rebase.planner import BASE_DIGEST, Image, NewBase, plan_rebase

OCI_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
COPY = Instruction("COPY", (), ("app", "/app"), 2, 2, "COPY app /app")
CHAIN = ChainKeys("s", (InstructionKey(0, 0, COPY, "o", "e", "c"),), "reg/base:1", ())
ENV = ["PATH=/usr/local/bin:/usr/bin:/bin", "PYTHON_VERSION=3.12.7"]


def layer(name: str, media_type: str = OCI_GZIP) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": f"sha256:{name * 64}"[:71], "size": 10}


def base(patch: str, *, env: list[str] = ENV, media_type: str = OCI_GZIP) -> NewBase:
    return NewBase(
        "reg/base:1",
        f"sha256:{patch * 64}",
        {"layers": [layer("a"), layer(patch, media_type)]},
        {
            "os": "linux",
            "architecture": "amd64",
            "config": {"Env": env},
            "rootfs": {"diff_ids": ["sha256:da", f"sha256:d{patch}"]},
            "history": [{"created_by": "ADD a"}, {"created_by": f"ADD {patch}"}],
        },
    )


def image(on: NewBase, media_type: str | None = None) -> Image:
    labels = {PROVENANCE_LABEL: Provenance("s", (), (RecordedStep("COPY", "o", "e"),)).to_label()}
    manifest: dict[str, Any] = {"layers": [*on.manifest["layers"], layer("c")]}
    if media_type:
        manifest["mediaType"] = media_type
    config = {
        "os": "linux",
        "architecture": "amd64",
        "config": {"Env": ENV, "Labels": labels},
        "rootfs": {"diff_ids": [*on.config["rootfs"]["diff_ids"], "sha256:dc"]},
        "history": [*on.config["history"], {"created_by": "/bin/sh -c #(nop) COPY dir:1 in /app"},
                    {"created_by": "/bin/sh -c #(nop) LABEL x=1", "empty_layer": True}],
    }  # fmt: skip
    return Image("reg/app@sha256:" + "e" * 64, manifest, config)


def plan(img: Image, new: NewBase) -> Any:
    return plan_rebase(img, new, CHAIN, {}, {"kit": "label"}, "2026-01-01T00:00:00Z")


def test_an_image_on_the_current_base_needs_no_rebase() -> None:
    assert plan(image(base("1")), base("1")) is None


def test_the_base_layers_are_replaced_and_the_rest_kept() -> None:
    result = plan(image(base("1")), base("2"))
    assert [x["digest"][7:8] for x in result.manifest["layers"]] == ["a", "2", "c"]
    assert result.manifest["annotations"][BASE_DIGEST] == base("2").digest
    assert result.old_base_layers == 2 and result.summary()["kept_layers"] == 1


def test_a_docker_manifest_lists_the_bases_oci_layers_in_its_own_media_type() -> None:
    result = plan(image(base("1"), DOCKER_MANIFEST), base("2"))
    assert {x["mediaType"] for x in result.manifest["layers"][:2]} == {DOCKER_GZIP}
    assert "annotations" not in result.manifest  # a Docker manifest has none


def test_a_layer_a_docker_manifest_cannot_list_is_refused() -> None:
    zstd = base("2", media_type="application/vnd.oci.image.layer.v1.tar+zstd")
    with pytest.raises(CannotRebase, match="which a Docker manifest cannot list"):
        plan(image(base("1"), DOCKER_MANIFEST), zstd)


def test_a_new_python_version_in_the_environment_is_refused_by_name() -> None:
    newer = base("2", env=[ENV[0], "PYTHON_VERSION=3.13.0"])
    with pytest.raises(CannotRebase, match=r"PYTHON_VERSION=3\.13\.0 \(the image has 3\.12\.7\)"):
        plan(image(base("1")), newer)


def test_a_base_whose_history_does_not_account_for_its_layers_is_refused() -> None:
    odd = base("2")
    odd.config["history"].append({"created_by": "ADD extra"})
    with pytest.raises(CannotRebase, match="does not account for its layers"):
        plan(image(base("1")), odd)


def test_an_image_without_provenance_is_refused() -> None:
    img = image(base("1"))
    bare = Image(img.reference, img.manifest, copy.deepcopy(img.config))
    del bare.config["config"]["Labels"][PROVENANCE_LABEL]
    with pytest.raises(CannotRebase, match="did not record it"):
        plan(bare, base("2"))

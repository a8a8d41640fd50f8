"""The example service rebased onto a patched base, then gated against what runs now.

The example's base (the mmdebstrap root, and a layer with ``/etc/patch-level``) is pushed under
a tag of its own; buildah builds the example on it, the smoke gate passes it in a preview and
records its result, and it is promoted to ``stable``. The base is then rebuilt with the next
patch level behind the same tag: the next build of the same commit is a rebase (no builder), the
preview of the rebased digest answers with the patched file in place, and the gate compares it
prompt by prompt with the stable digest's recorded result, and records its own.
"""

from __future__ import annotations

import json
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.example_image import BUILD_TIMEOUT_S, prepare_example, push_base, remove_storage
from tests.support.gitrepo import GitRepo, cli
from tests.support.images import image_manifest
from tests.support.services.registry import RegistryServer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def tag_base(registry: RegistryServer, source: str, tag: str) -> None:
    """Point ``rebase-example/base:<tag>`` at ``source``'s manifest, as a base's CI would."""
    base = f"{registry.url}/v2/rebase-example/base/manifests"
    request = urllib.request.Request(f"{base}/{source}", headers={"Accept": OCI_MANIFEST})
    with urllib.request.urlopen(request, timeout=30) as answer:
        raw = answer.read()
    put = urllib.request.Request(f"{base}/{tag}", data=raw, method="PUT",
                                 headers={"Content-Type": OCI_MANIFEST})  # fmt: skip
    urllib.request.urlopen(put, timeout=30).close()


def run(repo: GitRepo, *args: str, timeout: float = BUILD_TIMEOUT_S) -> dict[str, Any]:
    result = cli(*args, "--format", "json", cwd=repo.path, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    document: dict[str, Any] = json.loads(result.stdout)
    return document


@pytest.fixture
def workdir(tmp_path: Path) -> Any:
    runroot = Path(tempfile.mkdtemp(prefix="pk-rb-"))
    yield tmp_path, runroot
    remove_storage(tmp_path / "example")
    remove_storage(runroot)


def test_a_patched_base_is_rebased_gated_against_stable_and_recorded(
    registry: RegistryServer, workdir: tuple[Path, Path]
) -> None:
    root, runroot = workdir
    patches = {}
    for level in ("1", "2"):
        patch = root / f"patch-level-{level}"
        patch.write_text(f"patch {level}\n")
        patch.chmod(0o644)
        push_base(root / f"base-{level}", registry, f"rebase-example/base:patch{level}",
                  files={"/etc/patch-level": patch})  # fmt: skip
        patches[level] = patch
    tag_base(registry, "patch1", "bookworm")
    example = prepare_example(root / "example", runroot, registry, "rebase-example/llm-service")
    config = example.repo.path / "pipeline-kit.yaml"
    text = config.read_text().replace("examples/base:bookworm", "rebase-example/base:bookworm")
    config.write_text(text.replace("build:\n", "build:\n  rebase: true\n", 1))
    example.repo.commit(message="on a base of its own, rebased when it is patched")

    first = run(example.repo, "build")
    assert first["strategy"] == "builder", first["reason"]
    image = f"{example.repository}@{first['digest']}"
    weights = ("--weights", str(example.weights))
    gated = run(example.repo, "preview", "run", "--image", image, *weights, "--record")
    assert gated["passed"], gated["smoke"]["cases"]
    run(example.repo, "promote", image, "stable", timeout=120)

    tag_base(registry, "patch2", "bookworm")
    rebased = run(example.repo, "build")
    assert rebased["strategy"] == "rebase", rebased["reason"]
    assert rebased["rebase"]["replaced_layers"] == 2
    after = image_manifest(registry.url, "rebase-example/llm-service", rebased["digest"])
    before = image_manifest(registry.url, "rebase-example/llm-service", first["digest"])
    assert after["layers"][2:] == before["layers"][2:]  # Python, the packages, the server
    patched = image_manifest(registry.url, "rebase-example/base", "patch2")
    assert after["layers"][:2] == patched["layers"]  # the root and /etc/patch-level, patch 2

    candidate = f"{example.repository}@{rebased['digest']}"
    verdict = run(example.repo, "preview", "run", "--image", candidate, *weights,
                  "--baseline", "stable")  # fmt: skip
    cases = {case["name"]: case for case in verdict["smoke"]["cases"]}
    assert verdict["passed"], cases
    famous = cases["baseline: completes a famous line"]
    assert famous["passed"] and famous["message"].startswith("same output")
    assert cases["result recorded"]["passed"]
    assert cases["baseline: answers at all"]["passed"]

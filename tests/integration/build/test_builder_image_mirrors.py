"""The Kaniko builder image built from mirrors, as a user's network would give them: FROM a bare
Debian base (no python3, no git) whose apt sources name a Debian mirror, with pip reading a
package index.

The base is the minbase root of scripts/test-images (what ``debian:bookworm-slim`` holds), its
``/etc/apt/sources.list`` naming a flat repository on loopback (support/services/apt_mirror.py)
that holds exactly the .debs the Dockerfile's ``apt-get install`` needs on it; pip reads the
builder wheelhouse from a PEP 503 index on loopback (support/services/package_index.py), set
by ``index-url`` in the base's /etc/pip.conf. The kit builds images/kaniko with buildah once for
this module; real apt and real pip run in its RUN steps.
"""

from __future__ import annotations

import io
import re
import tarfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest

from pipeline_kit import __version__
from tests.support.builder_image import (
    DEBS,
    REPOSITORY,
    BuiltBuilder,
    built_builder_image,
    bundled,
    pinned,
    wheels_fetched,
)
from tests.support.example_image import MissingTestImages
from tests.support.services.apt_mirror import AptMirror, make_flat_repository
from tests.support.services.kaniko import KanikoSandbox
from tests.support.services.registry import RegistryServer


@pytest.fixture(scope="module")
def apt_mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AptMirror]:
    debs = sorted(DEBS.glob("*.deb"))
    if not debs:
        pytest.fail(f"no .debs in {DEBS}: run scripts/test-images")
    root = make_flat_repository(tmp_path_factory.mktemp("apt-mirror") / "debian", debs)
    mirror = AptMirror(root).start()
    try:
        yield mirror
    finally:
        mirror.stop()


@pytest.fixture(scope="module")
def from_mirrors(
    tmp_path_factory: pytest.TempPathFactory,
    registry: RegistryServer,
    kaniko: KanikoSandbox,
    apt_mirror: AptMirror,
) -> Iterator[BuiltBuilder]:
    try:
        with built_builder_image(
            tmp_path_factory.mktemp("builder-mirrors"), registry, kaniko.source, apt_mirror
        ) as built:
            yield built
    except MissingTestImages as exc:
        pytest.fail(str(exc))


def test_apt_installs_python3_and_git_from_the_mirror(
    from_mirrors: BuiltBuilder, apt_mirror: AptMirror
) -> None:
    paths = [unquote(path) for path, _ in apt_mirror.requested]
    assert "/./Packages" in paths  # apt-get update read the mirror's index
    # Every package of the closure came from the mirror, and nothing else was asked for.
    assert apt_mirror.fetched() == {deb.name for deb in DEBS.glob("*.deb")}
    assert all(code == 200 for path, code in apt_mirror.requested if path.endswith(".deb"))
    # apt in the build got each package from the mirror and dpkg installed it.
    log = from_mirrors.log
    for package, version in apt_mirror.packages().items():
        assert f"127.0.0.1:{apt_mirror.port} ./ {package} {version} [" in log, package
        # dpkg names a package that can be co-installed for several architectures with its own.
        assert re.search(
            rf"^Setting up {re.escape(package)}(:amd64)? \({re.escape(version)}\)", log, re.M
        ), package


def test_pip_installs_every_pinned_wheel_from_the_index(from_mirrors: BuiltBuilder) -> None:
    pins = pinned("build-requirements.txt", "requirements.txt")
    requested = from_mirrors.index_requested
    assert {f"/simple/{project}/" for project in pins} <= set(requested)
    assert wheels_fetched(requested) == pins
    assert bundled(from_mirrors.kaniko_dir) == pinned("requirements.txt")


def test_the_kit_built_from_mirrors_runs_with_nothing_but_kaniko(
    from_mirrors: BuiltBuilder, kaniko: KanikoSandbox, tmp_path: Path
) -> None:
    with kaniko.image_root(from_mirrors.kaniko_dir, tmp_path) as root:
        run = root.run_kit(["--version"], from_mirrors.env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"pipeline-kit, version {__version__}"


def test_the_mirrors_settings_stay_out_of_the_builder_image(
    from_mirrors: BuiltBuilder, registry: RegistryServer
) -> None:
    """The base's sources.list and pip.conf name the mirrors; the layers the build adds to the
    Kaniko image hold /kaniko/pipeline-kit alone."""
    for layer in from_mirrors.layers[from_mirrors.standin_layers :]:
        url = f"{registry.url}/v2/{REPOSITORY}/blobs/{layer['digest']}"
        with urllib.request.urlopen(url, timeout=60) as answer:
            blob = answer.read()
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tar:
            names = [name.removeprefix("./") for name in tar.getnames()]
        outside = [n for n in names if n != "kaniko" and not n.startswith("kaniko/pipeline-kit")]
        assert names and not outside, outside[:10]

"""The same commit built by Kaniko, BuildKit and buildah gives the same image.

One busybox Dockerfile (base/deps/code, a stage after the target that would fail, an ARG, ENV,
WORKDIR, USER, EXPOSE, LABEL, ENTRYPOINT, CMD, COPY --chown and --chmod), one commit, three
builds by the kit: Kaniko through the sandbox (support/services/kaniko.py), BuildKit against the
session's buildkitd, buildah as the kit runs it. Each image is read back from the registry
through buildah's own extraction (tests/images.py) and compared: filesystem (type, mode, owner,
link target, content; not timestamps) and the config fields a Dockerfile decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.builds import manifest
from tests.support.images import FileEntry, ImageReader, config_fields, image_config
from tests.support.kitbuild import build_cli, build_in_process, busybox_service
from tests.support.services.buildkitd import BuildkitDaemon
from tests.support.services.kaniko import KanikoSandbox
from tests.support.services.registry import RegistryServer

DOCKERFILE = """\
ARG GREETING=hello

FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /etc /home/app \\
 && echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd \\
 && echo 'app:x:10001:10001::/home/app:/bin/sh' >> /etc/passwd \\
 && printf 'root:x:0:\\napp:x:10001:\\n' > /etc/group
ENV LANG=C.UTF-8

FROM base AS deps
COPY requirements.txt /opt/deps/requirements.txt
RUN cp /opt/deps/requirements.txt /opt/deps/installed && chmod 0640 /opt/deps/installed

FROM deps AS code
ARG GREETING
ENV GREETING=${GREETING}
WORKDIR /srv/app
COPY --chown=10001:10001 --chmod=0640 app/ /srv/app/
COPY --chmod=0755 app/run.sh /usr/local/bin/run-app
USER 10001:10001
EXPOSE 8000/tcp
LABEL org.example.service="busybox" org.example.tier="test"
ENTRYPOINT ["/bin/sh", "/usr/local/bin/run-app"]
CMD ["--serve"]

FROM code AS broken
RUN exit 1
"""
FILES = {
    "app/main.txt": "hello v1\n",
    "app/run.sh": 'echo "$GREETING from $(cat /srv/app/main.txt)"\n',
    "app/sub/data.txt": "nested\n",
}
BUILDERS = ("kaniko", "buildkit", "buildah")
# Labels that name the builder, or the moment of the build: the rest must agree.
UNSTABLE_LABELS = ("io.buildah.version", "org.opencontainers.image.created")
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Where the builders genuinely differ, entry by entry ((kind, mode, uid, gid), None: absent).
ROOT_DIR = ("dir", 0o755, 0, 0)
APP_DIR = ("dir", 0o755, 10001, 10001)
EMPTY_FILE = ("file", 0o755, 0, 0)
KNOWN_DIFFERENCES: dict[str, dict[str, tuple[str, int, int, int] | None]] = {
    # Mount points of the RUN sandbox, left in an image that starts FROM scratch.
    "/dev": {"kaniko": None, "buildkit": ROOT_DIR, "buildah": ROOT_DIR},
    "/proc": {"kaniko": None, "buildkit": ROOT_DIR, "buildah": ROOT_DIR},
    "/sys": {"kaniko": None, "buildkit": ROOT_DIR, "buildah": ROOT_DIR},
    "/run": {"kaniko": None, "buildkit": None, "buildah": ROOT_DIR},
    "/etc/hostname": {"kaniko": None, "buildkit": None, "buildah": EMPTY_FILE},
    "/etc/hosts": {"kaniko": None, "buildkit": None, "buildah": EMPTY_FILE},
    "/etc/resolv.conf": {"kaniko": None, "buildkit": None, "buildah": EMPTY_FILE},
    # `WORKDIR /srv/app` then `COPY --chown=10001:10001 app/ /srv/app/`: who owns the
    # destination directory and its parent.
    "/srv": {"kaniko": ROOT_DIR, "buildkit": ROOT_DIR, "buildah": APP_DIR},
    "/srv/app": {"kaniko": APP_DIR, "buildkit": ROOT_DIR, "buildah": APP_DIR},
}


def _config(builder: str, registry: RegistryServer, storage: Path) -> str:
    lines = [
        f"image: {registry.host}/equivalence/{builder}",
        "target: code",
        "build_args: {GREETING: bonjour}",
        f"build:\n  builder: {builder}",
    ]
    if builder == "buildah":
        lines.append(
            f"  buildah: {{storage_driver: vfs, root: {storage}/root, runroot: {storage}/run}}"
        )
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def images(
    tmp_path_factory: pytest.TempPathFactory,
    registry: RegistryServer,
    kaniko: KanikoSandbox,
    buildkitd: BuildkitDaemon,
) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("equivalence")
    configs = {f"pk-{b}.yaml": _config(b, registry, root / "buildah-storage") for b in BUILDERS}
    repo = busybox_service(
        root / "repo",
        f"{registry.host}/equivalence/unused",
        "auto",
        dockerfile=DOCKERFILE,
        files={**FILES, **configs},
    )
    records = {
        "kaniko": build_in_process(repo, kaniko.builder(), config=repo.path / "pk-kaniko.yaml"),
        "buildkit": build_cli(repo, config="pk-buildkit.yaml", env=buildkitd.env),
        "buildah": build_cli(repo, config="pk-buildah.yaml"),
    }
    reader = ImageReader(root / "reader")
    result: dict[str, Any] = {"records": records, "head": repo.head(), "repo": repo}
    for builder, record in records.items():
        result[builder] = _read_back(reader, registry, builder, record["digest"])
    result["reader"] = reader
    return result


def _read_back(
    reader: ImageReader, registry: RegistryServer, builder: str, digest: str
) -> dict[str, Any]:
    repo_name = f"equivalence/{builder}"
    return {
        "tree": reader.filesystem(f"{registry.host}/{repo_name}@{digest}"),
        "config": image_config(registry.url, repo_name, digest),
        "layers": [layer["digest"] for layer in manifest(registry, repo_name, digest)["layers"]],
    }


@pytest.fixture(scope="module")
def appended(
    images: dict[str, Any],
    registry: RegistryServer,
    kaniko: KanikoSandbox,
    buildkitd: BuildkitDaemon,
) -> dict[str, Any]:
    """A code change published by append onto each builder's image, and by that builder."""
    repo = images["repo"]
    repo.commit(
        {"app/main.txt": "hello v2\n", "app/sub/more.txt": "new\n", "app/sub/data.txt": None},
        message="code change",
    )
    kaniko_config = repo.path / "pk-kaniko.yaml"
    runs = {
        "kaniko": lambda *args: build_in_process(
            repo, kaniko.builder(), *args, config=kaniko_config
        ),
        "buildkit": lambda *args: build_cli(
            repo, *args, config="pk-buildkit.yaml", env=buildkitd.env
        ),
        "buildah": lambda *args: build_cli(repo, *args, config="pk-buildah.yaml"),
    }
    result: dict[str, Any] = {}
    for builder, build in runs.items():
        by_append = build("--strategy", "append")
        by_builder = build("--strategy", "builder")
        result[builder] = {
            "append": by_append,
            "builder": by_builder,
            "append_image": _read_back(images["reader"], registry, builder, by_append["digest"]),
            "builder_image": _read_back(images["reader"], registry, builder, by_builder["digest"]),
        }
    return result


def test_every_builder_built_the_target_from_the_same_commit(
    images: dict[str, Any], registry: RegistryServer
) -> None:
    records = images["records"]
    assert {r["builder"] for r in records.values()} == set(BUILDERS)
    assert len({r["image_key"] for r in records.values()}) == 1
    for builder, record in records.items():
        assert record["strategy"] == "builder"
        for tag in record["tags"]:  # the digest each builder reported is the registry's
            assert manifest(registry, f"equivalence/{builder}", tag)["_digest"] == record["digest"]


def test_same_config_fields(images: dict[str, Any]) -> None:
    fields = {b: config_fields(images[b]["config"], UNSTABLE_LABELS) for b in BUILDERS}
    assert fields["kaniko"] == fields["buildkit"] == fields["buildah"]
    kaniko = fields["kaniko"]
    # No ENV PATH in the Dockerfile: all three write the same default into the image.
    assert kaniko["Env"] == [DEFAULT_PATH, "LANG=C.UTF-8", "GREETING=bonjour"]  # build arg too
    assert kaniko["Cmd"] == ["--serve"]
    assert kaniko["Entrypoint"] == ["/bin/sh", "/usr/local/bin/run-app"]
    assert kaniko["WorkingDir"] == "/srv/app" and kaniko["User"] == "10001:10001"
    assert kaniko["ExposedPorts"] == {"8000/tcp": {}}
    labels = kaniko["Labels"]
    assert labels["org.example.service"] == "busybox"
    assert labels["org.opencontainers.image.revision"] == images["head"]
    assert labels["dev.pipeline-kit.image-key"] == images["records"]["kaniko"]["image_key"]
    assert "io.buildah.version" in images["buildah"]["config"]["config"]["Labels"]


def test_same_filesystem_apart_from_the_known_differences(images: dict[str, Any]) -> None:
    trees = {b: _without(images[b]["tree"], KNOWN_DIFFERENCES) for b in BUILDERS}
    for builder in ("buildkit", "buildah"):
        assert _diff(trees["kaniko"], trees[builder]) == ([], [], {}), builder
    tree = trees["kaniko"]
    assert len(tree) > 250  # busybox and its links, not an empty image
    assert tree["/srv/app/main.txt"][:4] == ("file", 0o640, 10001, 10001)
    assert tree["/srv/app/sub"][:4] == ("dir", 0o640, 10001, 10001)  # --chmod reaches dirs too
    assert tree["/usr/local/bin/run-app"][:4] == ("file", 0o755, 0, 0)
    assert tree["/opt/deps/installed"][:4] == ("file", 0o640, 0, 0)


def test_where_the_builders_differ(images: dict[str, Any]) -> None:
    """Each known difference, exactly as each builder makes it (see docs/build-strategies.md)."""
    for builder in BUILDERS:
        tree = images[builder]["tree"]
        seen = {
            path: (tuple(tree[path][:4]) if path in tree else None) for path in KNOWN_DIFFERENCES
        }
        assert seen == {path: entries[builder] for path, entries in KNOWN_DIFFERENCES.items()}


def _without(tree: dict[str, FileEntry], paths: Mapping[str, object]) -> dict[str, FileEntry]:
    return {path: entry for path, entry in tree.items() if path not in paths}


def _diff(
    left: dict[str, FileEntry], right: dict[str, FileEntry]
) -> tuple[list[str], list[str], dict[str, tuple[FileEntry, FileEntry]]]:
    differ = {
        path: (left[path], right[path])
        for path in sorted(set(left) & set(right))
        if left[path] != right[path]
    }
    return sorted(set(left) - set(right)), sorted(set(right) - set(left)), differ


@pytest.mark.parametrize("builder", BUILDERS)
def test_append_onto_each_builders_image_equals_that_builders_own_build(
    builder: str, images: dict[str, Any], appended: dict[str, Any]
) -> None:
    """The previous image came from Kaniko, BuildKit or buildah: append aligns with each one's
    history and gives the image that builder gives for the same commit (files and config)."""
    runs = appended[builder]
    assert runs["append"]["strategy"] == "append"
    assert runs["append"]["previous"].endswith(images["records"][builder]["digest"])
    assert runs["builder"]["strategy"] == "builder" and runs["builder"]["builder"] == builder
    assert runs["append"]["image_key"] == runs["builder"]["image_key"]
    mine, theirs = runs["append_image"], runs["builder_image"]
    assert _diff(mine["tree"], theirs["tree"]) == ([], [], {})
    assert mine["tree"]["/srv/app/main.txt"][:4] == ("file", 0o640, 10001, 10001)
    assert "/srv/app/sub/data.txt" not in mine["tree"] and "/srv/app/sub/more.txt" in mine["tree"]
    assert config_fields(mine["config"], UNSTABLE_LABELS) == config_fields(
        theirs["config"], UNSTABLE_LABELS
    )
    kept = runs["append"]["append"]["kept_layers"]
    # Every layer below the changed COPY is the cold image's own blob, and only those.
    cold = images[builder]["layers"]
    assert 5 <= kept < len(cold)
    assert mine["layers"][:kept] == cold[:kept]
    assert runs["append"]["bytes_uploaded"] < 64 * 1024

"""append against the real builder: the appended image and buildah's image of the same commit.

One repository goes through a table of code-only changes, each a commit on top of the last.
A compared case is published twice into the same repository: first by ``append`` (the
previous image being buildah's build of the commit before), then by buildah itself
(``--strategy builder``, warm remote cache), which takes over the tags so the next case
appends to a buildah image again. The ENV case is appended only, so the CMD case appends to
an appended image. The two images are read back through buildah's own extraction
(``tests/images.py``) and must agree on every path (type, mode, owner, symlink target,
content), on the Dockerfile-decided config fields (only ``org.opencontainers.image.created``
and ``io.buildah.version`` dropped: a clock and a builder's name), and on the history's
length and empty-layer pattern; the layers below the change keep their digests. podman
then runs an appended image. Changes share commits to keep buildah builds few.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.builds import BUSYBOX
from tests.support.gitrepo import GitRepo, cli
from tests.support.images import FileEntry, ImageReader, config_fields, image_config, image_manifest
from tests.support.services.registry import RegistryServer

DROPPED_LABELS = ("org.opencontainers.image.created", "io.buildah.version")

DOCKERFILE = """\
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]

FROM base AS deps
COPY requirements.txt /deps/requirements.txt
RUN cp /deps/requirements.txt /deps/installed \
 && cat /proc/sys/kernel/random/uuid > /deps/built \
    && mkdir -p /opt/data && chmod 700 /opt/data

FROM deps AS code
WORKDIR /srv
COPY --chown=10001:10001 app/ /srv/app/
COPY scripts/run.sh /usr/local/bin/
ENV MODE=v1 GREETING="hello $MODE"
COPY --chmod=640 conf/*.ini conf/
COPY one.txt two.txt multi/
COPY two.txt /srv/app
COPY one.txt /srv/renamed.txt
COPY --chown=10001 one.txt /opt/data/one.txt
USER 10001
WORKDIR /srv/work
COPY two.txt /tmp/two.txt
CMD ["/bin/sh", "-c", "cat /srv/app/main.txt; run.sh"]
"""

FILES = {
    ".dockerignore": "ci/\ndocs/\n**/*.pyc\n",
    "requirements.txt": "numpy==2.1.3\n",
    "app/main.txt": "hello v1\n",
    "app/old.txt": "to be deleted\n",
    "app/lib/util.py": "X = 1\n",
    "app/lib/util.pyc": "ignored\n",
    "scripts/run.sh": '#!/bin/sh\necho "run $MODE"\n',
    "conf/a.ini": "[a]\n",
    "conf/b.ini": "[b]\n",
    "conf/notes.txt": "not an ini\n",
    "one.txt": "one\n",
    "two.txt": "two\n",
    "docs/index.md": "# docs\n",
}


def _executable(repo: GitRepo, path: str, text: str) -> None:
    repo.write({path: text})
    (repo.path / path).chmod(0o755)


def _symlinks(repo: GitRepo) -> None:
    (repo.path / "app/lib/current").symlink_to("util.py")
    (repo.path / "app/link").unlink()
    (repo.path / "app/link").symlink_to("lib/util.py")


def _edit_dockerfile(old: str, new: str) -> Callable[[GitRepo], None]:
    def edit(repo: GitRepo) -> None:
        text = (repo.path / "Dockerfile").read_text()
        assert old in text
        repo.write({"Dockerfile": text.replace(old, new)})

    return edit


def _files(repo: GitRepo) -> None:
    repo.write({"app/main.txt": "hello v2\n"})  # a changed file
    repo.write({"app/pkg/__init__.py": "", "app/pkg/sub/mod.py": "X = 2\n"})  # new nested dirs
    repo.write({"app/old.txt": None})  # a deleted file
    _executable(repo, "scripts/run.sh", '#!/bin/sh\necho "run $MODE again"\n')
    _executable(repo, "app/tool.sh", "#!/bin/sh\necho tool\n")  # a new executable
    _symlinks(repo)


def _sources(repo: GitRepo) -> None:
    # The wildcard matches one more file, --chmod applies to it; several sources change.
    repo.write({"conf/c.ini": "[c]\n", "conf/a.ini": "[a2]\n", "two.txt": "two v2\n"})
    repo.write({"one.txt": "1\n"})


# (name, change, compare with buildah): each committed on top of the one before; a case
# that is not compared leaves its appended image as the next case's previous image.
CASES: list[tuple[str, Callable[[GitRepo], None], bool]] = [
    ("changed, new nested, deleted, executable files and symlinks", _files, True),
    ("wildcard source, --chmod, several sources, file into a directory", _sources, True),
    ("ENV change", _edit_dockerfile('ENV MODE=v1 GREETING="hello $MODE"', "ENV MODE=v2"), False),
    (
        "CMD change, appended to the ENV change's appended image",
        _edit_dockerfile(
            'CMD ["/bin/sh", "-c", "cat /srv/app/main.txt; run.sh"]',
            'CMD ["/bin/sh", "-c", "echo cmd-v2; cat /srv/app/main.txt; run.sh"]',
        ),
        True,
    ),
]
COMPARED = [name for name, _, compare in CASES if compare]


@dataclass
class Compared:
    appended: dict[str, Any]  # the build record
    previous_manifest: dict[str, Any]
    appended_manifest: dict[str, Any]
    appended_config: dict[str, Any]
    built_config: dict[str, Any]
    appended_fs: dict[str, FileEntry]
    built_fs: dict[str, FileEntry]


def build(repo: GitRepo, *args: str) -> dict[str, Any]:
    result = cli("build", "--format", "json", *args, cwd=repo.path)
    assert result.returncode == 0, result.stderr[-3000:]
    record: dict[str, Any] = json.loads(result.stdout)
    return record


def make_repo(path: Path, registry: RegistryServer, repo: str, storage: Path) -> GitRepo:
    service = GitRepo.init(path)
    buildah = (
        f"  builder: buildah\n  buildah:\n    storage_driver: vfs\n"
        f"    root: {storage}/root\n    runroot: {storage}/run\n"
    )
    service.commit(
        {
            **FILES,
            "Dockerfile": DOCKERFILE,
            "pipeline-kit.yaml": f"image: {registry.host}/{repo}\nbuild:\n{buildah}",
        },
        message="service",
    )
    shutil.copy(BUSYBOX, service.path / "busybox")
    _executable(service, "scripts/run.sh", FILES["scripts/run.sh"])
    (service.path / "app/link").symlink_to("main.txt")
    service.commit(message="busybox, an executable and a symlink")
    return service


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("append")
    repo_name = "eq/svc"
    service = make_repo(root / "repo", registry, repo_name, root / "storage")
    reader = ImageReader(root / "reader")
    build(service)  # cold: buildah; the first case appends to it
    results: dict[str, Any] = {"_root": root, "_repo": repo_name}
    for name, change, compare in CASES:
        before = image_manifest(registry.url, repo_name, "main")
        change(service)
        service.commit(message=name)
        appended = build(service, "--strategy", "append")
        results[name] = appended
        if not compare:
            continue
        # buildah builds the same commit into the same repository and takes over the tags.
        built = build(service, "--strategy", "builder")
        results[name] = Compared(
            appended=appended,
            previous_manifest=before,
            appended_manifest=image_manifest(registry.url, repo_name, appended["digest"]),
            appended_config=image_config(registry.url, repo_name, appended["digest"]),
            built_config=image_config(registry.url, repo_name, built["digest"]),
            appended_fs=reader.filesystem(f"{registry.host}/{repo_name}@{appended['digest']}"),
            built_fs=reader.filesystem(f"{registry.host}/{repo_name}@{built['digest']}"),
        )
    return results


def _differences(a: dict[str, FileEntry], b: dict[str, FileEntry]) -> list[str]:
    return [
        f"{p}: {a.get(p)} != {b.get(p)}" for p in sorted(set(a) | set(b)) if a.get(p) != b.get(p)
    ]


@pytest.mark.parametrize("case", COMPARED)
def test_appended_image_has_buildahs_filesystem(compared: dict[str, Any], case: str) -> None:
    result: Compared = compared[case]
    assert result.appended["strategy"] == "append"
    assert _differences(result.appended_fs, result.built_fs) == []
    assert "/srv/app/main.txt" in result.appended_fs  # the comparison saw the image's files


@pytest.mark.parametrize("case", COMPARED)
def test_appended_image_has_buildahs_config_and_history(
    compared: dict[str, Any], case: str
) -> None:
    result: Compared = compared[case]
    appended, built = result.appended_config, result.built_config
    assert config_fields(appended, DROPPED_LABELS) == config_fields(built, DROPPED_LABELS)
    pattern = [bool(h.get("empty_layer")) for h in appended["history"]]
    assert pattern == [bool(h.get("empty_layer")) for h in built["history"]]
    assert len(appended["rootfs"]["diff_ids"]) == len(built["rootfs"]["diff_ids"])


@pytest.mark.parametrize("case", COMPARED)
def test_layers_below_the_change_are_kept_by_digest(compared: dict[str, Any], case: str) -> None:
    result: Compared = compared[case]
    kept = result.appended["append"]["kept_layers"]
    assert kept >= 4  # busybox, its install, requirements, the deps RUN: never rebuilt
    previous = [layer["digest"] for layer in result.previous_manifest["layers"]]
    appended = [layer["digest"] for layer in result.appended_manifest["layers"]]
    assert appended[:kept] == previous[:kept]
    # Nothing of the 1 MB busybox layer went up again: only small layers, config, manifests.
    assert result.appended["bytes_uploaded"] < 100_000


def test_the_measured_directory_rules_hold_in_the_appended_image(compared: dict[str, Any]) -> None:
    """What buildah does with the directories around a COPY, seen in an appended image."""
    fs = compared[COMPARED[1]].appended_fs

    def meta(path: str) -> tuple[str, int, int, int]:
        entry = fs[path]
        return entry.kind, entry.mode, entry.uid, entry.gid

    assert meta("/srv") == ("dir", 0o755, 10001, 10001)  # WORKDIR, made by the chown'd COPY
    assert meta("/opt/data") == ("dir", 0o700, 0, 0)  # existed (a RUN made it): left as it was
    assert meta("/opt/data/one.txt") == ("file", 0o644, 10001, 10001)  # uid alone: gid = uid
    assert meta("/srv/work") == ("dir", 0o755, 10001, 10001)  # WORKDIR under USER 10001
    assert meta("/srv/multi") == ("dir", 0o755, 0, 0)  # relative to the WORKDIR
    assert meta("/srv/conf/c.ini") == ("file", 0o640, 0, 0)  # the wildcard's new match, --chmod
    assert meta("/usr/local/bin/run.sh") == ("file", 0o755, 0, 0)
    assert fs["/srv/app/link"].target == "lib/util.py"
    assert meta("/srv/app/two.txt")[0] == "file"  # a file into an existing directory
    assert "/srv/app/old.txt" not in fs and "/srv/app/lib/util.pyc" not in fs


def test_metadata_changes_upload_no_layer(compared: dict[str, Any]) -> None:
    """An ENV change reuses the six COPY layers after it as they are; a CMD change has none."""
    env = compared["ENV change"]["append"]
    assert (env["new_layers"], env["reused_layers"]) == (0, 6), env
    cmd = compared[COMPARED[-1]].appended
    assert cmd["append"]["new_layers"] == 0
    assert cmd["previous"].endswith(compared["ENV change"]["digest"])  # an appended image


def test_podman_runs_the_appended_image(compared: dict[str, Any], registry: RegistryServer) -> None:
    """podman (runc, vfs, a private root; environment.md) pulls and runs the appended image."""
    root: Path = compared["_root"]
    conf = root / "containers.conf"
    conf.write_text('[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\n')
    last: Compared = compared[COMPARED[-1]]
    reference = f"{registry.host}/{compared['_repo']}@{last.appended['digest']}"
    argv = [
        "podman",
        f"--root={root / 'podman' / 'root'}",
        f"--runroot={root / 'podman' / 'run'}",
        "--storage-driver=vfs",
        "--runtime=runc",
        "run",
        "--rm",
        "--network=host",
        "--tls-verify=false",
        reference,
    ]
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CONTAINERS_CONF": str(conf)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split("\n")[:3] == ["cmd-v2", "hello v2", "run v2 again"]

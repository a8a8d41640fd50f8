"""The pure parts of append, as tables: words, config evaluation, steps, COPY placement, tars,
provenance and history alignment, parent directories.

The expected configs are buildah's for the same Dockerfiles (tests/support/golden_configs.py),
which tests/integration/append/test_golden_configs.py re-derives by running buildah;
tests/integration/append/test_append.py checks the whole path against buildah for real.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from pipeline_kit.adapters.registry.references import sha256_digest
from pipeline_kit.append import CannotAppend
from pipeline_kit.append.copy_sources import Entry, place, resolve_sources
from pipeline_kit.append.image_config import evaluate, keep_untouched
from pipeline_kit.append.layer_tar import (
    GZIP_LEVEL,
    SPOOL_IN_MEMORY,
    Spool,
    layer_mtime,
    make_layer,
    tar_bytes,
)
from pipeline_kit.append.parents import PathInfo, complete_layer, read_listing
from pipeline_kit.append.steps import CopyStep, plan_steps
from pipeline_kit.append.words import process_word
from pipeline_kit.detect.provenance import Provenance, align, history_kind
from pipeline_kit.dockerfile.dockerignore import DockerIgnore
from pipeline_kit.dockerfile.stages import parse_dockerfile
from tests.support.golden_configs import CASES, GoldenConfig, chain, config_of, fields_of


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ('"two words"', "two words"),
        ("'s $A'", "s $A"),
        ('"q $A"', "q 1"),
        ("a\\ b", "a b"),
        ("${A:-x}y", "1y"),
        ("${MISSING:-x}y", "xy"),
        ('"\\"quoted\\""', '"quoted"'),
        ("\\$A", "$A"),
        ("$A$A", "11"),
        ("cost$", "cost$"),
    ],
)
def test_process_word(word: str, expected: str) -> None:
    assert process_word(word, {"A": "1"}) == expected


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_config_evaluation_gives_buildah_s_config(case: GoldenConfig) -> None:
    config = config_of(case.dockerfile, case.base, case.labels, case.build_args)
    assert fields_of(config, case.expected) == case.expected


@pytest.mark.parametrize(
    ("text", "docker", "reason"),
    [
        ("FROM scratch\nONBUILD RUN true\n", False, "ONBUILD"),
        ("FROM scratch\nEXPOSE 8000-8002\n", False, "port range"),
        ("FROM scratch\nARG TARGETARCH\n", False, "set by the builder"),
        ('FROM scratch\nHEALTHCHECK CMD ["true"]\n', True, "HEALTHCHECK in a Docker-format"),
        ('FROM scratch\nSHELL ["/bin/bash", "-c"]\nCMD echo\n', False, "after SHELL"),
    ],
)
def test_config_evaluation_refuses_where_builders_disagree(
    text: str, docker: bool, reason: str
) -> None:
    with pytest.raises(CannotAppend, match=reason):
        config_of(text, docker=docker)


def steps_of(text: str) -> list[Any]:
    keys = chain(text)
    graph = parse_dockerfile(text)
    states = evaluate(None, keys, dict(graph.global_args), {}, {}).states
    return plan_steps(keys, states)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("RUN true", "RUN comes after the change"),
        ("COPY --from=other /a /a", "--from takes files from another stage"),
        ("COPY --parents a /a", "COPY --parents is not supported"),
        ("COPY <<EOF /a\nx\nEOF", "heredoc"),
        ("ADD https://example.invalid/w.bin /w.bin", "ADD of a URL"),
        ("ADD --checksum=sha256:00 a /a", "ADD --checksum is not supported"),
        ("COPY --chown=app:app a /a", "--chown=app:app names a user"),
        ("COPY --chmod=u+x a /a", "--chmod=u+x is not an octal mode"),
        ("VOLUME /data", "VOLUME is outside what append can build"),
    ],
)
def test_steps_refuse(line: str, reason: str) -> None:
    with pytest.raises(CannotAppend) as refused:
        steps_of(f"FROM scratch AS other\nFROM scratch\n{line}\n")
    assert reason in refused.value.reason


def test_copy_steps_expand_and_resolve_owner_and_mode() -> None:
    text = (
        "FROM scratch\nARG UID=10001\nENV DEST=/srv/app WHO=$UID\nWORKDIR /work\n"
        "COPY --chown=$WHO --chmod=0640 app/ $DEST/\n"
        'COPY ["my file.txt", "rel/"]\n'
        "COPY --chown=0:0 a b\n"
    )
    _, _, _, first, second, third = steps_of(text)
    assert isinstance(first, CopyStep)
    assert (first.sources, first.dest, first.owner, first.chmod) == (
        ("app/",),
        "/srv/app/",
        (10001, 10001),  # a uid alone: the gid is the uid (measured with buildah)
        0o640,
    )
    assert (second.sources, second.dest, second.workdir) == (("my file.txt",), "rel/", "/work")
    assert third.owner is None  # root


def _context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    for path, text in {
        "app/main.py": "print(1)\n",
        "app/sub/mod.py": "X = 1\n",
        "app/sub/skip.pyc": "x",
        "app/cache/junk": "x",
        "a.txt": "a",
        "b.txt": "b",
        "c.ini": "c",
        "run.sh": "#!/bin/sh\n",
    }.items():
        (ctx / path).parent.mkdir(parents=True, exist_ok=True)
        (ctx / path).write_text(text)
    (ctx / "run.sh").chmod(0o755)
    (ctx / "app/sub").chmod(0o750)
    (ctx / "app/link").symlink_to("main.py")
    (ctx / "to-a").symlink_to("a.txt")
    (ctx / "out").symlink_to("/etc/hostname")
    # Symlinks in the middle of a source path: one that stays inside, three that leave.
    (ctx / "appdir").symlink_to("app")
    (ctx / "hostdir").symlink_to("/etc")
    (ctx / "proc").symlink_to("/proc")
    (ctx / "up").symlink_to("app/../..")
    return ctx


IGNORE = DockerIgnore.parse("**/*.pyc\napp/cache\n")


def copy_step(text: str, workdir: str = "/") -> CopyStep:
    (step,) = steps_of(f"FROM scratch\nWORKDIR {workdir}\n{text}\n")[1:]
    assert isinstance(step, CopyStep)
    return step


def placed(tmp_path: Path, text: str, workdir: str = "/", cmd: str = "COPY") -> Any:
    ctx = _context(tmp_path)
    step = copy_step(text.replace("COPY", cmd, 1), workdir)
    return place(step, resolve_sources(step, ctx, IGNORE), IGNORE)


def shape(entries: Any) -> list[tuple[str, str, str, int, int]]:
    return [(e.path, e.kind, oct(e.mode), e.uid, e.gid) for e in entries]


def test_a_directory_source_copies_its_contents_without_ignored_paths(tmp_path: Path) -> None:
    result = placed(tmp_path, "COPY --chown=7 app/ /srv/app/")
    assert shape(result.content) == [
        ("srv/app/link", "symlink", "0o777", 7, 7),
        ("srv/app/main.py", "file", "0o644", 7, 7),
        ("srv/app/sub", "dir", "0o750", 7, 7),
        ("srv/app/sub/mod.py", "file", "0o644", 7, 7),
    ]
    assert result.content[0].target == "main.py"
    assert result.dest_dirs == ("srv", "srv/app") and result.file_or_dir is None


def test_chmod_applies_to_files_and_directories_below(tmp_path: Path) -> None:
    result = placed(tmp_path, "COPY --chmod=700 app /app")
    modes = {e.path: oct(e.mode) for e in result.content}
    assert modes == {
        "app/link": "0o777",
        "app/main.py": "0o700",
        "app/sub": "0o700",
        "app/sub/mod.py": "0o700",
    }


@pytest.mark.parametrize(
    ("copy", "workdir", "paths", "dest_dirs", "file_or_dir"),
    [
        (
            "COPY run.sh /usr/local/bin/",
            "/",
            ["usr/local/bin/run.sh"],
            ["usr", "usr/local", "usr/local/bin"],
            None,
        ),
        ("COPY a.txt /srv/renamed", "/", ["srv/renamed"], ["srv"], ("srv/renamed", "a.txt")),
        (
            "COPY a.txt b.txt multi/",
            "/srv",
            ["srv/multi/a.txt", "srv/multi/b.txt"],
            ["srv", "srv/multi"],
            None,
        ),
        ("COPY *.txt /w/", "/", ["w/a.txt", "w/b.txt"], ["w"], None),
        ("COPY a.txt .", "/srv/x", ["srv/x/a.txt"], ["srv", "srv/x"], None),
        ("COPY to-a /l/", "/", ["l/to-a"], ["l"], None),
        ("COPY a.txt /", "/", ["a.txt"], [], None),
    ],
)
def test_destination_forms(
    tmp_path: Path,
    copy: str,
    workdir: str,
    paths: list[str],
    dest_dirs: list[str],
    file_or_dir: tuple[str, str] | None,
) -> None:
    result = placed(tmp_path, copy, workdir)
    assert [e.path for e in result.content] == paths
    assert list(result.dest_dirs) == dest_dirs and result.file_or_dir == file_or_dir


def test_a_symlink_named_as_a_source_is_followed(tmp_path: Path) -> None:
    (entry,) = placed(tmp_path, "COPY to-a /l/").content
    assert entry.kind == "file" and entry.source is not None
    assert entry.source.read_text() == "a"


def test_a_symlink_inside_the_context_is_followed_along_the_path(tmp_path: Path) -> None:
    """``appdir -> app``: the files come from app/, the .dockerignore of app/ applies, and a
    file keeps the name the instruction gives it."""
    result = placed(tmp_path, "COPY appdir/sub/ /s/")
    assert [e.path for e in result.content] == ["s/mod.py"]
    (entry,) = placed(tmp_path / "second", "COPY appdir/main.py /m/").content
    assert entry.path == "m/main.py" and entry.source == tmp_path / "second/ctx/app/main.py"


@pytest.mark.parametrize(
    ("copy", "reason"),
    [
        ("COPY a.txt b.txt /multi", "several sources need a destination ending in /"),
        ("COPY *.nothing /x/", "matches no file"),
        ("COPY missing.txt /x/", "not in the build context"),
        ("COPY app/sub/skip.pyc /x/", "excluded by .dockerignore"),
        ("COPY out /x/", "out is a symlink to /etc/hostname, which leaves the build context"),
        ("COPY hostdir/hostname /x/", "hostdir is a symlink to /etc, which leaves"),
        ("COPY proc/self/environ /x/", "proc is a symlink to /proc, which leaves"),
        ("COPY up/ctx/a.txt /x/", "up is a symlink to app/../.., which leaves"),
        ("COPY hostdir/host* /x/", "hostdir is a symlink to /etc, which leaves"),
        ("COPY appdir/cache/junk /x/", "leads to app/cache/junk, excluded by .dockerignore"),
    ],
)
def test_copy_sources_refuse(tmp_path: Path, copy: str, reason: str) -> None:
    with pytest.raises(CannotAppend, match=reason):
        placed(tmp_path, copy)


def test_add_of_a_plain_file_is_a_copy_and_of_an_archive_refused(tmp_path: Path) -> None:
    assert [e.path for e in placed(tmp_path, "COPY a.txt /x/", cmd="ADD").content] == ["x/a.txt"]
    ctx = _context(tmp_path / "second")
    (ctx / "w.tar.gz").write_bytes(gzip.compress(b"x"))
    step = copy_step("ADD w.tar.gz /x/")
    with pytest.raises(CannotAppend, match="ADD of an archive"):
        resolve_sources(step, ctx, IGNORE)


def _read_tar(raw: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
        return archive.getmembers()


def test_layer_tars_are_reproducible_sorted_and_stamped(tmp_path: Path) -> None:
    source = tmp_path / "f"
    source.write_text("data")
    entries = [
        Entry("srv/app/z.py", "file", 0o644, 1, 2, source=source),
        Entry("srv", "dir", 0o755),
        Entry("srv/app", "dir", 0o750, 1, 2),
        Entry("srv/app/l", "symlink", 0o777, target="z.py"),
        Entry("srv/app-x", "dir", 0o755),
    ]
    first = make_layer(entries, 1, "application/vnd.oci.image.layer.v1.tar+gzip")
    second = make_layer(list(reversed(entries)), 1, "application/vnd.oci.image.layer.v1.tar+gzip")
    assert (first.digest, first.diff_id) == (second.digest, second.diff_id)
    members = _read_tar(gzip.decompress(first.data))
    assert [m.name for m in members] == ["srv", "srv/app", "srv/app/l", "srv/app/z.py", "srv/app-x"]
    assert {m.mtime for m in members} == {1} and {m.uname for m in members} == {""}
    file = members[3]
    assert (file.mode, file.uid, file.gid, file.size) == (0o644, 1, 2, 4)
    assert members[2].linkname == "z.py"
    plain = make_layer(entries, 1, "application/vnd.oci.image.layer.v1.tar")
    assert plain.data == tar_bytes(entries, 1) and plain.digest == plain.diff_id
    assert make_layer(entries, 7, first.media_type).digest != first.digest


def test_a_streamed_layer_is_the_bytes_gzip_makes_of_the_whole_tar(tmp_path: Path) -> None:
    """The tar is compressed as it is written; the result is byte for byte what compressing
    the whole tar at once gives (so digests do not depend on how the layer was made), in memory
    for a small layer and in a temporary file past ``SPOOL_IN_MEMORY``."""
    small, large = tmp_path / "small", tmp_path / "large"
    small.write_text("code")
    large.write_bytes(os.urandom(SPOOL_IN_MEMORY + 4096))  # incompressible: spills
    media = "application/vnd.oci.image.layer.v1.tar+gzip"
    for source, spooled in ((small, False), (large, True)):
        entries = [Entry("srv", "dir", 0o755), Entry("srv/f", "file", 0o644, source=source)]
        raw = tar_bytes(entries, 1)
        layer = make_layer(entries, 1, media)
        whole = gzip.compress(raw, GZIP_LEVEL, mtime=0)
        assert layer.data == whole and layer.size == len(whole)
        assert (layer.digest, layer.diff_id) == (sha256_digest(whole), sha256_digest(raw))
        assert isinstance(layer.spool.body(), bytes) is not spooled
        layer.spool.close()


def test_a_spool_moves_to_a_file_past_its_limit_and_keeps_every_byte() -> None:
    spool = Spool(limit=10)
    spool.write(b"0123456789")
    assert spool.body() == b"0123456789"  # at the limit: still in memory
    spool.write(b"abc")
    body = spool.body()
    assert not isinstance(body, bytes) and body.read() == b"0123456789abc"
    assert spool.size == 13 and spool.read_all() == b"0123456789abc"  # read again from the start
    spool.close()


def test_source_date_epoch_sets_the_mtime() -> None:
    assert layer_mtime({"SOURCE_DATE_EPOCH": "1700000000"}) == 1700000000
    assert layer_mtime({}) == 1


@pytest.mark.parametrize(
    ("created_by", "kind"),
    [
        ("/bin/sh -c #(nop) COPY dir:a1e7 in /srv/app/ ", "COPY"),
        ("/bin/sh -c #(nop) WORKDIR /srv", "WORKDIR"),
        ('/bin/sh -c #(nop) LABEL "kit"="1"', "LABEL"),
        ("/bin/sh -c #(nop) ARG ", "ARG"),
        ('/bin/sh -c ["/bin/busybox", "--install", "-s", "/bin"]', "RUN"),
        ("/bin/sh -c env", "RUN"),  # buildah's RUN: the command, no #(nop)
        ("COPY app/ /app/", "COPY"),  # Kaniko: the instruction as written
        ("RUN pip install -r requirements.txt", "RUN"),
        ("ENV A=1", "ENV"),
    ],
)
def test_history_kind(created_by: str, kind: str) -> None:
    assert history_kind(created_by) == kind


def _entry(created_by: str, empty: bool = False) -> dict[str, Any]:
    return {"created_by": created_by, **({"empty_layer": True} if empty else {})}


HISTORY = [
    _entry("base layer"),
    _entry("/bin/sh -c #(nop) COPY file:1 in /a "),
    _entry("/bin/sh -c #(nop) ENV A=1", empty=True),
    _entry("/bin/sh -c make"),
    _entry('/bin/sh -c #(nop) LABEL "k"="v"', empty=True),
]


def test_align_maps_instructions_to_layers() -> None:
    alignment = align(HISTORY, 3, 1, 1, ["COPY", "ENV", "RUN"])
    assert not isinstance(alignment, str)
    assert alignment.layer_of == (1, None, 2)
    assert [alignment.kept_layers(p) for p in range(4)] == [1, 2, 2, 3]


@pytest.mark.parametrize(
    ("history", "layers", "kinds", "reason"),
    [
        (HISTORY, 3, ["COPY", "ENV", "COPY"], "history entry 3 is RUN, but the recorded"),
        (HISTORY, 4, ["COPY", "ENV", "RUN"], "accounts for 3 layers, but it has 4"),
        (HISTORY[:3], 2, ["COPY", "ENV", "RUN"], "fewer than"),
        ([*HISTORY, _entry("/bin/sh -c rm -rf /")], 4, ["COPY", "ENV", "RUN"], "not a builder"),
    ],
)
def test_align_refuses(
    history: list[dict[str, Any]], layers: int, kinds: list[str], reason: str
) -> None:
    result = align(history, layers, 1, 1, kinds)
    assert isinstance(result, str) and reason in result


def test_provenance_round_trips_and_finds_the_first_difference() -> None:
    keys = chain("FROM scratch\nCOPY a /a\nENV A=1\n")
    from pipeline_kit.detect.keys import ChainKeys

    mine = Provenance.of(ChainKeys("s" * 64, tuple(keys), "scratch", ()), [("0", "k" * 64)])
    label = mine.to_label()
    assert Provenance.from_labels({"dev.pipeline-kit.provenance": label}) == mine
    assert json.loads(label)["chain"][0][0] == "COPY"
    assert mine.first_difference(mine) == 2
    other = Provenance(
        mine.start, mine.stages, (mine.steps[0], mine.steps[1].__class__("ENV", "x", "y"))
    )
    assert mine.first_difference(other) == 1
    assert "did not record it" in str(Provenance.from_labels({}))
    assert "cannot be read" in str(Provenance.from_labels({"dev.pipeline-kit.provenance": "{"}))


DIR = PathInfo("dir", 0o755, 0, 0)


def _complete(
    copy: str,
    tmp_path: Path,
    same: dict[str, PathInfo] | None,
    own: dict[str, PathInfo] | None = None,
    earlier: list[dict[str, PathInfo]] | None = None,
    workdir: str = "/",
) -> list[tuple[str, str, str, int, int]]:
    ctx = _context(tmp_path)
    step = copy_step(copy, workdir)
    placement = place(step, resolve_sources(step, ctx, IGNORE), IGNORE)
    return shape(
        complete_layer(step, placement, own if own is not None else {}, earlier or [], same)
    )


def test_parents_come_from_the_same_instructions_old_layer(tmp_path: Path) -> None:
    """A directory that existed (/pre, 0700) stays; one the COPY made keeps the chown owner."""
    same = {
        "pre": PathInfo("dir", 0o700, 0, 0),
        "pre/app": PathInfo("dir", 0o755, 7, 7),
        "pre/app/old.txt": PathInfo("file", 0o644, 7, 7),
    }
    entries = _complete("COPY --chown=7 a.txt /pre/app/", tmp_path, same)
    assert entries == [
        ("pre", "dir", "0o700", 0, 0),
        ("pre/app", "dir", "0o755", 7, 7),
        ("pre/app/a.txt", "file", "0o644", 7, 7),
    ]


def test_what_this_build_wrote_before_wins(tmp_path: Path) -> None:
    own = {"srv": PathInfo("dir", 0o755, 9, 9)}
    entries = _complete("COPY a.txt /srv/", tmp_path, {"srv": DIR}, own=own)
    assert entries[0] == ("srv", "dir", "0o755", 9, 9)


@pytest.mark.parametrize(
    ("same", "earlier", "reason"),
    [
        (None, [], "no layer of this same instruction"),
        ({}, [], "does not show /srv"),
        ({"srv": PathInfo("symlink", 0o777, 0, 0)}, [], "/srv is a symlink"),
        ({"srv": DIR}, [{"srv": DIR}], "an earlier replaced layer of the previous image wrote it"),
    ],
)
def test_parents_refuse_when_the_old_layers_cannot_tell(
    tmp_path: Path,
    same: dict[str, PathInfo] | None,
    earlier: list[dict[str, PathInfo]],
    reason: str,
) -> None:
    with pytest.raises(CannotAppend, match=reason):
        _complete("COPY a.txt /srv/", tmp_path, same, earlier=earlier)


def test_the_working_directory_is_made_as_the_old_layer_shows_or_left_alone(
    tmp_path: Path,
) -> None:
    made = {
        "work": PathInfo("dir", 0o755, 10001, 10001),
        "tmp": DIR,
        "tmp/a.txt": PathInfo("file", 0o644, 0, 0),
    }
    entries = _complete("COPY a.txt /tmp/", tmp_path, made, workdir="/work")
    assert ("work", "dir", "0o755", 10001, 10001) in entries
    existing = {"tmp": DIR, "tmp/a.txt": PathInfo("file", 0o644, 0, 0)}
    entries = _complete("COPY a.txt /tmp/", tmp_path / "2", existing, workdir="/work")
    assert [e[0] for e in entries] == ["tmp", "tmp/a.txt"]


@pytest.mark.parametrize(
    ("same", "path"),
    [
        ({"srv": DIR, "srv/x": DIR, "srv/x/a.txt": PathInfo("file", 0o644, 0, 0)}, "srv/x/a.txt"),
        ({"srv": DIR, "srv/x": PathInfo("file", 0o644, 0, 0)}, "srv/x"),
    ],
)
def test_a_file_goes_into_an_existing_directory_or_becomes_the_destination(
    tmp_path: Path, same: dict[str, PathInfo], path: str
) -> None:
    entries = _complete("COPY a.txt /srv/x", tmp_path, same)
    assert entries[-1][0] == path


def test_listings_refuse_whiteouts(tmp_path: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        archive.addfile(tarfile.TarInfo("srv/.wh.gone"))
    with pytest.raises(CannotAppend, match="whiteouts"):
        read_listing(raw.getvalue(), "layer 3")
    good = tar_bytes([Entry("srv", "dir", 0o700, 1, 2)], 1)
    assert read_listing(gzip.compress(good), "layer 3") == {"srv": PathInfo("dir", 0o700, 1, 2)}


def _previous_image(
    steps: list[tuple[str, str, str]], layers: list[list[Entry]], created_by: list[str]
) -> tuple[Any, dict[str, bytes]]:
    """A previous image as the registry would serve it, with real layer tars."""
    from pipeline_kit.append.planner import PreviousImage
    from pipeline_kit.detect.provenance import RecordedStep

    blobs = {}
    descriptors = []
    diff_ids = []
    for entries in layers:
        blob = make_layer(entries, 1, "application/vnd.oci.image.layer.v1.tar+gzip")
        blobs[blob.digest] = blob.data
        descriptors.append({"mediaType": blob.media_type, "digest": blob.digest, "size": blob.size})
        diff_ids.append(blob.diff_id)
    recorded = Provenance("s" * 32, (), tuple(RecordedStep(*step) for step in steps))
    history = [
        {"created_by": text, **({"empty_layer": True} if "COPY" not in text else {})}
        for text in created_by
    ]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"dev.pipeline-kit.provenance": recorded.to_label()}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    manifest = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json"},
        "layers": descriptors,
    }
    return PreviousImage("team/svc", "sha256:" + "0" * 64, manifest, config, recorded), blobs


def _plan(tmp_path: Path, text: str, own: list[str], previous: Any, blobs: dict[str, bytes]) -> Any:
    from pipeline_kit.append.planner import AppendInputs, BaseImage, plan_append
    from pipeline_kit.detect.keys import ChainKeys

    ctx = _context(tmp_path)
    (ctx / "Dockerfile").write_text(text)
    keys = tuple(
        k._replace(own=o * 64, effect=o * 64) for k, o in zip(chain(text), own, strict=True)
    )
    chain_keys = ChainKeys("s" * 64, keys, "scratch", ())
    inputs = AppendInputs(
        chain_keys,
        Provenance.of(chain_keys, []),
        {},
        {"kit": "1"},
        ctx,
        ctx / "Dockerfile",
        1,
        "now",
    )
    return plan_append(
        inputs, previous, BaseImage("scratch", None), lambda ds: [blobs[d["digest"]] for d in ds]
    )


OLD_CHAIN = [
    ("ENV", "e" * 32, "e" * 32),
    ("COPY", "a" * 32, "a" * 32),
    ("COPY", "b" * 32, "b" * 32),
]
OLD_LAYERS = [
    [Entry("x", "dir", 0o755), Entry("x/a.txt", "file", 0o644, source=None)],
    [Entry("y", "dir", 0o700), Entry("y/b.txt", "file", 0o644, source=None)],
]
OLD_HISTORY = ["/bin/sh -c #(nop) ENV X=1", "COPY a.txt /x/", "COPY b.txt /y/", "LABEL kit=1"]


def _old(tmp_path: Path) -> tuple[Any, dict[str, bytes]]:
    data = tmp_path / "data"
    data.write_text("x")
    layers = [
        [e._replace(source=data) if e.kind == "file" else e for e in layer] for layer in OLD_LAYERS
    ]
    return _previous_image(OLD_CHAIN, layers, OLD_HISTORY)


def test_a_cmd_change_keeps_every_layer_and_only_rewrites_the_config(tmp_path: Path) -> None:
    previous, blobs = _old(tmp_path)
    text = 'FROM scratch\nENV X=1\nCOPY a.txt /x/\nCOPY b.txt /y/\nCMD ["new"]\n'
    plan = _plan(tmp_path, text, ["e", "a", "b", "c"], previous, blobs)
    assert (plan.first, plan.kept_layers, plan.new_layers) == (3, 2, [])
    assert plan.manifest["layers"] == previous.manifest["layers"]
    assert plan.config["config"]["Cmd"] == ["new"]
    assert [h.get("empty_layer", False) for h in plan.config["history"]] == [
        True,
        False,
        False,
        True,
        True,  # ENV, two COPYs kept, then CMD and one label
    ]


def test_only_layers_really_reused_count_as_this_builds_writes(tmp_path: Path) -> None:
    """The old COPY at position 2 is gone (an ENV took its place): its /y is not this build's."""
    previous, blobs = _old(tmp_path)
    text = "FROM scratch\nENV X=2\nCOPY a.txt /x/\nENV Y=1\nCOPY c.ini /y/\n"
    with pytest.raises(CannotAppend, match="an earlier replaced layer of the previous image"):
        _plan(tmp_path, text, ["f", "a", "g", "c"], previous, blobs)


PREVIOUS_CONFIG = {
    "WorkingDir": "/",  # BuildKit's default where no WORKDIR is set
    "Healthcheck": {"Test": ["CMD", "true"]},
    "Env": ["PATH=/bin", "A=old"],
    "Cmd": ["old"],
    "Labels": {"org.example": "kept", "dev.pipeline-kit.layer.gone.key": "stale", "rev": "old"},
}


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        # Only a COPY changed: every field is the previous builder's, labels but the kit's.
        ({"COPY"}, {**PREVIOUS_CONFIG, "Labels": {"org.example": "kept", "rev": "new"}}),
        # A CMD changed: Cmd is the replay's, the rest stays as the builder wrote it.
        ({"COPY", "CMD"}, {**PREVIOUS_CONFIG, "Cmd": ["new"],
                           "Labels": {"org.example": "kept", "rev": "new"}}),
        # WORKDIR and LABEL after the change: the replay decides them (no WorkingDir, labels).
        ({"WORKDIR", "LABEL", "ENV", "HEALTHCHECK"},
         {"Env": ["PATH=/bin", "A=new"], "Cmd": ["old"], "Labels": {"rev": "new"}}),
    ],
)  # fmt: skip
def test_keep_untouched_keeps_what_no_changed_instruction_can_set(
    changed: set[str], expected: dict[str, Any]
) -> None:
    replayed = {"Env": ["PATH=/bin", "A=new"], "Cmd": ["new"], "Labels": {"rev": "new"}}
    if "CMD" not in changed:
        replayed["Cmd"] = ["old"]
    kept = keep_untouched(replayed, PREVIOUS_CONFIG, changed, {"rev": "new"}, "dev.pipeline-kit.")
    assert kept == expected

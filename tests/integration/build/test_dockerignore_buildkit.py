"""``.dockerignore`` as the real BuildKit applies it (tests/support/services/buildkitd.py).

For each set of patterns, one context (the same tree each time, plus the ``.dockerignore``) is
built by the real buildkitd with ``FROM scratch`` + ``COPY . /ctx`` and exported to a local
directory: what arrived there is what BuildKit sent. It must be exactly what the kit's matcher
(pipeline_kit/dockerfile/dockerignore.py) says is kept: every file it does not exclude, and
every directory it does not exclude or that holds a kept file. The Dockerfile lives outside the
context, so the context holds only the tree and its ignore file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline_kit.dockerfile.dockerignore import DockerIgnore, ignore_file_candidates
from tests.support.services.buildkitd import BuildkitDaemon

DOCKERFILE = "FROM scratch\nCOPY . /ctx\n"

# The context, as files (with their text) and empty directories (ending in "/").
TREE = {
    "README.md": "readme\n",
    "CHANGES.md": "changes\n",
    "main.go": "package main\n",
    "fileutils.go": "package main\n",
    "file": "f\n",
    "dirfile": "f\n",
    "y.tmp": "t\n",
    "data1.csv": "1\n",
    "data2.csv": "2\n",
    "dataX.csv": "x\n",
    "a/b": "ab\n",
    "a/b.txt": "ab\n",
    "a/x/b": "axb\n",
    "a/x/yb": "axyb\n",
    "a/x/y/b": "axyb\n",
    "a/x/y/file": "axyf\n",
    "abc/file": "abc\n",
    "abc/def/file": "abcdef\n",
    "bcd/file": "bcd\n",
    "docs/keep.md": "keep\n",
    "docs/drop.md": "drop\n",
    "docs/index.txt": "index\n",
    "docs/sub/keep.md": "keep\n",
    "docs/sub/deep.md": "deep\n",
    "src/app.py": "app\n",
    "src/__pycache__/app.cpython-311.pyc": "pyc\n",
    "src/pkg/mod.py": "mod\n",
    "src/pkg/__pycache__/mod.cpython-311.pyc": "pyc\n",
    "src/pkg/docs/keep.md": "keep\n",
    "build/log.txt": "log\n",
    "build/out/bin": "bin\n",
    "x/y.tmp": "t\n",
    "x/build/log.txt": "log\n",
    "notes/a b.txt": "spaces\n",
    "logs/": "",
    "dist/logs/": "",
}

# Each set: the kinds of line it exercises, then the lines.
PATTERN_SETS: dict[str, list[str]] = {
    "double-star prefix": ["**/*.pyc", "**/keep.md"],
    "double-star directory": ["**/__pycache__", "**/docs"],
    "double-star middle": ["a/**/b", "src/**/*.py"],
    "double-star suffix": ["docs/**", "a/x/**"],
    "double-star alone": ["**"],
    "double-star fast path": ["**file", "**.md"],
    "exception re-includes": ["*.md", "!README.md", "*.go", "!fileutils.go"],
    "exception overridden": ["!README.md", "*.md"],
    "leading slash": ["/build", "/y.tmp", "/docs/sub"],
    "star slash": ["*/y.tmp", "*/__pycache__", "*/build", "*/*/b"],
    "directories": ["docs", "build", "logs", "a/x"],
    "question mark": ["data?.csv", "a/?", "??c"],
    "character classes": ["data[0-9].csv", "[a-b]*/file", "[^ab]??/file", "a/x/[xy]b"],
    "trailing slashes": ["docs/", "src/pkg/", "dist/logs/", "notes/"],
    "directory then a file inside": ["docs", "!docs/keep.md", "src", "!src/pkg/mod.py"],
    "everything then a directory": ["**", "!docs/**", "docs/*.md", "!docs/sub/keep.md"],
    "the ignore file itself": [".dockerignore", "*", "!a"],
    "escapes and spaces": ["notes/a\\ b.txt", "a/b\\.txt", " CHANGES.md "],
}


def make_context(root: Path, ignore_file: str) -> Path:
    context = root / "context"
    for path, text in TREE.items():
        target = context / path
        if path.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    (context / ".dockerignore").write_text(ignore_file)
    return context


def sent(buildkitd: BuildkitDaemon, context: Path, dockerfile_dir: Path, out: Path) -> set[str]:
    """What BuildKit copied from ``context``: paths relative to it, directories ending in "/"."""
    buildkitd.buildctl(
        "build",
        "--progress=plain",
        "--frontend=dockerfile.v0",
        f"--local=context={context}",
        f"--local=dockerfile={dockerfile_dir}",
        f"--output=type=local,dest={out}",
    )
    ctx = out / "ctx"
    return {p.relative_to(ctx).as_posix() + ("/" if p.is_dir() else "") for p in ctx.rglob("*")}


def kept(ignore: DockerIgnore, context: Path) -> set[str]:
    """What the kit's matcher says BuildKit sends: every file not excluded, and every directory
    not excluded or holding a kept file; directories end in "/"."""
    entries = [p for p in context.rglob("*")]
    files = {
        p.relative_to(context).as_posix()
        for p in entries
        if p.is_file() and not ignore.excluded(p.relative_to(context).as_posix())
    }
    dirs = {
        rel + "/"
        for rel in (p.relative_to(context).as_posix() for p in entries if p.is_dir())
        if not ignore.excluded(rel) or any(f.startswith(rel + "/") for f in files)
    }
    return files | dirs


@pytest.fixture(scope="module")
def dockerfile_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("dockerfile")
    (directory / "Dockerfile").write_text(DOCKERFILE)
    return directory


@pytest.mark.parametrize("lines", PATTERN_SETS.values(), ids=PATTERN_SETS.keys())
def test_buildkit_sends_what_the_matcher_keeps(
    lines: list[str], tmp_path: Path, buildkitd: BuildkitDaemon, dockerfile_dir: Path
) -> None:
    text = "\n".join(lines) + "\n"
    context = make_context(tmp_path, text)
    ignore = DockerIgnore.parse(text)
    expected = kept(ignore, context)
    arrived = sent(buildkitd, context, dockerfile_dir, tmp_path / "out")
    assert arrived - expected == set(), "sent, but the kit says excluded"
    assert expected - arrived == set(), "not sent, but the kit says kept"
    # Every set excludes something and keeps something else: no set agrees by being inert.
    everything = {p.relative_to(context).as_posix() for p in context.rglob("*")}
    assert 0 < len(arrived) < len(everything) or lines == ["**"]


def test_the_dockerfiles_own_ignore_file_wins_where_the_kit_says(
    tmp_path: Path, buildkitd: BuildkitDaemon
) -> None:
    """``<Dockerfile>.dockerignore`` beside the Dockerfile, over the context's ``.dockerignore``."""
    context = make_context(tmp_path, "docs\n")
    dockerfile_dir = tmp_path / "dockerfile"
    dockerfile_dir.mkdir()
    (dockerfile_dir / "Dockerfile").write_text(DOCKERFILE)
    (dockerfile_dir / "Dockerfile.dockerignore").write_text("*.md\n!README.md\n")
    candidates = ignore_file_candidates(dockerfile_dir / "Dockerfile", context)
    chosen = next(Path(c) for c in candidates if Path(c).is_file())
    assert chosen == dockerfile_dir / "Dockerfile.dockerignore"
    expected = kept(DockerIgnore.parse(chosen.read_text()), context)
    assert sent(buildkitd, context, dockerfile_dir, tmp_path / "out") == expected
    assert {"docs/keep.md", "README.md"} <= expected and "CHANGES.md" not in expected

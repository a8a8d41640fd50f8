"""Tests for pipeline_kit.dockerfile.dockerignore: Docker's .dockerignore semantics."""

from __future__ import annotations

import random
from functools import cache

import pytest

from pipeline_kit.dockerfile.dockerignore import DockerIgnore, IgnorePattern
from pipeline_kit.errors import InputError


def _entries(text: str) -> list[tuple[str, bool, int]]:
    return [(p.text, p.exception, p.line) for p in DockerIgnore.parse(text).patterns]


# --------------------------------------------------------------------------- reading


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# comment\n\n   \nfoo\n", [("foo", False, 4)]),
        ("  # indented hash is a pattern", [("# indented hash is a pattern", False, 1)]),
        ("/foo", [("foo", False, 1)]),
        ("/a/file/here", [("a/file/here", False, 1)]),
        ("./a//b/", [("a/b", False, 1)]),
        ("a/./b/../c", [("a/c", False, 1)]),
        ("/../x", [("x", False, 1)]),
        ("../x", [("../x", False, 1)]),
        ("/", [("/", False, 1)]),
        ("!docs/keep.md", [("docs/keep.md", True, 1)]),
        ("! /inverted/abs/path", [("inverted/abs/path", True, 1)]),
        ("!!x", [("!x", True, 1)]),
        ("  foo  \t", [("foo", False, 1)]),
        ("./ b", [("b", False, 1)]),  # patternmatcher.New trims again after Clean
        ("a\r\nb\r\n", [("a", False, 1), ("b", False, 2)]),
        ("\ufeff# BOM then comment\nx", [("x", False, 2)]),
        ("x\n#!y\n!z", [("x", False, 1), ("z", True, 3)]),
        ("", []),
    ],
)
def test_parse_entries(text: str, expected: list[tuple[str, bool, int]]) -> None:
    assert _entries(text) == expected


@pytest.mark.parametrize(
    ("text", "truthy"),
    [("", False), ("# only a comment\n\n", False), ("x", True), ("!x", True)],
)
def test_bool(text: str, truthy: bool) -> None:
    assert bool(DockerIgnore.parse(text)) is truthy


def test_empty() -> None:
    empty = DockerIgnore.empty()
    assert not empty
    assert empty.patterns == ()
    assert not empty.excluded("anything")
    assert empty.matching_paths("a\nb") == []
    assert not empty.may_touch("")


def test_pattern_identity_ignores_compiled_state() -> None:
    parsed = DockerIgnore.parse("\n*.md").patterns[0]
    assert parsed == IgnorePattern("*.md", False, 2)
    assert hash(parsed) == hash(IgnorePattern("*.md", False, 2))
    assert repr(parsed) == "IgnorePattern(text='*.md', exception=False, line=2)"


@pytest.mark.parametrize(
    ("text", "source", "prefix", "shown"),
    [
        ("a\nb\n[abc", ".dockerignore", ".dockerignore:3:", "[abc"),
        ("[", ".dockerignore", ".dockerignore:1:", "["),
        ("ok\n  x[^bc  ", "ctx/.dockerignore", "ctx/.dockerignore:2:", "x[^bc"),
        ("[]a]", ".dockerignore", ".dockerignore:1:", "[]a]"),
        ("[-x]", ".dockerignore", ".dockerignore:1:", "[-x]"),
        ("[x-]", ".dockerignore", ".dockerignore:1:", "[x-]"),
        ("[a-b-c]", ".dockerignore", ".dockerignore:1:", "[a-b-c]"),
        ("foo\\", ".dockerignore", ".dockerignore:1:", "foo\\"),
        ("!", ".dockerignore", ".dockerignore:1:", "!"),
        ("x\n\n! /", "Dockerfile.dockerignore", "Dockerfile.dockerignore:3:", "! /"),
        # Accepted by filepath.Match but rejected by Go's regexp compiler.
        ("[Local-Only]/", ".dockerignore", ".dockerignore:1:", "[Local-Only]/"),
        ("[[:nope:]]", ".dockerignore", ".dockerignore:1:", "[[:nope:]]"),
        ("a\\q*", ".dockerignore", ".dockerignore:1:", "a\\q*"),
    ],
)
def test_bad_pattern_names_file_and_line(text: str, source: str, prefix: str, shown: str) -> None:
    with pytest.raises(InputError) as info:
        DockerIgnore.parse(text, source=source)
    err = info.value
    assert err.message.startswith(f"{prefix} bad pattern '{shown}': ")
    assert err.hint
    assert str(err).startswith(prefix)


def test_direct_construction_validates() -> None:
    with pytest.raises(InputError, match=r"^\.dockerignore:7: bad pattern '\[x'"):
        IgnorePattern("[x", False, 7)


# ------------------------------------------------------------------------- matching

# (pattern lines, path, excluded?)
EXCLUDED_CASES: list[tuple[list[str], str, bool]] = [
    # plain names and parent-directory matching
    (["docs"], "docs", True),
    (["docs"], "docs/a/b.txt", True),
    (["docs"], "documents", False),
    (["docs"], "src/docs", False),
    (["/docs"], "docs/x", True),
    (["docs/"], "docs/x", True),
    (["./a//b/"], "a/b/c", True),
    (["a/b"], "a", False),
    # '*' and '?' stay inside one component
    (["*"], "fileutils.go", True),
    (["*"], "dir/file", True),  # via the parent "dir"
    (["*.go"], "main.go", True),
    (["*.go"], "cmd/main.go", False),
    (["a*/b"], "abc/b", True),
    (["a*/b"], "a/c/b", False),
    (["a*b"], "a/b", False),
    (["a*b*c*d*e*/f"], "axbxcxdxexxx/f", True),
    (["a*b*c*d*e*/f"], "axbxcxdxe/xxx/f", False),
    (["abc?def"], "abcZdef", True),
    (["abc?def"], "abcdef", False),
    (["a?b"], "a/b", False),
    (["a?b"], "a\u263ab", True),
    (["a???b"], "a\u263ab", False),
    (["*/*.tmp"], "x/y.tmp", True),
    (["*/*.tmp"], "y.tmp", False),
    # '**' at the start, in the middle and at the end
    (["**"], "anything/at/all", True),
    (["**/*.pyc"], "m.pyc", True),
    (["**/*.pyc"], "a/b/m.pyc", True),
    (["**/*.pyc"], "a/b/m.pyc.txt", False),
    (["**/dir"], "dir", True),
    (["**/dir"], "x/dir/file", True),
    (["**/foo/bar"], "dir/dir2/foo/bar", True),
    (["**/.foo"], "bar.foo", False),
    (["**file"], "dir/dir/file", True),
    (["**file"], "dirfile", True),  # patternmatcher's suffix fast path
    (["a/**/b"], "a/b", True),
    (["a/**/b"], "a/x/y/b", True),
    (["a/**/b"], "a/x/yb", False),
    (["a**/*.txt"], "a/dir/dir/file.txt", True),
    (["**/dir2/*"], "dir/dir2/file", True),
    (["**/**/*.txt2"], "dir/dir/file.txt", False),
    (["dir/**"], "dir/dir2/file", True),
    (["dir/**"], "dir", False),
    (["abc/**"], "abc/def", True),
    (["a/*.txt**"], "a/file.txt", True),
    (["dist**"], "distro/x", True),
    # character classes, negation and Go regexp quirks inside them
    (["a[b-d]e"], "ace", True),
    (["a[b-d]e"], "aae", False),
    (["a[^b-d]e"], "aze", True),
    (["a[^b-d]e"], "ace", False),
    (["a[^x]b"], "a/b", True),  # a negated class also matches '/'
    (["ab[^c]"], "abc", False),
    (["[a-\u03b6]*"], "\u03b1", True),
    (["[\\]a]"], "]", True),
    (["[x\\-]"], "-", True),
    (["[[:digit:]]x"], "5x", True),
    (["[[:digit:]]x"], "ax", False),
    # escapes and regexp metacharacters taken literally
    (["a\\*b"], "a*b", True),
    (["a\\*b"], "ab", False),
    (["a\\\\"], "a\\", True),
    (["\\[x\\]"], "[x]", True),
    (["abc.def"], "abcZdef", False),
    (["abc.def"], "abc.def", True),
    ([".*"], ".foo", True),
    ([".*"], "foo", False),
    (["a(b)c/def"], "a(b)c/def", True),
    (["a.|)$(}+{bc"], "a.|)$(}+{bc", True),
    (["x+y*"], "x+yz", True),
    (["x+y*"], "xxyz", False),
    (["\\d*.log"], "7a.log", True),  # Go's regexp gives '\d' its regexp meaning
    # exceptions: the last matching line wins
    (["*.md", "!README.md"], "README.md", False),
    (["*.md", "!README.md"], "CHANGES.md", True),
    (["!README.md", "*.md"], "README.md", True),
    (["!fileutils.go", "*.go"], "fileutils.go", True),
    (["*.go", "!fileutils.go"], "fileutils.go", False),
    (["docs", "!docs/keep.md"], "docs/keep.md", False),
    (["docs", "!docs/keep.md"], "docs/drop.md", True),
    (["docs", "!docs/keep.md"], "docs/keep.md/inner", False),
    (["docs/*", "!docs/README.md"], "docs/README.md", False),
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    (["!keep"], "keep", False),
    # '.' (the context root) is never excluded
    (["*"], ".", False),
    (["**"], ".", False),
    (["."], ".", False),
    (["**"], "", False),
]


@pytest.mark.parametrize(("lines", "path", "expected"), EXCLUDED_CASES)
def test_excluded(lines: list[str], path: str, expected: bool) -> None:
    ignore = DockerIgnore.parse("\n".join(lines))
    assert ignore.excluded(path) is expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [("./docs/x", True), ("docs/", True), ("docs//x", True), ("x/../docs", True), ("./x", False)],
)
def test_excluded_cleans_the_path_like_go(path: str, expected: bool) -> None:
    assert DockerIgnore.parse("docs").excluded(path) is expected


# The context root is no path of a listing (``git ls-files``), which is what matching_paths scans.
LISTED_CASES = [case for case in EXCLUDED_CASES if case[1] not in ("", ".")]


@pytest.mark.parametrize(("lines", "path", "expected"), LISTED_CASES)
def test_matching_paths_agrees_with_excluded(lines: list[str], path: str, expected: bool) -> None:
    """A path is listed exactly when some line, taken alone as an exclusion, excludes it: every
    excluded path is, a kept one only where an exception line re-included it, and no other."""
    ignore = DockerIgnore.parse("\n".join(lines))
    found = ignore.matching_paths("\n".join(["zz-unrelated", path, "zz-other"]))
    hit = any(DockerIgnore.parse(line.removeprefix("!")).excluded(path) for line in lines)
    assert hit or not expected
    assert (path in found) is hit
    assert (path in found) is expected or any(line.startswith("!") for line in lines)


# ------------------------------------------------------------------------ may_touch


@pytest.mark.parametrize(
    ("lines", "dir_path", "expected"),
    [
        ([], "", False),
        ([], ".", False),
        ([], "src", False),
        (["x"], "", True),
        (["!x"], ".", True),
        (["docs"], "docs", True),
        (["docs"], "docs/sub", True),  # an ancestor matches
        (["docs/sub/x"], "docs", True),  # something below could match
        (["docs"], "src", False),
        (["docs"], "documents", False),
        (["*.md"], "src", False),
        (["*.md"], "notes.md", True),
        (["src/*/gen"], "src/a", True),
        (["src/*/gen"], "src/a/gen/deep", True),
        (["src/*/gen"], "lib/a", False),
        (["src/*/gen"], "src/a/other", False),
        (["s?c/[a-c]*"], "src/bz", True),
        (["s?c/[a-c]*"], "src/dz", False),
        (["**/*.pyc"], "src", True),
        (["**file"], "src", True),
        (["a/**/b"], "a", True),
        (["a/**/b"], "z", True),  # '**' anywhere: unsure, so True
        (["dist/**"], "dist", True),
        (["dist/**"], "dist/x", True),
        (["dist/**"], "distro", False),
        (["dist/**"], "src", False),
        (["dist**"], "distro", True),
        (["!src/keep"], "src", True),
        (["!src/keep"], "lib", False),
        (["a[^x]b"], "a", True),  # the class can match '/', so be conservative
        (["a\\/b"], "a", True),
        (["*.md", "!README.md", "build"], "build/out", True),
        (["*.md", "!README.md", "build"], "src/lib", False),
    ],
)
def test_may_touch(lines: list[str], dir_path: str, expected: bool) -> None:
    assert DockerIgnore.parse("\n".join(lines)).may_touch(dir_path) is expected


# ------------------------------------------------------- property-style cross-checks

_NAMES = [
    "a", "b", "ab", "abc", "ba", "x", "docs", "keep.md", "README.md", "CHANGES.md", "notes.md",
    "src", "lib", "__pycache__", "m.pyc", "file", "dirfile", ".git", ".foo", "bar.foo",
    "dist", "distro", "a.b", "a b", "ünï", "5x", "gen", "web", "util", "c.txt", "tmp",
]  # fmt: skip


def _generate_paths(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    paths = ["/".join(rng.choice(_NAMES) for _ in range(rng.randint(1, 5))) for _ in range(count)]
    return paths + _NAMES


def _tokens(pattern: str) -> tuple[tuple[str, str, bool], ...]:
    """Tokenise Docker's glob dialect (no escapes) for the reference matcher."""
    out: list[tuple[str, str, bool]] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
            out.append(("anything" if i >= len(pattern) else "dirs", "", False))
            continue
        if ch == "*":
            out.append(("star", "", False))
        elif ch == "?":
            out.append(("one", "", False))
        elif ch == "[":
            close = pattern.index("]", i + 2)
            body = pattern[i + 1 : close]
            negate = body.startswith("^")
            out.append(("class", body[1:] if negate else body, negate))
            i = close
        else:
            out.append(("lit", ch, False))
        i += 1
    return tuple(out)


def _in_class(body: str, negate: bool, ch: str) -> bool:
    hit = False
    j = 0
    while j < len(body):
        if j + 2 < len(body) and body[j + 1] == "-":
            hit = hit or body[j] <= ch <= body[j + 2]
            j += 3
        else:
            hit = hit or body[j] == ch
            j += 1
    return hit != negate


@cache
def _ref_full_match(pattern: str, text: str) -> bool:
    """Slow model of one pattern matching one whole path. Its ``**`` rules, the suffix fast path
    included, are Docker's as tests/integration/build/test_dockerignore_buildkit.py finds them
    in a real BuildKit build, not copied from the kit's code."""
    rest = pattern[2:]
    if pattern.startswith("**") and not any(c in rest for c in "*?[]\\"):
        # patternmatcher turns a leading '**' plus plain text into a suffix test.
        return text.endswith(rest) or (rest.startswith("/") and text == rest[1:])
    tokens = _tokens(pattern)

    @cache
    def go(t: int, s: int) -> bool:
        if t == len(tokens):
            return s == len(text)
        kind, arg, negate = tokens[t]
        if kind == "anything":
            return True
        if kind == "dirs":  # zero or more characters ending in '/'
            if go(t + 1, s):
                return True
            return any(text[k] == "/" and go(t + 1, k + 1) for k in range(s, len(text)))
        if kind == "star":
            k = s
            while True:
                if go(t + 1, k):
                    return True
                if k == len(text) or text[k] == "/":
                    return False
                k += 1
        if s == len(text):
            return False
        if kind == "one":
            return text[s] != "/" and go(t + 1, s + 1)
        if kind == "class":
            return _in_class(arg, negate, text[s]) and go(t + 1, s + 1)
        return text[s] == arg and go(t + 1, s + 1)

    return go(0, 0)


def _ref_hits(pattern: str, path: str) -> bool:
    parts = path.split("/")
    return any(_ref_full_match(pattern, "/".join(parts[:n])) for n in range(1, len(parts) + 1))


def _ref_excluded(ignore: DockerIgnore, path: str) -> bool:
    matched = False
    for pattern in ignore.patterns:
        if _ref_hits(pattern.text, path):
            matched = not pattern.exception
    return matched


PATTERN_SETS: list[list[str]] = [
    ["*.md", "!README.md", "docs", "!docs/keep.md"],
    ["**/__pycache__", "**/*.pyc", "a/**/b", "!a/x/b"],
    ["**", "!docs/**", "docs/*.md"],
    ["[ab]*", "!?", "*/[^a]b*/c", "**file"],
    ["a**", "!ab/**", "x/**", "**/.git", "?/?/?", "ab*c/**/d"],
    ["a/*/*", "!a/b/*", "docs/**/keep.md", "**/x.md", "dist**", "**.md"],
    ["[0-9]*", "a[^.]b", "util/*/web", "!util/a/web", "ünï/*"],
    ["a/*/web", "!a/b/web", "[ab]/c*", "dist/**", "docs", "x?/gen", "distro**"],
]


@pytest.mark.parametrize("lines", PATTERN_SETS, ids=lambda lines: " ".join(lines))
def test_matching_paths_is_exact_and_covers_excluded(lines: list[str]) -> None:
    ignore = DockerIgnore.parse("\n".join(lines))
    paths = _generate_paths(3000, seed=len(lines))
    found = ignore.matching_paths("\n".join(paths))

    assert found == [p for p in paths if any(_ref_hits(q.text, p) for q in ignore.patterns)]
    assert set(found) >= {p for p in paths if ignore.excluded(p)}
    assert [ignore.excluded(p) for p in paths] == [_ref_excluded(ignore, p) for p in paths]


@pytest.mark.parametrize("lines", PATTERN_SETS, ids=lambda lines: " ".join(lines))
def test_may_touch_false_means_nothing_below_matches(lines: list[str]) -> None:
    ignore = DockerIgnore.parse("\n".join(lines))
    paths = _generate_paths(1500, seed=7)
    found = set(ignore.matching_paths("\n".join(paths)))
    dirs = {"/".join(p.split("/")[:n]) for p in paths for n in range(1, p.count("/") + 1)}
    for directory in dirs:
        if ignore.may_touch(directory):
            continue
        inside = [p for p in paths if p == directory or p.startswith(directory + "/")]
        assert not found.intersection(inside), directory


def test_matching_paths_keeps_order_and_duplicates() -> None:
    ignore = DockerIgnore.parse("b\n!a")
    assert ignore.matching_paths("a\nb/x\nc\nb\na/y") == ["a", "b/x", "b", "a/y"]
    assert ignore.matching_paths("") == []

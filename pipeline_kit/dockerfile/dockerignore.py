"""Docker's ``.dockerignore`` semantics, reproduced exactly.

Change detection keys build inputs by what Docker will actually send in the
build context, so "is this path ignored?" must give the answer BuildKit gives,
down to its quirks: ``filepath.Clean`` of every pattern, ``**`` crossing
directories, a pattern also matching every parent directory of a path, the last
matching line winning, and the fast paths in ``moby/patternmatcher`` that make
``**foo`` a plain suffix test.  Patterns are compiled the way
``moby/patternmatcher`` compiles them (into a Go regular expression) and that
expression is then translated to Python's ``re`` dialect, because the two
dialects disagree on details such as ``$``, ``\\d`` and POSIX classes.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import PurePath

from pipeline_kit.errors import InputError

__all__ = ["DockerIgnore", "IgnorePattern", "ignore_file_candidates"]

_MAX_RUNE = 0x10FFFF
_NL = 0x0A
_SLASH = 0x2F

# Go's strings.TrimSpace uses unicode.IsSpace, which is narrower than str.strip()
# (str.strip() also drops \x1c-\x1f).
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
_GO_SPACE += "\u2028\u2029\u202f\u205f\u3000"

# Characters patternmatcher escapes before handing the pattern to Go's regexp.
_REGEX_LITERALS = frozenset(".+()|{}$")

Ranges = list[tuple[int, int]]

_PERL_CLASSES: dict[str, Ranges] = {
    "d": [(0x30, 0x39)],
    "s": [(0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)],
    "w": [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)],
}

_POSIX_CLASSES: dict[str, Ranges] = {
    "alnum": [(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)],
    "alpha": [(0x41, 0x5A), (0x61, 0x7A)],
    "ascii": [(0x00, 0x7F)],
    "blank": [(0x09, 0x09), (0x20, 0x20)],
    "cntrl": [(0x00, 0x1F), (0x7F, 0x7F)],
    "digit": [(0x30, 0x39)],
    "graph": [(0x21, 0x7E)],
    "lower": [(0x61, 0x7A)],
    "print": [(0x20, 0x7E)],
    "punct": [(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)],
    "space": [(0x09, 0x0D), (0x20, 0x20)],
    "upper": [(0x41, 0x5A)],
    "word": [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)],
    "xdigit": [(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
}

_SIMPLE_ESCAPES = {"a": 0x07, "f": 0x0C, "n": 0x0A, "r": 0x0D, "t": 0x09, "v": 0x0B}

_HINT_CLASS = (
    "Close every '[' with ']', do not start a class or a range end with '-' or ']', "
    "or write a literal '[' as '\\['."
)
_HINT_REGEX = (
    "Docker turns each pattern into a Go regular expression and fails the build on this "
    "one; write class ranges low-to-high and escape only punctuation with '\\'."
)


class _PatternError(Exception):
    """A pattern Docker rejects; carries the reason and how to fix it."""

    def __init__(self, reason: str, hint: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


def _bad_pattern(source: str, line: int, shown: str, err: _PatternError) -> InputError:
    return InputError(f"{source}:{line}: bad pattern '{shown}': {err.reason}.", hint=err.hint)


# --------------------------------------------------------------------------- reading


def _go_trim(text: str) -> str:
    return text.strip(_GO_SPACE)


def _go_clean(path: str) -> str:
    """Go's ``filepath.Clean`` on a Unix host (``os.path.normpath`` keeps ``//a``)."""
    if not path:
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for comp in path.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(comp)
    out = ("/" if rooted else "") + "/".join(parts)
    return out or "."


def _read_entry(raw: str) -> str | None:
    """One line as ``ignorefile.ReadAll`` returns it, or None when it yields nothing."""
    # Comments are recognised before trimming: "  # x" is a pattern, not a comment.
    if raw.startswith("#"):
        return None
    pattern = _go_trim(raw)
    if not pattern:
        return None
    invert = pattern[0] == "!"
    if invert:
        pattern = _go_trim(pattern[1:])
    if pattern:
        pattern = _go_clean(pattern)
        if len(pattern) > 1 and pattern[0] == "/":
            pattern = pattern[1:]
    return "!" + pattern if invert else pattern


def _matcher_entry(entry: str) -> tuple[str, bool] | None:
    """What ``patternmatcher.New`` makes of a ReadAll entry: (text, exception)."""
    # New trims and cleans again; for "!/" that collapses to the illegal "!".
    entry = _go_trim(entry)
    if not entry:
        return None
    entry = _go_clean(entry)
    if entry[0] != "!":
        return entry, False
    if len(entry) == 1:
        raise _PatternError(
            "an exception needs a pattern after '!'",
            "Write the path to re-include after the '!', or delete the line.",
        )
    return entry[1:], True


# ------------------------------------------------------- filepath.Match syntax check


def _scan_chunk(pattern: str) -> tuple[str, str]:
    """Go's filepath scanChunk: split off the next star-free chunk, stars dropped."""
    pattern = pattern.lstrip("*")
    in_range = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 < len(pattern):
                i += 1
        elif ch == "[":
            in_range = True
        elif ch == "]":
            in_range = False
        elif ch == "*" and not in_range:
            break
        i += 1
    return pattern[:i], pattern[i:]


def _class_char(chunk: str) -> str:
    """Go's filepath getEsc, validating only; returns what follows the character."""
    if not chunk:
        raise _PatternError("unterminated character class", _HINT_CLASS)
    if chunk[0] in "-]":
        raise _PatternError(f"unexpected '{chunk[0]}' in a character class", _HINT_CLASS)
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise _PatternError("unterminated character class", _HINT_CLASS)
    rest = chunk[1:]
    if not rest:
        raise _PatternError("unterminated character class", _HINT_CLASS)
    return rest


def _check_chunk(chunk: str) -> None:
    while chunk:
        ch = chunk[0]
        if ch == "[":
            chunk = chunk[1:]
            if chunk.startswith("^"):
                chunk = chunk[1:]
            n_ranges = 0
            while True:
                if chunk.startswith("]") and n_ranges > 0:
                    chunk = chunk[1:]
                    break
                chunk = _class_char(chunk)
                if chunk[0] == "-":
                    chunk = _class_char(chunk[1:])
                n_ranges += 1
        elif ch == "\\":
            if len(chunk) == 1:
                raise _PatternError(
                    "trailing backslash", "Remove the final '\\' or write it as '\\\\'."
                )
            chunk = chunk[2:]
        else:
            chunk = chunk[1:]


def _check_match_syntax(pattern: str) -> None:
    """Reject what Go's ``filepath.Match`` rejects (patternmatcher calls it up front)."""
    rest = pattern
    while rest:
        chunk, rest = _scan_chunk(rest)
        _check_chunk(chunk)


# ------------------------------------------------------ patternmatcher's compile step


class _Kind(enum.Enum):
    EXACT = "exact"
    PREFIX = "prefix"
    SUFFIX = "suffix"
    REGEXP = "regexp"


def _go_regex(pattern: str) -> tuple[_Kind, str]:
    """The match kind and Go regular expression patternmatcher derives from a pattern."""
    out = ["^"]
    kind = _Kind.EXACT
    n = len(pattern)
    pos = 0
    step = 0
    while pos < n:
        ch = pattern[pos]
        pos += 1
        if ch == "*":
            if pos < n and pattern[pos] == "*":
                pos += 1
                if pos < n and pattern[pos] == "/":
                    pos += 1
                if pos >= n:
                    if kind is _Kind.EXACT:
                        kind = _Kind.PREFIX
                    else:
                        out.append(".*")
                        kind = _Kind.REGEXP
                else:
                    out.append("(.*/)?")
                    kind = _Kind.REGEXP
                # A leading "**" wins over whatever was decided above; that is how
                # "**foo" ends up as a plain suffix test in Docker.
                if step == 0:
                    kind = _Kind.SUFFIX
            else:
                out.append("[^/]*")
                kind = _Kind.REGEXP
        elif ch == "?":
            out.append("[^/]")
            kind = _Kind.REGEXP
        elif ch in _REGEX_LITERALS:
            out.append("\\" + ch)
        elif ch == "\\":
            if pos < n:
                out.append("\\" + pattern[pos])
                pos += 1
                kind = _Kind.REGEXP
            else:
                out.append("\\")
        elif ch in "[]":
            out.append(ch)
            kind = _Kind.REGEXP
        else:
            out.append(ch)
        step += 1
    if kind is _Kind.REGEXP:
        out.append("$")
    return kind, "".join(out)


# -------------------------------------------------- Go regexp -> Python re translation


def _normalize(ranges: Ranges) -> Ranges:
    merged: Ranges = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


def _complement(ranges: Ranges) -> Ranges:
    out: Ranges = []
    nxt = 0
    for lo, hi in _normalize(ranges):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= _MAX_RUNE:
        out.append((nxt, _MAX_RUNE))
    return out


def _contains(ranges: Ranges, cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in ranges)


def _esc_cp(cp: int) -> str:
    if cp < 0x80 and chr(cp).isalnum():
        return chr(cp)
    if cp <= 0xFF:
        return f"\\x{cp:02x}"
    if cp <= 0xFFFF:
        return f"\\u{cp:04x}"
    return f"\\U{cp:08x}"


def _class_body(ranges: Ranges) -> str:
    return "".join(_esc_cp(lo) + (f"-{_esc_cp(hi)}" if hi > lo else "") for lo, hi in ranges)


def _emit_class(ranges: Ranges) -> str:
    ranges = _normalize(ranges)
    if not ranges:
        return "(?!)"
    inverse = _complement(ranges)
    if not inverse:
        return "[\\x00-\\U0010ffff]"
    # The negated spelling keeps the common "[^/]" short and cheap.
    if len(inverse) < len(ranges) or (ranges[0][0] == 0 and ranges[-1][1] == _MAX_RUNE):
        return f"[^{_class_body(inverse)}]"
    return f"[{_class_body(ranges)}]"


@dataclass
class _Atom:
    frag: str
    kind: str = "char"  # "char" (consumes), "sep" (a literal '/' separator), "assert"
    slash: bool = False  # could consume a '/' other than as a separator
    quantified: bool = False


@dataclass
class _Translation:
    regex: str
    components: list[str] | None  # per-'/' component regexes, None when unsafe to split


class _Translator:
    """Parses the Go regexp patternmatcher built and emits the equivalent ``re`` text.

    ``multiline`` emits the variant used inside the combined scan: anchors refer to
    one line and no class may consume the newline that separates paths.  There,
    Go's end of text becomes "a '/' or the end of the line follows", because
    the text being matched may be any parent directory of the path on the line.
    """

    def __init__(self, src: str, *, multiline: bool) -> None:
        self.src = src
        self.pos = 0
        self.multiline = multiline
        self.after_end = False
        self.unsafe = False

    def run(self) -> _Translation:
        atoms = self._sequence(depth=0)
        regex = "".join(a.frag for a in atoms)
        return _Translation(regex, None if self._unsplittable(atoms) else self._split(atoms))

    def _unsplittable(self, atoms: list[_Atom]) -> bool:
        if self.unsafe:
            return True
        for index, atom in enumerate(atoms):
            if atom.slash or (atom.kind == "sep" and atom.quantified):
                return True
            if atom.kind == "assert":
                first = index == 0 and atom.frag == "\\A"
                last = index == len(atoms) - 1 and atom.frag == "\\Z"
                if not (first or last):
                    return True
        return False

    @staticmethod
    def _split(atoms: list[_Atom]) -> list[str]:
        comps: list[str] = [""]
        for atom in atoms:
            if atom.kind == "sep":
                comps.append("")
            else:
                comps[-1] += atom.frag
        return comps

    # -- emission helpers

    def _consuming(self, frag: str, *, slash: bool, kind: str = "char") -> _Atom:
        # Nothing can follow Go's end of text; in the multiline form the end is only
        # a lookahead, so later consuming atoms must be made to fail explicitly.
        if self.multiline and self.after_end:
            return _Atom("(?!)", slash=False)
        return _Atom(frag, kind=kind, slash=slash)

    def _class_atom(self, ranges: Ranges) -> _Atom:
        slash = _contains(ranges, _SLASH)
        if self.multiline:
            # The newline separates paths in the scanned text, so it must never match.
            ranges = _complement([*_complement(ranges), (_NL, _NL)])
        return self._consuming(_emit_class(ranges), slash=slash)

    def _literal(self, cp: int, *, separator: bool = False) -> _Atom:
        if separator:
            return self._consuming("/", slash=False, kind="sep")
        if self.multiline and cp == _NL:
            return _Atom("(?!)")
        return self._consuming(re.escape(chr(cp)), slash=cp == _SLASH)

    def _begin(self) -> _Atom:
        return _Atom("^" if self.multiline else "\\A", kind="assert")

    def _end(self) -> _Atom:
        if self.multiline:
            self.after_end = True
            return _Atom("(?=/|$)", kind="assert")
        return _Atom("\\Z", kind="assert")

    # -- parsing

    def _error(self, what: str) -> _PatternError:
        return _PatternError(what, _HINT_REGEX)

    def _sequence(self, depth: int) -> list[_Atom]:
        atoms: list[_Atom] = []
        src = self.src
        while self.pos < len(src):
            ch = src[self.pos]
            if ch == ")":
                if depth == 0:
                    raise self._error("unexpected ')' in the regular expression")
                return atoms
            if ch == "(":
                self.pos += 1
                inner = self._sequence(depth + 1)
                if self.pos >= len(src):
                    raise self._error("missing ')' in the regular expression")
                self.pos += 1
                slash = any(a.slash or a.kind == "sep" for a in inner)
                atoms.append(_Atom("(?:" + "".join(a.frag for a in inner) + ")", slash=slash))
            elif ch in "*?":
                self.pos += 1
                if not atoms or atoms[-1].quantified:
                    raise self._error("misplaced repetition operator")
                lazy = ""
                if self.pos < len(src) and src[self.pos] == "?":
                    lazy = "?"
                    self.pos += 1
                atom = atoms[-1]
                atom.frag = f"(?:{atom.frag}){ch}{lazy}"
                atom.quantified = True
            elif ch == "^":
                self.pos += 1
                atoms.append(self._begin())
            elif ch == "$":
                self.pos += 1
                atoms.append(self._end())
            elif ch == ".":
                self.pos += 1
                atoms.append(self._class_atom(_complement([(_NL, _NL)])))
            elif ch == "[":
                atoms.append(self._class_atom(self._char_class()))
            elif ch == "\\":
                atoms.extend(self._escape())
            else:
                self.pos += 1
                atoms.append(self._literal(ord(ch), separator=ch == "/" and depth == 0))
        if depth:
            raise self._error("missing ')' in the regular expression")
        return atoms

    def _escape(self) -> list[_Atom]:
        src = self.src
        if self.pos + 1 >= len(src):
            raise self._error("trailing backslash in the regular expression")
        nxt = src[self.pos + 1]
        if nxt in "AzbB":
            self.pos += 2
            if nxt == "A":
                return [self._begin()]
            if nxt == "z":
                return [self._end()]
            return [_Atom("\\" + nxt, kind="assert")]
        if nxt == "C":
            raise self._error("invalid escape '\\C'")
        if nxt == "Q":
            # Go quotes everything up to "\E" (or the end, swallowing the final '$').
            self.unsafe = True
            end = src.find("\\E", self.pos + 2)
            stop = len(src) if end < 0 else end
            text = src[self.pos + 2 : stop]
            self.pos = len(src) if end < 0 else end + 2
            return [self._literal(ord(c)) for c in text]
        if nxt in "pP":
            raise _PatternError(
                f"the Unicode class escape '\\{nxt}' is not supported by pipeline-kit",
                "List the characters in a [...] class instead.",
            )
        perl = self._perl_class()
        if perl is not None:
            return [self._class_atom(perl)]
        return [self._literal(self._escaped_char())]

    def _perl_class(self) -> Ranges | None:
        letter = self.src[self.pos + 1] if self.pos + 1 < len(self.src) else ""
        if letter.lower() not in _PERL_CLASSES or not letter.isascii():
            return None
        self.pos += 2
        ranges = _PERL_CLASSES[letter.lower()]
        return _complement(ranges) if letter.isupper() else list(ranges)

    def _escaped_char(self) -> int:
        """Go's parseEscape; ``self.pos`` is at the backslash."""
        src = self.src
        if self.pos + 1 >= len(src):
            raise self._error("trailing backslash in the regular expression")
        ch = src[self.pos + 1]
        self.pos += 2
        if ch < "\x80" and not ch.isalnum():
            return ord(ch)
        if ch in "01234567":
            if ch != "0" and not (self.pos < len(src) and src[self.pos] in "01234567"):
                raise self._error(f"invalid escape '\\{ch}' (backreferences are not supported)")
            value = int(ch)
            for _ in range(2):
                if self.pos < len(src) and src[self.pos] in "01234567":
                    value = value * 8 + int(src[self.pos])
                    self.pos += 1
                else:
                    break
            return value
        if ch == "x":
            digits = src[self.pos : self.pos + 2]
            if len(digits) == 2 and all(c in "0123456789abcdefABCDEF" for c in digits):
                self.pos += 2
                return int(digits, 16)
            raise self._error("invalid escape '\\x' (two hex digits must follow)")
        if ch in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[ch]
        raise self._error(f"invalid escape '\\{ch}'")

    def _char_class(self) -> Ranges:
        """Go's parseClass; ``self.pos`` is at the '['."""
        src = self.src
        self.pos += 1
        negate = False
        if self.pos < len(src) and src[self.pos] == "^":
            negate = True
            self.pos += 1
        ranges: Ranges = []
        first = True
        while first or self.pos >= len(src) or src[self.pos] != "]":
            if self.pos >= len(src):
                raise self._error("missing ']' in the regular expression")
            first = False
            if src.startswith("[:", self.pos) and len(src) - self.pos > 2:
                close = src.find(":]", self.pos + 2)
                if close >= 0:
                    name = src[self.pos + 2 : close]
                    negated_name = name.startswith("^")
                    group = _POSIX_CLASSES.get(name[1:] if negated_name else name)
                    if group is None:
                        raise self._error(f"invalid character class '[:{name}:]'")
                    ranges.extend(_complement(group) if negated_name else group)
                    self.pos = close + 2
                    continue
            if src[self.pos] == "\\" and src[self.pos + 1 : self.pos + 2] in ("p", "P"):
                raise _PatternError(
                    "Unicode class escapes are not supported by pipeline-kit",
                    "List the characters in the [...] class instead.",
                )
            if src[self.pos] == "\\":
                perl = self._perl_class()
                if perl is not None:
                    ranges.extend(perl)
                    continue
            lo = self._class_rune()
            hi = lo
            if src[self.pos : self.pos + 1] == "-" and src[self.pos + 1 : self.pos + 2] not in (
                "",
                "]",
            ):
                self.pos += 1
                hi = self._class_rune()
                if hi < lo:
                    raise self._error(
                        f"invalid character class range '{chr(lo)}-{chr(hi)}' (reversed)"
                    )
            ranges.append((lo, hi))
        self.pos += 1
        return _complement(ranges) if negate else ranges

    def _class_rune(self) -> int:
        if self.pos >= len(self.src):
            raise self._error("missing ']' in the regular expression")
        if self.src[self.pos] == "\\":
            return self._escaped_char()
        cp = ord(self.src[self.pos])
        self.pos += 1
        return cp


# ------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class _Compiled:
    kind: _Kind
    literal: str  # the exact text, prefix or suffix for the non-regexp kinds
    regex: re.Pattern[str] | None
    scan: str  # this pattern's alternative in the combined multiline scan
    components: tuple[re.Pattern[str], ...] | None

    def matches(self, path: str) -> bool:
        if self.kind is _Kind.EXACT:
            return path == self.literal
        if self.kind is _Kind.PREFIX:
            return path.startswith(self.literal)
        if self.kind is _Kind.SUFFIX:
            suffix = self.literal
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        assert self.regex is not None
        return self.regex.match(path) is not None

    def may_touch(self, dir_path: str, dir_parts: list[str]) -> bool:
        if self.kind is _Kind.EXACT:
            text = self.literal
            return (
                text == dir_path
                or dir_path.startswith(text + "/")
                or text.startswith(dir_path + "/")
            )
        if self.kind is _Kind.PREFIX:
            below = dir_path + "/"
            return below.startswith(self.literal) or self.literal.startswith(below)
        if self.kind is _Kind.SUFFIX or self.components is None:
            return True
        for index, comp in enumerate(self.components):
            if index >= len(dir_parts):
                return True
            if comp.fullmatch(dir_parts[index]) is None:
                return False
        return True


_FLAGS = re.ASCII  # Go's \b and \B only know ASCII word characters.


def _compile(text: str) -> _Compiled:
    _check_match_syntax(text)
    kind, go_regex = _go_regex(text)
    if kind is _Kind.EXACT:
        scan = re.escape(text) + "(?=/|$)"
        return _Compiled(kind, text, None, scan, None)
    if kind is _Kind.PREFIX:
        prefix = text[:-2]
        return _Compiled(kind, prefix, None, re.escape(prefix), None)
    if kind is _Kind.SUFFIX:
        suffix = text[2:]
        if suffix.startswith("/"):
            scan = "(?:[^\\n]*/)?" + re.escape(suffix[1:]) + "(?=/|$)"
        elif suffix:
            scan = "[^\\n]*" + re.escape(suffix) + "(?=/|$)"
        else:
            scan = ""
        return _Compiled(kind, suffix, None, scan, None)
    single = _Translator(go_regex, multiline=False).run()
    multi = _Translator(go_regex, multiline=True).run()
    try:
        regex = re.compile(single.regex, _FLAGS)
        re.compile(multi.regex, _FLAGS | re.MULTILINE)
        comps = (
            None
            if single.components is None
            else tuple(re.compile(c, _FLAGS) for c in single.components)
        )
    except re.error as exc:  # pragma: no cover - the translator should prevent this
        raise _PatternError(f"cannot be compiled ({exc})", _HINT_REGEX) from exc
    return _Compiled(kind, "", regex, multi.regex, comps)


@dataclass(frozen=True)
class IgnorePattern:
    """One effective line of a ``.dockerignore``."""

    text: str  # cleaned pattern without the leading '!'
    exception: bool  # True for '!' lines
    line: int  # 1-based line in the file
    _compiled: _Compiled | None = field(default=None, compare=False, repr=False, kw_only=True)

    def __post_init__(self) -> None:
        if self._compiled is None:
            try:
                compiled = _compile(self.text)
            except _PatternError as err:
                raise _bad_pattern(".dockerignore", self.line, self.text, err) from None
            object.__setattr__(self, "_compiled", compiled)

    @property
    def _matcher(self) -> _Compiled:
        assert self._compiled is not None
        return self._compiled

    def _hits(self, path: str) -> bool:
        """True when the pattern matches ``path`` or one of its parent directories."""
        matcher = self._matcher
        if matcher.matches(path):
            return True
        cut = path.find("/")
        while cut > 0:
            if matcher.matches(path[:cut]):
                return True
            cut = path.find("/", cut + 1)
        return False


def _needs_clean(path: str) -> bool:
    return (
        path.startswith(("/", "./", "../"))
        or path.endswith(("/", "/.", "/.."))
        or "//" in path
        or "/./" in path
        or "/../" in path
        or path == ".."
    )


@dataclass(frozen=True)
class DockerIgnore:
    """The patterns of one ``.dockerignore``, in file order."""

    patterns: tuple[IgnorePattern, ...]
    source: str = field(default=".dockerignore", compare=False)  # the file, for messages

    @classmethod
    def parse(cls, text: str, *, source: str = ".dockerignore") -> DockerIgnore:
        if text.startswith("\ufeff"):
            text = text[1:]
        patterns: list[IgnorePattern] = []
        for number, raw in enumerate(text.split("\n"), start=1):
            entry = _read_entry(raw)
            if entry is None:
                continue
            shown = _go_trim(raw)
            try:
                parsed = _matcher_entry(entry)
                if parsed is None:
                    continue
                compiled = _compile(parsed[0])
            except _PatternError as err:
                raise _bad_pattern(source, number, shown, err) from None
            patterns.append(IgnorePattern(parsed[0], parsed[1], number, _compiled=compiled))
        return cls(tuple(patterns), source)

    @classmethod
    def empty(cls) -> DockerIgnore:
        return cls(())

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def excluded(self, path: str) -> bool:
        """Whether Docker leaves ``path`` (slash-separated, context-relative) out."""
        if _needs_clean(path):
            path = _go_clean(path).lstrip("/")
        if path in ("", "."):
            return False
        matched = False
        for pattern in self.patterns:
            # Same short-cut as MatchesOrParentMatches: only a pattern that could flip
            # the current answer is evaluated, which leaves the last match winning.
            if pattern.exception != matched:
                continue
            if pattern._hits(path):
                matched = not pattern.exception
        return matched

    def excluding_line(self, path: str) -> int | None:
        """The line of the pattern that leaves ``path`` out (the last that matches it)."""
        if not self.excluded(path):
            return None
        if _needs_clean(path):
            path = _go_clean(path).lstrip("/")
        for pattern in reversed(self.patterns):
            if not pattern.exception and pattern._hits(path):
                return pattern.line
        return None  # pragma: no cover - excluded() found one

    def may_touch(self, dir_path: str) -> bool:
        """False only when no pattern can match ``dir_path``, an ancestor or a descendant."""
        if _needs_clean(dir_path):
            dir_path = _go_clean(dir_path).strip("/")
        if dir_path in ("", "."):
            return bool(self.patterns)
        parts = dir_path.split("/")
        return any(p._matcher.may_touch(dir_path, parts) for p in self.patterns)

    def matching_paths(self, joined: str) -> list[str]:
        """The ``\\n``-separated paths some pattern matches directly or via a parent.

        Every path left out is certainly not excluded, so callers only need to run
        ``excluded()`` on the result.  One combined regex scans the whole text so the
        cost stays in C even for tens of thousands of paths.
        """
        if not self.patterns or not joined:
            return []
        return [path for path in self._scan.findall(joined) if path]

    @cached_property
    def _scan(self) -> re.Pattern[str]:
        alternatives = "|".join(f"(?:{p._matcher.scan})" for p in self.patterns)
        return re.compile(f"^(?:{alternatives})[^\\n]*", _FLAGS | re.MULTILINE)


def ignore_file_candidates(dockerfile: PurePath, context: PurePath) -> tuple[PurePath, PurePath]:
    """Where BuildKit looks for the ignore file, in order: ``<Dockerfile>.dockerignore`` beside
    the Dockerfile, then ``.dockerignore`` at the context root."""
    return dockerfile.with_name(dockerfile.name + ".dockerignore"), context / ".dockerignore"

"""Just enough shell to read a RUN instruction: its simple commands and their words.

The rules ask questions like "does this RUN call apt-get install without
--no-install-recommends", not what the script computes, so a tokenizer that respects quotes
and splits at control operators is enough. Whatever it cannot read (an unclosed quote, Python
in a heredoc) stays inside a word instead of raising: a linter must not crash on a
Dockerfile the builder accepts.
"""

from __future__ import annotations

import posixpath
import shlex

from pipeline_kit.dockerfile.stages import Instruction, parse_mount

SHELLS = frozenset(("sh", "bash", "dash", "ash", "zsh"))
_CONTROL = frozenset(";|&\n()")
_BLANK = frozenset(" \t\r")
# Words that run the command after them; the rules look through them to the real program.
_WRAPPERS = frozenset(("sudo", "env", "exec", "command", "time", "nice", "nohup", "xargs"))
_WRAPPER_VALUE_OPTIONS = frozenset(("-u", "-g", "-n", "-C", "-h", "-p", "-U"))


def run_script(ins: Instruction) -> str:
    """The text a RUN executes: its command line, heredoc bodies included."""
    args = list(ins.args)
    if ins.json_form:
        if len(args) >= 3 and posixpath.basename(args[0]) in SHELLS and args[1] == "-c":
            return args[2]
        return shlex.join(args)
    return "\n".join([" ".join(args), *ins.heredocs])


def run_mounts(ins: Instruction) -> list[dict[str, str]]:
    return [parse_mount(spec) for spec in ins.flag_values("mount")]


def commands(script: str) -> list[list[str]]:
    """The simple commands of ``script``, each as its words with quotes removed."""
    reader = _Reader(script)
    reader.read()
    return [words for words in reader.commands if words]


def simple(words: list[str]) -> list[str]:
    """``words`` without leading ``VAR=value`` assignments and wrappers such as sudo or env."""
    i = 0
    while i < len(words):
        word = words[i]
        if _is_assignment(word):
            i += 1
        elif word in _WRAPPERS:
            i += 1
            while i < len(words) and words[i].startswith("-"):
                i += 2 if words[i] in _WRAPPER_VALUE_OPTIONS else 1
        else:
            break
    return words[i:]


def program(words: list[str]) -> str:
    return posixpath.basename(words[0]) if words else ""


def operands(words: list[str], value_options: frozenset[str] = frozenset()) -> list[str]:
    """The words after the program that are not options (nor values of ``value_options``)."""
    out: list[str] = []
    i = 1
    while i < len(words):
        word = words[i]
        if word in value_options:
            i += 2
            continue
        if not word.startswith("-") or word == "-":
            out.append(word)
        i += 1
    return out


def _is_assignment(word: str) -> bool:
    name, eq, _ = word.partition("=")
    return bool(eq) and name.isidentifier()


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.commands: list[list[str]] = [[]]
        self.word: list[str] = []
        self.in_word = False

    def read(self) -> None:
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if ch == "\\":
                self._escape()
            elif ch == "'":
                self._until("'")
            elif ch == '"':
                self._double_quoted()
            elif ch == "`":
                self._until("`", keep=True)
            elif ch == "$" and text.startswith("$(", self.pos):
                self._substitution()
            elif ch in _BLANK:
                self._end_word()
                self.pos += 1
            elif ch == "#" and not self.in_word:
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            elif ch in _CONTROL and not self._redirection(ch):
                self._end_word()
                self.commands.append([])
                self.pos += 1
            else:
                self._take(ch)
                self.pos += 1
        self._end_word()

    def _take(self, text: str) -> None:
        self.word.append(text)
        self.in_word = True

    def _end_word(self) -> None:
        if self.in_word:
            self.commands[-1].append("".join(self.word))
        self.word = []
        self.in_word = False

    def _redirection(self, ch: str) -> bool:
        """``2>&1`` and ``&>`` are redirections, not the ``&`` control operator."""
        if ch != "&":
            return False
        after = self.text[self.pos + 1 : self.pos + 2]
        return (bool(self.word) and self.word[-1] in "<>") or after == ">"

    def _escape(self) -> None:
        nxt = self.text[self.pos + 1 : self.pos + 2]
        if nxt != "\n":  # a line continuation joins words; anything else is a literal
            self._take(nxt)
        self.pos += 2

    def _until(self, quote: str, *, keep: bool = False) -> None:
        end = self.text.find(quote, self.pos + 1)
        end = len(self.text) if end < 0 else end
        body = self.text[self.pos + 1 : end]
        self._take(f"{quote}{body}{quote}" if keep else body)
        self.pos = end + 1

    def _double_quoted(self) -> None:
        text = self.text
        i = self.pos + 1
        out: list[str] = []
        while i < len(text) and text[i] != '"':
            if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in '"\\$`\n':
                if text[i + 1] != "\n":
                    out.append(text[i + 1])
                i += 2
            else:
                out.append(text[i])
                i += 1
        self._take("".join(out))
        self.pos = i + 1

    def _substitution(self) -> None:
        depth = 0
        start = self.pos
        i = self.pos + 1
        while i < len(self.text):
            if self.text[i] == "(":
                depth += 1
            elif self.text[i] == ")":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        self._take(self.text[start : i + 1])
        self.pos = i + 1

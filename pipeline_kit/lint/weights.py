"""PK001 and PK002: model weights belong beside the image, mounted at run time, not in it.

Weights baked into a layer make every image as large as the model, re-upload gigabytes on a
one-line code change, and stall autoscaling on the image pull.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from pipeline_kit.dockerfile.stages import ContextSource
from pipeline_kit.lint.context_files import ContextFile
from pipeline_kit.lint.model import Hit, LintInput
from pipeline_kit.lint.shell import commands, operands, program, run_script, simple

WEIGHT_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".gguf",
    ".ckpt",
    ".onnx",
    ".h5",
    ".msgpack",
)
WEIGHT_HOSTS = ("huggingface.co", "hf.co")
_PACKAGE_DIRS = frozenset(("site-packages", "dist-packages"))
MAX_EXAMPLES = 3
MIB = 1024 * 1024
_PYTHON_FETCH = re.compile(r"\bfrom_pretrained\s*\(|\bsnapshot_download\b|\bhf_hub_download\b")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def is_weights_name(path: str) -> bool:
    lowered = path.lower()
    if not lowered.endswith(WEIGHT_SUFFIXES):
        return False
    # In an installed environment a .pth file is a Python path hook, not a PyTorch checkpoint.
    parts = lowered.split("/")
    return not (lowered.endswith(".pth") and _PACKAGE_DIRS.intersection(parts))


def weights_in_image(lint: LintInput) -> Iterator[Hit]:
    limit = lint.max_file_mb * MIB
    for stage in lint.stages:
        by_line: dict[int, list[ContextSource]] = {}
        for source in stage.sources:
            by_line.setdefault(source.line, []).append(source)
        for line, sources in by_line.items():
            via = sources[0].via
            named = [
                s.path
                for s in sources
                if s.via != "RUN --mount" and is_weights_name(posixpath.basename(s.path))
            ]
            heavy: dict[str, ContextFile] = {}
            for source in sources:
                for found in lint.files.taken(source.path).files:
                    if is_weights_name(found.path) or found.size > limit:
                        heavy[found.path] = found
            if heavy:
                yield Hit(lint.dockerfile, line, _taken_message(via, heavy, lint.max_file_mb))
            elif named:
                shown = ", ".join(f"'{p}'" for p in named)
                yield Hit(
                    lint.dockerfile,
                    line,
                    f"{via} names model weights ({shown}), which would be built into the image.",
                )


def _taken_message(via: str, heavy: dict[str, ContextFile], max_file_mb: float) -> str:
    files = sorted(heavy.values(), key=lambda f: (-f.size, f.path))
    examples = ", ".join(f.path for f in files[:MAX_EXAMPLES])
    if len(files) > MAX_EXAMPLES:
        examples += f" and {len(files) - MAX_EXAMPLES} more"
    total = human_size(sum(f.size for f in files))
    count = f"{len(files)} file{'s' if len(files) != 1 else ''}, {total}"
    if via == "RUN --mount":
        what = "sends model weights to the builder"
    else:
        what = "puts model weights in the image"
    message = f"{via} {what}: {examples} ({count})."
    if any(not is_weights_name(f.path) for f in files):
        message += f" Files over {max_file_mb:g} MiB count as weights."
    return message


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def weights_downloaded(lint: LintInput) -> Iterator[Hit]:
    for stage in lint.stages:
        for ins in stage.instructions:
            if ins.cmd != "RUN":
                continue
            script = run_script(ins)
            fetches = [m.group().rstrip("( ") for m in _PYTHON_FETCH.finditer(script)]
            for words in commands(script):
                fetch = _fetching_command(simple(words))
                if fetch:
                    fetches.append(fetch)
            if fetches:
                shown = ", ".join(dict.fromkeys(fetches))
                yield Hit(
                    lint.dockerfile,
                    ins.line,
                    f"RUN downloads model weights while the image builds ({shown}), so they "
                    "land in a layer and are fetched again on every rebuild of it.",
                )


def _fetching_command(words: list[str]) -> str | None:
    name = program(words)
    args = operands(words)
    if name == "huggingface-cli" and args[:1] == ["download"]:
        return "huggingface-cli download"
    if name == "hf" and args[:1] == ["download"]:
        return "hf download"
    if name == "git" and args[:2] == ["lfs", "pull"]:
        return "git lfs pull"
    if name == "git" and args[:1] == ["clone"]:
        for url in args[1:]:
            if _is_weights_url(url, hosts_only=True):
                return f"git clone {url}"
    if name in ("curl", "wget"):
        for word in words[1:]:
            if _is_weights_url(word, hosts_only=False):
                return f"{name} {word}"
    return None


def _is_weights_url(word: str, *, hosts_only: bool) -> bool:
    if not _URL.match(word):
        return False
    parts = urlsplit(word)
    host = (parts.hostname or "").lower()
    if any(host == h or host.endswith("." + h) for h in WEIGHT_HOSTS):
        return True
    return not hosts_only and is_weights_name(parts.path)

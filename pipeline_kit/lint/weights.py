"""PK001 and PK002: model weights belong beside the image, mounted at run time, not in it.

Weights baked into a layer make every image as large as the model, re-upload gigabytes on a
one-line code change, and stall autoscaling on the image pull.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from pipeline_kit.dockerfile.context_tree import join
from pipeline_kit.dockerfile.expand import expand
from pipeline_kit.dockerfile.stages import ContextSource, Instruction, Stage, clean_context_path
from pipeline_kit.errors import InputError
from pipeline_kit.lint.context_files import ContextFile
from pipeline_kit.lint.model import Hit, LintInput
from pipeline_kit.lint.shell import commands, operands, program, run_mounts, run_script, simple

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
# A file named like weights counts from this size. Smaller ones are tables a library ships
# beside its code (a speaker table, normalisation statistics, a test fixture), not a model a
# server loads: flagging them makes maintainers turn the rule off.
WEIGHTS_MIN_BYTES = 5 * MIB
# Python that fetches a model when it runs: the Hugging Face hub, sentence-transformers, vLLM.
_PYTHON_FETCH = re.compile(
    r"\bfrom_pretrained\s*\(|\bsnapshot_download\b|\bhf_hub_download\b"
    r"|\bSentenceTransformer\s*\(|\bCrossEncoder\s*\("
)
_VLLM_LOAD = re.compile(r"\bLLM\s*\(")  # vllm.LLM(model=...) downloads the model it serves
# Programs that copy what they are given: out of a bind mount, that lands in the layer.
_COPIERS = frozenset(("cp", "rsync"))
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
    for stage in lint.image_stages:
        by_line: dict[int, list[ContextSource]] = {}
        for source in _image_sources(stage):
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
                    if _in_git_dir(found.path):
                        continue  # history, not content: its size depends on the clone depth
                    if found.size > limit or (
                        is_weights_name(found.path) and found.size >= WEIGHTS_MIN_BYTES
                    ):
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


def _image_sources(stage: Stage) -> Iterator[ContextSource]:
    """What reaches the stage's layers from the context: COPY and ADD sources, and the parts
    of a bind mount that its RUN copies out (a mount itself leaves nothing behind)."""
    runs = {ins.line: ins for ins in stage.instructions if ins.cmd == "RUN"}
    for source in stage.sources:
        if source.via != "RUN --mount":
            yield source
            continue
        for path in _copied_out(runs[source.line], stage, source.path):
            yield ContextSource(path, source.line, source.via)


def _copied_out(ins: Instruction, stage: Stage, mounted: str) -> list[str]:
    """The context paths below ``mounted`` that a cp or rsync in ``ins`` reads."""
    scope = {**dict(stage.args), **dict(stage.env)}
    targets = []
    for mount in run_mounts(ins):
        if mount["type"] != "bind" or "from" in mount:
            continue
        try:
            source = clean_context_path(
                expand(mount.get("source", "."), scope), source="", line=ins.line
            )
        except InputError:
            continue
        target = mount.get("target")
        if source == mounted and target:
            targets.append(posixpath.normpath(target))
    paths: list[str] = []
    for words in commands(run_script(ins)):
        words = simple(words)
        if program(words) not in _COPIERS:
            continue
        for word in operands(words)[:-1]:  # the last operand is where it goes
            for target in targets:
                path = posixpath.normpath(word.rstrip("/"))
                if path == target:
                    paths.append(mounted)
                elif path.startswith(target.rstrip("/") + "/"):
                    paths.append(join(mounted, path[len(target.rstrip("/")) + 1 :]))
    return paths


def _in_git_dir(path: str) -> bool:
    return ".git" in path.split("/")


def _taken_message(via: str, heavy: dict[str, ContextFile], max_file_mb: float) -> str:
    files = sorted(heavy.values(), key=lambda f: (-f.size, f.path))
    examples = ", ".join(f.path for f in files[:MAX_EXAMPLES])
    if len(files) > MAX_EXAMPLES:
        examples += f" and {len(files) - MAX_EXAMPLES} more"
    total = human_size(sum(f.size for f in files))
    count = f"{len(files)} file{'s' if len(files) != 1 else ''}, {total}"
    if via == "RUN --mount":
        what = "copies model weights out of a bind mount into the image"
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
            if ins.cmd == "ADD":
                yield from _added_weights(lint, stage, ins)
            if ins.cmd != "RUN":
                continue
            script = run_script(ins)
            fetches = [m.group().rstrip("( ") for m in _PYTHON_FETCH.finditer(script)]
            if "vllm" in script.lower():
                fetches += [f"vllm {m.group().rstrip('( ')}" for m in _VLLM_LOAD.finditer(script)]
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
                    fix=_OLLAMA_FIX if any(f.startswith("ollama") for f in fetches) else None,
                )


_OLLAMA_FIX = (
    "Pull the model when the container starts (`ollama pull` in the entrypoint) into "
    "OLLAMA_MODELS on a volume, not in a RUN."
)


def _added_weights(lint: LintInput, stage: Stage, ins: Instruction) -> Iterator[Hit]:
    if ins.flag("from") is not None:
        return
    scope = {**dict(stage.args), **dict(stage.env)}
    for raw in ins.args[:-1]:
        url = expand(raw, scope)
        if _is_weights_url(url, hosts_only=False):
            yield Hit(
                lint.dockerfile,
                ins.line,
                f"ADD {url} downloads model weights while the image builds, so they land in a "
                "layer that every pull of the image downloads again.",
                fix="Drop the ADD and fetch the file when the container starts (an "
                "initContainer, or the server downloading to a mounted MODEL_PATH).",
            )


def _fetching_command(words: list[str]) -> str | None:
    name = program(words)
    args = operands(words)
    if name == "huggingface-cli" and args[:1] == ["download"]:
        return "huggingface-cli download"
    if name == "hf" and args[:1] == ["download"]:
        return "hf download"
    if name == "ollama" and args[:1] == ["pull"]:
        return "ollama pull"
    if name == "text-generation-server" and args[:1] == ["download-weights"]:
        return "text-generation-server download-weights"
    if name == "infinity_emb" and "--preload-only" in words:
        return "infinity_emb --preload-only"
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

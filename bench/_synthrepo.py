"""Synthetic git repository of an LLM-serving project, plus shared benchmark plumbing.

Not a benchmark itself: bench/detect.py and bench/startup.py import it. The generator
writes the whole history as one `git fast-import` stream (no `git commit` per commit),
then checks out the tip, so 20,000 files and 2,000 commits take seconds, not minutes.
Everything is deterministic: the same (files, commits, seed) gives the same commit SHAs.

The tree looks like a real serving project: a three-stage Dockerfile (base, deps, code),
a .dockerignore, requirements.txt, pipeline-kit.yaml, and most files under docs/, tests/
and data/ (which the image never takes), a few thousand under app/ (nested packages) and
some under configs/. The history touches a few files per commit (mostly app/ and docs/,
now and then requirements.txt, some commits add files); the last commit changes exactly
one file under app/, so HEAD~1..HEAD is a code-only range.

Run directly to generate one repository and keep it:

    .venv/bin/python bench/_synthrepo.py --files 20000 --commits 2000 /tmp/synth-repo
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

# --------------------------------------------------------------------------------------
# Fixed files of the generated project
# --------------------------------------------------------------------------------------

# The backslash-newline below is a Python line continuation (keeps the source under 100
# columns): the Dockerfile gets that RUN as one line.
DOCKERFILE = """\
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE} AS base
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
&& rm -rf /var/lib/apt/lists/*
FROM base AS deps
COPY requirements.txt /tmp/requirements.txt
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install -r /tmp/requirements.txt
FROM deps AS code
WORKDIR /app
COPY app/ /app/
COPY configs/ /app/configs/
CMD ["/opt/venv/bin/python", "-m", "app.server"]
"""

DOCKERIGNORE = """\
**/__pycache__
**/*.pyc
*.md
docs/
tests/
data/
"""

PIPELINE_KIT_YAML = """\
image: registry.example.com/team/llm-service
dockerfile: Dockerfile
context: .
layers: {base: base, deps: deps, code: code}
"""

GITIGNORE = """\
__pycache__/
*.pyc
.venv/
"""

README = """\
# llm-service

Serving stack for the team's language models: HTTP API, batching scheduler,
tokenizers and model runners. Built as a container image in three stages
(base, deps, code); CI rebuilds only the stages a change touches.
"""

CHANGELOG_HEAD = "# Changelog\n\n"

PYPROJECT = """\
[project]
name = "llm-service"
version = "0.0.0"
requires-python = ">=3.10"
"""

REQUIREMENT_PINS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("fastapi", (0, 110, 0)),
    ("uvicorn", (0, 29, 0)),
    ("pydantic", (2, 6, 4)),
    ("numpy", (1, 26, 4)),
    ("tokenizers", (0, 15, 2)),
    ("sentencepiece", (0, 2, 0)),
    ("safetensors", (0, 4, 2)),
    ("httpx", (0, 27, 0)),
    ("prometheus-client", (0, 20, 0)),
    ("orjson", (3, 10, 0)),
    ("pyyaml", (6, 0, 1)),
    ("structlog", (24, 1, 0)),
    ("tenacity", (8, 2, 3)),
    ("anyio", (4, 3, 0)),
    ("starlette", (0, 36, 3)),
    ("regex", (2023, 12, 25)),
    ("jinja2", (3, 1, 3)),
    ("protobuf", (4, 25, 3)),
    ("grpcio", (1, 62, 1)),
    ("opentelemetry-api", (1, 24, 0)),
)

# --------------------------------------------------------------------------------------
# Word pools for names and content
# --------------------------------------------------------------------------------------

# fmt: off
APP_DIRS = (
    "api", "engine", "models", "tokenizers", "serving", "scheduler", "kernels", "telemetry",
    "storage", "utils", "adapters", "plugins", "routing", "batching", "cache", "auth", "sampling",
    "quant", "attention", "lora", "streaming", "health", "admin", "metrics", "backends", "runtime",
    "io", "prompts", "safety", "eval", "core", "common", "v1", "v2", "internal", "handlers",
    "middleware", "schemas", "workers", "pool",
)
DOC_DIRS = (
    "guides", "reference", "howto", "architecture", "operations", "runbooks", "api", "tutorials",
    "design", "adr", "releases", "deployment", "monitoring", "models", "benchmarks", "security",
    "faq", "internals", "onboarding", "playbooks", "rfcs", "troubleshooting", "integrations",
    "scaling", "tuning",
)
TEST_DIRS = (
    "unit", "integration", "e2e", "load", "api", "engine", "scheduler", "tokenizers", "serving",
    "models", "cache", "auth", "sampling", "streaming", "regression", "fixtures", "contract",
    "smoke", "property", "fuzz", "kernels", "storage", "telemetry", "routing",
)
DATA_DIRS = (
    "eval", "golden", "prompts", "fixtures", "corpora", "calibration", "red_team", "mmlu", "gsm8k",
    "humaneval", "chat", "summarization", "translation", "qa", "toxicity", "shards", "v1", "v2",
    "v3", "en", "de", "fr", "ja", "multilingual", "long_context",
)
CONFIG_DIRS = (
    "models", "serving", "env", "routing", "quotas", "tenants", "prod", "staging",
)
NOUNS = (
    "request", "response", "token", "batch", "prompt", "model", "cache", "queue", "stream",
    "tensor", "sequence", "session", "router", "worker", "shard", "config", "schema", "handler",
    "sampler", "logits", "kv", "block", "page", "adapter", "budget", "limit", "span", "metric",
    "health", "client", "pool", "slot", "window", "weight", "vocab",
)
VERBS = (
    "build", "load", "parse", "encode", "decode", "route", "schedule", "sample", "merge", "split",
    "flush", "evict", "resolve", "validate", "render", "collect", "dispatch", "allocate",
    "release", "warm", "score", "filter", "pack", "unpack", "stream", "serve",
)
WORDS = (
    "the", "model", "server", "request", "latency", "token", "batch", "throughput", "cache", "we",
    "use", "a", "to", "of", "and", "in", "for", "is", "on", "with", "when", "each", "prompt",
    "queue", "scheduler", "memory", "GPU", "worker", "replica", "deploy", "image", "layer",
    "config", "value", "default", "option", "see", "below", "returns", "error", "retry", "timeout",
    "limit", "stream", "response", "client", "endpoint", "metric", "tenant", "quota", "shard",
    "weights", "tokenizer", "vocabulary", "sampling", "top", "temperature", "context", "window",
    "length", "sequence", "attention", "kernel",
)
# fmt: on

T0 = 1_700_000_000  # committer time of the first commit (deterministic SHAs)
COMMIT_STEP = 1_800  # seconds between commits
IDENTITY = "bench <bench@example.invalid>"

GIT_IDENTITY_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}

MIN_FILES = 60
MIN_COMMITS = 2


@dataclass
class RepoInfo:
    """What generate_repo made."""

    path: Path
    files: int
    commits: int
    head: str
    last_change: str
    seconds: float
    areas: dict[str, int] = field(default_factory=dict)
    requirement_bumps: int = 0
    added_later: int = 0


# --------------------------------------------------------------------------------------
# Tree layout
# --------------------------------------------------------------------------------------


def _unique(name: str, used: set[str], i: int) -> str:
    if name not in used:
        return name
    stem, dot, ext = name.rpartition(".")
    return f"{stem}_{i}.{ext}" if dot else f"{name}_{i}"


def _build_tree(
    rng: random.Random,
    root: str,
    count: int,
    dir_words: Sequence[str],
    make_name: Callable[[random.Random, int], str],
    files_per_dir: tuple[int, int],
    top_branching: tuple[int, int],
    branching: tuple[int, int],
    max_depth: int,
    root_files: Sequence[str] = (),
    package_init: bool = False,
) -> list[str]:
    """Lay out `count` file paths under `root`, breadth first, up to `max_depth` levels."""
    paths: list[str] = [f"{root}/{name}" for name in root_files][:count]
    dirs: list[tuple[str, int]] = []
    queue: deque[tuple[str, int]] = deque([(root, 1)])
    extra = 0
    while len(paths) < count:
        if not queue:
            # Out of planned directories: grow a sibling somewhere not yet at max depth.
            extra += 1
            parent, depth = rng.choice([d for d in dirs if d[1] < max_depth] or [(root, 0)])
            queue.append((f"{parent}/{rng.choice(dir_words)}_{extra}", depth + 1))
        directory, depth = queue.popleft()
        dirs.append((directory, depth))
        used = set(root_files) if directory == root else set()
        if package_init and "__init__.py" not in used:
            paths.append(f"{directory}/__init__.py")
            used.add("__init__.py")
        for i in range(rng.randint(*files_per_dir)):
            if len(paths) >= count:
                break
            name = _unique(make_name(rng, i), used, i)
            used.add(name)
            paths.append(f"{directory}/{name}")
        if depth < max_depth:
            low, high = top_branching if depth == 1 else branching
            own = directory.rpartition("/")[2]
            names = [w for w in dir_words if w != own]
            for child in rng.sample(names, min(len(names), rng.randint(low, high))):
                queue.append((f"{directory}/{child}", depth + 1))
    return paths[:count]


def _py_name(rng: random.Random, i: int) -> str:
    return f"{rng.choice(VERBS)}_{rng.choice(NOUNS)}.py" if i % 3 else f"{rng.choice(NOUNS)}.py"


def _test_name(rng: random.Random, i: int) -> str:
    return "conftest.py" if i == 0 else f"test_{rng.choice(VERBS)}_{rng.choice(NOUNS)}.py"


def _doc_name(rng: random.Random, i: int) -> str:
    if i == 0:
        return "index.md"
    if i % 11 == 0:
        return f"{rng.choice(NOUNS)}.yaml"
    return f"{rng.choice(VERBS)}-{rng.choice(NOUNS)}.md"


def _data_name(rng: random.Random, i: int) -> str:
    if i == 0:
        return "README.txt"
    if i % 7 == 0:
        return f"{rng.choice(NOUNS)}_labels.json"
    return f"shard_{i:05d}.jsonl"


def _config_name(rng: random.Random, i: int) -> str:
    return f"{rng.choice(NOUNS)}.toml" if i % 4 == 3 else f"{rng.choice(NOUNS)}-{i}.yaml"


def layout(files: int, seed: int) -> dict[str, list[str]]:
    """Every file path of the final tree, by area. Total is exactly `files`."""
    if files < MIN_FILES:
        raise ValueError(f"need at least {MIN_FILES} files, got {files}")
    rng = random.Random(f"layout:{seed}")
    fixed = [
        "Dockerfile",
        ".dockerignore",
        ".gitignore",
        "requirements.txt",
        "pipeline-kit.yaml",
        "README.md",
        "CHANGELOG.md",
        "pyproject.toml",
    ]
    rest = files - len(fixed)
    n_app = max(10, rest * 15 // 100)
    n_configs = max(3, rest * 15 // 1000)
    n_docs = max(5, rest * 33 // 100)
    n_tests = max(5, rest * 20 // 100)
    n_data = rest - n_app - n_configs - n_docs - n_tests
    return {
        "root": fixed,
        "app": _build_tree(
            rng,
            "app",
            n_app,
            APP_DIRS,
            _py_name,
            (6, 18),
            (8, 12),
            (2, 4),
            5,
            root_files=("__init__.py", "server.py", "settings.py"),
            package_init=True,
        ),
        "configs": _build_tree(
            rng,
            "configs",
            n_configs,
            CONFIG_DIRS,
            _config_name,
            (4, 12),
            (3, 6),
            (2, 3),
            4,
        ),
        "docs": _build_tree(
            rng,
            "docs",
            n_docs,
            DOC_DIRS,
            _doc_name,
            (10, 30),
            (8, 12),
            (2, 4),
            5,
        ),
        "tests": _build_tree(
            rng,
            "tests",
            n_tests,
            TEST_DIRS,
            _test_name,
            (8, 24),
            (6, 8),
            (2, 4),
            5,
            package_init=True,
        ),
        "data": _build_tree(
            rng,
            "data",
            n_data,
            DATA_DIRS,
            _data_name,
            (20, 60),
            (6, 10),
            (2, 3),
            5,
        ),
    }


# --------------------------------------------------------------------------------------
# File contents
# --------------------------------------------------------------------------------------


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choices(WORDS, k=n))


def _py_content(rng: random.Random, path: str) -> str:
    module = path[:-3].replace("/", ".")
    if path == "app/server.py":
        return (
            '"""HTTP entry point: `python -m app.server`."""\n\n'
            "from __future__ import annotations\n\nimport os\n\n\ndef main() -> None:\n"
            '    port = int(os.environ.get("PORT", "8080"))\n'
            '    print(f"serving on :{port}")\n\n\nif __name__ == "__main__":\n    main()\n'
        )
    if path.endswith("__init__.py"):
        return f'"""{module.removesuffix(".__init__")} package."""\n'
    out = [
        f'"""{module}: {_words(rng, 8)}."""\n\nfrom __future__ import annotations\n\n'
        "import logging\n\nlog = logging.getLogger(__name__)\n"
    ]
    for _ in range(rng.randint(2, 7)):
        fn = f"{rng.choice(VERBS)}_{rng.choice(NOUNS)}"
        out.append(
            f"\n\ndef {fn}(value: int, scale: float = {rng.randint(1, 9)}.{rng.randint(0, 9)})"
            f" -> float:\n"
            f'    """{_words(rng, 10).capitalize()}."""\n'
            f"    result = value * scale + {rng.randint(0, 999)}\n"
            f'    log.debug("{fn} %s", result)\n'
            f"    return result\n"
        )
    return "".join(out)


def _test_content(rng: random.Random, path: str) -> str:
    if path.endswith("__init__.py"):
        return ""
    if path.endswith("conftest.py"):
        return "import pytest\n\n\n@pytest.fixture\ndef port() -> int:\n    return 8080\n"
    out = ["from __future__ import annotations\n"]
    for i in range(rng.randint(2, 6)):
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        out.append(
            f"\n\ndef test_{rng.choice(VERBS)}_{rng.choice(NOUNS)}_{i}() -> None:\n"
            f"    # {_words(rng, 9)}\n    assert {a} + {b} == {a + b}\n"
        )
    return "".join(out)


def _md_content(rng: random.Random, path: str) -> str:
    title = path.rpartition("/")[2].removesuffix(".md").replace("-", " ").title()
    out = [f"# {title}\n"]
    for _ in range(rng.randint(2, 6)):
        out.append(f"\n## {_words(rng, 3).title()}\n\n{_words(rng, rng.randint(30, 90))}.\n")
    return "".join(out)


def _yaml_content(rng: random.Random, path: str) -> str:
    lines = [f"# {path}\n"]
    for _ in range(rng.randint(4, 14)):
        lines.append(f"{rng.choice(NOUNS)}_{rng.choice(NOUNS)}: {rng.randint(0, 4096)}\n")
    return "".join(lines)


def _toml_content(rng: random.Random, path: str) -> str:
    lines = [f"# {path}\n[{rng.choice(NOUNS)}]\n"]
    for _ in range(rng.randint(3, 10)):
        lines.append(f"{rng.choice(NOUNS)}_{rng.choice(VERBS)} = {rng.randint(0, 4096)}\n")
    return "".join(lines)


def _jsonl_content(rng: random.Random, path: str) -> str:
    lines = []
    for i in range(rng.randint(3, 12)):
        record = {"id": i, "prompt": _words(rng, 12), "completion": _words(rng, 16)}
        lines.append(json.dumps(record) + "\n")
    return "".join(lines)


def _json_content(rng: random.Random, path: str) -> str:
    return json.dumps({rng.choice(NOUNS): rng.randint(0, 9) for _ in range(8)}, indent=2) + "\n"


def _txt_content(rng: random.Random, path: str) -> str:
    return f"{_words(rng, 40)}\n"


_CONTENT_BY_EXT: dict[str, Callable[[random.Random, str], str]] = {
    "md": _md_content,
    "yaml": _yaml_content,
    "toml": _toml_content,
    "jsonl": _jsonl_content,
    "json": _json_content,
    "txt": _txt_content,
}


def requirements_text(pins: dict[str, tuple[int, int, int]]) -> str:
    return "".join(f"{name}=={a}.{b}.{c}\n" for name, (a, b, c) in pins.items())


def base_content(path: str, seed: int) -> str:
    """Content of `path` as first committed (deterministic from path and seed)."""
    fixed = {
        "Dockerfile": DOCKERFILE,
        ".dockerignore": DOCKERIGNORE,
        ".gitignore": GITIGNORE,
        "pipeline-kit.yaml": PIPELINE_KIT_YAML,
        "README.md": README,
        "CHANGELOG.md": CHANGELOG_HEAD,
        "pyproject.toml": PYPROJECT,
        "requirements.txt": requirements_text(dict(REQUIREMENT_PINS)),
    }
    if path in fixed:
        return fixed[path]
    rng = random.Random(f"{seed}:{path}")
    if path.endswith(".py"):
        return (_test_content if path.startswith("tests/") else _py_content)(rng, path)
    ext = path.rpartition(".")[2]
    return _CONTENT_BY_EXT.get(ext, _txt_content)(rng, path)


def changed_content(path: str, seed: int, change: int) -> str:
    """Content of `path` as changed by commit number `change` (differs for every change)."""
    base = base_content(path, seed)
    if path == "CHANGELOG.md":
        return f"{base}## change {change}\n\n- {change}\n"
    ext = path.rpartition(".")[2]
    if ext == "md":
        return f"{base}\n_Revised in change {change}._\n"
    if ext == "jsonl":
        return base + json.dumps({"id": -1, "prompt": f"change {change}", "completion": ""}) + "\n"
    if ext == "json":
        return base.rstrip("}\n") + f',\n  "revision": {change}\n}}\n'
    return f"{base}# revision {change}\n"


# --------------------------------------------------------------------------------------
# History and fast-import stream
# --------------------------------------------------------------------------------------

# (area, weight) for the files a middle commit touches
_AREA_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("app", 0.45),
    ("docs", 0.30),
    ("tests", 0.13),
    ("configs", 0.05),
    ("data", 0.05),
    ("root_md", 0.02),
)
REQUIREMENTS_BUMP_PROBABILITY = 0.01


def _git(args: Sequence[str], cwd: Path, stdin: IO[bytes] | None = None) -> str:
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        stdin=stdin,
        capture_output=True,
        env={**os.environ, **GIT_IDENTITY_ENV},
        check=False,
    )
    if proc.returncode != 0:
        stderr = proc.stderr.decode(errors="replace")
        raise RuntimeError(f"git {' '.join(args)} failed ({proc.returncode}): {stderr}")
    return proc.stdout.decode()


class _Stream:
    """Writes a fast-import stream (commits with inline blobs) to a binary file."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.marks = 0

    def commit(self, number: int, message: str, changes: Sequence[tuple[str, str]]) -> None:
        self.marks += 1
        msg = message.encode()
        ts = T0 + number * COMMIT_STEP
        w = self.out.write
        w(
            b"commit refs/heads/main\nmark :%d\ncommitter %s %d +0000\ndata %d\n%s\n"
            % (self.marks, IDENTITY.encode(), ts, len(msg), msg)
        )
        for path, text in changes:
            data = text.encode()
            w(b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(data), data))
        w(b"\n")


def _write_history(out: IO[bytes], files: int, commits: int, seed: int) -> dict[str, Any]:
    """Write the whole history; return facts about it."""
    tree = layout(files, seed)
    rng = random.Random(f"history:{seed}")
    stream = _Stream(out)

    middle = commits - 2  # commits between the initial import and the final code change
    pool = tree["app"][3:] + tree["docs"] + tree["tests"]  # candidates to add later
    n_later = min(len(pool) // 20, max(0, middle // 4))
    later = rng.sample(pool, n_later)
    later_set = set(later)
    added_at: dict[int, list[str]] = {}
    for path in later:
        added_at.setdefault(rng.randint(1, middle), []).append(path)

    existing: dict[str, list[str]] = {
        area: [p for p in paths if p not in later_set] for area, paths in tree.items()
    }
    existing["root_md"] = ["README.md", "CHANGELOG.md"]
    area_of = {p: area for area, paths in tree.items() for p in paths}

    initial = [p for paths in tree.values() for p in paths if p not in later_set]
    stream.commit(0, "Initial import of llm-service", [(p, base_content(p, seed)) for p in initial])

    pins = dict(REQUIREMENT_PINS)
    bumps = 0
    areas = [a for a, _ in _AREA_WEIGHTS]
    weights = [w for _, w in _AREA_WEIGHTS]
    for number in range(1, middle + 1):
        changes: dict[str, str] = {}
        for path in added_at.get(number, []):
            changes[path] = base_content(path, seed)
            existing[area_of[path]].append(path)
        for area in rng.choices(areas, weights, k=rng.choice((1, 1, 2, 2, 3, 4, 5))):
            path = rng.choice(existing[area])
            if path not in changes:
                changes[path] = changed_content(path, seed, number)
        first = next(iter(changes))
        message = f"{first.partition('/')[0]}: update {first.rpartition('/')[2]}"
        if rng.random() < REQUIREMENTS_BUMP_PROBABILITY:
            name = rng.choice(sorted(pins))
            major, minor, patch = pins[name]
            pins[name] = (major, minor, patch + 1)
            changes["requirements.txt"] = requirements_text(pins)
            message = f"deps: bump {name} to {major}.{minor}.{patch + 1}"
            bumps += 1
        if len(changes) > 1:
            message += f" (+{len(changes) - 1} more files)"
        stream.commit(number, message, sorted(changes.items()))

    # Final commit: a code-only change, exactly one file under app/.
    candidates = [p for p in existing["app"] if not p.endswith("__init__.py")]
    last_path = rng.choice(candidates)
    stream.commit(
        commits - 1,
        f"app: fix off-by-one in {last_path}",
        [(last_path, changed_content(last_path, seed, commits - 1))],
    )
    return {
        "areas": {area: len(paths) for area, paths in tree.items()},
        "last_change": last_path,
        "requirement_bumps": bumps,
        "added_later": n_later,
    }


def generate_repo(path: Path, files: int, commits: int, seed: int = 0) -> RepoInfo:
    """Create the synthetic repository at `path` (must not exist or be empty)."""
    if commits < MIN_COMMITS:
        raise ValueError(f"need at least {MIN_COMMITS} commits, got {commits}")
    start = time.perf_counter()
    path.mkdir(parents=True, exist_ok=True)
    _git(["init", "-q"], path)
    _git(["symbolic-ref", "HEAD", "refs/heads/main"], path)
    for key, value in (
        ("user.name", "bench"),
        ("user.email", "bench@example.invalid"),
        ("gc.auto", "0"),
        ("core.autocrlf", "false"),
    ):
        _git(["config", key, value], path)

    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            ["git", "fast-import", "--quiet"],
            cwd=path,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        assert proc.stdin is not None
        try:
            with proc.stdin:
                facts = _write_history(proc.stdin, files, commits, seed)
        except BrokenPipeError:
            facts = {}
        if proc.wait() != 0 or not facts:
            err.seek(0)
            raise RuntimeError(f"git fast-import failed: {err.read().decode(errors='replace')}")

    _git(["reset", "-q", "--hard", "refs/heads/main"], path)

    # Sanity checks: cheap, and they make a broken generator fail loudly.
    head = _git(["rev-parse", "HEAD"], path).strip()
    count = int(_git(["rev-list", "--count", "HEAD"], path))
    tracked = _git(["ls-files", "-z"], path).count("\0")
    last = _git(["diff", "--name-only", "HEAD~1", "HEAD"], path).split()
    if count != commits or tracked != files or last != [facts["last_change"]]:
        raise RuntimeError(
            f"generated repo is off: commits {count}/{commits}, files {tracked}/{files}, "
            f"last change {last} (expected {facts['last_change']})"
        )
    return RepoInfo(
        path=path,
        files=tracked,
        commits=count,
        head=head,
        last_change=facts["last_change"],
        seconds=time.perf_counter() - start,
        areas=facts["areas"],
        requirement_bumps=facts["requirement_bumps"],
        added_later=facts["added_later"],
    )


# --------------------------------------------------------------------------------------
# Shared benchmark plumbing
# --------------------------------------------------------------------------------------


def default_cli() -> Path | None:
    """`pipeline-kit` next to the running interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "pipeline-kit"
    if beside.is_file():
        return beside
    found = shutil.which("pipeline-kit")
    return Path(found) if found else None


def resolve_cli(arg: str | None) -> Path:
    """The CLI to benchmark, or SystemExit(2) with a message."""
    cli = Path(arg) if arg else default_cli()
    if cli is None:
        raise SystemExit(
            f"error: pipeline-kit not found next to {sys.executable} nor on PATH; pass --cli PATH"
        )
    if not (cli.is_file() and os.access(cli, os.X_OK)):
        raise SystemExit(f"error: --cli {cli} is not an executable file")
    return cli


def bench_env() -> dict[str, str]:
    """Environment for timed subprocesses: ours, minus anything that skews timings."""
    env = {**os.environ, **GIT_IDENTITY_ENV}
    for key in ("PYTHONPROFILEIMPORTTIME", "PYTHONDEVMODE", "PYTHONTRACEMALLOC"):
        env.pop(key, None)
    return env


def timed_run(
    argv: Sequence[str], cwd: Path | None, env: dict[str, str]
) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    """Run argv to completion, capturing output; return (wall seconds, result)."""
    start = time.perf_counter()
    proc = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, check=False)
    return time.perf_counter() - start, proc


@dataclass
class Timing:
    """Measured wall times of one command (warm-ups excluded)."""

    label: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)


def check_detect_json(stdout: bytes) -> list[str]:
    """Problems with a detect answer for a code-only range (empty list: answer is right)."""
    try:
        doc = json.loads(stdout)
    except ValueError as exc:
        return [f"stdout is not JSON ({exc}): {stdout[:300]!r}"]
    if not isinstance(doc, dict) or not isinstance(doc.get("layers"), dict):
        return [f"JSON has no 'layers' object: {json.dumps(doc)[:300]}"]
    layers = doc["layers"]
    expected = {"base": False, "deps": False, "code": True}
    problems = []
    for name, want in expected.items():
        got = layers.get(name, {}).get("changed") if isinstance(layers.get(name), dict) else None
        if got is not want:
            problems.append(f"layers.{name}.changed is {got!r}, expected {want!r}")
    if doc.get("rebuild_from") != "code":
        problems.append(f"rebuild_from is {doc.get('rebuild_from')!r}, expected 'code'")
    return problems


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate one synthetic repository.")
    parser.add_argument("dest", type=Path, help="directory to create (must not exist)")
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--commits", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.dest.exists() and any(args.dest.iterdir()):
        parser.error(f"{args.dest} exists and is not empty")
    info = generate_repo(args.dest, args.files, args.commits, args.seed)
    print(
        f"{info.path}: {info.files} files, {info.commits} commits, HEAD {info.head[:12]}, "
        f"last change {info.last_change}, generated in {info.seconds:.2f} s"
    )
    print(
        f"areas: {info.areas}; requirement bumps: {info.requirement_bumps}; "
        f"files added after the first commit: {info.added_later}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


DETECT_ARGS = ("detect", "--base", "HEAD~1", "--head", "HEAD", "--format", "json")


class CliFailure(Exception):
    """The CLI failed or gave a wrong answer."""


def describe_failure(
    argv: Sequence[str], proc: subprocess.CompletedProcess[bytes], problems: Sequence[str] = ()
) -> str:
    """Exit status, what was wrong, and the ends of stdout and stderr (importtime lines dropped)."""
    lines = [f"`{shlex.join(argv)}` exited {proc.returncode}", *problems]
    for stream, data in (("stdout", proc.stdout), ("stderr", proc.stderr)):
        text = data.decode(errors="replace").strip()
        if text:
            kept = [ln for ln in text.splitlines() if not ln.startswith("import time:")]
            lines.append(f"{stream}: " + "\n".join(kept)[-2000:])
    return "\n  ".join(lines)

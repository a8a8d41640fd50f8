"""The Dockerfile doctor: one Dockerfile per rule, the seed article's two Dockerfiles, config,
report formats and exit codes. Build contexts are made in tmp_path with small fake weights."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pipeline_kit.commands.lint import LintOptions, run
from pipeline_kit.errors import ConfigError, ExitCode, InputError
from pipeline_kit.lint.dependencies import is_pinned
from pipeline_kit.lint.installs import Install, install_of
from pipeline_kit.lint.model import Finding, Severity
from pipeline_kit.lint.rules import RULES
from pipeline_kit.lint.shell import commands, simple
from pipeline_kit.lint.weights import WEIGHTS_MIN_BYTES
from pipeline_kit.report.lint import as_text, github_annotations, gitlab_code_quality
from tests.support import FIXTURES
from tests.support.docs import doc

LINT_FIXTURES = FIXTURES / "lint"
DIGEST = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
PINNED = f"python:3.11-slim@{DIGEST}"
IGNORE = ".git\n**/__pycache__\nweights/\n"
FAKE_WEIGHTS = b"\0" * WEIGHTS_MIN_BYTES  # the least a file named like weights counts from
PINNED_REQUIREMENTS = "torch==2.3.1\ntransformers==4.44.2 --hash=sha256:abc\n"
POETRY_PROJECT = (
    "[tool.poetry]\nname = 'svc'\n[tool.poetry.dependencies]\npython = '^3.11'\n"
    "fastapi = '{version}'\nlocal = {{path = './libs/local'}}\n"
)
PINNED_PROJECT = "[project]\nname = 'svc'\ndependencies = ['fastapi==0.115.0']\n"
UNPINNED_PROJECT = "[project]\nname = 'svc'\ndependencies = ['fastapi>=0.110']\n"


@dataclass(frozen=True)
class Case:
    id: str
    dockerfile: str
    expected: list[tuple[str, int]]  # (rule, line) in the Dockerfile
    files: Mapping[str, str | bytes] = field(default_factory=dict)
    dockerignore: str | None = IGNORE
    config: str | None = None


def _context(root: Path, files: Mapping[str, str | bytes], dockerignore: str | None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    if dockerignore is not None:
        (root / ".dockerignore").write_text(dockerignore)
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def _lint(
    root: Path, fmt: str = "json", *, dockerfile: Path | None = None, output: Path | None = None
) -> tuple[int, str]:
    out = io.StringIO()
    options = LintOptions(
        config_path=None, cwd=root, dockerfile=dockerfile, format=fmt, output=output
    )
    return run(options, out), out.getvalue()


def _findings(root: Path) -> list[dict[str, object]]:
    _, text = _lint(root)
    findings: list[dict[str, object]] = json.loads(text)["findings"]
    return findings


def _case_root(tmp_path: Path, case: Case) -> Path:
    _context(tmp_path, case.files, case.dockerignore)
    (tmp_path / "Dockerfile").write_text(case.dockerfile)
    if case.config is not None:
        (tmp_path / "pipeline-kit.yaml").write_text(case.config)
    return tmp_path


CLEAN = f"""\
FROM {PINNED} AS base
RUN apt-get update && apt-get install -y --no-install-recommends curl \\
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY app/ ./app/
ENV MODEL_PATH=/models/llm
USER 10001
CMD ["python", "-m", "app"]
"""
CLEAN_FILES = {"requirements.txt": PINNED_REQUIREMENTS, "app/__init__.py": "", "app/main.py": ""}


def _stage(body: str, *, user: str = "USER 10001\n") -> str:
    return f"FROM {PINNED}\nWORKDIR /app\n{body}{user}"


CASES = [
    Case("clean", CLEAN, [], CLEAN_FILES),
    # PK001 weights-in-image
    Case(
        "pk001-named-file",
        _stage("COPY model.safetensors /models/\n"),
        [("PK001", 3)],
        {"model.safetensors": FAKE_WEIGHTS},
    ),
    Case("pk001-wildcard", _stage("COPY *.gguf /models/\n"), [("PK001", 3)]),
    Case(
        "pk001-directory",
        _stage("COPY models/ /models/\n"),
        [("PK001", 3)],
        {"models/llm/pytorch_model.bin": FAKE_WEIGHTS, "models/llm/config.json": "{}"},
    ),
    Case(
        "pk001-big-file",
        _stage("COPY data/ /data/\n"),
        [("PK001", 3)],
        {"data/vocab.tar": FAKE_WEIGHTS, "data/small.txt": "x"},
        config="lint:\n  max_file_mb: 0.001\n",
    ),
    Case(
        "pk001-bind-mount",
        _stage("RUN --mount=type=bind,target=/src cp -r /src/model /opt/model\n"),
        [("PK001", 3)],
        {"model/adapter.pt": FAKE_WEIGHTS},
    ),
    Case(
        "pk001-python-path-file",
        _stage("COPY .venv/ /opt/venv/\n"),
        [],
        {".venv/lib/python3.11/site-packages/distutils-precedence.pth": "import os\n"},
    ),
    Case(
        "pk001-ignored",
        _stage("COPY . .\n"),
        [],
        {"weights/model.safetensors": FAKE_WEIGHTS, "weights/config.json": "{}", "app.py": ""},
        dockerignore="weights/\n!weights/config.json\n",
    ),
    Case(
        "pk001-git-bind-mount",
        _stage("RUN --mount=type=bind,source=.git,target=/src/.git git -C /src describe > /v\n"),
        [],
        {".git/objects/pack/pack-1.pack": FAKE_WEIGHTS, ".git/HEAD": "ref\n"},
        dockerignore="weights/\n",
        config="lint:\n  max_file_mb: 0.001\n",
    ),
    Case(
        "pk001-git-copied",
        _stage("COPY . .\n"),
        [],
        {".git/objects/pack/pack-1.pack": FAKE_WEIGHTS, "app.py": ""},
        dockerignore="weights/\n",
        config="lint:\n  max_file_mb: 0.001\n",
    ),
    Case(
        "pk001-bind-mount-read-only",
        _stage("RUN --mount=type=bind,source=model,target=/m python convert.py /m /out\n"),
        [],
        {"model/adapter.pt": FAKE_WEIGHTS},
    ),
    Case(
        "pk001-bind-mount-part-copied",
        _stage("RUN --mount=type=bind,target=/src cp /src/app.py /srv/ && cp -r /src/m /srv/m\n"),
        [("PK001", 3)],
        {"m/adapter.pt": FAKE_WEIGHTS, "app.py": ""},
    ),
    Case(
        "pk001-bind-mount-other-part-copied",
        _stage("RUN --mount=type=bind,target=/src cp /src/app.py /srv/\n"),
        [],
        {"m/adapter.pt": FAKE_WEIGHTS, "app.py": ""},
    ),
    Case(
        "pk001-builder-stage-only",
        f"FROM {PINNED} AS convert\nCOPY m/ /m/\nRUN python q.py /m /out\n"
        f"FROM {PINNED}\nCOPY --from=convert /out/tokenizer.json /t.json\nUSER 10001\n",
        [],
        {"m/model.safetensors": FAKE_WEIGHTS},
    ),
    # PK002 weights-downloaded-at-build
    Case(
        "pk002-snapshot-download",
        _stage(
            'RUN python -c "from huggingface_hub import snapshot_download; '
            "snapshot_download('mistralai/Mistral-7B-Instruct-v0.1')\"\n"
        ),
        [("PK002", 3)],
    ),
    Case(
        "pk002-heredoc",
        _stage(
            "RUN <<EOF\nset -e\npython3 - <<'PY'\nfrom transformers import AutoModel\n"
            "AutoModel.from_pretrained('gpt2')\nPY\nEOF\n"
        ),
        [("PK002", 3)],
    ),
    Case(
        "pk002-cli",
        _stage("RUN huggingface-cli download TheBloke/Llama-2-7B-GGUF --local-dir /m\n"),
        [("PK002", 3)],
    ),
    Case("pk002-hf", _stage("RUN hf download openai/gpt-oss-20b\n"), [("PK002", 3)]),
    Case(
        "pk002-curl-weights",
        _stage("RUN curl -fsSL -o /m/model.gguf https://example.com/llama.gguf?download=1\n"),
        [("PK002", 3)],
    ),
    Case(
        "pk002-wget-hub",
        _stage("RUN wget -q https://huggingface.co/gpt2/resolve/main/config.json\n"),
        [("PK002", 3)],
    ),
    Case("pk002-git-lfs", _stage("RUN git lfs install && git lfs pull\n"), [("PK002", 3)]),
    Case("pk002-other-download", _stage("RUN curl -fsSL https://example.com/tool.sh -o /t\n"), []),
    Case(
        "pk002-add-hub",
        _stage(
            "ADD https://huggingface.co/TheBloke/Llama-2-7B-GGUF/resolve/main/"
            "llama-2-7b.Q4_K_M.gguf /models/model.gguf\n"
        ),
        [("PK002", 3)],
    ),
    Case(
        "pk002-add-weights-file",
        _stage("ADD --checksum=sha256:00 https://example.com/m/phi.safetensors /m/\n"),
        [("PK002", 3)],
    ),
    Case(
        "pk002-add-url-from-arg",
        f"FROM {PINNED}\nARG MODEL=https://hf.co/org/m/resolve/main/m.bin\nADD $MODEL /m/\n"
        "USER 10001\n",
        [("PK002", 3)],
    ),
    Case(
        "pk002-add-other-url",
        _stage("ADD https://github.com/org/tool/releases/download/v1/tool.tar.gz /opt/\n"),
        [],
    ),
    Case(
        "pk002-vllm-load",
        _stage("RUN python3 -c \"from vllm import LLM; LLM(model='facebook/opt-125m')\"\n"),
        [("PK002", 3)],
    ),
    Case(
        "pk002-vllm-import-only",
        _stage('RUN python3 -c "import vllm; print(vllm.__version__)"\n'),
        [],
    ),
    Case(
        "pk002-llm-class-elsewhere",
        _stage('RUN python3 -c "from app.llm import LLM; LLM(debug=True).check()"\n'),
        [],
    ),
    Case(
        "pk002-sentence-transformers",
        _stage(
            'RUN python -c "from sentence_transformers import SentenceTransformer; '
            "SentenceTransformer('BAAI/bge-small-en-v1.5')\"\n"
        ),
        [("PK002", 3)],
    ),
    Case(
        "pk002-cross-encoder",
        _stage(
            'RUN python -c "from sentence_transformers import CrossEncoder; '
            "CrossEncoder('cross-encoder/ms-marco-MiniLM-L-6-v2')\"\n"
        ),
        [("PK002", 3)],
    ),
    Case(
        "pk002-ollama-pull",
        _stage("RUN ollama serve & sleep 5 && ollama pull llama3.2:1b\n"),
        [("PK002", 3)],
    ),
    Case("pk002-ollama-list", _stage("RUN ollama --version && ollama list\n"), []),
    Case(
        "pk002-tgi-download",
        _stage("RUN text-generation-server download-weights bigscience/bloom-560m\n"),
        [("PK002", 3)],
    ),
    Case(
        "pk002-infinity-preload",
        _stage("RUN infinity_emb v2 --preload-only --no-model-warmup || [ $? -eq 3 ]\n"),
        [("PK002", 3)],
    ),
    Case("pk002-infinity-serve", _stage("RUN infinity_emb v2 --help\n"), []),
    # PK003 code-before-deps
    Case(
        "pk003-whole-context",
        _stage("COPY . .\nRUN pip install --no-cache-dir -r requirements.txt\n"),
        [("PK003", 3)],
        {"requirements.txt": PINNED_REQUIREMENTS, "app.py": ""},
    ),
    Case(
        "pk003-across-stages",
        f"FROM {PINNED} AS base\nCOPY src/ /app/src/\n"
        "FROM base AS deps\nRUN pip install -r /app/src/requirements.txt\nUSER 10001\n",
        [("PK003", 2)],
        {"src/requirements.txt": PINNED_REQUIREMENTS, "src/main.py": ""},
    ),
    Case(
        "pk003-manifests-only-directory",
        _stage("COPY requirements/ ./requirements/\nRUN pip install -r requirements/prod.txt\n"),
        [],
        {"requirements/prod.txt": PINNED_REQUIREMENTS},
    ),
    Case(
        "pk003-project-after-deps",
        _stage(
            "COPY requirements.txt .\nRUN pip install -r requirements.txt\nCOPY . .\n"
            "RUN pip install --no-deps .\n"
        ),
        [],
        {"requirements.txt": PINNED_REQUIREMENTS, "pyproject.toml": "", "uv.lock": ""},
    ),
    Case(
        "pk003-uv-twice",
        _stage(
            "COPY pyproject.toml uv.lock ./\nRUN uv sync --frozen --no-install-project\n"
            "COPY . .\nRUN uv sync --frozen\n"
        ),
        [],
        {"pyproject.toml": "", "uv.lock": "", "app.py": ""},
    ),
    Case(
        "pk003-local-extras-after-requirements",
        _stage(
            "COPY server/requirements.txt server/\nRUN pip install -r server/requirements.txt\n"
            'COPY server server\nRUN cd server && pip install ".[bnb, accelerate]"\n'
        ),
        [],
        {
            "server/requirements.txt": PINNED_REQUIREMENTS,
            "server/pyproject.toml": "",
            "server/a.py": "",
        },
    ),
    Case(
        "pk003-local-after-named-packages",
        _stage("RUN pip install fastapi==0.115.0\nCOPY . .\nRUN pip install .\n"),
        [("PK003", 4)],
        {"pyproject.toml": "[project]\nname = 'svc'\n", "app.py": ""},
    ),
    Case(
        "pk003-local-after-tooling-only",
        _stage("RUN pip install --upgrade pip\nCOPY . .\nRUN pip install .\n"),
        [("PK003", 4)],
        {"pyproject.toml": "[project]\nname = 'svc'\n", "app.py": ""},
    ),
    Case(
        "pk003-requirements-without-their-deps",
        _stage("COPY server server\nRUN cd server && pip install --no-deps -r requirements.txt\n"),
        [("PK003", 3)],
        {"server/requirements.txt": PINNED_REQUIREMENTS, "server/main.py": ""},
    ),
    Case(
        "pk003-installer-upgrade-after-code",
        _stage("COPY app/ app/\nRUN pip install -U pip uv\n"),
        [],
        {"app/main.py": ""},
    ),
    # PK004 unpinned-dependencies (requirement lines are checked in the file's own case)
    Case(
        "pk004-bare-pip-name",
        _stage("RUN pip install --no-cache-dir fastapi uvicorn==0.30.6\n"),
        [("PK004", 3)],
    ),
    Case(
        "pk004-pyproject-without-lock",
        _stage("COPY pyproject.toml .\nRUN pip install .\n"),
        [("PK004", 4)],
        {"pyproject.toml": "[project]\nname = 'svc'\ndependencies = ['fastapi>=0.110']\n"},
    ),
    Case(
        "pk004-the-file-the-install-names",
        _stage(
            "COPY server/ server/\nCOPY docs/ docs/\nRUN pip install -r server/requirements.txt\n"
        ),
        [],
        {"server/requirements.txt": PINNED_REQUIREMENTS, "docs/requirements.txt": "sphinx\n"},
    ),
    Case(
        "pk004-pip-tooling",
        _stage("RUN pip install --no-cache-dir --upgrade pip setuptools wheel\n"),
        [],
    ),
    Case(
        # a dev stage that upgrades its installers, then builds the project's wheel
        "pk004-pip-build-frontend",
        _stage(
            "RUN --mount=type=cache,target=/root/.cache python3 -m venv /opt/py && "
            "pip install --upgrade pip build\nRUN pip install --upgrade pip build numpy\n"
        ),
        [("PK004", 4)],
    ),
    Case(
        "pk004-constraints-pin-a-name",
        _stage("COPY constraints.txt .\nRUN pip install -c constraints.txt fastapi\n"),
        [],
        {"constraints.txt": "fastapi==0.115.0\n"},
    ),
    Case(
        "pk004-constraints-pin-names",
        _stage("COPY constraints.txt .\nRUN pip install -c constraints.txt fastapi uvicorn\n"),
        [("PK004", 4)],
        {"constraints.txt": "fastapi==0.115.0\nuvicorn>=0.30\n"},
    ),
    Case(
        "pk004-local-pinned-deps",
        _stage("COPY pyproject.toml .\nRUN pip install .\n"),
        [],
        {"pyproject.toml": "[project]\nname = 'svc'\ndependencies = ['fastapi==0.115.0']\n"},
    ),
    Case(
        "pk004-local-extras-unpinned",
        _stage("COPY pyproject.toml .\nRUN pip install '.[gpu]'\n"),
        [("PK004", 4)],
        {
            "pyproject.toml": "[project]\nname = 'svc'\ndependencies = ['fastapi==0.115.0']\n"
            "[project.optional-dependencies]\ngpu = ['vllm>=0.6']\ncpu = ['onnx']\n"
        },
    ),
    Case(
        "pk004-local-other-extra-unpinned",
        _stage("COPY pyproject.toml .\nRUN pip install '.[gpu]'\n"),
        [],
        {
            "pyproject.toml": "[project]\nname = 'svc'\ndependencies = ['fastapi==0.115.0']\n"
            "[project.optional-dependencies]\ngpu = ['vllm==0.6.3']\ncpu = ['onnx']\n"
        },
    ),
    Case(
        "pk004-local-poetry-exact",
        _stage("COPY pyproject.toml .\nRUN pip install .\n"),
        [],
        {"pyproject.toml": POETRY_PROJECT.format(version="0.115.0")},
    ),
    Case(
        "pk004-local-poetry-caret",
        _stage("COPY pyproject.toml .\nRUN pip install .\n"),
        [("PK004", 4)],
        {"pyproject.toml": POETRY_PROJECT.format(version="^0.115.0")},
    ),
    Case(
        "pk004-local-in-a-cloned-directory",
        _stage(
            "COPY pyproject.toml .\nRUN pip install --no-deps . && git clone https://x.test/o.git"
            " && cd o && pip install -e .\n"
        ),
        [],
        {"pyproject.toml": UNPINNED_PROJECT},
    ),
    Case(
        "pk004-local-in-a-subdirectory",
        _stage("COPY server server\nRUN cd server && pip install '.[bnb]'\n"),
        [("PK004", 4)],
        {"server/pyproject.toml": UNPINNED_PROJECT, "pyproject.toml": PINNED_PROJECT},
    ),
    Case(
        "pk004-local-at-the-root-not-in-a-subdirectory",
        _stage("COPY . .\nRUN cd server && pip install '.[bnb]'\n"),
        [("PK003", 3)],
        {"server/pyproject.toml": PINNED_PROJECT, "pyproject.toml": UNPINNED_PROJECT},
    ),
    Case(
        "pk004-path-with-a-slash",
        _stage("RUN pip install build/Linux/Release/dist/* /install/*.whl\n"),
        [],
    ),
    Case(
        "pk004-two-in-one-run",
        _stage("COPY pyproject.toml .\nRUN pip install fastapi && pip install .\n"),
        [("PK004", 4), ("PK004", 4)],
        {"pyproject.toml": UNPINNED_PROJECT},
    ),
    Case(
        "pk004-local-after-requirements",
        _stage(
            "COPY requirements.txt pyproject.toml ./\nRUN pip install -r requirements.txt\n"
            "RUN pip install -e '.[server]'\n"
        ),
        [],
        {"requirements.txt": PINNED_REQUIREMENTS, "pyproject.toml": UNPINNED_PROJECT},
    ),
    Case(
        "pk004-local-with-constraints",
        _stage("COPY c.txt pyproject.toml ./\nRUN pip install -c c.txt .\n"),
        [],
        {"c.txt": "fastapi==0.115.0\n", "pyproject.toml": UNPINNED_PROJECT},
    ),
    Case(
        "pk004-local-no-deps",
        _stage("COPY pyproject.toml .\nRUN pip install --no-deps .\n"),
        [],
        {"pyproject.toml": UNPINNED_PROJECT},
    ),
    Case(
        "pk004-pyproject-copied-after-the-install",
        _stage("COPY setup.py .\nRUN pip install .\nCOPY pyproject.toml .\n"),
        [],
        {"setup.py": "", "pyproject.toml": UNPINNED_PROJECT},
    ),
    Case(
        "pk004-poetry-without-lock",
        _stage("COPY pyproject.toml ./\nRUN poetry install --no-root\n"),
        [("PK004", 4)],
        {"pyproject.toml": UNPINNED_PROJECT, "poetry.lock": ""},
    ),
    Case(
        "pk004-poetry-with-lock",
        _stage("COPY pyproject.toml poetry.lock ./\nRUN poetry install --no-root\n"),
        [],
        {"pyproject.toml": UNPINNED_PROJECT, "poetry.lock": ""},
    ),
    Case(
        "pk004-uv-lock-copied-after",
        _stage("COPY pyproject.toml ./\nRUN uv sync --no-install-project\nCOPY uv.lock ./\n"),
        [("PK004", 4)],
        {"pyproject.toml": UNPINNED_PROJECT, "uv.lock": ""},
    ),
    Case(
        "pk004-uv-lock-bind-mounted",
        _stage(
            "RUN --mount=type=bind,source=uv.lock,target=uv.lock "
            "--mount=type=bind,source=pyproject.toml,target=pyproject.toml "
            "uv sync --no-install-project\n"
        ),
        [],
        {"pyproject.toml": UNPINNED_PROJECT, "uv.lock": ""},
    ),
    Case(
        "pk004-uv-locked-flag",
        _stage("COPY pyproject.toml ./\nRUN uv sync --locked\n"),
        [],
        {"pyproject.toml": UNPINNED_PROJECT},
    ),
    Case(
        "pk004-pipenv-lock",
        _stage("COPY Pipfile Pipfile.lock ./\nRUN pipenv install --system\n"),
        [],
        {"Pipfile": "", "Pipfile.lock": ""},
    ),
    Case(
        "pk004-cargo-without-lock",
        _stage("COPY Cargo.toml ./\nCOPY src src\nRUN cargo +stable build --release\n"),
        [("PK004", 5)],
        {"Cargo.toml": "[package]\n", "src/main.rs": "", "Cargo.lock": ""},
    ),
    Case(
        "pk004-cargo-with-lock",
        _stage("COPY Cargo.toml Cargo.lock ./\nCOPY src src\nRUN cargo build --release\n"),
        [],
        {"Cargo.toml": "[package]\n", "src/main.rs": "", "Cargo.lock": ""},
    ),
    Case(
        "pk004-cargo-chef-cooked-the-lock",
        f"FROM {PINNED} AS planner\nCOPY Cargo.toml Cargo.lock ./\nRUN cargo chef prepare\n"
        f"FROM {PINNED} AS builder\nCOPY --from=planner /recipe.json recipe.json\n"
        "RUN cargo chef cook --release --recipe-path recipe.json\nCOPY Cargo.toml ./\n"
        "COPY src src\nRUN cargo build --release\nUSER 10001\n",
        [],
        {"Cargo.toml": "[package]\n", "src/main.rs": "", "Cargo.lock": ""},
    ),
    Case(
        "pk004-cargo-frozen",
        _stage("COPY Cargo.toml ./\nRUN cargo build --frozen\n"),
        [],
        {"Cargo.toml": "[package]\n"},
    ),
    Case(
        "pk004-cargo-install-path",
        _stage("COPY Cargo.toml Cargo.lock ./\nRUN cargo install --path .\n"),
        [("PK004", 4)],
        {"Cargo.toml": "[package]\n", "Cargo.lock": ""},
    ),
    Case(
        "pk004-cargo-install-path-locked",
        _stage("COPY Cargo.toml Cargo.lock ./\nRUN cargo install --locked --path .\n"),
        [],
        {"Cargo.toml": "[package]\n", "Cargo.lock": ""},
    ),
    Case(
        "pk004-cargo-install-a-crate",
        _stage("COPY Cargo.toml ./\nRUN cargo install sccache --version 0.8.1\n"),
        [],
        {"Cargo.toml": "[package]\n"},
    ),
    Case(
        "pk004-npm-without-lock",
        _stage("COPY package.json ./\nRUN npm install\n"),
        [("PK004", 4)],
        {"package.json": "{}", "package-lock.json": "{}"},
    ),
    Case(
        "pk004-npm-with-lock",
        _stage("COPY package.json package-lock.json ./\nRUN npm install\n"),
        [],
        {"package.json": "{}", "package-lock.json": "{}"},
    ),
    Case(
        "pk004-npm-ci",
        _stage("COPY package.json ./\nRUN npm ci\n"),
        [],
        {"package.json": "{}"},
    ),
    Case(
        "pk004-yarn-frozen",
        _stage("COPY package.json ./\nRUN yarn install --frozen-lockfile\n"),
        [],
        {"package.json": "{}"},
    ),
    Case(
        "pk004-npm-global-tool",
        _stage("COPY package.json ./\nRUN npm install -g pnpm@9\n"),
        [],
        {"package.json": "{}"},
    ),
    # PK005 base-image-not-pinned
    Case("pk005-from", "FROM python:3.11-slim\nUSER 10001\n", [("PK005", 1)]),
    Case(
        "pk005-copy-from-image",
        _stage("COPY --from=ghcr.io/astral-sh/uv:0.4.0 /uv /bin/uv\n"),
        [("PK005", 3)],
    ),
    Case("pk005-scratch", "FROM scratch\nCOPY app.py /\nUSER 10001\n", [], {"app.py": ""}),
    # PK006 apt-hygiene
    Case(
        "pk006-recommends",
        _stage("RUN apt-get update && apt-get install -y curl && rm -rf /var/lib/apt/lists/*\n"),
        [("PK006", 3)],
    ),
    Case(
        "pk006-lists",
        _stage("RUN apt-get update && apt-get -y install --no-install-recommends curl\n"),
        [("PK006", 3)],
    ),
    Case(
        "pk006-both",
        _stage("RUN apt update && apt install -y curl\n"),
        [("PK006", 3), ("PK006", 3)],
    ),
    Case(
        "pk006-redirections-and-exec-form",
        _stage(
            'RUN ["/bin/sh", "-c", "apt-get update >/dev/null 2>&1 && apt-get install -y '
            '--no-install-recommends curl && rm -rf /var/lib/apt/lists/*"]\n'
        ),
        [],
    ),
    Case(
        # The lists come from the base stage's update; the later install adds none of its own
        "pk006-install-on-lists-a-lower-layer-left",
        f"FROM {PINNED} AS base\n"
        "RUN apt-get update && apt-get install -y --no-install-recommends python3 curl\n"
        "FROM base AS builder\n"
        "RUN apt-get install -y --no-install-recommends git && rm -rf /tmp/*\n"
        "USER 10001\n",
        [("PK006", 2)],
    ),
    Case(
        # A Rust builder stage keeps its lists; the image only copies the binary out of it
        "pk006-builder-stage-only-copied-from",
        f"FROM {PINNED} AS builder\n"
        "RUN apt-get update && apt-get install -y --no-install-recommends protobuf-compiler\n"
        "RUN cargo build --release --locked\n"
        f"FROM {PINNED}\n"
        "COPY --from=builder /src/target/release/router /usr/local/bin/router\n"
        "USER 10001\n",
        [],
    ),
    Case(
        "pk006-update-alone",
        _stage("RUN apt-get update\nRUN apt-get install -y --no-install-recommends curl\n"),
        [("PK006", 3)],
    ),
    Case(
        "pk006-add-apt-repository-updates",
        _stage(
            "RUN add-apt-repository -y ppa:deadsnakes/ppa && "
            "apt-get install -y --no-install-recommends python3.11\n"
        ),
        [("PK006", 3)],
    ),
    Case(
        "pk006-add-apt-repository-no-update",
        _stage(
            "RUN add-apt-repository -n -y ppa:deadsnakes/ppa && apt-get update && "
            "apt-get install -y --no-install-recommends python3.11 && "
            "rm -rf /var/lib/apt/lists/*\n"
        ),
        [],
    ),
    Case(
        "pk006-cache-mount",
        _stage(
            "RUN --mount=type=cache,target=/var/cache/apt --mount=type=cache,target=/var/lib/apt "
            "apt-get update && apt-get install -y --no-install-recommends curl\n"
        ),
        [],
    ),
    # PK007 runs-as-root
    Case("pk007-no-user", _stage("", user=""), [("PK007", 1)]),
    Case("pk007-root", _stage("USER 0:0\n", user=""), [("PK007", 3)]),
    Case(
        "pk007-inherited",
        f"FROM {PINNED} AS base\nUSER 10001\nFROM base AS final\nCOPY app.py .\n",
        [],
        {"app.py": ""},
    ),
    Case(
        "pk007-sudo",
        _stage("RUN echo 'app ALL=(ALL) NOPASSWD:ALL' >> /etc/sudoers\n", user="USER app\n"),
        [("PK007", 3)],
    ),
    # PK008 no-dockerignore
    Case("pk008", _stage(""), [("PK008", 1)], dockerignore=None),
    # PK009 code-copy-without-link: only where BuildKit builds, only the code stage's COPYs
    Case(
        "pk009",
        _stage("COPY app.py .\nCOPY --link conf/ ./conf/\nCOPY --link=false x.txt .\n"),
        [("PK009", 3)],
        {"app.py": "", "conf/a": "", "x.txt": ""},
        config="build: {builder: buildkit}\n",
    ),
    Case("pk009-kaniko", _stage("COPY app.py .\n"), [], {"app.py": ""}, config="build: {}\n"),
    Case(
        # one stage holds base, deps and code: a code change leaves the deps COPY a cache hit
        "pk009-only-the-code-range-of-the-stage",
        _stage(
            "COPY requirements.txt .\nRUN pip install --no-cache-dir -r requirements.txt\n"
            "COPY app/ ./app/\n"
        ),
        [("PK009", 5)],
        {"requirements.txt": PINNED_REQUIREMENTS, "app/main.py": ""},
        config="build: {builder: buildkit}\n",
    ),
    Case(
        # a RUN after the code COPY runs on the whole file system: the pull happens anyway
        "pk009-not-before-a-run",
        _stage(
            "COPY requirements.txt .\nRUN pip install --no-cache-dir -r requirements.txt\n"
            "COPY app/ ./app/\nRUN python -m compileall app\nCOPY conf/ ./conf/\n"
        ),
        [("PK009", 7)],
        {"requirements.txt": PINNED_REQUIREMENTS, "app/main.py": "", "conf/a": ""},
        config="build: {builder: buildkit}\n",
    ),
    Case(
        # the binary goes into a stage that the target builds on and runs a RUN in
        "pk009-run-in-the-target-built-on-the-code-stage",
        f"FROM {PINNED} AS base\nCOPY requirements.txt .\n"
        "RUN pip install --no-cache-dir -r requirements.txt\nCOPY app/ ./app/\n"
        "FROM base\nCOPY entrypoint.sh /entrypoint.sh\nRUN chmod +x /entrypoint.sh\n"
        "USER 10001\n",
        [],
        {"requirements.txt": PINNED_REQUIREMENTS, "app/main.py": "", "entrypoint.sh": ""},
        config="build: {builder: buildkit}\n",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_each_rule_fires_alone(tmp_path: Path, case: Case) -> None:
    found = _findings(_case_root(tmp_path, case))
    assert [(f["rule"], f["line"]) for f in found] == case.expected
    assert all(f["path"] == "Dockerfile" for f in found)


def test_unpinned_requirement_lines_point_into_the_file(tmp_path: Path) -> None:
    requirements = "# serving\ntorch==2.3.1\ntransformers>=4.40  # loose\n-r base.txt\n"
    requirements += (
        "accelerate==0.*\nvllm @ https://example.com/vllm.whl\nnumpy; python_version=='3.11'\n"
    )
    root = _case_root(
        tmp_path,
        Case(
            "",
            _stage("COPY requirements.txt .\nRUN pip install -r requirements.txt\n"),
            [],
            {"requirements.txt": requirements},
        ),
    )
    found = _findings(root)
    assert [(f["rule"], f["path"], f["line"]) for f in found] == [
        ("PK004", "requirements.txt", 3),
        ("PK004", "requirements.txt", 5),
        ("PK004", "requirements.txt", 7),
    ]
    assert "transformers>=4.40" in str(found[0]["message"])
    assert "COPY at Dockerfile:3" in str(found[0]["message"])


def test_unpinned_lines_behind_includes_are_reported_where_they_are(tmp_path: Path) -> None:
    files = {
        "requirements/cuda.txt": "-r common.txt\ntorch==2.5.1\n-c ../constraints.txt\n",
        "requirements/common.txt": "# shared\nfastapi>=0.115\n--requirement=nested/extra.txt\n"
        "numpy\n-r ../../outside.txt\n-r cuda.txt\n",
        "requirements/nested/extra.txt": "sentencepiece\n",
        "constraints.txt": "numpy==1.26.4\n",
    }
    root = tmp_path / "repo"
    _context(root, files, IGNORE)
    (tmp_path / "outside.txt").write_text("leaked\n")
    (root / "Dockerfile").write_text(
        _stage(
            "COPY requirements/ requirements/\nCOPY constraints.txt .\n"
            "RUN pip install -r requirements/cuda.txt\n"
        )
    )
    found = _findings(root)
    assert [(f["rule"], f["path"], f["line"]) for f in found] == [
        ("PK004", "requirements/common.txt", 2),
        ("PK004", "requirements/nested/extra.txt", 1),
    ]
    assert "through -r at requirements/cuda.txt:1" in str(found[0]["message"])
    assert "the install at Dockerfile:5 reads it" in str(found[0]["message"])
    assert "(COPY at Dockerfile:3)" in str(found[0]["message"])
    assert "through -r at requirements/common.txt:3" in str(found[1]["message"])


def test_includes_do_not_follow_symlinks_out_of_the_context(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    _context(root, {"requirements.txt": "-r linked/base.txt\n"}, IGNORE)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "base.txt").write_text("leaked\n")
    (root / "linked").symlink_to(tmp_path / "elsewhere")
    (root / "Dockerfile").write_text(
        _stage("COPY requirements.txt .\nRUN pip install -r requirements.txt\n")
    )
    assert _findings(root) == []


def test_a_requirements_file_no_install_reads_is_not_blamed(tmp_path: Path) -> None:
    files = {"requirements.txt": "torch\n", "requirements-dev.txt": "pytest\n"}
    root = _case_root(
        tmp_path,
        Case(
            "",
            _stage("COPY requirements*.txt ./\nRUN pip install -r requirements-dev.txt\n"),
            [],
            files,
        ),
    )
    assert [(f["path"], f["line"]) for f in _findings(root)] == [("requirements-dev.txt", 1)]


MULTI_TARGET = f"""\
FROM {PINNED} AS base
RUN pip install fastapi
USER 10001
FROM base AS dev
RUN pip install pytest
FROM {PINNED} AS convert
RUN pip install onnx
COPY tools/ /tools/
FROM base AS runtime
COPY --from=convert /tools/out /srv/
"""


def test_every_stage_is_linted_and_names_its_targets(tmp_path: Path) -> None:
    root = _case_root(tmp_path, Case("", MULTI_TARGET, [], {"tools/t.py": ""}))
    found = _findings(root)
    assert [(f["rule"], f["line"], f["targets"]) for f in found] == [
        ("PK004", 2, ["dev", "runtime"]),
        ("PK004", 5, ["dev"]),
        ("PK004", 7, ["runtime"]),
    ]
    _, text = _lint(root, "text")
    assert "Dockerfile:5: warning: PK004 unpinned-dependencies" in text
    assert "    targets: dev\n" in text
    assert "Targets: dev, runtime." in _lint(root, "github")[1]


def test_dockerignore_beside_the_dockerfile_wins(tmp_path: Path) -> None:
    _context(tmp_path, {"weights/model.safetensors": FAKE_WEIGHTS}, dockerignore=None)
    (tmp_path / "Dockerfile").write_text(_stage("COPY . .\n"))
    assert [f["rule"] for f in _findings(tmp_path)] == ["PK008", "PK001"]
    (tmp_path / "Dockerfile.dockerignore").write_text("weights\n")
    assert _findings(tmp_path) == []


def test_weights_message_names_examples_and_size(tmp_path: Path) -> None:
    files = {f"m/shard-{i}.safetensors": FAKE_WEIGHTS + b"\0" * (1024 * i) for i in range(5)}
    _case_root(tmp_path, Case("", _stage("COPY m/ /m/\n"), [], files))
    (finding,) = _findings(tmp_path)
    assert finding["message"] == (
        "COPY puts model weights in the image: m/shard-4.safetensors, m/shard-3.safetensors, "
        "m/shard-2.safetensors and 2 more (5 files, 25.0 MiB)."
    )
    assert "MODEL_PATH" in str(finding["fix"])


def test_base_image_from_an_arg_names_it(tmp_path: Path) -> None:
    dockerfile = "ARG BASE=nvidia/cuda:12.1.1-runtime-ubuntu22.04\nFROM ${BASE}\nUSER 1000\n"
    _case_root(tmp_path, Case("", dockerfile, []))
    (finding,) = _findings(tmp_path)
    assert (finding["rule"], finding["line"]) == ("PK005", 2)
    assert "ARG BASE=nvidia/cuda:12.1.1-runtime-ubuntu22.04" in str(finding["message"])
    assert str(finding["fix"]).startswith(
        "Pin it by digest: set ARG BASE to nvidia/cuda:12.1.1-runtime-ubuntu22.04@sha256:<digest>"
    )


def _seed_context(root: Path, *, dockerignore: str | None) -> None:
    weights = "mistral_7b_truss/model/model-weights"
    _context(
        root,
        {
            "mistral_7b_truss/requirements.txt": "torch==2.1.2\ntransformers\naccelerate>=0.25\n",
            "mistral_7b_truss/config.yaml": "model_name: mistral-7b-instruct\n",
            "mistral_7b_truss/model/__init__.py": "",
            "mistral_7b_truss/model/model.py": "class Model: ...\n",
            f"{weights}/model-00001-of-00002.safetensors": FAKE_WEIGHTS,
            f"{weights}/model-00002-of-00002.safetensors": FAKE_WEIGHTS,
            f"{weights}/tokenizer.json": "{}",
        },
        dockerignore,
    )


def test_seed_naive_dockerfile_lights_up(tmp_path: Path) -> None:
    _seed_context(tmp_path, dockerignore=None)
    dockerfile = (LINT_FIXTURES / "seed-naive.Dockerfile").read_text()
    (tmp_path / "Dockerfile").write_text(dockerfile)
    lines = dockerfile.splitlines()
    copy_line = lines.index("COPY --chown=appuser:appuser mistral_7b_truss/ .") + 1
    found = _findings(tmp_path)
    rules = {(f["rule"], f["path"], f["line"]) for f in found}
    assert ("PK001", "Dockerfile", copy_line) in rules
    assert (
        "PK005",
        "Dockerfile",
        lines.index(next(x for x in lines if x.startswith("FROM"))) + 1,
    ) in rules
    assert ("PK008", "Dockerfile", 1) in rules
    assert {"PK001", "PK004", "PK005", "PK006", "PK007", "PK008"} <= {f["rule"] for f in found}
    assert ("PK004", "mistral_7b_truss/requirements.txt", 2) in rules
    pk001 = next(f for f in found if f["rule"] == "PK001")
    assert "model-00001-of-00002.safetensors" in str(pk001["message"])
    code, _ = _lint(tmp_path)
    assert code == ExitCode.VERDICT


def test_seed_optimized_dockerfile_is_clean(tmp_path: Path) -> None:
    _seed_context(tmp_path, dockerignore=".git\n**/__pycache__\n**/model-weights\n")
    (tmp_path / "mistral_7b_truss/requirements.txt").write_text(
        "torch==2.1.2\ntransformers==4.36.2\naccelerate==0.25.0\n"
    )
    (tmp_path / "Dockerfile").write_text((LINT_FIXTURES / "seed-optimized.Dockerfile").read_text())
    assert _findings(tmp_path) == []
    assert _lint(tmp_path, "text") == (ExitCode.OK, "0 findings\n")


def test_seed_optimized_without_dockerignore_still_takes_the_weights(tmp_path: Path) -> None:
    _seed_context(tmp_path, dockerignore=None)
    (tmp_path / "Dockerfile").write_text((LINT_FIXTURES / "seed-optimized.Dockerfile").read_text())
    assert {f["rule"] for f in _findings(tmp_path)} >= {"PK001", "PK008"}


@pytest.mark.parametrize("entry", ["PK005", "base-image-not-pinned", "pk005"])
def test_disable_a_rule_in_the_config(tmp_path: Path, entry: str) -> None:
    case = Case("", "FROM python:3.11-slim\nUSER 1000\n", [])
    _case_root(tmp_path, case)
    assert [f["rule"] for f in _findings(tmp_path)] == ["PK005"]
    (tmp_path / "pipeline-kit.yaml").write_text(f"lint:\n  disable: [{entry}]\n")
    assert _findings(tmp_path) == []


@pytest.mark.parametrize(
    ("entry", "suggestion"), [("PK05", "PK005"), ("weights-in-imag", "weights-in-image")]
)
def test_unknown_rule_suggests_the_closest(tmp_path: Path, entry: str, suggestion: str) -> None:
    _case_root(tmp_path, Case("", CLEAN, [], CLEAN_FILES))
    (tmp_path / "pipeline-kit.yaml").write_text(f"lint:\n  disable:\n    - {entry}\n")
    where = "pipeline-kit.yaml:2:3"  # the config itself is refused: every command says so
    with pytest.raises(ConfigError) as caught:
        _lint(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{where}: lint.disable: unknown rule '{entry}'.")
    assert f"Did you mean '{suggestion}'?" in message
    assert caught.value.exit_code == ExitCode.USAGE


WEIGHTS_FINDING = Finding(
    rule="PK001",
    name="weights-in-image",
    severity=Severity.ERROR,
    path="docker/Dockerfile",
    line=12,
    message="COPY puts model weights in the image: m/a.bin (1 file, 2.0 KiB).",
    fix="Mount the weights at run time.",
)


def _finding(**changes: Any) -> Finding:
    return dataclasses.replace(WEIGHTS_FINDING, **changes)


def test_text_report_ends_with_a_summary() -> None:
    findings = [
        _finding(),
        _finding(rule="PK008", name="no-dockerignore", severity=Severity.WARNING, line=1),
        _finding(rule="PK006", name="apt-hygiene", severity=Severity.WARNING, line=3),
    ]
    text = as_text(findings)
    assert text.splitlines()[0] == (
        "docker/Dockerfile:12: error: PK001 weights-in-image: COPY puts model weights in the "
        "image: m/a.bin (1 file, 2.0 KiB)."
    )
    assert text.splitlines()[1] == "    fix: Mount the weights at run time."
    assert text.endswith("\n3 findings: 1 error, 2 warnings\n")
    assert as_text(findings[:1]).endswith("\n1 finding: 1 error\n")


def test_json_report(tmp_path: Path) -> None:
    _case_root(tmp_path, Case("", "FROM python:3.11-slim\nUSER 1000\n", []))
    code, text = _lint(tmp_path, "json")
    document = json.loads(text)
    assert code == ExitCode.OK
    assert document["counts"] == {"error": 0, "warning": 1, "info": 0}
    (finding,) = document["findings"]
    assert finding["rule"] == "PK005"
    assert finding["name"] == "base-image-not-pinned"
    assert finding["severity"] == "warning"
    assert finding["fix"].startswith("Pin it by digest: python:3.11-slim@sha256:<digest>")


def test_github_annotation_line_and_escaping() -> None:
    assert github_annotations([_finding()]) == (
        "::error file=docker/Dockerfile,line=12,title=PK001 weights-in-image::COPY puts model "
        "weights in the image: m/a.bin (1 file, 2.0 KiB). Fix: Mount the weights at run time.\n"
    )
    odd = _finding(
        severity=Severity.WARNING,
        path="a,b:c/Dockerfile",
        message="100% of\r\nthe layer",
    )
    assert github_annotations([odd]) == (
        "::warning file=a%2Cb%3Ac/Dockerfile,line=12,title=PK001 weights-in-image::"
        "100%25 of%0D%0Athe layer Fix: Mount the weights at run time.\n"
    )
    info = github_annotations([_finding(severity=Severity.INFO)])
    assert info.startswith("::notice file=")


def test_gitlab_code_quality(tmp_path: Path) -> None:
    _seed_context(tmp_path, dockerignore=None)
    (tmp_path / "Dockerfile").write_text((LINT_FIXTURES / "seed-naive.Dockerfile").read_text())
    _, first = _lint(tmp_path, "gitlab")
    _, second = _lint(tmp_path, "gitlab")
    issues = json.loads(first)
    assert first == second
    assert len({issue["fingerprint"] for issue in issues}) == len(issues)
    for issue in issues:
        assert set(issue) == {"description", "check_name", "fingerprint", "severity", "location"}
        assert issue["check_name"] in RULES
        assert len(issue["fingerprint"]) == 64
        assert isinstance(issue["location"]["lines"]["begin"], int)
        expected = "critical" if RULES[issue["check_name"]].severity is Severity.ERROR else "major"
        assert issue["severity"] == expected
    weights = next(i for i in issues if i["check_name"] == "PK001")
    assert weights["location"]["path"] == "Dockerfile"
    assert weights["description"].startswith("PK001 weights-in-image: COPY puts model weights")
    assert "Fix: Mount the weights" in weights["description"]
    assert (
        json.loads(gitlab_code_quality([_finding(severity=Severity.INFO)]))[0]["severity"] == "info"
    )


def test_output_file_instead_of_stdout(tmp_path: Path) -> None:
    _case_root(tmp_path, Case("", CLEAN, [], CLEAN_FILES))
    code, printed = _lint(tmp_path, "gitlab", output=Path("reports/gl-code-quality.json"))
    assert (code, printed) == (ExitCode.OK, "")
    assert json.loads((tmp_path / "reports/gl-code-quality.json").read_text()) == []


@pytest.mark.parametrize(
    ("dockerfile", "files", "expected"),
    [
        (_stage("COPY model.pt /m/\n"), {"model.pt": FAKE_WEIGHTS}, ExitCode.VERDICT),
        ("FROM python:3.11-slim\nUSER 1000\n", {}, ExitCode.OK),
    ],
    ids=["error", "warnings-only"],
)
def test_exit_code(tmp_path: Path, dockerfile: str, files: dict[str, bytes], expected: int) -> None:
    _case_root(tmp_path, Case("", dockerfile, [], files))
    assert _lint(tmp_path, "text")[0] == expected


def test_missing_dockerfile_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^docker/Dockerfile: no such Dockerfile\.") as caught:
        _lint(tmp_path, dockerfile=Path("docker/Dockerfile"))
    assert caught.value.exit_code == ExitCode.USAGE


def test_paths_are_relative_to_the_repository_root(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    service = tmp_path / "services" / "llm"
    _context(service, {"requirements.txt": "torch\n"}, IGNORE)
    (service / "Dockerfile").write_text(
        _stage("COPY requirements.txt .\nRUN pip install -r requirements.txt\n")
    )
    found = _findings(service)
    assert [(f["path"], f["line"]) for f in found] == [("services/llm/requirements.txt", 1)]


def test_dockerfile_option_overrides_the_config(tmp_path: Path) -> None:
    _case_root(tmp_path, Case("", CLEAN, [], CLEAN_FILES))
    (tmp_path / "Dockerfile.dev").write_text("FROM python:3.11-slim\n")
    code, text = _lint(tmp_path, "text", dockerfile=Path("Dockerfile.dev"))
    assert code == ExitCode.OK
    heads = [line for line in text.splitlines()[:-1] if not line.startswith("    ")]
    assert [line.split(": ")[2].split()[0] for line in heads] == ["PK005", "PK007"]
    assert "    targets: 0" in text.splitlines()


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (
            "apt-get update && apt-get install -y curl",
            [["apt-get", "update"], ["apt-get", "install", "-y", "curl"]],
        ),
        ("echo 'a && b' | tee x; ls", [["echo", "a && b"], ["tee", "x"], ["ls"]]),
        ("cmd 2>&1 >/dev/null & other", [["cmd", "2>&1", ">/dev/null"], ["other"]]),
        ('python -c "print(\\"hi\\")"', [["python", "-c", 'print("hi")']]),
        (
            "x=$(cat f | wc -l) y # a comment; not a command\nz",
            [["x=$(cat f | wc -l)", "y"], ["z"]],
        ),
        ("a \\\n  b", [["a", "b"]]),
        ("echo 'unclosed && rm -rf /", [["echo", "unclosed && rm -rf /"]]),
    ],
)
def test_shell_commands(script: str, expected: list[list[str]]) -> None:
    assert commands(script) == expected


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("sudo -E apt-get install curl", "apt-get install curl"),
        ("DEBIAN_FRONTEND=noninteractive apt-get install curl", "apt-get install curl"),
        ("sudo -u app env PIP_NO_CACHE_DIR=1 pip install x", "pip install x"),
    ],
)
def test_shell_simple_strips_wrappers(words: str, expected: str) -> None:
    assert simple(words.split()) == expected.split()


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("pip install -r requirements.txt", Install("pip", "", False, ("requirements.txt",))),
        (
            "python3 -m pip install --no-cache-dir torch==2.3.1 fastapi",
            Install("pip", "", False, packages=("torch==2.3.1", "fastapi")),
        ),
        ("uv pip install -e .", Install("pip", "", False, local=(".",))),
        ("pip3.11 install --no-deps .", Install("pip", "", True, local=(".",))),
        (
            "pip install -i https://pypi.example/simple -rreq.txt",
            Install("pip", "", False, ("req.txt",)),
        ),
        ("pip install --upgrade", None),
        ("pip download torch", None),
        ("poetry install --only-root", Install("poetry", "", True)),
        ("uv sync --frozen", Install("uv", "", False)),
        ("npm ci", Install("npm", "", False)),
        ("micromamba env create -f environment.yml", Install("conda", "", False)),
        ("apt-get install -y python3-pip", None),
    ],
)
def test_install_of(command: str, expected: Install | None) -> None:
    found = install_of(command.split())
    if expected is None:
        assert found is None
    else:
        assert found == dataclasses.replace(expected, text=command)


@pytest.mark.parametrize(
    ("spec", "pinned"),
    [
        ("torch==2.3.1", True),
        ("torch===2.3.1+cu121", True),
        ("torch[cuda] == 2.3.1", True),
        ("torch==2.*", False),
        ("torch>=2.3", False),
        ("torch", False),
        ("torch~=2.3.0", False),
        ("numpy; python_version=='3.11'", False),
        ("numpy==1.26.4; python_version>='3.10'", True),
        ("vllm @ https://example.com/vllm-0.5.0.whl", True),
        ("https://example.com/pkg-1.0.tar.gz", True),
        ("./wheels/pkg-1.0-py3-none-any.whl", True),
        ("torch==${TORCH_VERSION}", True),
    ],
)
def test_is_pinned(spec: str, pinned: bool) -> None:
    assert is_pinned(spec) is pinned


LAYERED = f"""\
FROM {PINNED} AS base
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

FROM base AS server
COPY app/ ./app/
COPY --from=base /app/requirements.txt /srv/requirements.txt
USER 10001

FROM server AS debug
COPY tools/ /tools/
"""


@pytest.mark.parametrize(
    ("config", "builder", "expected"),
    [
        ("build: {builder: buildkit}\n", None, [7, 8]),  # inferred: the stage named server
        ("layers: {base: base, code: debug}\nbuild: {builder: buildkit}\n", None, [12]),
        ("build: {builder: kaniko}\n", "buildkit", [7, 8]),  # the flag wins
        ("build: {builder: buildkit}\n", "buildah", []),
        ("", "auto", []),
    ],
)
def test_copy_without_link_in_the_code_stage(
    tmp_path: Path, config: str, builder: str | None, expected: list[int]
) -> None:
    files = {"requirements.txt": PINNED_REQUIREMENTS, "app/main.py": "", "tools/t": ""}
    root = _case_root(tmp_path, Case("layered", LAYERED, [], files, config=config))
    out = io.StringIO()
    options = LintOptions(config_path=None, cwd=root, format="json", builder=builder)
    assert run(options, out) == 0  # a warning: the build is not blocked
    found = [f for f in json.loads(out.getvalue())["findings"] if f["rule"] == "PK009"]
    assert [f["line"] for f in found] == expected
    for finding in found:
        assert finding["severity"] == "warning"
        assert "5.5 s with plain COPY and 0.20 s with COPY --link" in finding["message"]
        assert finding["fix"].startswith("Write `COPY --link ")
    if len(found) == 2:
        assert found[1]["fix"].startswith(
            "Write `COPY --link --from=base /app/requirements.txt /srv/requirements.txt`"
        )


def test_lint_cli_takes_the_builder(tmp_path: Path) -> None:
    from tests.support.gitrepo import cli

    files = {"requirements.txt": PINNED_REQUIREMENTS, "app/main.py": "", "tools/t": ""}
    root = _case_root(tmp_path, Case("layered", LAYERED, [], files))
    result = cli("lint", "--builder", "buildkit", "--format", "json", cwd=root)
    assert result.returncode == 0, result.stderr
    findings = json.loads(result.stdout)["findings"]
    assert [f["line"] for f in findings if f["rule"] == "PK009"] == [7, 8]


def test_the_lint_docs_rule_table_lists_every_rule() -> None:
    text = doc("docs/lint.md")
    rows = {
        line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| PK")
    }
    assert set(rows) == set(RULES)
    for rule in RULES.values():
        assert f"| {rule.name} | {rule.severity.value} |" in rows[rule.id]


@pytest.mark.parametrize(
    ("size", "flagged"),
    [(WEIGHTS_MIN_BYTES - 1, False), (WEIGHTS_MIN_BYTES, True)],
    ids=["under the floor", "at the floor"],
)
def test_a_small_file_named_like_weights_is_an_asset(
    tmp_path: Path, size: int, flagged: bool
) -> None:
    """Libraries vendored into serving code ship small ``.pt`` tables (a speaker table of
    1.3 MiB beside a TTS model's code, normalisation statistics): they are assets the code
    loads, not a model, and PK001 counts a file named like weights only from 5 MiB."""
    files = {"vendor/tts/spk2info.pt": b"\0" * size, "app.py": ""}
    _case_root(tmp_path, Case("", _stage("COPY . /srv/\n"), [], files, dockerignore=".git\n"))
    rules = [f["rule"] for f in _findings(tmp_path)]
    assert ("PK001" in rules) is flagged

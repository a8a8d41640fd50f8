"""Precision of the Dockerfile doctor on small repositories shaped like real LLM-serving ones
(text-generation-inference, vLLM, an embedding server on Poetry, ollama, llama.cpp's server).

Each repository lists every finding lint must give, as (rule, file, line), and nothing else:
what is not listed is a true negative the shape is there to hold (a bind-mounted .git, the
local project installed after its pinned requirements, a model loaded in a test stage only
...)."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline_kit.commands.lint import LintOptions, run

BIG = b"\0" * 4096  # over lint.max_file_mb where a repository sets it to 0.001


@dataclass(frozen=True)
class Repo:
    id: str
    dockerfile: str
    files: Mapping[str, str | bytes]
    expected: list[tuple[str, str, int]]  # (rule, path, line), in report order
    dockerignore: str | None = None
    config: str | None = None


TGI = """\
FROM lukemathwalker/cargo-chef:latest-rust-1.80 AS chef
WORKDIR /usr/src

FROM chef AS planner
COPY Cargo.lock Cargo.lock
COPY Cargo.toml Cargo.toml
COPY router router
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /usr/src/recipe.json recipe.json
RUN cargo chef cook --profile release-opt --recipe-path recipe.json
COPY Cargo.toml Cargo.lock ./
COPY router router
RUN --mount=type=bind,source=.git,target=/usr/src/.git \\
    cargo build --profile release-opt --frozen

FROM nvidia/cuda:12.4.1-devel-ubuntu22.04 AS kernel-builder
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \\
    --no-install-recommends ninja-build cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /usr/src
COPY server/Makefile-flash-att Makefile
RUN make build-flash-attention

FROM nvidia/cuda:12.4.1-base-ubuntu22.04 AS base
ENV HF_HOME=/data HUGGINGFACE_HUB_CACHE=/data PORT=80
RUN apt-get update && apt-get install -y --no-install-recommends python3-pip \\
    && rm -rf /var/lib/apt/lists/*
COPY --from=kernel-builder /usr/src/flash-attention/build /opt/conda/lib/python3.11/
WORKDIR /usr/src
COPY server/requirements_cuda.txt server/requirements_cuda.txt
RUN pip install --upgrade pip && pip install -r server/requirements_cuda.txt
COPY proto proto
COPY server server
RUN cd server && pip install ".[bnb, accelerate, quantize, peft, outlines]" --no-cache-dir
COPY --from=builder /usr/src/target/release-opt/text-generation-router /usr/local/bin/

FROM base AS sagemaker
COPY sagemaker-entrypoint.sh entrypoint.sh
RUN chmod +x entrypoint.sh
ENTRYPOINT ["./entrypoint.sh"]

FROM base
ENTRYPOINT ["text-generation-launcher"]
CMD ["--json-output"]
"""
TGI_FILES = {
    "Cargo.toml": "[workspace]\n",
    "Cargo.lock": "# lock\n",
    "router/src/main.rs": "fn main() {}\n",
    ".git/HEAD": "ref: refs/heads/main\n",
    ".git/objects/pack/pack-4f1c.pack": BIG,  # history: its size follows the clone depth
    "server/Makefile-flash-att": "build-flash-attention:\n",
    "server/Makefile": "",
    "server/requirements_cuda.txt": (
        "certifi==2024.7.4 ; python_version >= '3.9' and python_version < '3.13'\n"
        "torch==2.4.0 ; python_version >= '3.9'\n"
        "transformers==4.45.2\n"
    ),
    "server/pyproject.toml": (
        "[tool.poetry]\nname = 'text-generation-server'\n"
        "[tool.poetry.dependencies]\npython = '>=3.9,<3.13'\ntransformers = '^4.45.2'\n"
    ),
    "server/poetry.lock": "# lock\n",
    "server/text_generation_server/__init__.py": "",
    "proto/generate.proto": "",
    "sagemaker-entrypoint.sh": "#!/bin/sh\n",
}
TGI_IGNORE = "aml\ntarget\nserver/transformers\nserver/flash-attention\n"

VLLM = """\
ARG CUDA_VERSION=12.4.1
FROM nvidia/cuda:${CUDA_VERSION}-devel-ubuntu22.04 AS base
RUN apt-get update -y && apt-get install -y --no-install-recommends python3-pip git \\
    && rm -rf /var/lib/apt/lists/*
WORKDIR /workspace
COPY requirements/common.txt requirements/common.txt
COPY requirements/cuda.txt requirements/cuda.txt
RUN --mount=type=cache,target=/root/.cache/uv \\
    uv pip install --system -r requirements/cuda.txt

FROM base AS build
COPY . .
RUN --mount=type=cache,target=/root/.cache/uv \\
    --mount=type=bind,source=.git,target=.git \\
    python3 setup.py bdist_wheel --dist-dir=dist

FROM base AS vllm-base
RUN --mount=type=bind,from=build,src=/workspace/dist,target=/vllm-workspace/dist \\
    uv pip install --system /vllm-workspace/dist/*.whl --verbose

FROM vllm-base AS test
COPY tests/ tests/
RUN python3 -c "from vllm import LLM; LLM(model='facebook/opt-125m')"

FROM vllm-base AS vllm-openai
RUN uv pip install --system accelerate hf_transfer 'modelscope!=1.18.0' 'bitsandbytes==0.45.3'
USER 2000
ENTRYPOINT ["python3", "-m", "vllm.entrypoints.openai.api_server"]
"""
VLLM_FILES = {
    "requirements/common.txt": (
        "psutil\nsentencepiece  # Required for LLaMA tokenizer.\nnumpy < 2.0.0\n"
        "fastapi[standard] >= 0.115.0\ntransformers == 4.48.2\n"
    ),
    "requirements/cuda.txt": (
        "# Common dependencies\n-r common.txt\n\ntorch==2.5.1\nxformers==0.0.28.post3\n"
    ),
    "setup.py": "",
    "pyproject.toml": "[build-system]\nrequires = ['setuptools']\n",
    "vllm/__init__.py": "",
    "tests/test_basic.py": "",
    ".git/HEAD": "ref: refs/heads/main\n",
    ".git/objects/pack/pack-9e2a.pack": BIG,
}
VLLM_IGNORE = "/.venv\n/build\ndist\nvllm/*.so\n"

EMBEDDINGS = """\
FROM python:3.11-slim AS base
ENV PYTHONUNBUFFERED=1 POETRY_VIRTUALENVS_CREATE=false
RUN pip install --no-cache-dir poetry==1.8.3
WORKDIR /app
COPY libs/embed/pyproject.toml libs/embed/poetry.lock ./
RUN poetry install --no-root --no-interaction --extras all
COPY libs/embed/embed_server embed_server
RUN poetry install --only-root

FROM base AS warm-cache
RUN python -c "from sentence_transformers import SentenceTransformer; \\
    SentenceTransformer('BAAI/bge-small-en-v1.5')"

FROM base AS runtime
COPY libs/embed/pyproject.toml /app/pyproject.toml
USER 1000
CMD ["uvicorn", "embed_server.app:app", "--host", "0.0.0.0"]
"""
EMBEDDINGS_FILES = {
    "libs/embed/pyproject.toml": (
        "[tool.poetry]\nname = 'embed-server'\n"
        "[tool.poetry.dependencies]\npython = '^3.11'\nsentence-transformers = '^3.0'\n"
    ),
    "libs/embed/poetry.lock": "# lock\n",
    "libs/embed/embed_server/app.py": "",
    "libs/embed/embed_server/__init__.py": "",
}

EMBEDDINGS_PIP = """\
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
COPY pyproject.toml README.md ./
COPY src src
RUN pip install --no-cache-dir --no-deps -e .
RUN pip install --no-cache-dir "sentence-transformers>=3"
USER 1000
"""
EMBEDDINGS_PIP_FILES = {
    "requirements.txt": (
        "--index-url https://download.pytorch.org/whl/cpu\n"
        "torch==2.4.1 \\\n    --hash=sha256:0f2b\n"
        "fastapi==0.115.0 --hash=sha256:17ea\n"
        "-e ./libs/client\n"
    ),
    "pyproject.toml": "[project]\nname = 'embed'\ndependencies = ['fastapi>=0.110', 'torch']\n",
    "README.md": "",
    "src/embed/__init__.py": "",
}

OLLAMA = """\
FROM ollama/ollama:0.5.7
ENV OLLAMA_HOST=0.0.0.0 OLLAMA_MODELS=/models
RUN ollama serve & sleep 5 && ollama pull llama3.2:1b
COPY Modelfile /Modelfile
RUN ollama --version
EXPOSE 11434
"""
OLLAMA_FILES = {"Modelfile": "FROM /models/llama3.2\n"}

LLAMA_CPP = """\
FROM ubuntu:22.04 AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake git \\
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
RUN cmake -B build -DLLAMA_CURL=OFF && cmake --build build --target llama-server -j

FROM ubuntu:22.04 AS server
COPY --from=build /app/build/bin/llama-server /llama-server
ADD https://huggingface.co/TheBloke/Llama-2-7B-GGUF/resolve/main/llama-2-7b.Q4_K_M.gguf \\
    /models/model.gguf
ADD https://github.com/ggerganov/llama.cpp/raw/master/examples/server/public/index.html /public/
COPY models/tokenizer.json /models/tokenizer.json
USER 1000
ENTRYPOINT ["/llama-server", "-m", "/models/model.gguf", "--path", "/public"]
"""
LLAMA_CPP_FILES = {
    "CMakeLists.txt": "",
    "src/llama.cpp": "",
    "models/ggml-vocab-llama-bpe.gguf": BIG,  # vocabularies for tests, in the build stage only
    "models/tokenizer.json": "{}",
}

UV_SERVER = f"""\
FROM python:3.11-slim@sha256:{"e3b0c442" * 8} AS base
COPY --from=ghcr.io/astral-sh/uv:0.5.4 /uv /bin/uv
WORKDIR /app
RUN --mount=type=cache,target=/root/.cache/uv \\
    --mount=type=bind,source=uv.lock,target=uv.lock \\
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \\
    uv sync --frozen --no-install-project --no-dev
COPY . /app
RUN --mount=type=cache,target=/root/.cache/uv uv sync --frozen --no-dev
USER 1000
CMD ["uv", "run", "infinity_emb", "v2"]
"""
UV_SERVER_FILES = {
    "pyproject.toml": "[project]\nname = 'infinity-emb'\ndependencies = ['torch>=2.2']\n",
    "uv.lock": "version = 1\n",
    "infinity_emb/__init__.py": "",
    "weights/bge/model.safetensors": BIG,
    ".git/objects/pack/pack-77aa.pack": BIG,
}

REPOS = [
    Repo(
        "text-generation-inference",
        TGI,
        TGI_FILES,
        [
            ("PK005", "Dockerfile", 1),  # cargo-chef by tag
            ("PK005", "Dockerfile", 18),  # the CUDA devel image of the kernel builder
            ("PK005", "Dockerfile", 25),  # the CUDA base image
            ("PK007", "Dockerfile", 43),  # the default target sets no USER
        ],
        dockerignore=TGI_IGNORE,
        config="lint:\n  max_file_mb: 0.001\n",
    ),
    Repo(
        "vllm",
        VLLM,
        VLLM_FILES,
        [
            ("PK005", "Dockerfile", 2),
            ("PK002", "Dockerfile", 23),  # LLM(model=...) at build time, in the test target
            ("PK004", "Dockerfile", 26),  # accelerate, hf_transfer, modelscope!=1.18.0
            ("PK004", "requirements/common.txt", 1),  # psutil, behind -r common.txt
            ("PK004", "requirements/common.txt", 2),  # sentencepiece
            ("PK004", "requirements/common.txt", 3),  # numpy < 2.0.0
            ("PK004", "requirements/common.txt", 4),  # fastapi[standard] >= 0.115.0
        ],
        dockerignore=VLLM_IGNORE,
        config="lint:\n  max_file_mb: 0.001\n",
    ),
    Repo(
        "embedding-server-poetry",
        EMBEDDINGS,
        EMBEDDINGS_FILES,
        [
            ("PK005", "Dockerfile", 1),
            ("PK002", "Dockerfile", 11),  # SentenceTransformer('...') in warm-cache
        ],
        dockerignore=".git\n**/__pycache__\n",
    ),
    Repo(
        "embedding-server-pip",
        EMBEDDINGS_PIP,
        EMBEDDINGS_PIP_FILES,
        [
            ("PK005", "Dockerfile", 1),
            ("PK003", "Dockerfile", 6),  # src/ before the install of line 8
            ("PK004", "Dockerfile", 8),  # sentence-transformers>=3
        ],
        dockerignore=".git\n",
    ),
    Repo(
        "ollama",
        OLLAMA,
        OLLAMA_FILES,
        [
            ("PK005", "Dockerfile", 1),
            ("PK007", "Dockerfile", 1),
            ("PK002", "Dockerfile", 3),  # ollama pull
        ],
        dockerignore=".git\n",
    ),
    Repo(
        "llama-cpp-server",
        LLAMA_CPP,
        LLAMA_CPP_FILES,
        [
            ("PK005", "Dockerfile", 1),
            ("PK005", "Dockerfile", 8),
            ("PK002", "Dockerfile", 10),  # ADD of a .gguf from huggingface.co
        ],
        dockerignore=".git\nbuild\n",
        config="lint:\n  max_file_mb: 0.001\n",
    ),
    Repo(
        "embedding-server-uv",
        UV_SERVER,
        UV_SERVER_FILES,
        [("PK005", "Dockerfile", 2)],  # the uv image by tag; the lock is bind-mounted
        dockerignore="weights/\n",
        config="lint:\n  max_file_mb: 0.001\n",
    ),
]


def _repository(root: Path, repo: Repo) -> Path:
    for name, content in repo.files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    if repo.dockerignore is not None:
        (root / ".dockerignore").write_text(repo.dockerignore)
    if repo.config is not None:
        (root / "pipeline-kit.yaml").write_text(repo.config)
    (root / "Dockerfile").write_text(repo.dockerfile)
    return root


def _findings(root: Path) -> list[dict[str, object]]:
    out = io.StringIO()
    run(LintOptions(config_path=None, cwd=root, format="json"), out)
    findings: list[dict[str, object]] = json.loads(out.getvalue())["findings"]
    return findings


@pytest.mark.parametrize("repo", REPOS, ids=[r.id for r in REPOS])
def test_findings_on_real_shapes(tmp_path: Path, repo: Repo) -> None:
    found = _findings(_repository(tmp_path, repo))
    got = sorted((str(f["rule"]), str(f["path"]), int(str(f["line"]))) for f in found)
    assert got == sorted(repo.expected)


@pytest.mark.parametrize(
    ("repo_id", "line", "targets"),
    [
        ("vllm", 2, ["test", "vllm-openai"]),  # the base stage both targets build on
        ("vllm", 23, ["test"]),  # the model load of the test target only
        ("vllm", 26, ["vllm-openai"]),
        ("text-generation-inference", 1, ["sagemaker", "6"]),  # cargo-chef, via COPY --from
        ("embedding-server-poetry", 11, ["warm-cache"]),
    ],
)
def test_findings_name_the_targets_that_use_their_stage(
    tmp_path: Path, repo_id: str, line: int, targets: list[str]
) -> None:
    repo = next(r for r in REPOS if r.id == repo_id)
    found = _findings(_repository(tmp_path, repo))
    assert [f["targets"] for f in found if f["path"] == "Dockerfile" and f["line"] == line] == [
        targets
    ]

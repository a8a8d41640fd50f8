"""Layers inferred from what the instructions do, on repositories shaped like real LLM servers.

Three shapes that real images have and that stage-per-layer cannot answer: a Python server
copied and installed late inside the stage that holds CUDA (vLLM), a Rust router built in a
builder stage plus a dozen kernels built in side stages and copied into a CUDA base (text-
generation-inference), and a compiled extension built in a builder stage feeding a slim
runtime stage where poetry installs the packages before the app is copied (an embedding
server). A change to the application's own files must come out as code only, a lock or
requirements change as deps, a system package as base; every reason names its instruction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.gitrepo import GitRepo, changed

VLLM = """\
FROM nvidia/cuda:12.4.1-devel-ubuntu22.04 AS base
ARG PYTHON_VERSION=3.12
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -y && apt-get install -y python3 python3-pip git curl
WORKDIR /vllm-workspace
COPY requirements/common.txt requirements/cuda.txt requirements/
RUN --mount=type=cache,target=/root/.cache/pip pip install -r requirements/cuda.txt
COPY vllm vllm
COPY setup.py pyproject.toml ./
RUN pip install --no-build-isolation -e .
ENTRYPOINT ["python3", "-m", "vllm.entrypoints.openai.api_server"]
"""
VLLM_FILES = {
    "Dockerfile": VLLM,
    "requirements/common.txt": "fastapi==0.115.0\n",
    "requirements/cuda.txt": "-r common.txt\ntorch==2.5.1\n",
    "vllm/__init__.py": "",
    "vllm/engine.py": "ENGINE = 1\n",
    "setup.py": "from setuptools import setup\nsetup(name='vllm')\n",
    "pyproject.toml": "[project]\nname = 'vllm'\n",
    "docs/index.md": "# vLLM\n",
}

KERNELS = ["flash-att", "flash-att-v2", "vllm", "awq", "eetq", "marlin", "mamba", "lorax-punica",
           "fbgemm", "exllama", "exllamav2", "megablocks"]  # fmt: skip


def _tgi_dockerfile() -> str:
    side = "".join(
        f"FROM kernel-builder AS {name}-builder\nWORKDIR /usr/src\n"
        f"COPY server/Makefile-{name} Makefile\nRUN make build-{name}\n\n"
        for name in KERNELS
    )
    copies = "".join(
        f"COPY --from={name}-builder /usr/src/build /opt/conda/lib/python3.11/site-packages\n"
        for name in KERNELS
    )
    return (
        "FROM rust:1.80-slim AS chef\nWORKDIR /usr/src\nRUN cargo install cargo-chef\n\n"
        "FROM chef AS planner\nCOPY Cargo.toml Cargo.lock ./\nCOPY router router\n"
        "RUN cargo chef prepare --recipe-path recipe.json\n\n"
        "FROM chef AS builder\nCOPY --from=planner /usr/src/recipe.json recipe.json\n"
        "RUN cargo chef cook --release --recipe-path recipe.json\n"
        "COPY Cargo.toml Cargo.lock ./\nCOPY router router\nRUN cargo build --release\n\n"
        "FROM nvidia/cuda:12.4.1-devel-ubuntu22.04 AS pytorch-install\n"
        "RUN apt-get update && apt-get install -y curl git\n"
        "RUN /opt/conda/bin/conda install -y pytorch pytorch-cuda=12.4 -c pytorch -c nvidia\n\n"
        "FROM pytorch-install AS kernel-builder\nRUN apt-get install -y ninja-build cmake\n\n"
        f"{side}"
        "FROM nvidia/cuda:12.4.1-base-ubuntu22.04 AS base\n"
        "ENV PATH=/opt/conda/bin:$PATH HF_HOME=/data\n"
        "RUN apt-get update && apt-get install -y libssl-dev ca-certificates\n"
        "COPY --from=pytorch-install /opt/conda /opt/conda\n"
        f"{copies}"
        "COPY server/requirements_cuda.txt requirements_cuda.txt\n"
        "RUN pip install -r requirements_cuda.txt --no-cache-dir\n"
        "COPY proto proto\nCOPY server server\n"
        "RUN cd server && make gen-server && pip install --no-deps -e .\n"
        "COPY --from=builder /usr/src/target/release/text-generation-router /usr/local/bin/\n\n"
        "FROM base\nCOPY ./tgi-entrypoint.sh /tgi-entrypoint.sh\n"
        'ENTRYPOINT ["/tgi-entrypoint.sh"]\n'
    )


TGI = _tgi_dockerfile()
TGI_FILES = {
    "Dockerfile": TGI,
    "Cargo.toml": "[workspace]\nmembers = ['router']\n",
    "Cargo.lock": "# lock\n",
    "router/Cargo.toml": "[package]\nname = 'router'\n",
    "router/src/main.rs": "fn main() {}\n",
    "proto/generate.proto": 'syntax = "proto3";\n',
    "server/requirements_cuda.txt": "torch==2.4.0\n",
    "server/pyproject.toml": "[project]\nname = 'text-generation-server'\n",
    "server/text_generation_server/__init__.py": "",
    "server/text_generation_server/server.py": "PORT = 80\n",
    "tgi-entrypoint.sh": "#!/bin/sh\nexec text-generation-launcher\n",
    **{f"server/Makefile-{name}": f"build-{name}:\n\ttrue\n" for name in KERNELS},
}

EMBED = """\
FROM gcc:13 AS native
WORKDIR /src
COPY native/ .
RUN make

FROM python:3.11-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \\
    && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir poetry==1.8.3
WORKDIR /app
COPY pyproject.toml poetry.lock ./
RUN poetry config virtualenvs.create false && poetry install --no-root --only main
COPY --from=native /src/libfast.so /usr/local/lib/libfast.so
COPY embedding_server embedding_server
CMD ["python", "-m", "embedding_server"]
"""
EMBED_FILES = {
    "Dockerfile": EMBED,
    "native/Makefile": "all:\n\ttrue\n",
    "native/fast.cpp": "int fast() { return 1; }\n",
    "pyproject.toml": "[tool.poetry]\nname = 'embedding-server'\n",
    "poetry.lock": "# lock 1\n",
    "embedding_server/__init__.py": "",
    "embedding_server/app.py": "MODEL = 'bge-small'\n",
}


def _line(dockerfile: str, text: str) -> int:
    """The line of the one instruction that starts with ``text``."""
    found = [n for n, line in enumerate(dockerfile.splitlines(), 1) if line.startswith(text)]
    assert len(found) == 1, (text, found)
    return found[0]


def _repo(tmp_path: Path, files: dict[str, str]) -> GitRepo:
    repo = GitRepo.init(tmp_path / "repo")
    repo.commit(files, "service")
    return repo


def _layout(result: dict[str, Any]) -> dict[str, tuple[str, list[int]]]:
    return {name: (layer["stage"], layer["lines"]) for name, layer in result["layers"].items()}


def test_vllm_shape_layers_are_ranges_of_one_stage(tmp_path: Path) -> None:
    repo = _repo(tmp_path, VLLM_FILES)
    result = repo.detect(base="HEAD", head="HEAD")
    assert _layout(result) == {"base": ("base", [1, 4]), "deps": ("base", [5, 7]),
                               "code": ("base", [8, 11])}  # fmt: skip
    assert result["layers"]["code"]["origin"] == (
        "lines 8-11 of the target's chain, from what they do"
    )


VLLM_CASES = [
    (
        "a Python change",
        {"vllm/engine.py": "ENGINE = 2\n"},
        {"base": False, "deps": False, "code": True},
        "COPY vllm vllm",
        {"code": ["Dockerfile:8 COPY vllm vllm: vllm/engine.py"]},
    ),
    (
        "the local install's flags",
        {"Dockerfile": VLLM.replace("-e .", "-v -e .")},
        {"base": False, "deps": False, "code": True},
        "RUN pip install",
        {"code": ["Dockerfile:10 RUN pip install --no-build-isolation -v -e .: changed"]},
    ),
    (
        "an included requirements file",
        {"requirements/common.txt": "fastapi==0.115.5\n"},
        {"base": False, "deps": True, "code": True},
        "COPY requirements/",
        {
            "deps": [
                "Dockerfile:6 COPY requirements/common.txt requirements/cuda.txt requirem…: "
                "requirements/common.txt"
            ],
            "code": ["after deps"],
        },
    ),
    (
        "a system package",
        {"Dockerfile": VLLM.replace("git curl", "git curl wget")},
        {"base": True, "deps": True, "code": True},
        "RUN apt-get",
        {
            "base": [
                "Dockerfile:4 RUN apt-get update -y && apt-get install -y python3 python3…: changed"
            ]
        },
    ),
    ("docs", {"docs/index.md": "# v2\n"}, {"base": False, "deps": False, "code": False}, None, {}),
]


@pytest.mark.parametrize(
    ("edit", "expected", "point", "reasons"),
    [case[1:] for case in VLLM_CASES],
    ids=[case[0] for case in VLLM_CASES],
)
def test_vllm_shape(
    tmp_path: Path,
    edit: dict[str, str],
    expected: dict[str, bool],
    point: str | None,
    reasons: dict[str, list[str]],
) -> None:
    repo = _repo(tmp_path, VLLM_FILES)
    repo.commit(edit)
    result = repo.detect()
    assert changed(result) == expected
    for layer, want in reasons.items():
        assert result["layers"][layer]["reasons"] == want, layer
    text = (repo.path / "Dockerfile").read_text()
    if point is None:
        assert result["rebuild_point"] is None and result["image_changed"] is False
    else:
        assert result["rebuild_point"]["line"] == _line(text, point)


def test_tgi_shape_layers(tmp_path: Path) -> None:
    repo = _repo(tmp_path, TGI_FILES)
    result = repo.detect(base="HEAD", head="HEAD")
    base_from = _line(TGI, "FROM nvidia/cuda:12.4.1-base")
    assert _layout(result) == {
        "base": ("base", [base_from, base_from + 2]),
        "deps": ("base", [base_from + 3, _line(TGI, "RUN pip install -r")]),
        "code": ("base", [_line(TGI, "COPY proto"), _line(TGI, "ENTRYPOINT")]),
    }


def _tgi_router_reason() -> str:
    chef = "COPY --from=planner /usr/src/recipe.json recipe.json"
    return (
        f"Dockerfile:{_line(TGI, 'COPY --from=builder')} COPY --from=builder "
        "/usr/src/target/release/text-generation…: stage 'builder' changed: "
        f"Dockerfile:{_line(TGI, chef)} {chef}: stage 'planner' changed: "
        "Dockerfile:7 COPY router router: router/src/main.rs "
        "(and 1 more)"
    )


def test_tgi_shape_python_change_is_code_only(tmp_path: Path) -> None:
    repo = _repo(tmp_path, TGI_FILES)
    repo.commit({"server/text_generation_server/server.py": "PORT = 8080\n"})
    result = repo.detect()
    assert changed(result) == {"base": False, "deps": False, "code": True}
    at = _line(TGI, "COPY server server")
    reason = f"Dockerfile:{at} COPY server server: server/text_generation_server/server.py"
    assert result["layers"]["code"]["reasons"] == [reason]
    point = result["rebuild_point"]
    assert (point["line"], point["text"], point["stage"], point["layer"]) == (
        at,
        "COPY server server",
        "base",
        "code",
    )
    assert point["reasons"] == [reason]


def test_tgi_shape_router_change_rebuilds_the_builder_and_says_so(tmp_path: Path) -> None:
    """The router is the application's own Rust code compiled in a builder stage: a change to
    it rebuilds that stage, and what changes in the image is the COPY --from in code."""
    repo = _repo(tmp_path, TGI_FILES)
    repo.commit({"router/src/main.rs": "fn main() { println!(); }\n"})
    result = repo.detect()
    assert changed(result) == {"base": False, "deps": False, "code": True}
    assert result["layers"]["code"]["reasons"] == [_tgi_router_reason()]
    assert result["rebuild_point"]["line"] == _line(TGI, "COPY --from=builder")


@pytest.mark.parametrize(
    ("edit", "expected", "point"),
    [
        (
            {"server/Makefile-awq": "build-awq:\n\techo v2\n"},
            {"base": False, "deps": True, "code": True},
            "COPY --from=awq-builder",
        ),
        (
            {"server/requirements_cuda.txt": "torch==2.5.0\n"},
            {"base": False, "deps": True, "code": True},
            "COPY server/requirements_cuda.txt",
        ),
        (
            {"tgi-entrypoint.sh": '#!/bin/sh\nexec text-generation-launcher "$@"\n'},
            {"base": False, "deps": False, "code": True},
            "COPY ./tgi-entrypoint.sh",
        ),
    ],
    ids=["a kernel's recipe", "the server's requirements", "the entrypoint in the last stage"],
)
def test_tgi_shape_other_changes(
    tmp_path: Path, edit: dict[str, str], expected: dict[str, bool], point: str
) -> None:
    repo = _repo(tmp_path, TGI_FILES)
    repo.commit(edit)
    result = repo.detect()
    assert changed(result) == expected
    assert result["rebuild_point"]["line"] == _line(TGI, point)


def test_tgi_shape_a_kernel_recipe_reason_names_the_kernel_stage(tmp_path: Path) -> None:
    repo = _repo(tmp_path, TGI_FILES)
    repo.commit({"server/Makefile-awq": "build-awq:\n\techo v2\n"})
    result = repo.detect()
    copy = _line(TGI, "COPY --from=awq-builder")
    recipe = _line(TGI, "COPY server/Makefile-awq")
    assert result["layers"]["deps"]["reasons"] == [
        f"Dockerfile:{copy} COPY --from=awq-builder /usr/src/build /opt/conda/lib/pytho…: "
        f"stage 'awq-builder' changed: Dockerfile:{recipe} COPY server/Makefile-awq Makefile: "
        "server/Makefile-awq"
    ]
    # The whole server directory is copied too: the code layer takes the recipe as a file.
    assert result["layers"]["code"]["reasons"] == [
        f"Dockerfile:{_line(TGI, 'COPY server server')} COPY server server: server/Makefile-awq",
        "after deps",
    ]


EMBED_CASES = [
    (
        "the app",
        {"embedding_server/app.py": "MODEL = 'bge-base'\n"},
        {"base": False, "deps": False, "code": True},
        ["Dockerfile:14 COPY embedding_server embedding_server: embedding_server/app.py"],
        14,
    ),
    (
        "the native extension built from the app's own C++",
        {"native/fast.cpp": "int fast() { return 2; }\n"},
        {"base": False, "deps": False, "code": True},
        [
            "Dockerfile:13 COPY --from=native /src/libfast.so /usr/local/lib/libfast.so: stage "
            "'native' changed: Dockerfile:3 COPY native/ .: native/fast.cpp"
        ],
        13,
    ),
    (
        "the lock file",
        {"poetry.lock": "# lock 2\n"},
        {"base": False, "deps": True, "code": True},
        ["after deps"],
        11,
    ),
]


@pytest.mark.parametrize(
    ("edit", "expected", "code_reasons", "line"),
    [case[1:] for case in EMBED_CASES],
    ids=[case[0] for case in EMBED_CASES],
)
def test_embedding_server_shape(
    tmp_path: Path,
    edit: dict[str, str],
    expected: dict[str, bool],
    code_reasons: list[str],
    line: int,
) -> None:
    repo = _repo(tmp_path, EMBED_FILES)
    assert _layout(repo.detect(base="HEAD", head="HEAD")) == {
        "base": ("runtime", [6, 8]),
        "deps": ("runtime", [9, 12]),
        "code": ("runtime", [13, 15]),
    }
    repo.commit(edit)
    result = repo.detect()
    assert changed(result) == expected
    assert result["layers"]["code"]["reasons"] == code_reasons
    assert result["rebuild_point"]["line"] == line


# An inference server that installs its dependencies from a skeleton of the project (its
# pyproject.toml, build helpers and a bare __init__.py), then copies the whole tree and
# reinstalls only the project: the shape of xinference's image.
SKELETON = """\
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git \\
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/server
COPY pyproject.toml build_backend.py ./
COPY server/__init__.py ./server/
RUN touch README.md && pip install ".[otel]" transformers
COPY . /opt/server
RUN pip install --no-deps --reinstall .
CMD ["python", "-m", "server"]
"""
SKELETON_FILES = {
    "Dockerfile": SKELETON,
    ".dockerignore": ".git\n",
    "pyproject.toml": "[project]\nname = 'server'\ndependencies = ['fastapi==0.115.0']\n",
    "build_backend.py": "BACKEND = 1\n",
    "server/__init__.py": "",
    "server/app.py": "PORT = 9997\n",
}
SKELETON_CASES = [
    ("the app", {"server/app.py": "PORT = 9998\n"}, {"base": False, "deps": False, "code": True},
     _line(SKELETON, "COPY . ")),
    ("the manifest", {"pyproject.toml": "[project]\nname = 'server'\n"},
     {"base": False, "deps": True, "code": True}, _line(SKELETON, "COPY pyproject.toml")),
    ("the build helper", {"build_backend.py": "BACKEND = 2\n"},
     {"base": False, "deps": True, "code": True}, _line(SKELETON, "COPY pyproject.toml")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "expected", "line"),
    [case[1:] for case in SKELETON_CASES],
    ids=[case[0] for case in SKELETON_CASES],
)
def test_an_install_from_the_projects_skeleton_is_deps(
    tmp_path: Path, edit: dict[str, str], expected: dict[str, bool], line: int
) -> None:
    """The manifest, its build helper and the bare ``__init__.py`` go with the install they
    feed: deps ends after it, so an edit of the application is code only, and an edit of the
    manifest rebuilds from the COPY that takes it."""
    repo = _repo(tmp_path, SKELETON_FILES)
    assert _layout(repo.detect(base="HEAD", head="HEAD")) == {
        "base": ("0", [1, 3]),
        "deps": ("0", [4, 7]),
        "code": ("0", [8, 10]),
    }
    repo.commit(edit)
    result = repo.detect()
    assert changed(result) == expected
    assert result["rebuild_point"]["line"] == line


def test_a_config_that_maps_layers_to_stages_keeps_its_stages(tmp_path: Path) -> None:
    """The config's mapping wins over inference: the layers are the stages it names."""
    config = "image: r.example/e\nlayers:\n  deps: native\n  code: runtime\n"
    repo = _repo(tmp_path, {**EMBED_FILES, "pipeline-kit.yaml": config})
    repo.commit({"native/fast.cpp": "int fast() { return 2; }\n"})
    result = repo.detect()
    assert {n: v["stage"] for n, v in result["layers"].items()} == {
        "deps": "native",
        "code": "runtime",
    }
    assert changed(result) == {"deps": True, "code": True}
    assert result["layers"]["deps"]["reasons"] == ["Dockerfile:3 COPY native/ .: native/fast.cpp"]
    assert result["layers"]["deps"]["origin"] == "config"
    assert result["rebuild_point"]["line"] == 13


@pytest.mark.parametrize(
    ("dockerfile", "layout"),
    [
        (
            "FROM scratch AS base\nCOPY busybox /bin/busybox\nFROM base AS code\nCOPY app/ /app/\n",
            {"base": ("base", [1, 2]), "code": ("code", [3, 4])},
        ),
        (
            # Named otherwise, the copied tool is the application's first file.
            "FROM scratch AS tools\nCOPY busybox /bin/busybox\n"
            "FROM tools AS server\nCOPY app/ /app/\n",
            {"base": ("tools", [1, 1]), "code": ("tools", [2, 4])},
        ),
    ],
    ids=["a stage named code starts the code range", "other names do not"],
)
def test_a_stage_named_after_a_role_starts_it(
    tmp_path: Path, dockerfile: str, layout: dict[str, tuple[str, list[int]]]
) -> None:
    repo = _repo(tmp_path, {"Dockerfile": dockerfile, "busybox": "bin\n", "app/x.py": "1\n"})
    assert _layout(repo.detect(base="HEAD", head="HEAD")) == layout


def test_the_text_report_shows_each_range_and_the_rebuild_point(tmp_path: Path) -> None:
    from tests.support.gitrepo import cli

    repo = _repo(tmp_path, VLLM_FILES)
    repo.commit({"vllm/engine.py": "ENGINE = 2\n"})
    proc = cli("detect", "--format", "text", cwd=repo.path)
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()[3:6]}
    assert "base (lines 8-11)" in rows["code"] and "yes" in rows["code"]
    assert "base (lines 1-4)" in rows["base"] and " no " in rows["base"]
    assert proc.stdout.endswith(
        "rebuild from: code; image changed: yes\nrebuild point: Dockerfile:8 COPY vllm vllm\n"
    )


def test_metadata_alone_makes_no_code_range(tmp_path: Path) -> None:
    repo = _repo(tmp_path, {"Dockerfile": 'FROM scratch\nCMD ["a"]\nENV A=1\n'})
    assert _layout(repo.detect(base="HEAD", head="HEAD")) == {"base": ("0", [1, 3])}


def test_instructions_removed_after_the_last_range_change_its_key(tmp_path: Path) -> None:
    """What is left is the image: the range that now ends the chain changed, and says why."""
    repo = _repo(tmp_path, {"Dockerfile": "FROM scratch\nCOPY app /app\n", "app/x": "1\n"})
    before = repo.detect(base="HEAD", head="HEAD")
    repo.commit({"Dockerfile": "FROM scratch\n"})
    result = repo.detect()
    assert changed(result) == {"base": True}
    assert result["layers"]["base"]["key"] != before["layers"]["base"]["key"]
    assert result["layers"]["base"]["reasons"] == [
        "Dockerfile: COPY app /app: removed (was line 2)"
    ]
    assert result["image_changed"] is True and result["rebuild_point"]["line"] == 1

"""What an instruction does, judged from its text: a table per judgement, both directions."""

from __future__ import annotations

import pytest

from pipeline_kit.detect.roles import BASE, CODE, DEPS, Roles, installs_local_project, path_role
from pipeline_kit.dockerfile.stages import parse_dockerfile


@pytest.mark.parametrize(
    ("command", "local"),
    [
        ("pip install -e .", True),
        ("pip install --editable=server", True),
        ("cd server && pip install --no-deps .", True),
        ('uv pip install ".[bnb, accelerate]" --no-cache-dir', True),
        ("python3 -m pip install ./server", True),
        ("pip install /tmp/src/", True),
        ("pip install -r requirements.txt", False),
        ("pip install -r requirements/cuda.txt -c constraints.txt torch==2.5.1", False),
        ("pip install --index-url https://download.pytorch.org/whl/cu124 torch", False),
        ("pip install dist/*.whl", False),
        ("pip install git+https://github.com/org/pkg", False),
        ("pip install $PACKAGES", False),
        ("apt-get install -y ./local.deb", False),
    ],
)
def test_an_install_of_the_local_project(command: str, local: bool) -> None:
    assert installs_local_project(command) is local


@pytest.mark.parametrize(
    ("path", "role"),
    [
        ("requirements.txt", DEPS),
        ("requirements/cuda.txt", DEPS),
        ("server/requirements_cuda.txt", DEPS),
        ("poetry.lock", DEPS),
        ("Cargo.toml", DEPS),
        ("wheels", DEPS),
        ("server/Makefile-flash-att", None),
        ("scripts/install_cuda.sh", None),
        ("server", CODE),
        ("app/main.py", CODE),
        (".", CODE),
    ],
)
def test_the_role_of_a_copied_path(path: str, role: int | None) -> None:
    assert path_role(path) == role


@pytest.mark.parametrize(
    ("instruction", "role"),
    [
        ("RUN apt-get update && apt-get install -y curl", BASE),
        ("RUN apk add --no-cache python3", BASE),
        ("RUN pip install -r requirements.txt", DEPS),
        ("RUN poetry install --no-root --only main", DEPS),
        ("RUN conda install -y pytorch", DEPS),
        ("RUN cargo build --release", DEPS),
        ("RUN npm ci", DEPS),
        ("RUN pip install -e .", DEPS),  # nothing of the project is in the stage yet
        ("RUN --mount=type=bind,source=.,target=/src pip install /src", CODE),
        ("RUN --mount=type=bind,source=.,target=/src pip install --no-deps /src", CODE),
        ("RUN mkdir -p /data && useradd app", None),
        ("ENV PATH=/opt/venv/bin:$PATH", None),
        ("COPY requirements.txt pyproject.toml ./", DEPS),
        ("COPY pyproject.toml build_backend.py ./", DEPS),
        ("COPY pyproject.toml src ./", CODE),
        ("COPY pyproject.toml *.py ./", CODE),
        ("COPY app/__init__.py ./app/", None),
        ("COPY README.md app/__init__.py ./", None),
        ("COPY app/__init__.py app/main.py ./app/", CODE),
        ("COPY server server", CODE),
        ("COPY --from=ghcr.io/astral-sh/uv:0.5 /uv /bin/uv", DEPS),
        ("COPY --from=kernels /out /opt/kernels", DEPS),
        ("COPY --from=router /bin/router /usr/local/bin/", CODE),
        (
            "RUN --mount=type=bind,from=router,source=/dist,target=/dist pip install /dist/*.whl",
            CODE,
        ),
    ],
)
def test_the_role_of_an_instruction(instruction: str, role: int | None) -> None:
    graph = parse_dockerfile(
        "FROM alpine AS kernels\nCOPY Makefile-kernels Makefile\nRUN make\n"
        "FROM rust AS router\nCOPY router router\nRUN cargo build\n"
        f"FROM python:3.12\n{instruction}\n"
    )
    stage = graph.stages[-1]
    assert Roles(graph).of(stage, stage.instructions[1], first_of_chain=False) == role
    assert Roles(graph).of(stage, stage.instructions[0], first_of_chain=True) == BASE


@pytest.mark.parametrize(
    ("before", "role"),
    [
        ("COPY pyproject.toml ./\nCOPY app/__init__.py app/\n", DEPS),
        ("COPY pyproject.toml ./\nCOPY app app\n", CODE),
        ("COPY . .\n", CODE),
    ],
    ids=["after the skeleton", "after the code", "after the context"],
)
def test_an_install_of_the_local_project_is_code_once_the_code_is_in(
    before: str, role: int
) -> None:
    """``pip install .`` resolves the project's dependencies; only once the stage holds the
    application's own files is it the install of the application."""
    graph = parse_dockerfile(f"FROM python:3.12\n{before}RUN pip install .\n")
    stage = graph.stages[0]
    assert Roles(graph).of(stage, stage.instructions[-1], first_of_chain=False) == role

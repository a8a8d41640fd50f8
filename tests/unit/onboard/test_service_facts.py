"""What ``init`` reads about the server from the Dockerfile: port and health paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline_kit.config.loader import load_config
from pipeline_kit.dockerfile.stages import parse_dockerfile
from pipeline_kit.onboard.service import service_facts
from tests.support.gitrepo import GitRepo, cli

# Dockerfile (after `FROM python:3.11-slim AS base`) -> the service keys it states.
CASES: dict[str, tuple[str, dict[str, object]]] = {
    "expose": ("EXPOSE 80\n", {"port": 80}),
    "expose with protocol, several ports": ("EXPOSE 8080/tcp 9090\n", {"port": 8080}),
    "env port": ("ENV PORT=3000\n", {"port": 3000}),
    "env port, old form": ("ENV PORT 3001\n", {"port": 3001}),
    "env port wins over expose": ("EXPOSE 80\nENV PORT=8000\n", {"port": 8000}),
    "expose from an arg": ("ARG P=7000\nEXPOSE ${P}\n", {"port": 7000}),
    "healthcheck url": (
        "HEALTHCHECK CMD curl -f http://localhost:5000/health || exit 1\n",
        {"port": 5000, "ready_path": "/health", "live_path": "/health"},
    ),
    "healthcheck url, exec form, query left out": (
        'EXPOSE 80\nHEALTHCHECK CMD ["wget", "-qO-", "http://127.0.0.1:80/v1/ready?x=1"]\n',
        {"port": 80, "ready_path": "/v1/ready", "live_path": "/v1/ready"},
    ),
    "healthcheck with the env port": (
        "ENV PORT=8080\nHEALTHCHECK CMD curl -fsS http://localhost:${PORT}/ping\n",
        {"port": 8080, "ready_path": "/ping", "live_path": "/ping"},
    ),
    "healthcheck none": ("HEALTHCHECK NONE\n", {}),
    "healthcheck without a url": ("HEALTHCHECK CMD pgrep server\n", {}),
    "healthcheck of the root": ("HEALTHCHECK CMD curl -f http://localhost:81/\n", {"port": 81}),
    "nothing said": ("RUN pip install x\n", {}),
    "not a port": ("EXPOSE ${UNSET}\nENV PORT=http\n", {}),
}


@pytest.mark.parametrize(("text", "expected"), CASES.values(), ids=CASES.keys())
def test_service_facts(text: str, expected: dict[str, object]) -> None:
    graph = parse_dockerfile(f"FROM python:3.11-slim AS base\n{text}")
    facts = service_facts(graph, len(graph.stages) - 1)
    assert {fact.key: fact.value for fact in facts} == expected
    assert all(fact.source.startswith("Dockerfile:") for fact in facts)


def test_only_the_targets_chain_counts() -> None:
    graph = parse_dockerfile(
        "FROM python:3.11 AS base\nEXPOSE 81\n"
        "FROM base AS tools\nEXPOSE 99\n"
        "FROM base AS app\nCOPY --from=tools /x /x\n"
    )
    facts = service_facts(graph, 2)
    assert [(f.key, f.value, f.source) for f in facts] == [("port", 81, "Dockerfile:2 EXPOSE 81")]


def test_init_writes_them_and_the_config_is_valid(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "svc")
    repo.commit(
        {
            "Dockerfile": (
                "FROM python:3.11-slim AS base\nFROM base AS app\nCOPY app /app\nEXPOSE 80\n"
                "HEALTHCHECK --interval=30s CMD curl -f http://localhost/health/ready || exit 1\n"
            ),
            "app/main.py": "print(1)\n",
        }
    )
    result = cli("init", "--ci", "none", "--image", "r.io/a/b", cwd=repo.path)
    assert result.returncode == 0, result.stderr
    text = (repo.path / "pipeline-kit.yaml").read_text()
    assert yaml.safe_load(text)["service"] == {
        "port": 80,
        "ready_path": "/health/ready",
        "live_path": "/health/ready",
    }
    assert "port: 80" in text and "# Dockerfile:4 EXPOSE 80" in text
    config = load_config(repo.path / "pipeline-kit.yaml", repo.path)
    assert config.section("service")["port"] == 80
    shown = cli("config", "show", cwd=repo.path)
    assert shown.returncode == 0, shown.stderr
    assert "service.port" in shown.stdout and "pipeline-kit.yaml:" in shown.stdout


def test_init_writes_no_service_where_the_dockerfile_says_nothing(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "svc")
    repo.commit({"Dockerfile": "FROM python:3.11-slim AS base\nFROM base AS app\n"})
    result = cli("init", "--ci", "none", "--image", "r.io/a/b", cwd=repo.path)
    assert result.returncode == 0, result.stderr
    assert "service" not in yaml.safe_load((repo.path / "pipeline-kit.yaml").read_text())


def test_init_reads_the_dockerfile_for_the_platform_it_is_given(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "svc")
    repo.commit(
        {
            "Dockerfile": (
                "ARG FLAVOR=${TARGETARCH}\n"
                "FROM python:3.11-slim AS base-amd64\nEXPOSE 8001\n"
                "FROM python:3.11-slim AS base-arm64\nEXPOSE 8002\n"
                "FROM base-${FLAVOR} AS app\nCOPY app /app\n"
            ),
            "app/main.py": "print(1)\n",
        }
    )
    args = ("init", "--ci", "none", "--image", "r.io/a/b", "--platform", "aarch64")
    result = cli(*args, cwd=repo.path)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((repo.path / "pipeline-kit.yaml").read_text())
    assert config["platform"] == "linux/arm64"
    assert config["service"] == {"port": 8002}
    assert config["layers"] == {"base": "base-arm64", "code": "app"}
    (repo.path / "pipeline-kit.yaml").unlink()
    bad = cli("init", "--ci", "none", "--image", "r.io/a/b", "--platform", "x/y/z/w", cwd=repo.path)
    assert bad.returncode == 2 and "--platform: 'x/y/z/w' is not a platform" in bad.stderr

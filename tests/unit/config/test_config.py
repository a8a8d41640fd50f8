"""The config file: defaults, inference, `config show` and the shipped schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pipeline_kit import __version__
from pipeline_kit.config.loader import load_config, schema
from pipeline_kit.errors import ConfigError
from tests.support import REPO
from tests.support.docs import doc, fenced
from tests.support.gitrepo import GitRepo, cli

THREE_STAGES = (
    "FROM python:3.11-slim AS base\nFROM base AS builder\nRUN pip install x\n"
    "FROM base AS final\nCOPY --from=builder /venv /venv\nCOPY app/ /app/\n"
)


def _show(path: Path, *args: str) -> dict[str, dict[str, object]]:
    proc = cli("config", "show", "--format", "json", *args, cwd=path)
    assert proc.returncode == 0, proc.stderr
    values: dict[str, dict[str, object]] = json.loads(proc.stdout)["values"]
    return values


def test_inferred_layers_say_how(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(THREE_STAGES)
    values = _show(tmp_path)
    assert values["layers.base"] == {"value": "base", "from": "inferred: stage named 'base'"}
    assert values["layers.deps"] == {"value": "builder", "from": "inferred: stage named 'builder'"}
    assert values["layers.code"] == {"value": "final", "from": "inferred: stage named 'final'"}
    assert values["dockerfile"] == {"value": "Dockerfile", "from": "default"}
    assert values["target"]["value"] == "final"


def test_positional_inference_without_telling_names(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM python:3.11 AS os\nFROM os AS py\nFROM py AS srv\n".replace("AS os", "AS one")
        .replace("FROM os", "FROM one")
        .replace("AS py", "AS two")
        .replace("FROM py", "FROM two")
        .replace("AS srv", "AS three")
    )
    values = _show(tmp_path)
    assert values["layers.base"]["value"] == "one"
    assert values["layers.deps"] == {
        "value": "two",
        "from": "inferred: the stage the target is built FROM",
    }
    assert values["layers.code"] == {"value": "three", "from": "inferred: the target stage"}


def test_configured_values_point_at_their_lines(tmp_path: Path) -> None:
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "Dockerfile").write_text(THREE_STAGES)
    (tmp_path / "pipeline-kit.yaml").write_text(
        "# comment\nimage: registry.example.com/team/svc\ndockerfile: docker/Dockerfile\n"
        "layers:\n  base: base\n  code: final\nbuild_args:\n  TAG: 3\n"
    )
    values = _show(tmp_path, "--")
    assert values["image"] == {
        "value": "registry.example.com/team/svc",
        "from": "pipeline-kit.yaml:2:1",
    }
    assert values["layers.code"] == {"value": "final", "from": "pipeline-kit.yaml:6:3"}
    assert values["build_args.TAG"] == {"value": "3", "from": "pipeline-kit.yaml:8:3"}
    assert "layers.deps" not in values  # a mapping is taken as given, not completed


def test_text_format_and_explicit_config_path(tmp_path: Path) -> None:
    service = tmp_path / "services" / "llm"
    service.mkdir(parents=True)
    (service / "Dockerfile").write_text(THREE_STAGES)
    (service / "pipeline-kit.yaml").write_text("target: builder\n")
    proc = cli("--config", "services/llm/pipeline-kit.yaml", "config", "show", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# services/llm/pipeline-kit.yaml\n")
    line = r'^target\s+"builder"\s+# services/llm/pipeline-kit\.yaml:1:1$'
    assert re.search(line, proc.stdout, re.MULTILINE), proc.stdout


def test_schema_is_shipped_and_printed(tmp_path: Path) -> None:
    proc = cli("config", "schema", cwd=tmp_path)
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == schema()
    assert schema()["additionalProperties"] is False


def test_version(tmp_path: Path) -> None:
    proc = cli("--version", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"pipeline-kit, version {__version__}"


def test_validation_is_remembered_per_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A valid config is validated once per content; an edit is validated again."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    config = tmp_path / "pipeline-kit.yaml"
    config.write_text("context: .\n")
    load_config(config, tmp_path)
    markers = list((cache / "pipeline-kit" / "valid-config").iterdir())
    assert len(markers) == 1
    config.write_text("context: 7\n")
    with pytest.raises(Exception, match="context: expected string"):
        load_config(config, tmp_path)
    assert len(list((cache / "pipeline-kit" / "valid-config").iterdir())) == 1


def test_example_config_is_valid() -> None:
    example = REPO / "examples" / "llm-service"
    config = load_config(example / "pipeline-kit.yaml", example)
    assert dict(config.layers or {}) == {"base": "base", "deps": "deps", "code": "code"}


def test_detect_works_without_a_config_file(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "bare")
    repo.commit({"Dockerfile": THREE_STAGES, "app/x.py": "1"})
    repo.commit({"app/x.py": "2"})
    result = repo.detect()
    assert list(result["layers"]) == ["base", "deps", "code"]
    assert result["layers"]["code"]["reasons"] == ["app/x.py"]


def test_config_is_found_from_a_subdirectory(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "svc")
    repo.commit(
        {"Dockerfile": THREE_STAGES, "pipeline-kit.yaml": "target: builder\n", "app/x.py": "1"}
    )
    proc = cli("config", "show", cwd=repo.path / "app")
    assert proc.returncode == 0, proc.stderr
    config = repo.path / "pipeline-kit.yaml"
    lines = proc.stdout.splitlines()
    assert lines[0] == f"# {config}"
    assert [line.split() for line in lines if line.startswith("target ")] == [
        ["target", '"builder"', "#", f"{config}:1:1"]
    ]


def test_sections_are_read_as_validated(tmp_path: Path) -> None:
    (tmp_path / "pipeline-kit.yaml").write_text(
        "image: r.example/x\ncache:\n  ttl: 14d\n  keep: 3\nregistry:\n  insecure: [reg.lan:5000]\n"
    )
    config = load_config(None, tmp_path)
    assert config.section("cache") == {"ttl": "14d", "keep": 3}
    assert config.section("registry")["insecure"] == ["reg.lan:5000"]
    assert config.section("smoke") == {}


def test_cache_ttl_must_be_a_duration(tmp_path: Path) -> None:
    (tmp_path / "pipeline-kit.yaml").write_text("image: r.example/x\ncache:\n  ttl: two weeks\n")
    with pytest.raises(ConfigError, match=r"cache\.ttl"):
        load_config(None, tmp_path)


def test_service_section_feeds_one_spec(tmp_path: Path) -> None:
    from pipeline_kit.config.service import ServiceSpec

    (tmp_path / "pipeline-kit.yaml").write_text(
        "image: r.example/team/llm\nservice:\n  port: 9000\n  max_load_time: 20m\n"
    )
    spec = ServiceSpec.from_config(load_config(None, tmp_path))
    assert (spec.port, spec.max_load_seconds, spec.model) == (9000, 1200, "llm")
    assert (spec.ready_path, spec.live_path, spec.model_path) == (
        "/health/ready",
        "/health/live",
        "/models",
    )


def test_the_documented_config_example_is_valid(tmp_path: Path) -> None:
    example = fenced(doc("docs/configuration.md"), "# yaml-language-server")
    (tmp_path / "pipeline-kit.yaml").write_text(example)
    (tmp_path / "Dockerfile").write_text(
        "FROM scratch AS base\nFROM base AS deps\nFROM deps AS code\n"
    )
    config = load_config(None, tmp_path)
    assert config.section("build")["builder"] == "auto"
    assert config.section("service")["max_load_time"] == "15m"


def test_a_validated_config_is_read_back_from_its_marker_without_yaml(tmp_path: Path) -> None:
    """The second read of the same content comes from the cache, and gives the same document;
    an edited file is read and validated again (an error in it is not hidden by the cache)."""
    import subprocess
    import sys

    (tmp_path / "pipeline-kit.yaml").write_text("image: registry.example.com/a/b\nlayers: {c: d}\n")
    probe = (
        "import sys; from pathlib import Path; from pipeline_kit.config.loader import load_config; "
        "c = load_config(None, Path(sys.argv[1])); "
        "print(c.image, dict(c.layers or {}), 'yaml' in sys.modules)"
    )
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}

    def read() -> str:
        proc = subprocess.run(
            [sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, env=env
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    assert read() == "registry.example.com/a/b {'c': 'd'} True"
    assert read() == "registry.example.com/a/b {'c': 'd'} False"
    (tmp_path / "pipeline-kit.yaml").write_text("image: registry.example.com/a/b\nlayer: {}\n")
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, env=env
    )
    assert "unknown key" in proc.stderr


def test_the_schema_names_a_file_the_repository_serves() -> None:
    """The schema's $id and the modeline init writes are the release's own file: the raw path
    of pipeline_kit/config/schema/ at the tag v<version> (no host of its own that nobody
    serves); the bundled example points at the file beside it."""
    from pipeline_kit.config.loader import SCHEMA_PATH
    from pipeline_kit.onboard.config_file import SCHEMA_URL

    prefix = f"https://raw.githubusercontent.com/pipeline-kit/pipeline-kit/v{__version__}/"
    assert prefix + SCHEMA_PATH.relative_to(REPO).as_posix() == SCHEMA_URL
    assert schema()["$id"] == SCHEMA_URL
    example = (REPO / "examples" / "llm-service" / "pipeline-kit.yaml").read_text()
    modeline = example.splitlines()[0].split("$schema=", 1)[1]
    assert (REPO / "examples" / "llm-service" / modeline).resolve() == SCHEMA_PATH

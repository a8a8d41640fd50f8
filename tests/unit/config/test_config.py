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
    how = "inferred: lines {} of the target's chain, from what they do"
    assert values["layers.base"] == {"value": "base", "from": how.format("1-1")}
    assert values["layers.deps"] == {"value": "Dockerfile:4-5", "from": how.format("4-5")}
    assert values["layers.code"] == {"value": "Dockerfile:6", "from": how.format("6-6")}
    assert values["dockerfile"] == {"value": "Dockerfile", "from": "default"}
    assert values["target"]["value"] == "final"


def test_layers_come_from_what_stages_do_not_from_their_names(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM python:3.11 AS one\nRUN apt-get update && apt-get install -y curl\n"
        "FROM one AS two\nRUN pip install x==1\nFROM two AS three\nCOPY app /app\n"
    )
    values = _show(tmp_path)
    assert {name: values[f"layers.{name}"]["value"] for name in ("base", "deps", "code")} == {
        "base": "one",
        "deps": "two",
        "code": "three",
    }


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
    assert result["layers"]["code"]["reasons"] == ["Dockerfile:6 COPY app/ /app/: app/x.py"]


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


def _config_error(tmp_path: Path, text: str, *command: str) -> str:
    (tmp_path / "Dockerfile").write_text(THREE_STAGES)
    (tmp_path / "pipeline-kit.yaml").write_text(text)
    proc = cli(*command, cwd=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    return proc.stderr


@pytest.mark.parametrize(
    "command",
    [("config", "show"), ("detect",), ("lint",), ("build", "--dry-run"), ("tags",)],
    ids=lambda c: " ".join(c),
)
def test_an_unknown_lint_rule_is_refused_by_every_command(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    GitRepo.init(tmp_path)
    stderr = _config_error(
        tmp_path, "image: r.io/a/b\nlint:\n  disable: [PK005, PK099]\n", *command
    )
    assert "pipeline-kit.yaml:3:3: lint.disable: unknown rule 'PK099'." in stderr
    assert "Did you mean 'PK009'?" in stderr
    assert "Rules: PK001 weights-in-image, PK002 weights-downloaded-at-build," in stderr


def test_the_schema_lists_every_lint_rule_by_id_and_name() -> None:
    """The schema names the rules (for editors, and so every command refuses an unknown one);
    lint's own table is the truth, and ids and names are taken in any case, as lint takes
    them."""
    from pipeline_kit.lint.rules import RULES

    items = schema()["properties"]["lint"]["properties"]["disable"]["items"]["anyOf"]
    known = [r.id for r in RULES.values()] + [r.name for r in RULES.values()]
    assert items[0]["enum"] == known
    pattern = re.compile(items[1]["pattern"])
    assert all(pattern.match(entry.lower()) and pattern.match(entry.upper()) for entry in known)
    assert not pattern.match("PK0010") and not pattern.match("weights-in-image-x")


def test_known_lint_rules_by_id_and_name_pass(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(THREE_STAGES)
    (tmp_path / "pipeline-kit.yaml").write_text("lint:\n  disable: [PK005, Runs-As-Root, pk001]\n")
    assert _show(tmp_path)["lint.disable"]["value"] == ["PK005", "Runs-As-Root", "pk001"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "image: r.io/a/b\ncontext: .\nimage: r.io/a/c\n",
            "pipeline-kit.yaml:3:1: image: the key is given twice (first at pipeline-kit.yaml:1:1)",
        ),
        (
            "service:\n  port: 80\n  ready_path: /r\n  port: 81\n",
            "pipeline-kit.yaml:4:3: port: the key is given twice (first at pipeline-kit.yaml:2:3)",
        ),
        (
            "smoke:\n  requests:\n    - prompt: a\n      prompt: b\n",
            "pipeline-kit.yaml:4:7: prompt: the key is given twice (first at "
            "pipeline-kit.yaml:3:7)",
        ),
    ],
)
def test_a_key_given_twice_is_refused_with_both_places(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert expected in _config_error(tmp_path, text, "config", "show")


def test_two_layers_on_one_stage_are_refused(tmp_path: Path) -> None:
    stderr = _config_error(
        tmp_path, "layers:\n  base: base\n  deps: builder\n  code: Base\n", "config", "show"
    )
    assert (
        "pipeline-kit.yaml:4:3: layers.code: stage 'Base' is already layer 'base' "
        "(pipeline-kit.yaml:2:3)"
    ) in stderr


def test_a_layer_outside_the_targets_chain_is_refused(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(THREE_STAGES + "FROM base AS docs\nCOPY docs /docs\n")
    (tmp_path / "pipeline-kit.yaml").write_text(
        "target: final\nlayers:\n  base: base\n  code: docs\n"
    )
    proc = cli("config", "show", cwd=tmp_path)
    assert proc.returncode == 2
    assert (
        "pipeline-kit.yaml:4:3: layers.code: stage 'docs' is not one the target 'final' builds "
        "on (it builds on: base, builder, final)"
    ) in proc.stderr
    # builder is in the chain through COPY --from, not FROM: it may be a layer.
    (tmp_path / "pipeline-kit.yaml").write_text(
        "target: final\nlayers:\n  base: base\n  deps: builder\n  code: final\n"
    )
    assert _show(tmp_path)["layers.deps"]["value"] == "builder"


def test_config_show_prints_every_section_and_where_each_value_came_from(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(THREE_STAGES)
    (tmp_path / "pipeline-kit.yaml").write_text(
        "image: r.io/a/b\nplatform: linux/arm64\nservice:\n  port: 80\ncache:\n  ttl: 7d\n"
        "tags:\n  latest: false\n  sha: {length: 12}\nkubernetes:\n  labels: {team: ml}\n"
        "registry:\n  insecure: [mirror.lan:5000]\ndeploy:\n  context: prod\n"
    )
    values = _show(tmp_path)
    assert values["platform"] == {"value": "linux/arm64", "from": "pipeline-kit.yaml:2:1"}
    assert values["service.port"] == {"value": 80, "from": "pipeline-kit.yaml:4:3"}
    assert values["service.ready_path"] == {"value": "/health/ready", "from": "default"}
    assert values["cache.ttl"] == {"value": "7d", "from": "pipeline-kit.yaml:6:3"}
    assert values["cache.keep"] == {"value": 50, "from": "default"}
    assert values["tags.latest"] == {"value": False, "from": "pipeline-kit.yaml:8:3"}
    assert values["tags.sha"] == {"value": {"length": 12}, "from": "pipeline-kit.yaml:9:3"}
    assert values["tags.semver"] == {"value": True, "from": "default"}
    assert values["kubernetes.labels.team"] == {"value": "ml", "from": "pipeline-kit.yaml:11:12"}
    assert values["registry.insecure"] == {
        "value": ["mirror.lan:5000"],
        "from": "pipeline-kit.yaml:13:3",
    }
    assert values["build.builder"] == {"value": "auto", "from": "default"}
    assert values["preview.provider"] == {"value": "local", "from": "default"}
    assert values["smoke.protocol"] == {"value": "openai-chat", "from": "default"}
    assert values["deploy.context"] == {"value": "prod", "from": "pipeline-kit.yaml:15:3"}
    sections = {key.split(".")[0] for key in values}
    assert sections >= set(schema()["properties"]) - {"build_args"}


def test_config_show_names_the_runners_platform_by_default(tmp_path: Path) -> None:
    from pipeline_kit.dockerfile.platform import runner_platform

    (tmp_path / "Dockerfile").write_text(THREE_STAGES)
    assert _show(tmp_path)["platform"] == {
        "value": str(runner_platform()),
        "from": "default: this machine's",
    }
    (tmp_path / "pipeline-kit.yaml").write_text("platform: linux/amd 64\n")
    proc = cli("config", "show", cwd=tmp_path)
    assert proc.returncode == 2
    assert "pipeline-kit.yaml:1:1: platform: 'linux/amd 64' does not match" in proc.stderr
    (tmp_path / "pipeline-kit.yaml").write_text("platform: linux\n")
    proc = cli("config", "show", cwd=tmp_path)
    assert proc.returncode == 2
    assert "pipeline-kit.yaml:1:1: platform: 'linux' names an OS but no architecture" in (
        proc.stderr
    )


def test_config_show_reads_the_dockerfile_for_the_platform_given(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        "ARG FLAVOR=${TARGETARCH}\nFROM python:3.11 AS base-amd64\nFROM python:3.11 AS base-arm64\n"
        "FROM base-${FLAVOR} AS app\n"
    )
    (tmp_path / "pipeline-kit.yaml").write_text("platform: linux/amd64\n")
    # The inferred layer runs from the stage FLAVOR chose (line 2 or 3) to the last FROM.
    assert _show(tmp_path)["layers.base"]["value"] == "Dockerfile:2-4"
    values = _show(tmp_path, "--platform", "linux/arm64")
    assert values["platform"] == {"value": "linux/arm64", "from": "--platform"}
    assert values["layers.base"]["value"] == "Dockerfile:3-4"

"""`pipeline-kit init` on real git repositories: the config from the Dockerfile's stages, and the
kit added to the CI the repository has, with the user's files edited in place."""

from __future__ import annotations

import difflib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import pipeline_kit
from pipeline_kit.onboard.config_file import SCHEMA_URL
from tests.support import FIXTURES, REPO, gitlab_yaml
from tests.support.example_image import EXAMPLE
from tests.support.gitrepo import GitRepo, cli
from tests.support.tools import rendered, unpinned_uses

ONBOARD_FIXTURES = FIXTURES / "onboard"
WORKFLOWS = REPO / "workflows"
TEMPLATE_URL = (
    "https://raw.githubusercontent.com/pipeline-kit/pipeline-kit/v0.1.0/.gitlab-ci-template.yml"
)
VERSION = pipeline_kit.__version__
KIT_SHA = "5e1f0c3a9b7d2e4f6a8c0b1d3e5f7a9c2b4d6e8f"
PIN_ADVICE = "# Pin pipeline-kit/pipeline-kit to the release's commit SHA in your copy.\n"
KIT_WORKFLOW_USES = re.compile(r"uses: pipeline-kit/pipeline-kit/\.github/workflows/[\w.-]+@(.*)")


def service(path: Path, remote: str | None, files: dict[str, str] | None = None) -> GitRepo:
    repo = GitRepo.init(path)
    shutil.copy(EXAMPLE / "Dockerfile", repo.path / "Dockerfile")
    if remote:
        repo.git("remote", "add", "origin", remote)
    repo.commit(files or {}, message="service")
    return repo


def init(repo: GitRepo, *args: str) -> dict[str, str]:
    result = cli("init", "--format", "json", *args, cwd=repo.path)
    assert result.returncode == 0, result.stderr
    return {entry["path"]: entry["action"] for entry in json.loads(result.stdout)["files"]}


def test_a_commented_gitlab_ci_file_gains_only_the_include_and_the_stages(tmp_path: Path) -> None:
    """The real-world file keeps every comment, anchor, `!reference`, quote and folded
    scalar: the diff has no removed line, and the added lines are exactly the kit's."""
    original = (ONBOARD_FIXTURES / "gitlab-ci.yml").read_text()
    repo = service(tmp_path / "svc", "git@gitlab.com:Acme/ml/llm-service.git",
                   {".gitlab-ci.yml": original})  # fmt: skip
    assert init(repo) == {"pipeline-kit.yaml": "created", ".gitlab-ci.yml": "updated"}

    edited = (repo.path / ".gitlab-ci.yml").read_text()
    diff = list(difflib.ndiff(original.splitlines(), edited.splitlines()))
    assert [line for line in diff if line.startswith("- ")] == []
    assert [line[2:] for line in diff if line.startswith("+ ")] == [
        "  - build",
        "  - deploy",
        "",
        "include:",
        f"  - remote: {TEMPLATE_URL}",
        "    inputs:",
        "      config: pipeline-kit.yaml",
    ]
    document = gitlab_yaml.load(edited)
    assert document["stages"] == ["lint", "build", "test", "release", "deploy"]
    assert document["include"] == [
        {"remote": TEMPLATE_URL, "inputs": {"config": "pipeline-kit.yaml"}}
    ]

    config = yaml.safe_load((repo.path / "pipeline-kit.yaml").read_text())
    assert config == {
        "image": "registry.gitlab.com/acme/ml/llm-service",
        "layers": {"base": "base", "deps": "deps", "code": "code"},
        "service": {"port": 8000},
    }
    assert (
        (repo.path / "pipeline-kit.yaml")
        .read_text()
        .startswith(f"# yaml-language-server: $schema={SCHEMA_URL}\n")
    )
    shown = cli("config", "show", "--format", "json", cwd=repo.path)
    assert shown.returncode == 0, shown.stderr  # the schema accepts what init wrote

    before = {p: (repo.path / p).read_bytes() for p in ("pipeline-kit.yaml", ".gitlab-ci.yml")}
    assert init(repo) == {"pipeline-kit.yaml": "unchanged", ".gitlab-ci.yml": "unchanged"}
    assert {p: (repo.path / p).read_bytes() for p in before} == before


def test_the_include_init_writes_gives_the_templates_pipeline(tmp_path: Path) -> None:
    """gitlab-ci-local resolves the edited file with the template in place of its remote copy
    (no network here): the inputs init passes are the template's, and its jobs join the
    user's in the stages init declared."""
    original = (ONBOARD_FIXTURES / "gitlab-ci.yml").read_text()
    repo = service(tmp_path / "svc", "https://gitlab.com/acme/svc.git",
                   {".gitlab-ci.yml": original})  # fmt: skip
    init(repo)
    edited = (repo.path / ".gitlab-ci.yml").read_text()
    local = edited.replace(f"remote: {TEMPLATE_URL}", "local: .gitlab-ci-template.yml")
    pipeline = rendered(tmp_path / "render", local)
    assert pipeline["pipeline-kit:build"]["stage"] == "build"
    assert pipeline["pipeline-kit:promote"]["stage"] == "deploy"
    assert (
        pipeline["pipeline-kit:detect"]["variables"]["PIPELINE_KIT_CONFIG"] == "pipeline-kit.yaml"
    )
    assert pipeline["pytest"]["stage"] == "test" and pipeline["ruff"]["stage"] == "lint"


def test_an_include_that_is_a_string_becomes_a_list(tmp_path: Path) -> None:
    ci = "include: 'ci/common.yml'\n\njob:\n  script: [true]\n"
    repo = service(tmp_path / "svc", None, {".gitlab-ci.yml": ci})
    assert init(repo, "--image", "registry.example.com/ml/svc")[".gitlab-ci.yml"] == "updated"
    document = yaml.safe_load((repo.path / ".gitlab-ci.yml").read_text())
    assert document["include"][0] == "ci/common.yml"
    assert document["include"][1]["remote"] == TEMPLATE_URL
    assert "stages" not in document  # GitLab's default stages hold the kit's jobs


def test_layers_by_role_a_mapping_only_where_each_is_a_whole_named_stage(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "named")
    repo.commit({"Dockerfile": "FROM python:3.11 AS builder\nRUN true\n"
                 "FROM builder AS final\nCOPY app /app\n"})  # fmt: skip
    result = cli("init", "--ci", "none", "--image", "ghcr.io/acme/x", cwd=repo.path)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((repo.path / "pipeline-kit.yaml").read_text())
    # A stage's name does not make it a layer: `RUN true` installs nothing, so it is the base.
    assert config["layers"] == {"base": "builder", "code": "final"}

    single = GitRepo.init(tmp_path / "single")
    single.commit({"docker/Dockerfile": "FROM python:3.11\nCOPY . .\n"})
    args = ("init", "--ci", "none", "--dockerfile", "docker/Dockerfile", "--image", "r.io/a/b")
    result = cli(*args, cwd=single.path)
    assert result.returncode == 0, result.stderr
    text = (single.path / "pipeline-kit.yaml").read_text()
    config = yaml.safe_load(text)
    assert config == {"image": "r.io/a/b", "dockerfile": "docker/Dockerfile"}  # no stage number
    assert text.endswith(
        "# layers: inferred at every run from what the instructions do (lines of "
        "docker/Dockerfile):\n"
        "#   base: docker/Dockerfile:1  # OS, CUDA, system packages\n"
        "#   code: docker/Dockerfile:2  # the application\n"
    )
    assert cli("detect", "--format", "json", cwd=single.path).returncode == 0

    # text-embeddings-inference's shape: a named runtime base, then an unnamed final stage
    # that copies the router a builder stage compiled. The final stage is a whole layer, and
    # it is described by its lines, not by its number among the stages.
    unnamed = GitRepo.init(tmp_path / "unnamed")
    unnamed.commit({
        "Dockerfile": "FROM rust:1.85 AS builder\nCOPY router router\nRUN cargo build\n"
        "FROM debian:bookworm-slim AS base\nRUN apt-get update && apt-get install -y curl\n"
        "FROM base\nCOPY --from=builder /target/router /usr/local/bin/router\n",
        "router/main.rs": "fn main() {}\n",
    })  # fmt: skip
    result = cli("init", "--ci", "none", "--image", "r.io/a/b", cwd=unnamed.path)
    assert result.returncode == 0, result.stderr
    text = (unnamed.path / "pipeline-kit.yaml").read_text()
    assert "layers" not in yaml.safe_load(text)
    assert text.endswith(
        "#   base: base            # OS, CUDA, system packages\n"
        "#   code: Dockerfile:6-7  # the application\n"
    )


def test_a_server_installed_late_in_its_cuda_stage_gets_ranges_named_by_role(
    tmp_path: Path,
) -> None:
    """Base, deps and code inside one unnamed stage: init names no stage; detect infers the
    same ranges at every run, so a stage added later changes nothing in the config."""
    dockerfile = (
        "FROM nvidia/cuda:12.4.1-devel-ubuntu22.04\n"
        "RUN apt-get update && apt-get install -y python3-pip\n"
        "COPY requirements.txt .\nRUN pip install -r requirements.txt\n"
        "COPY server server\nRUN pip install -e server\n"
    )
    repo = GitRepo.init(tmp_path / "cuda")
    repo.commit({"Dockerfile": dockerfile})
    assert cli("init", "--ci", "none", "--image", "r.io/a/b", cwd=repo.path).returncode == 0
    text = (repo.path / "pipeline-kit.yaml").read_text()
    assert "layers:" not in yaml.safe_load(text)
    assert "#   base: Dockerfile:1-2  # OS, CUDA, system packages\n" in text
    assert "#   deps: Dockerfile:3-4  # packages of a language, and their lock files\n" in text
    assert "#   code: Dockerfile:5-6  # the application\n" in text
    assert '"0"' not in text


def test_dry_run_shows_the_diff_and_writes_nothing(tmp_path: Path) -> None:
    original = (ONBOARD_FIXTURES / "gitlab-ci.yml").read_text()
    repo = service(tmp_path / "svc", "https://gitlab.com/acme/svc.git",
                   {".gitlab-ci.yml": original})  # fmt: skip
    result = cli("init", "--dry-run", cwd=repo.path)
    assert result.returncode == 0, result.stderr
    assert "pipeline-kit.yaml: would be created" in result.stdout
    assert f"+  - remote: {TEMPLATE_URL}" in result.stdout
    assert not (repo.path / "pipeline-kit.yaml").exists()
    assert (repo.path / ".gitlab-ci.yml").read_text() == original


def test_bad_input_is_exit_2_and_changes_nothing(tmp_path: Path) -> None:
    broken = "stages:\n  - build\njob: [unclosed\n"
    repo = service(tmp_path / "svc", "https://gitlab.com/acme/svc.git",
                   {".gitlab-ci.yml": broken})  # fmt: skip
    result = cli("init", cwd=repo.path)
    assert result.returncode == 2
    assert ".gitlab-ci.yml:" in result.stderr and "not valid YAML" in result.stderr
    assert "Traceback" not in result.stderr
    assert (repo.path / ".gitlab-ci.yml").read_text() == broken
    assert not (repo.path / "pipeline-kit.yaml").exists()

    no_remote = service(tmp_path / "plain", None)
    result = cli("init", "--ci", "none", cwd=no_remote.path)
    assert result.returncode == 2 and "--image registry.example.com" in result.stderr

    missing = cli("init", "--dockerfile", "nope/Dockerfile", "--image", "r.io/a/b", cwd=repo.path)
    assert missing.returncode == 2 and "nope/Dockerfile: no such file" in missing.stderr

    outside = cli("init", cwd=tmp_path)
    assert outside.returncode == 2 and "not inside a git repository" in outside.stderr


def pinned(text: str, commit: str, version: str = VERSION) -> str:
    """What init makes of a ready-to-copy caller: the kit's reusable workflows by commit SHA."""
    text = re.sub(
        r"(uses: pipeline-kit/pipeline-kit/\.github/workflows/[\w.-]+)@v[\d.]+",
        rf"\1@{commit} # v{version}",
        text,
    )
    return text.replace(
        PIN_ADVICE,
        f"# pipeline-kit/pipeline-kit is pinned to the commit of v{version}: a tag can be moved, "
        "a commit cannot.\n",
    )


def test_github_gets_the_ready_to_copy_callers_on_its_default_branch(tmp_path: Path) -> None:
    """The callers init writes are the files in workflows/ (shipped with the package), the
    main-branch pipeline on the repository's own default branch, calling the kit's reusable
    workflows by commit SHA; they pass GitHub's schema."""
    repo = service(tmp_path / "svc", "git@github.com:Acme/LLM-Service.git",
                   {".github/workflows/lint.yml": "on: push\njobs: {}\n"})  # fmt: skip
    repo.git("branch", "-m", "trunk")
    assert init(repo, "--kit-ref", KIT_SHA) == {
        "pipeline-kit.yaml": "created",
        ".github/workflows/pipeline-kit-pull-request.yml": "created",
        ".github/workflows/pipeline-kit-main.yml": "created",
        ".github/workflows/pipeline-kit-cleanup.yml": "created",
    }
    config = yaml.safe_load((repo.path / "pipeline-kit.yaml").read_text())
    assert config["image"] == "ghcr.io/acme/llm-service"
    written = repo.path / ".github" / "workflows"
    for name in ("pull-request", "cleanup"):
        assert (written / f"pipeline-kit-{name}.yml").read_text() == pinned(
            (WORKFLOWS / f"{name}.yml").read_text(), KIT_SHA
        )
    main = (WORKFLOWS / "main.yml").read_text()
    assert "branches: [main]" in main
    assert (written / "pipeline-kit-main.yml").read_text() == pinned(
        main.replace("branches: [main]", "branches: [trunk]"), KIT_SHA
    )
    assert yaml.safe_load((written / "lint.yml").read_text()) == {True: "push", "jobs": {}}
    schema = subprocess.run(
        [str(Path(sys.executable).parent / "check-jsonschema"), "--builtin-schema",
         "vendor.github-workflows", *map(str, sorted(written.glob("pipeline-kit-*.yml")))],
        capture_output=True, text=True,
    )  # fmt: skip
    assert schema.returncode == 0, schema.stdout + schema.stderr

    before = {p.name: p.read_bytes() for p in written.iterdir()}
    assert set(init(repo, "--ci", "github", "--kit-ref", KIT_SHA).values()) == {"unchanged"}
    assert {p.name: p.read_bytes() for p in written.iterdir()} == before


def kit_refs(paths: list[Path]) -> list[str]:
    """What follows the ``@`` of each ``uses: pipeline-kit/...`` in these files."""
    refs = re.findall(r"uses: pipeline-kit/\S+@(.*)", "".join(p.read_text() for p in paths))
    assert len(refs) == 4  # pull request (2), main, cleanup
    return refs


def github_service(path: Path, files: dict[str, str] | None = None) -> GitRepo:
    return service(path, "https://github.com/acme/llm-service.git", files)


def written_callers(repo: GitRepo) -> list[Path]:
    return sorted((repo.path / ".github" / "workflows").glob("pipeline-kit-*.yml"))


def test_github_callers_call_the_kit_by_commit_sha(tmp_path: Path) -> None:
    """--kit-ref: every reference to the kit is `@<sha> # v<version>`, which zizmor's default
    policy (no exemption for the kit) accepts; the same files by tag it refuses."""
    repo = github_service(tmp_path / "svc")
    assert set(init(repo, "--kit-ref", KIT_SHA.upper()).values()) == {"created"}
    written = written_callers(repo)
    assert set(kit_refs(written)) == {f"{KIT_SHA} # v{VERSION}"}
    assert unpinned_uses(*written) == []

    tagged_dir = tmp_path / "tagged"
    tagged_dir.mkdir()
    for path in written:
        text = path.read_text().replace(f"@{KIT_SHA} # v{VERSION}", f"@v{VERSION}")
        (tagged_dir / path.name).write_text(text)
    tagged = sorted(tagged_dir.iterdir())
    assert set(kit_refs(tagged)) == {f"v{VERSION}"}
    found = unpinned_uses(*tagged)
    assert len(found) == 4 and all("pipeline-kit/pipeline-kit/.github/" in f for f in found)


def installed_copy(site: Path, stamp: object | None = None) -> Path:
    """This package copied into ``site``, as an install that is not the kit's checkout holds
    it, with ``stamp`` as its release stamp; run with PYTHONPATH=site."""
    shutil.copytree(
        Path(pipeline_kit.__file__).parent,
        site / "pipeline_kit",
        ignore=shutil.ignore_patterns("__pycache__", "release.json"),
    )
    if stamp is not None:
        (site / "pipeline_kit" / "onboard" / "release.json").write_text(json.dumps(stamp))
    return site


def test_a_release_stamp_names_the_commit_the_callers_call(tmp_path: Path) -> None:
    site = installed_copy(tmp_path / "site", {"version": "7.8.9", "commit": KIT_SHA})
    repo = github_service(tmp_path / "svc")
    result = cli("init", cwd=repo.path, env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    assert set(kit_refs(written_callers(repo))) == {f"{KIT_SHA} # v7.8.9"}
    assert "pinned to the commit of v7.8.9" in written_callers(repo)[0].read_text()

    other = "0" * 39 + "1"
    repo = github_service(tmp_path / "given")
    result = cli("init", "--kit-ref", other, cwd=repo.path, env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    assert set(kit_refs(written_callers(repo))) == {f"{other} # v{VERSION}"}  # --kit-ref wins

    broken = installed_copy(tmp_path / "broken", {"version": VERSION, "commit": f"v{VERSION}"})
    repo = github_service(tmp_path / "svc-broken")
    result = cli("init", cwd=repo.path, env={"PYTHONPATH": str(broken)})
    assert result.returncode == 3 and "release.json: a release stamp is" in result.stderr
    assert not (repo.path / ".github").exists()


def test_a_git_checkout_of_the_kit_pins_its_own_head(tmp_path: Path) -> None:
    """A development install (no stamp): the commit of the kit's checkout the package is."""
    kit = GitRepo.init(tmp_path / "kit")
    installed_copy(kit.path)
    shutil.copy(Path(pipeline_kit.__file__).parents[1] / "action.yml", kit.path / "action.yml")
    head = kit.commit(message="kit")
    repo = github_service(tmp_path / "svc")
    result = cli("init", cwd=repo.path, env={"PYTHONPATH": str(kit.path)})
    assert result.returncode == 0, result.stderr
    assert set(kit_refs(written_callers(repo))) == {f"{head} # v{VERSION}"}


@pytest.mark.parametrize("where", ["outside-git", "in-another-repository"])
def test_without_a_stamp_or_the_kits_checkout_init_refuses(tmp_path: Path, where: str) -> None:
    """A package with no stamp, outside git or inside a repository that is not the kit (an
    ignored virtualenv in the user's own): there is no commit of the kit to pin, and a tag
    can be moved. Exit 2, what to do, and nothing written."""
    repo = github_service(tmp_path / "svc", {".gitignore": ".venv/\n"})
    site = tmp_path / "site" if where == "outside-git" else repo.path / ".venv" / "site"
    installed_copy(site)
    result = cli("init", cwd=repo.path, env={"PYTHONPATH": str(site)})
    assert result.returncode == 2, result.stderr
    assert f"this pipeline-kit ({site / 'pipeline_kit'}) has no release stamp" in result.stderr
    assert "Install a release (pip install llm-pipeline-kit==" in result.stderr
    assert "or pass --kit-ref SHA" in result.stderr
    assert "Traceback" not in result.stderr
    assert repo.git("status", "--porcelain") == ""
    assert not (repo.path / "pipeline-kit.yaml").exists()

    given = cli("init", "--kit-ref", KIT_SHA, cwd=repo.path, env={"PYTHONPATH": str(site)})
    assert given.returncode == 0, given.stderr
    assert set(kit_refs(written_callers(repo))) == {f"{KIT_SHA} # v{VERSION}"}


def test_kit_ref_is_a_full_commit_sha(tmp_path: Path) -> None:
    repo = github_service(tmp_path / "svc")
    for bad in (f"v{VERSION}", KIT_SHA[:12], KIT_SHA + "0", "g" * 40):
        result = cli("init", "--kit-ref", bad, cwd=repo.path)
        assert result.returncode == 2, bad
        assert f"'{bad}' is not a commit SHA: give its 40 hex digits" in result.stderr
    assert not (repo.path / "pipeline-kit.yaml").exists()


def test_the_ready_to_copy_callers_name_the_release_and_say_to_pin_it() -> None:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        text = path.read_text()
        assert PIN_ADVICE in text, path.name
        assert set(KIT_WORKFLOW_USES.findall(text)) == {f"v{VERSION}"}, path.name


def test_the_shipped_callers_are_the_ready_to_copy_ones() -> None:
    shipped = Path(pipeline_kit.__file__).parent / "onboard" / "workflows"
    assert sorted(p.name for p in shipped.iterdir()) == sorted(p.name for p in WORKFLOWS.iterdir())
    for path in WORKFLOWS.iterdir():
        assert (shipped / path.name).read_text() == path.read_text(), path.name


def test_cli_ci_choices_are_the_commands() -> None:
    from pipeline_kit.cli import init as command
    from pipeline_kit.commands.init import CI_CHOICES

    (option,) = [p for p in command.params if p.name == "ci"]
    assert tuple(option.type.choices) == CI_CHOICES  # type: ignore[attr-defined]

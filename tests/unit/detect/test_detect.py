"""Layer change detection on real git repositories, one table row per kind of change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.gitrepo import GitRepo, changed, cli

DOCKERFILE = """\
# syntax=docker/dockerfile:1
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE} AS base
RUN apt-get update && apt-get install -y --no-install-recommends curl \\
    && rm -rf /var/lib/apt/lists/*

FROM base AS deps
COPY requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt
COPY shared/ /opt/shared/

FROM deps AS code
WORKDIR /app
COPY app/ /app/
COPY shared/ /app/shared/
CMD ["python", "-m", "app"]
"""

SERVICE = {
    "Dockerfile": DOCKERFILE,
    ".dockerignore": "**/__pycache__\n*.md\napp/notes/\n",
    "pipeline-kit.yaml": (
        "image: registry.example.com/team/svc\nlayers:\n  base: base\n  deps: deps\n  code: code\n"
    ),
    "requirements.txt": "numpy==2.1.3\n",
    "app/__init__.py": "",
    "app/main.py": "print('hello')\n",
    "app/helper.py": "X = 1\n",
    "app/notes/todo.txt": "later\n",
    "shared/util.py": "def util(): ...\n",
    "docs/guide.md": "# Guide\n",
    "README.md": "# svc\n",
}


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo.init(tmp_path / "svc")
    repo.commit(SERVICE, "initial")
    return repo


def _edit_dockerfile(old: str, new: str) -> dict[str, str]:
    assert old in DOCKERFILE
    return {"Dockerfile": DOCKERFILE.replace(old, new)}


CASES: list[tuple[str, dict[str, str | None], dict[str, bool], dict[str, list[str]]]] = [
    (
        "code only",
        {"app/main.py": "print('hello, world')\n"},
        {"base": False, "deps": False, "code": True},
        {"code": ["app/main.py"]},
    ),
    (
        "deps change",
        {"requirements.txt": "numpy==2.2.0\n"},
        {"base": False, "deps": True, "code": True},
        {"deps": ["requirements.txt"], "code": ["after deps"]},
    ),
    (
        "edit inside the base stage",
        _edit_dockerfile(
            "install -y --no-install-recommends curl", "install -y --no-install-recommends curl git"
        ),
        {"base": True, "deps": True, "code": True},
        {"base": ["Dockerfile:4 RUN changed"], "deps": ["after base"], "code": ["after deps"]},
    ),
    (
        "ARG before FROM",
        _edit_dockerfile("python:3.11-slim", "python:3.12-slim"),
        {"base": True, "deps": True, "code": True},
        {
            "base": [
                "base image python:3.11-slim -> python:3.12-slim",
                "build arg PYTHON_IMAGE: 'python:3.11-slim' -> 'python:3.12-slim'",
            ],
            "deps": ["after base"],
        },
    ),
    (
        "final stage only (CMD)",
        _edit_dockerfile('CMD ["python", "-m", "app"]', 'CMD ["python", "-m", "app", "--fast"]'),
        {"base": False, "deps": False, "code": True},
        {"code": ["Dockerfile:16 CMD changed"]},
    ),
    (
        "comment and blank lines in the Dockerfile",
        _edit_dockerfile("FROM deps AS code\n", "# the app\n\nFROM deps AS code\n"),
        {"base": False, "deps": False, "code": False},
        {},
    ),
    (
        "docs only",
        {"docs/guide.md": "# Guide, v2\n", "README.md": "# svc!\n", "docs/new.md": "new\n"},
        {"base": False, "deps": False, "code": False},
        {},
    ),
    (
        "ignored files inside a copied directory",
        {"app/notes/todo.txt": "now\n", "app/__pycache__/main.cpython-311.pyc": "bytes"},
        {"base": False, "deps": False, "code": False},
        {},
    ),
    (
        "a .md inside a copied directory is taken: *.md matches at the context root only",
        {"app/CHANGES.md": "x\n"},
        {"base": False, "deps": False, "code": True},
        {"code": ["app/CHANGES.md"]},
    ),
    (
        "a file taken by two stages",
        {"shared/util.py": "def util(): return 1\n"},
        {"base": False, "deps": True, "code": True},
        {"deps": ["shared/util.py"], "code": ["shared/util.py", "after deps"]},
    ),
    (
        "new file in a copied directory",
        {"app/sub/deep/mod.py": "Y = 2\n"},
        {"base": False, "deps": False, "code": True},
        {"code": ["app/sub/deep/mod.py"]},
    ),
    (
        "deleted file",
        {"app/helper.py": None},
        {"base": False, "deps": False, "code": True},
        {"code": ["app/helper.py"]},
    ),
]


@pytest.mark.parametrize(("name", "edit", "expected", "reasons"), CASES, ids=[c[0] for c in CASES])
def test_change_kinds(
    repo: GitRepo,
    name: str,
    edit: dict[str, str | None],
    expected: dict[str, bool],
    reasons: dict[str, list[str]],
) -> None:
    before = repo.detect(base="HEAD", head="HEAD")
    base = repo.head()
    repo.commit(edit, name)
    result = repo.detect()
    assert result["base"] == base
    assert result["head"] == repo.head()
    assert result["fail_safe"] is None
    assert changed(result) == expected
    for layer, want in reasons.items():
        assert result["layers"][layer]["reasons"] == want, layer
    for layer, is_changed in expected.items():
        same_key = result["layers"][layer]["key"] == before["layers"][layer]["key"]
        assert same_key is not is_changed, f"{layer}: key and changed disagree"
    first = next((layer for layer, c in expected.items() if c), None)
    assert result["rebuild_from"] == first
    assert result["image_changed"] is any(expected.values())


def test_nothing_changed_between_a_commit_and_itself(repo: GitRepo) -> None:
    result = repo.detect(base="HEAD", head="HEAD")
    assert changed(result) == {"base": False, "deps": False, "code": False}
    assert result["rebuild_from"] is None
    assert result["image_changed"] is False
    assert all(len(layer["key"]) == 64 for layer in result["layers"].values())


def test_rename_across_layers_counts_both_paths(repo: GitRepo) -> None:
    repo.git("mv", "app/helper.py", "shared/helper.py")
    repo.commit(message="move helper to shared")
    result = repo.detect()
    assert changed(result) == {"base": False, "deps": True, "code": True}
    assert result["layers"]["deps"]["reasons"] == ["shared/helper.py"]
    assert result["layers"]["code"]["reasons"] == [
        "app/helper.py",
        "shared/helper.py",
        "after deps",
    ]


COPY_FROM_CHAIN = """\
FROM alpine:3.20 AS base
RUN apk add --no-cache python3

FROM base AS tools
COPY tools/ /src/tools/
RUN python3 /src/tools/build.py > /out.txt

FROM base AS assets
COPY --from=tools /out.txt /assets/out.txt
COPY static/ /assets/static/

FROM base AS code
COPY --from=assets /assets /app/assets
COPY app/ /app/
"""


@pytest.mark.parametrize(
    ("edit", "expected", "code_reasons"),
    [
        ({"tools/build.py": "print(2)\n"}, {"base": False, "code": True}, ["after stage 'assets'"]),
        ({"static/site.css": "b{}\n"}, {"base": False, "code": True}, ["after stage 'assets'"]),
        ({"app/main.py": "2\n"}, {"base": False, "code": True}, ["app/main.py"]),
        ({"unused/x.txt": "2\n"}, {"base": False, "code": False}, []),
    ],
    ids=["tools", "static", "app", "untaken"],
)
def test_copy_from_chain(
    tmp_path: Path,
    edit: dict[str, str],
    expected: dict[str, bool],
    code_reasons: list[str],
) -> None:
    repo = GitRepo.init(tmp_path / "chain")
    repo.commit(
        {
            "Dockerfile": COPY_FROM_CHAIN,
            "tools/build.py": "print(1)\n",
            "static/site.css": "a{}\n",
            "app/main.py": "1\n",
            "unused/x.txt": "1\n",
        }
    )
    repo.commit(edit)
    result = repo.detect()
    # Without a layers mapping the kit infers base (first of the FROM chain) and code (target).
    assert {n: v["stage"] for n, v in result["layers"].items()} == {"base": "base", "code": "code"}
    assert changed(result) == expected
    assert result["layers"]["code"]["reasons"] == code_reasons


def test_run_mount_from_stage_and_context(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "mounts")
    dockerfile = (
        "FROM alpine:3.20 AS wheels\nCOPY wheels/ /wheels/\n"
        "FROM alpine:3.20 AS deps\n"
        "RUN --mount=type=bind,source=requirements.txt,target=/r.txt "
        "--mount=type=bind,from=wheels,source=/wheels,target=/w pip install -r /r.txt\n"
        "FROM deps AS code\nCOPY app/ /app/\n"
    )
    repo.commit(
        {
            "Dockerfile": dockerfile,
            "requirements.txt": "a==1\n",
            "wheels/a.whl": "1",
            "app/x.py": "1\n",
        }
    )
    repo.commit({"requirements.txt": "a==2\n"})
    result = repo.detect()
    assert changed(result) == {"deps": True, "code": True}
    assert result["layers"]["deps"]["reasons"] == ["requirements.txt"]
    repo.commit({"wheels/a.whl": "2"})
    result = repo.detect()
    assert result["layers"]["deps"]["reasons"] == ["after stage 'wheels'"]


def test_merge_commit_compares_with_first_parent(repo: GitRepo) -> None:
    repo.git("checkout", "-q", "-b", "feature")
    repo.commit({"app/main.py": "print('feature')\n"}, "feature work")
    repo.git("checkout", "-q", "main")
    repo.commit({"docs/guide.md": "# main docs\n"}, "docs on main")
    repo.git("merge", "-q", "--no-ff", "-m", "merge feature", "feature")
    result = repo.detect()
    assert changed(result) == {"base": False, "deps": False, "code": True}
    assert result["layers"]["code"]["reasons"] == ["app/main.py"]


def _github_event(tmp_path: Path, payload: dict[str, Any], name: str, sha: str) -> dict[str, str]:
    event = tmp_path / f"{name}.json"
    event.write_text(json.dumps(payload))
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": name,
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_SHA": sha,
    }


def test_pull_request_uses_the_merge_base(repo: GitRepo, tmp_path: Path) -> None:
    repo.git("checkout", "-q", "-b", "feature")
    head = repo.commit({"app/main.py": "print('pr')\n"}, "pr change")
    repo.git("checkout", "-q", "main")
    main_tip = repo.commit({"requirements.txt": "numpy==2.2.0\n"}, "deps bump on main")
    repo.git("checkout", "-q", "feature")
    env = _github_event(
        tmp_path,
        {"pull_request": {"base": {"sha": main_tip}, "head": {"sha": head}}},
        "pull_request",
        head,
    )
    result = repo.detect(environ=env)
    assert result["base"] == repo.git("merge-base", main_tip, head)
    assert "pull request base" in result["base_from"]
    # Diffing against main's tip would wrongly blame deps; the merge base does not.
    assert changed(result) == {"base": False, "deps": False, "code": True}


def test_gitlab_merge_request_and_push(repo: GitRepo) -> None:
    base = repo.head()
    head = repo.commit({"requirements.txt": "numpy==2.2.0\n"})
    mr = repo.detect(
        environ={"GITLAB_CI": "true", "CI_COMMIT_SHA": head, "CI_MERGE_REQUEST_DIFF_BASE_SHA": base}
    )
    assert mr["base_from"] == "CI_MERGE_REQUEST_DIFF_BASE_SHA"
    assert changed(mr) == {"base": False, "deps": True, "code": True}
    push = repo.detect(
        environ={"GITLAB_CI": "true", "CI_COMMIT_SHA": head, "CI_COMMIT_BEFORE_SHA": base}
    )
    assert push["base"] == base and push["base_from"] == "CI_COMMIT_BEFORE_SHA"


def test_identical_content_gives_identical_keys(repo: GitRepo, tmp_path: Path) -> None:
    repo.git("checkout", "-q", "-b", "other")
    repo.commit({"docs/guide.md": "# other branch\n"}, "docs")  # content the image never takes
    on_other = repo.detect(base="HEAD", head="HEAD")
    on_main = repo.detect(base="main", head="main")
    clone = GitRepo(tmp_path / "clone")
    clone.path.rmdir()
    GitRepo(tmp_path).git("clone", "-q", str(repo.path), str(clone.path))
    in_clone = clone.detect(base="HEAD", head="HEAD")
    # A different repository with the same service files at another path in history.
    fresh = GitRepo.init(tmp_path / "fresh")
    fresh.commit({"unrelated.txt": "x"})
    fresh.commit(SERVICE)
    in_fresh = fresh.detect(base="HEAD", head="HEAD")
    keys = [
        {n: v["key"] for n, v in r["layers"].items()}
        for r in (on_other, on_main, in_clone, in_fresh)
    ]
    assert keys[0] == keys[1] == keys[2] == keys[3]


def test_fail_safe_all_zero_base(repo: GitRepo, tmp_path: Path) -> None:
    head = repo.commit({"docs/guide.md": "docs only\n"})
    env = _github_event(tmp_path, {"before": "0" * 40, "after": head}, "push", head)
    result = repo.detect(environ=env)
    assert result["fail_safe"] is not None and "all-zero" in result["fail_safe"]
    assert changed(result) == {"base": True, "deps": True, "code": True}
    assert result["layers"]["base"]["reasons"] == [result["fail_safe"]]
    assert result["rebuild_from"] == "base" and result["image_changed"] is True


def test_fail_safe_shallow_clone(repo: GitRepo, tmp_path: Path) -> None:
    repo.commit({"docs/guide.md": "docs only\n"})
    shallow = tmp_path / "shallow"
    GitRepo(tmp_path).git("clone", "-q", "--depth", "1", f"file://{repo.path}", str(shallow))
    result = GitRepo(shallow).detect()
    assert result["fail_safe"] is not None and "shallow" in result["fail_safe"]
    assert all(changed(result).values())


def test_fail_safe_force_push(repo: GitRepo, tmp_path: Path) -> None:
    repo.commit({"app/main.py": "print('pushed')\n"})
    gone = repo.head()
    repo.git("reset", "-q", "--hard", "HEAD~1")
    head = repo.commit({"docs/guide.md": "rewritten\n"})
    env = _github_event(tmp_path, {"before": gone, "after": head, "forced": True}, "push", head)
    result = repo.detect(environ=env)
    assert result["fail_safe"] is not None and "not an ancestor" in result["fail_safe"]
    assert all(changed(result).values())


def test_first_commit_is_fail_safe(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "new")
    repo.commit(SERVICE)
    result = repo.detect()
    assert "first commit" in result["fail_safe"]
    assert all(changed(result).values())


def test_dirty_working_tree_is_compared_locally(repo: GitRepo) -> None:
    repo.write({"app/main.py": "print('uncommitted')\n", "app/new_module.py": "Z = 3\n"})
    result = repo.detect()
    assert result["worktree"] is True
    assert result["base"] == repo.head()
    assert changed(result) == {"base": False, "deps": False, "code": True}
    assert result["layers"]["code"]["reasons"] == ["app/main.py", "app/new_module.py"]
    committed = repo.detect(worktree=False)
    assert committed["worktree"] is False
    # The staging area is left as the user had it.
    assert repo.git("status", "--porcelain") == "M app/main.py\n?? app/new_module.py".strip()


def test_dockerignore_change_that_excludes_a_taken_file(repo: GitRepo) -> None:
    repo.commit({".dockerignore": SERVICE[".dockerignore"] + "app/helper.py\n"})
    result = repo.detect()
    assert changed(result) == {"base": False, "deps": False, "code": True}
    assert result["layers"]["code"]["reasons"] == [".dockerignore changed what the stage takes"]


def test_dockerignore_exception_inside_excluded_directory(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "exc")
    repo.commit(
        {
            "Dockerfile": "FROM scratch AS code\nCOPY . /app/\n",
            ".dockerignore": "docs\n!docs/keep.md\n",
            "docs/keep.md": "1\n",
            "docs/drop.md": "1\n",
            "main.py": "1\n",
        }
    )
    repo.commit({"docs/drop.md": "2\n"})
    assert changed(repo.detect()) == {"code": False}
    repo.commit({"docs/keep.md": "2\n"})
    result = repo.detect()
    assert changed(result) == {"code": True}
    assert result["layers"]["code"]["reasons"] == ["docs/keep.md"]


def test_output_formats_github_and_gitlab(repo: GitRepo, tmp_path: Path) -> None:
    repo.commit({"app/main.py": "print(3)\n"})
    out, summary = tmp_path / "out.txt", tmp_path / "summary.md"
    env = {"GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary)}
    proc = cli("detect", "--format", "github", "--base", "HEAD~1", cwd=repo.path, env=env)
    assert proc.returncode == 0, proc.stderr
    outputs = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert outputs["base-changed"] == "false"
    assert outputs["deps-changed"] == "false"
    assert outputs["code-changed"] == "true"
    assert outputs["rebuild-from"] == "code"
    assert outputs["image-changed"] == "true"
    payload = json.loads(outputs["json"])
    assert outputs["code-key"] == payload["layers"]["code"]["key"]
    assert "| code | code | **yes** |" in summary.read_text()
    assert "code" in proc.stdout  # the table also goes to the log

    proc = cli(
        "detect", "--format", "gitlab", "--base", "HEAD~1", "--dotenv", "detect.env", cwd=repo.path
    )
    assert proc.returncode == 0, proc.stderr
    dotenv = dict(
        line.split("=", 1) for line in (repo.path / "detect.env").read_text().splitlines()
    )
    assert dotenv["PIPELINE_KIT_CODE_CHANGED"] == "true"
    assert dotenv["PIPELINE_KIT_DEPS_CHANGED"] == "false"
    assert dotenv["PIPELINE_KIT_CODE_KEY"] == payload["layers"]["code"]["key"]
    assert dotenv["PIPELINE_KIT_REBUILD_FROM"] == "code"
    assert dotenv["PIPELINE_KIT_IMAGE_CHANGED"] == "true"

    proc = cli("detect", "--format", "text", "--base", "HEAD~1", cwd=repo.path)
    assert proc.returncode == 0
    assert "rebuild from: code; image changed: yes" in proc.stdout


def test_build_arg_override_changes_the_key(repo: GitRepo) -> None:
    plain = repo.detect(base="HEAD", head="HEAD")
    overridden = repo.detect(base="HEAD", head="HEAD", build_args={"PYTHON_IMAGE": "python:3.12"})
    assert plain["layers"]["base"]["key"] != overridden["layers"]["base"]["key"]


def test_service_in_a_subdirectory_with_its_own_config(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "mono")
    files = {f"services/llm/{name}": content for name, content in SERVICE.items()}
    files["services/other/main.py"] = "1\n"
    repo.commit(files)
    repo.commit({"services/other/main.py": "2\n", "services/llm/app/main.py": "print(2)\n"})
    proc = cli(
        "--config", "services/llm/pipeline-kit.yaml", "detect", "--format", "json", cwd=repo.path
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["dockerfile"] == "services/llm/Dockerfile"
    assert result["context"] == "services/llm"
    assert changed(result) == {"base": False, "deps": False, "code": True}
    assert result["layers"]["code"]["reasons"] == ["app/main.py"]
    # The same service content at another place in another repository keys the same.
    alone = GitRepo.init(tmp_path / "alone")
    alone.commit(SERVICE)
    alone.commit({"app/main.py": "print(2)\n"})
    keys = {n: v["key"] for n, v in alone.detect()["layers"].items()}
    assert keys == {n: v["key"] for n, v in result["layers"].items()}


def test_a_dockerfile_broken_at_base_fails_safe(repo: GitRepo) -> None:
    """The commit that fixes a broken Dockerfile can pass: the broken side is nothing to
    compare with, as a missing one, and the reason names the line and the error."""
    broken = repo.commit(_edit_dockerfile("COPY app/ /app/", "COPY --bogus app/ /app/"))
    fixed = repo.commit({"Dockerfile": DOCKERFILE, "docs/guide.md": "fixed\n"})
    result = repo.detect(base=broken, head=fixed)
    assert all(changed(result).values()) and result["image_changed"] is True
    reason = result["layers"]["base"]["reasons"][0]
    assert reason.startswith("Dockerfile:14: COPY has no flag --bogus"), reason
    assert f"at base {broken[:12]}" in reason


def test_a_dockerfile_the_parser_rejects_at_base_fails_safe(repo: GitRepo) -> None:
    broken = repo.commit(_edit_dockerfile("WORKDIR /app\n", "WORKDIR /app\nENV LONELY\n"))
    fixed = repo.commit({"Dockerfile": DOCKERFILE})
    result = repo.detect(base=broken, head=fixed)
    assert all(changed(result).values())
    reason = result["layers"]["code"]["reasons"][0]
    assert reason.startswith("Dockerfile:14: BuildKit's parser rejects it: ENV must have two")


def test_a_dockerfile_broken_at_head_is_an_error(repo: GitRepo) -> None:
    base = repo.head()
    head = repo.commit(_edit_dockerfile("COPY app/ /app/", "COPY --bogus app/ /app/"))
    proc = cli("detect", "--base", base, "--head", head, cwd=repo.path)
    assert proc.returncode == 2, proc.stderr
    assert "Dockerfile:14: COPY has no flag --bogus" in proc.stderr


def test_a_platform_arg_in_from_follows_the_platform(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "svc")
    repo.commit(
        {
            "Dockerfile": (
                "ARG FLAVOR=${TARGETARCH}\n"
                "FROM python:3.11-slim AS base-amd64\nRUN echo amd64\n"
                "FROM python:3.11-slim AS base-arm64\nRUN echo arm64\n"
                "FROM base-${FLAVOR}\nCOPY app.py /app.py\n"
            ),
            "app.py": "print(1)\n",
        }
    )
    head = repo.commit({"app.py": "print(2)\n"})
    keys = {}
    for platform in ("linux/amd64", "linux/arm64", "aarch64"):
        args = ("--head", head, "--platform", platform, "--format", "json")
        proc = cli("detect", *args, cwd=repo.path)
        assert proc.returncode == 0, proc.stderr
        keys[platform] = json.loads(proc.stdout)["image_key"]
        assert json.loads(proc.stdout)["image_changed"] is True
    # The stage each platform starts from is another: so is the image's key.
    assert keys["linux/amd64"] != keys["linux/arm64"] == keys["aarch64"]
    proc = cli("detect", "--platform", "linux/amd 64", cwd=repo.path)
    assert proc.returncode == 2 and "--platform: 'linux/amd 64' is not a platform" in proc.stderr


def test_the_platform_is_part_of_every_key(tmp_path: Path) -> None:
    """The same Dockerfile and context build another image on another platform: a record of
    the amd64 image must not be reused for arm64 (retag), nor appended to."""
    repo = GitRepo.init(tmp_path / "svc")
    repo.commit({"Dockerfile": "FROM python:3.11-slim\nCOPY app.py /app.py\n", "app.py": "1\n"})
    head = repo.commit({"app.py": "2\n"})
    keys = {}
    for platform in ("linux/amd64", "linux/arm64", "aarch64", None):
        args = ("--head", head, "--format", "json", *(("--platform", platform) if platform else ()))
        proc = cli("detect", *args, cwd=repo.path)
        assert proc.returncode == 0, proc.stderr
        keys[platform] = json.loads(proc.stdout)["image_key"]
    assert keys["linux/amd64"] != keys["linux/arm64"] == keys["aarch64"]
    from pipeline_kit.dockerfile.platform import runner_platform

    assert keys[None] == keys[str(runner_platform())]

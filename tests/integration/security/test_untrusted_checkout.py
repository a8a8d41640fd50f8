"""What a checkout holds cannot read the runner: attacks a pull request can make with
symlinks, its config and its branch name, each run as the attacker's steps.

Every test puts a secret in the kit's environment (where a CI token would be) and a file
outside the checkout, then checks that neither reaches an image, a report, an annotation or a
command the kit runs, and that no file outside the checkout is written.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import pytest

from pipeline_kit.adapters.checkout import LeavesRoot, Node, resolve, write_file
from pipeline_kit.config.loader import HOST_KEYS, for_run, load_config
from pipeline_kit.errors import ConfigError, InputError
from tests.support.builds import busybox_repo
from tests.support.ci_contexts import SECRET, github_env
from tests.support.gitrepo import GitRepo, cli, traced_cli
from tests.support.services.registry import RegistryServer


def outside(tmp_path: Path) -> Path:
    """A directory beside the checkout holding a file nobody may publish."""
    place = tmp_path / "outside"
    place.mkdir(exist_ok=True)
    (place / "config.json").write_text('{"token": "OUTSIDE-SECRET"}\n')
    return place


def secret_env(**more: str) -> dict[str, str]:
    return {"PIPELINE_KIT_TEST_TOKEN": SECRET, **more}


# -- the walk itself ----------------------------------------------------------------------


def lookup_of(tree: dict[str, str | None]) -> Any:
    """A Lookup over a dict (path -> symlink target, or None for a directory); a path not in
    it is a file when it ends in .txt, else missing."""

    def lookup(path: str) -> Node:
        if path in tree:
            target = tree[path]
            return Node("dir") if target is None else Node("symlink", target)
        return Node("file") if path.endswith(".txt") else Node("missing")

    return lookup


@pytest.mark.parametrize(
    ("path", "resolved"),
    [
        ("app/a.txt", "app/a.txt"),
        ("link/a.txt", "app/a.txt"),
        ("deep/link2/a.txt", "app/a.txt"),
        ("chain/a.txt", "app/a.txt"),
        ("app/../app/a.txt", "app/a.txt"),
    ],
)
def test_symlinks_that_stay_inside_are_followed(path: str, resolved: str) -> None:
    tree = {"app": None, "link": "app", "deep": None, "deep/link2": "../app", "chain": "link"}
    assert resolve(path, lookup_of(tree)) == resolved


@pytest.mark.parametrize(
    ("path", "link"),
    [
        ("abs/x.txt", "abs is a symlink to /etc"),
        ("escape/x.txt", "escape is a symlink to app/../.."),
        ("deep/up/x.txt", "deep/up is a symlink to ../../secret"),
        ("loop/x.txt", "loop is a symlink to loop"),
    ],
)
def test_symlinks_that_leave_are_refused_naming_the_link(path: str, link: str) -> None:
    tree = {"app": None, "abs": "/etc", "escape": "app/../..", "deep": None,
            "deep/up": "../../secret", "loop": "loop"}  # fmt: skip
    with pytest.raises(LeavesRoot, match=link):
        resolve(path, lookup_of(tree))


# -- append and the content key -------------------------------------------------------------

DOCKERFILE = """\
FROM scratch AS base
COPY busybox /bin/busybox

FROM base AS code
COPY app/ hostdir/config.json proc/self/environ /srv/app/
CMD ["/bin/cat", "/srv/app/main.txt"]
"""


def test_append_never_publishes_a_file_a_symlink_brings_from_outside(
    tmp_path: Path, registry: RegistryServer
) -> None:
    """The attack: a first push builds ``COPY app/ hostdir/config.json proc/self/environ``
    with plain files; a second push replaces ``hostdir`` and ``proc`` by symlinks to a host
    directory and to ``/proc``, expecting append to publish the host's file and the kit's
    own environment. Now the build is refused, naming the Dockerfile line and the link, and
    nothing of either reaches the registry."""
    storage = tmp_path / "storage"
    repo = busybox_repo(
        tmp_path / "repo",
        {
            "Dockerfile": DOCKERFILE,
            "app/main.txt": "v1\n",
            "hostdir/config.json": "{}\n",
            "proc/self/environ": "A=b\n",
            "pipeline-kit.yaml": (
                f"image: {registry.host}/sec/append-symlink\nbuild:\n  builder: buildah\n"
                f"  buildah: {{storage_driver: vfs, root: {storage}/root, "
                f"runroot: {storage}/run}}\n"
            ),
        },
    )
    cold = cli("build", "--format", "json", cwd=repo.path, timeout=300)
    assert cold.returncode == 0, cold.stderr[-3000:]
    before = {p: p.stat().st_size for p in registry.workdir.rglob("*") if p.is_file()}

    shutil.rmtree(repo.path / "hostdir")
    shutil.rmtree(repo.path / "proc")
    (repo.path / "hostdir").symlink_to(outside(tmp_path))
    (repo.path / "proc").symlink_to("/proc")
    repo.commit({"app/main.txt": "v2\n"})
    for strategy in ("auto", "append"):
        result = cli("build", "--strategy", strategy, cwd=repo.path, env=secret_env())
        assert result.returncode == 2, result.stderr
        assert "Dockerfile:5: COPY hostdir/config.json: hostdir is a symlink to" in result.stderr
        assert "which leaves the build context" in result.stderr
        assert SECRET not in result.stderr and "OUTSIDE-SECRET" not in result.stderr
    after = set()
    for path, data in registry.stored_files():
        after.add(path)
        assert SECRET.encode() not in data and b"OUTSIDE-SECRET" not in data, path
    assert after <= set(before) | {p for p in after if "_uploads" in str(p)}


def test_the_content_key_follows_a_symlink_inside_the_context(tmp_path: Path) -> None:
    """``COPY app/`` with ``app -> src/app``: the builder copies src/app, so a change there
    changes the image, and the key must say so (before, it named only the link's text)."""
    repo = GitRepo.init(tmp_path / "repo")
    (repo.path / "app").parent.mkdir(parents=True, exist_ok=True)
    repo.write({"Dockerfile": "FROM scratch\nCOPY app/ /srv/app/\n", "src/app/main.py": "1\n"})
    (repo.path / "app").symlink_to("src/app")
    first = repo.commit()
    second = repo.commit({"src/app/main.py": "2\n"})
    result = repo.detect(base=first, head=second)
    assert result["image_changed"] is True
    third = repo.commit({"src/other.txt": "not taken\n"})
    assert repo.detect(base=second, head=third)["image_changed"] is False


def test_a_source_symlink_that_leaves_is_refused_at_head_and_fails_safe_at_base(
    tmp_path: Path,
) -> None:
    repo = GitRepo.init(tmp_path / "repo")
    repo.write({"Dockerfile": "FROM scratch\nCOPY conf/settings.json /srv/\n"})
    (repo.path / "conf").symlink_to(outside(tmp_path))
    leaving = repo.commit()
    result = cli("detect", "--head", leaving, "--base", leaving, cwd=repo.path)
    assert result.returncode == 2
    assert "Dockerfile:2: COPY conf/settings.json: conf is a symlink to" in result.stderr
    (repo.path / "conf").unlink()
    fixed = repo.commit({"conf/settings.json": "{}\n"})
    document = repo.detect(base=leaving, head=fixed)  # the commit that fixes it passes
    (reason,) = document["layers"]["code"]["reasons"]
    assert reason.startswith("Dockerfile:2: COPY conf/settings.json: conf is a symlink to")
    assert reason.endswith(f"which leaves the build context at base {leaving[:12]}: nothing to "
                           "compare with")  # fmt: skip
    assert document["image_changed"] is True


# -- lint ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "json", "github", "gitlab"])
def test_lint_reads_no_file_a_symlink_brings_from_outside(tmp_path: Path, fmt: str) -> None:
    """``requirements.txt -> /proc/self/environ`` put the environment (a CI password) into
    PK004's message, so into the Code Quality artifact and the GitHub annotation."""
    root = tmp_path / "repo"
    GitRepo.init(root)
    (root / "Dockerfile").write_text(
        "FROM python:3.12-slim\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\n"
        "COPY srv/ /srv/\n"
    )
    (root / "requirements.txt").symlink_to("/proc/self/environ")
    (root / "srv").mkdir()
    (root / "srv/requirements.txt").symlink_to(outside(tmp_path) / "config.json")
    report = tmp_path / "report.out"
    result = cli("lint", "--format", fmt, "--output", str(report), cwd=root,
                 env=secret_env(GITHUB_OUTPUT=str(tmp_path / "o")))  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    shown = result.stdout + result.stderr + report.read_text()
    assert SECRET not in shown and "OUTSIDE-SECRET" not in shown


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_lint_follows_no_include_that_a_symlink_takes_outside(tmp_path: Path, fmt: str) -> None:
    """PK004 follows ``-r``/``-c`` includes: one that is, or goes through, a symlink out of
    the checkout is not read, so a secret cannot reach a message as an "unpinned" line."""
    root = tmp_path / "repo"
    GitRepo.init(root)
    (root / "Dockerfile").write_text(
        "FROM python:3.12-slim\nCOPY . /srv/\nRUN pip install -r /srv/requirements.txt\n"
    )
    (root / "requirements.txt").write_text(
        "-r environ.txt\n-r linked/config.json\n-r ../outside.txt\nfastapi\n"
    )
    (root / "environ.txt").symlink_to("/proc/self/environ")
    (root / "linked").symlink_to(outside(tmp_path))
    (tmp_path / "outside.txt").write_text("OUTSIDE-SECRET\n")
    result = cli("lint", "--format", fmt, cwd=root, env=secret_env())
    assert result.returncode in (0, 1), result.stderr
    assert "fastapi" in result.stdout  # the file itself is read
    assert SECRET not in result.stdout + result.stderr
    assert "OUTSIDE-SECRET" not in result.stdout + result.stderr


@pytest.mark.parametrize("name", ["Dockerfile", ".dockerignore", "pipeline-kit.yaml"])
def test_a_kit_input_that_is_a_symlink_out_is_refused_unread(tmp_path: Path, name: str) -> None:
    root = tmp_path / "repo"
    GitRepo.init(root)
    (root / "Dockerfile").write_text("FROM python:3.12-slim\nCOPY . /srv/\n")
    (root / name).unlink(missing_ok=True)
    (root / name).symlink_to("/proc/self/environ")
    result = cli("lint", "--format", "json", cwd=root, env=secret_env())
    assert result.returncode == 2, result.stderr
    assert f"{name} is a symlink to /proc/self/environ, which leaves" in result.stderr
    assert SECRET not in result.stdout + result.stderr


# -- files the kit writes -----------------------------------------------------------------


def test_outputs_are_never_written_through_a_committed_symlink(tmp_path: Path) -> None:
    """``pipeline-kit.env -> /some/file``: the gitlab format, ``lint --output`` and
    ``render --output`` refuse, and the file the link points at is unchanged."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    repo = GitRepo.init(tmp_path / "repo")
    repo.commit({"pipeline-kit.yaml": "image: 127.0.0.1:5000/team/llm\n",
                 "Dockerfile": "FROM scratch\nCOPY a /a\n", "a": "x"})  # fmt: skip
    (repo.path / "pipeline-kit.env").symlink_to(victim)
    (repo.path / "reports").symlink_to(tmp_path)
    runs = [
        ("tags", "--format", "gitlab"),
        ("lint", "--output", "pipeline-kit.env"),
        ("lint", "--output", "reports/victim"),
        ("render", "kubernetes", "--image", f"127.0.0.1:5000/team/llm@sha256:{'a' * 64}",
         "--output", "reports/victim"),
    ]  # fmt: skip
    for args in runs:
        result = cli(*args, cwd=repo.path)
        assert result.returncode == 2, (args, result.stderr)
        assert "the kit does not write through symlinks" in result.stderr
    assert victim.read_text() == "precious\n"


def test_write_file_replaces_whole_and_refuses_a_link_at_the_path(tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.xml"
    write_file(target, "one", root=tmp_path)
    write_file(target, "two", root=tmp_path)
    assert target.read_text() == "two" and sorted(p.name for p in target.parent.iterdir()) == [
        "report.xml"
    ]
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere" / "x")
    with pytest.raises(InputError, match="does not write through symlinks"):
        write_file(tmp_path / "dangling", "x", root=tmp_path)
    assert not (tmp_path / "nowhere").exists()


def test_init_never_writes_through_a_dangling_symlink(tmp_path: Path) -> None:
    """A checkout with ``.github/workflows/pipeline-kit-main.yml`` pointing outside: init
    refuses instead of creating the file the link names."""
    repo = GitRepo.init(tmp_path / "repo")
    repo.git("remote", "add", "origin", "https://github.com/acme/llm-service.git")
    repo.commit({"Dockerfile": "FROM scratch\nCOPY a /a\n", "a": "x"})
    workflows = repo.path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "pipeline-kit-main.yml").symlink_to(tmp_path / "planted.yml")
    result = cli("init", "--ci", "github", "--kit-ref", "a" * 40, cwd=repo.path)
    assert result.returncode == 2, result.stderr
    assert "symlink" in result.stderr
    assert not (tmp_path / "planted.yml").exists()


# -- the config of a pull request ---------------------------------------------------------


def pull_request_repo(tmp_path: Path, base_config: str, pr_config: str) -> tuple[GitRepo, str]:
    repo = GitRepo.init(tmp_path / "repo")
    base = repo.commit({"pipeline-kit.yaml": base_config})
    repo.git("checkout", "-q", "-b", "contribution")
    repo.commit({"pipeline-kit.yaml": pr_config})
    return repo, base


def test_a_pull_requests_preview_command_is_the_base_commits_with_a_clean_environment(
    tmp_path: Path,
) -> None:
    """The attack: the pull request's config makes the command provider run its own argv,
    which would see the kit's whole environment. The base commit's command runs instead, with
    only the basics and the values it names, and ``{ref}`` (the contributor's branch name,
    ``$(...)`` included) arrives cleaned."""
    base_command = (
        "preview:\n  provider: command\n  command:\n"
        "    up: [sh, -c, 'echo {ref} > ref.txt; env > env.txt; echo http://127.0.0.1:9']\n"
        "    down: ['true']\n    env: [NAMED]\n"
    )
    evil = (
        "preview:\n  provider: command\n  command:\n"
        "    up: [sh, -c, 'env > leaked.txt; echo http://127.0.0.1:9']\n    down: ['true']\n"
    )
    repo, base = pull_request_repo(tmp_path, "image: 127.0.0.1:5000/t/llm\n" + base_command,
                                   "image: 127.0.0.1:5000/t/llm\n" + evil)  # fmt: skip
    branch = "x$(touch${IFS}PWNED)`touch${IFS}PWNED2`;touch${IFS}PWNED3"
    env = github_env(tmp_path, event="pull_request", ref="refs/pull/9/merge", sha=repo.head(),
                     pull=(9, base), head_ref=branch)  # fmt: skip
    env["NAMED"] = "passed-on"
    run = traced_cli("preview", "up", "--image", f"127.0.0.1:5000/t/llm@sha256:{'b' * 64}",
                     cwd=repo.path, env=env)  # fmt: skip
    result = run.result
    assert result.returncode == 0, result.stderr
    # Every process started, recorded as it started: the base commit's command ran, the pull
    # request's never did; the token is in no argv, and in no environment but the kit's and
    # the git it reads the base commit's config with.
    ups = [e.argv for e in run.execs if e.ok and e.tool == "sh"]
    assert ups == [("sh", "-c", "echo x-touch-IFS-PWNED-touch-IFS-PWNED2-touch-IFS-PWNED3 > "
                    "ref.txt; env > env.txt; echo http://127.0.0.1:9")]  # fmt: skip
    assert run.argv_holding(SECRET) == []
    assert run.env_holding(SECRET) == {
        "python": ["PIPELINE_KIT_TEST_TOKEN"],
        "git": ["PIPELINE_KIT_TEST_TOKEN"],
    }
    assert "preview.command: a pull request does not change what reaches the runner" in (
        result.stderr
    )
    assert not (repo.path / "leaked.txt").exists()
    assert not list(repo.path.glob("PWNED*"))
    assert (
        repo.path / "ref.txt"
    ).read_text() == "x-touch-IFS-PWNED-touch-IFS-PWNED2-touch-IFS-PWNED3\n"
    seen = dict(line.split("=", 1) for line in (repo.path / "env.txt").read_text().splitlines()
                if "=" in line)  # fmt: skip
    assert seen["NAMED"] == "passed-on" and seen["PIPELINE_KIT_PREVIEW_RAW_REF"] == branch
    assert SECRET not in (repo.path / "env.txt").read_text()
    assert not any(name.startswith(("GITHUB_", "PIPELINE_KIT_TEST")) for name in seen)


HOST_VALUES: dict[tuple[str, ...], Any] = {
    ("build", "buildah"): {"volumes": ["/:/host"]},
    ("cache", "repository"): "evil.example.com/cache",
    ("registry", "insecure"): ["registry.example.com"],
    ("smoke", "url"): "http://169.254.169.254/",
    ("preview", "provider"): "command",
    ("preview", "weights"): "/",
    ("preview", "local"): {"runtime": "./evil.sh"},
    ("preview", "kubernetes", "context"): "production",
    ("deploy", "context"): "production",
    ("deploy", "url"): "http://169.254.169.254/",
    ("preview", "command"): {"up": ["./evil.sh"], "down": ["true"]},
    ("kubernetes", "weights"): {"pvc": "production-weights"},
    ("secrets",): [
        {"id": "leak", "file": "/proc/self/environ"},
        {"id": "t", "env": "CI_JOB_TOKEN"},
    ],
}


def _nest(key: tuple[str, ...], value: Any) -> dict[str, Any]:
    nested: dict[str, Any] = {key[-1]: value}
    for part in reversed(key[:-1]):
        nested = {part: nested}
    return nested


def test_every_host_key_has_a_case() -> None:
    assert set(HOST_VALUES) == set(HOST_KEYS)


@pytest.mark.parametrize("key", list(HOST_VALUES), ids=".".join)
def test_a_pull_request_takes_each_host_key_from_its_base(
    tmp_path: Path, key: tuple[str, ...]
) -> None:
    """Each key that reaches the runner: set by the pull request, absent at the base, it is
    dropped (and said); the rest of the pull request's config stays as it wrote it."""
    import yaml

    mine = {
        "image": "127.0.0.1:5000/t/llm",
        "service": {"port": 8080},
        **_nest(key, HOST_VALUES[key]),
    }
    repo, base = pull_request_repo(tmp_path, "image: 127.0.0.1:5000/t/llm\n", yaml.safe_dump(mine))
    env = github_env(tmp_path, event="pull_request", ref="refs/pull/3/merge", sha=repo.head(),
                     pull=(3, base))  # fmt: skip
    log = io.StringIO()
    config = for_run(load_config(None, repo.path), env, log)
    node: Any = config.data
    for part in key[:-1]:
        node = node.get(part, {})
    assert key[-1] not in node
    assert config.section("service") == {"port": 8080}
    assert f"{'.'.join(key)}: a pull request does not change what reaches the runner" in (
        log.getvalue()
    )
    pushed = for_run(load_config(None, repo.path), {}, io.StringIO())  # a local run: as written
    assert pushed.data == load_config(None, repo.path).data


def test_without_the_base_commit_a_pull_request_may_not_set_host_keys(tmp_path: Path) -> None:
    repo, _ = pull_request_repo(tmp_path, "image: 127.0.0.1:5000/t/llm\n",
                                "image: 127.0.0.1:5000/t/llm\npreview: {weights: /}\n")  # fmt: skip
    env = github_env(tmp_path, event="pull_request", ref="refs/pull/3/merge", sha=repo.head(),
                     pull=(3, "f" * 40))  # fmt: skip
    with pytest.raises(ConfigError, match=r"preview\.weights: in a pull request these keys"):
        for_run(load_config(None, repo.path), env, io.StringIO())
    push = github_env(tmp_path, event="push", ref="refs/heads/contribution", sha=repo.head())
    same = for_run(load_config(None, repo.path), push, io.StringIO())
    assert same.section("preview") == {"weights": "/"}

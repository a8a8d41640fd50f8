"""The kit's Kaniko plans, executed by the real executor (tests/support/services/kaniko.py).

Every build goes through ``commands.build.run`` with the kit's own ``KanikoBuilder`` whose
executor process starts in a throwaway root (``SandboxedKaniko``): detection, plan, argv, docker
config and digest are the kit's. The images are the busybox service of tests/support/builds.py:
each RUN writes a random UUID, so a layer that keeps its digest was not rebuilt.
One repository goes through the rows of the flag table (docs/build-strategies.md) in order.
Every flag the kit's ``executor_argv`` can put on the command line is checked against the flags
the executor's own ``--help`` lists, run in a throwaway root like a build.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from pipeline_kit.build.builders import kaniko as kit_kaniko
from pipeline_kit.build.builders.base import BuildRequest
from pipeline_kit.errors import KitError
from tests.support.attested import assert_attested_by
from tests.support.builds import MULTI_STAGE, layer_digests, manifest
from tests.support.gitrepo import GitRepo
from tests.support.kitbuild import (
    build_in_process,
    busybox_service,
    manifest_with_auth,
)
from tests.support.services.kaniko import KanikoSandbox, SandboxRefused, ThrowawayRoot
from tests.support.services.registry import RegistryServer

ZERO_SHA = "0" * 40
RUN_LINES = (
    'RUN ["/bin/busybox", "--install", "-s", "/bin"]',
    "RUN cat /proc/sys/kernel/random/uuid > /base-built",
    "RUN cp /app/requirements.txt /deps-installed"
    " && cat /proc/sys/kernel/random/uuid > /deps-built",
)


def cached_commands(log: str) -> list[str]:
    marker = "Using caching version of cmd: "
    return [line.split(marker, 1)[1].strip() for line in log.splitlines() if marker in line]


@pytest.fixture(scope="module")
def rows(
    tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer, kaniko: KanikoSandbox
) -> dict[str, Any]:
    """One service through cold, code, deps, base, docs-only and unknown-history builds."""
    root = tmp_path_factory.mktemp("kaniko-rows")
    repo = busybox_service(root / "repo", f"{registry.host}/kaniko/rows", "kaniko")
    builder = kaniko.builder()
    steps: dict[str, Any] = {"repo": repo}

    def step(name: str, files: dict[str, str] | None, *args: str) -> None:
        if files is not None:
            repo.commit(files, message=name)
        before = len(kaniko.runs)
        record = build_in_process(repo, builder, "--tag", name, *args)
        record["_runs"] = kaniko.runs[before:]
        steps[name] = record

    step("cold", None)
    # A code change would be appended (tests/integration/build/test_builder_equivalence.py):
    # this row is the builder's, as when append cannot apply.
    step("code", {"app/main.txt": "hello v2\n"}, "--strategy", "builder")
    # The previous image has a 1.1 MB layer: above 1 MiB it counts as large.
    step("deps", {"requirements.txt": "numpy==2.2.0\n", "pipeline-kit.yaml": _large_1mb(repo)})
    dockerfile = (repo.path / "Dockerfile").read_text()
    step("base", {"Dockerfile": dockerfile.replace("> /base-built", "> /base-built-v2")})
    step("docs", {"docs/index.md": "# more docs\n"})
    # Content keys need no history, so auto would append this code change: the builder row.
    step("unknown", {"app/main.txt": "hello v3\n"}, "--base", ZERO_SHA, "--strategy", "builder")
    return steps


def _large_1mb(repo: GitRepo) -> str:
    return (repo.path / "pipeline-kit.yaml").read_text() + "  large_layer_mb: 1\n"


def test_cold_build_pushes_and_the_digest_file_is_the_registry_digest(
    rows: dict[str, Any], registry: RegistryServer
) -> None:
    cold = rows["cold"]
    assert cold["strategy"] == "builder" and cold["builder"] == "kaniko"
    (run,) = cold["_runs"]
    assert run.returncode == 0
    assert f"--destination={registry.host}/kaniko/rows:cold" in run.argv
    for tag in ("cold", f"pk-{cold['image_key']}"):
        assert manifest(registry, "kaniko/rows", tag)["_digest"] == cold["digest"]
    assert cached_commands(run.text) == []


def test_code_only_change_is_served_from_the_remote_cache(
    rows: dict[str, Any], registry: RegistryServer
) -> None:
    cold, code = rows["cold"], rows["code"]
    assert code["rebuild_from"] == "code"
    (run,) = code["_runs"]
    cached = cached_commands(run.text)
    assert set(RUN_LINES) <= set(cached)
    # With --cache-copy-layers=true the COPYs of base and deps come from the cache too.
    assert {"COPY busybox /bin/busybox", "COPY requirements.txt /app/requirements.txt"} <= set(
        cached
    )
    assert "COPY app/ /app/" not in cached
    assert "--compressed-caching=false" not in run.argv
    before = layer_digests(registry, "kaniko/rows", "cold")
    after = layer_digests(registry, "kaniko/rows", "code")
    # busybox COPY, install RUN, base RUN, requirements COPY, deps RUN: the same blobs.
    assert after[:5] == before[:5]
    assert after[5] != before[5]
    assert code["digest"] != cold["digest"]


def test_deps_change_rebuilds_deps_and_code_and_turns_off_compressed_caching(
    rows: dict[str, Any], registry: RegistryServer
) -> None:
    deps = rows["deps"]
    assert deps["rebuild_from"] == "deps"
    (run,) = deps["_runs"]
    assert "--compressed-caching=false" in run.argv
    cached = cached_commands(run.text)
    assert RUN_LINES[:2] == tuple(c for c in cached if c in RUN_LINES[:2])
    assert RUN_LINES[2] not in cached
    before = layer_digests(registry, "kaniko/rows", "code")
    after = layer_digests(registry, "kaniko/rows", "deps")
    assert after[:3] == before[:3]
    assert after[3] != before[3] and after[4] != before[4]


def test_base_change_rewrites_every_later_layer(
    rows: dict[str, Any], registry: RegistryServer
) -> None:
    base = rows["base"]
    assert base["rebuild_from"] == "base"
    (run,) = base["_runs"]
    cached = cached_commands(run.text)
    assert cached == ["COPY busybox /bin/busybox", RUN_LINES[0]]  # what precedes the change
    before = layer_digests(registry, "kaniko/rows", "deps")
    after = layer_digests(registry, "kaniko/rows", "base")
    assert after[:2] == before[:2]
    assert all(a != b for a, b in zip(after[2:6], before[2:6], strict=True))


def test_docs_only_change_runs_no_executor(rows: dict[str, Any], registry: RegistryServer) -> None:
    docs = rows["docs"]
    assert docs["strategy"] == "retag" and docs["builder"] is None
    assert docs["_runs"] == []
    assert docs["digest"] == rows["base"]["digest"]
    assert manifest(registry, "kaniko/rows", "docs")["_digest"] == docs["digest"]


def test_unknown_history_rebuilds_with_compressed_caching_off(
    rows: dict[str, Any], registry: RegistryServer
) -> None:
    unknown = rows["unknown"]
    assert unknown["strategy"] == "builder"
    assert "rebuilding everything" in unknown["reason"]
    (run,) = unknown["_runs"]
    assert "--compressed-caching=false" in run.argv
    assert len(cached_commands(run.text)) == 5  # the cache is content-addressed: still used
    before = layer_digests(registry, "kaniko/rows", "base")
    after = layer_digests(registry, "kaniko/rows", "unknown")
    assert after[:5] == before[:5] and after[5] != before[5]
    assert manifest(registry, "kaniko/rows", "unknown")["_digest"] == unknown["digest"]


def test_every_run_used_the_loopback_registry_over_plain_http(
    rows: dict[str, Any], registry: RegistryServer
) -> None:
    runs = [
        run for name in ("cold", "code", "deps", "base", "unknown") for run in rows[name]["_runs"]
    ]
    for run in runs:
        assert {"--insecure", "--insecure-pull", f"--insecure-registry={registry.host}"} <= set(
            run.argv
        )
        assert f"--cache-repo={registry.host}/kaniko/rows/cache" in run.argv


def test_sandbox_refuses_force_and_foreign_executors(kaniko: KanikoSandbox, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    before = len(kaniko.runs)
    with kaniko.root(tmp_path) as root:
        with pytest.raises(SandboxRefused, match="--force"):
            root.run([str(root.executor), "--force"], {}, print)
        with pytest.raises(SandboxRefused, match="only the root's own executor"):
            root.run([str(kaniko.source)], {}, print)
        with pytest.raises(SandboxRefused, match="only the root's own executor"):
            root.run(["/kaniko/executor"], {}, print)
        base = root.path.parent
    assert not base.exists()
    made_up = ThrowawayRoot(Path("/"), tmp_path, kaniko)
    with pytest.raises(SandboxRefused, match="not a root this sandbox made"):
        made_up.run(["/kaniko/executor"], {}, print)
    with pytest.raises(SandboxRefused, match="not a root this sandbox made"):
        root.run([str(root.executor)], {}, print)  # removed already
    assert len(kaniko.runs) == before  # none of them started anything


def test_basic_auth_reaches_kaniko_only_through_the_docker_config(
    tmp_path: Path, auth_registry: Any, kaniko: KanikoSandbox
) -> None:
    """Credentials in a 0600 config.json under /kaniko; the password in no argv and no log."""
    password = "kaniko-Passw0rd-4e1b7d"
    server = auth_registry(user="builder", password=password)
    repo = busybox_service(
        tmp_path / "repo", f"{server.host}/team/secret", "kaniko", dockerfile=MULTI_STAGE
    )
    environ = {
        "PIPELINE_KIT_REGISTRY": server.host,
        "PIPELINE_KIT_REGISTRY_USER": "builder",
        "PIPELINE_KIT_REGISTRY_PASSWORD": password,
    }
    before = len(kaniko.runs)
    record = build_in_process(repo, kaniko.builder(), environ=environ)
    # The sandbox is the only way the executor starts, and it records the argv and the whole
    # environment the kit gave it: the password is in neither.
    (run,) = kaniko.runs[before:]
    assert run.argv[:2] == ["/kaniko/executor", "--context=dir:///workspace"]
    assert [arg for arg in run.argv if password in arg] == []
    assert [name for name, value in run.env.items() if password in value] == []
    assert password not in record["_stderr"] + run.text
    assert password not in server.log_path.read_text(errors="replace")
    assert run.env["DOCKER_CONFIG"].startswith("/kaniko/pipeline-kit-build-")
    assert "Deleting filesystem" in run.text  # the wipe happened; the config survived it
    assert manifest_with_auth(server, "team/secret", record["digest"], password)


def test_files_outside_kaniko_are_wiped_before_the_push(
    tmp_path: Path, auth_registry: Any, kaniko: KanikoSandbox
) -> None:
    """Why the kit keeps its files under /kaniko: in the working directory they are deleted
    with the root filesystem between stages, and the push goes out without credentials."""
    server = auth_registry(user="builder", password="wiped-Passw0rd")
    repo = busybox_service(
        tmp_path / "repo",
        f"{server.host}/team/wiped",
        "kaniko",
        dockerfile=MULTI_STAGE,
        config="  push_retry: 0\n",
    )
    environ = {
        "PIPELINE_KIT_REGISTRY": server.host,
        "PIPELINE_KIT_REGISTRY_USER": "builder",
        "PIPELINE_KIT_REGISTRY_PASSWORD": "wiped-Passw0rd",
    }
    before = len(kaniko.runs)
    with pytest.raises(KitError, match="Kaniko failed"):
        build_in_process(repo, kaniko.builder(files_under_kaniko=False), environ=environ)
    (run,) = kaniko.runs[before:]
    assert run.env["DOCKER_CONFIG"].startswith("/tmp/")
    assert "Deleting filesystem" in run.text
    assert "error pushing image" in run.text and "401 Unauthorized" in run.text


def test_cached_copy_from_another_stage_is_not_stale(
    tmp_path: Path, registry: RegistryServer, kaniko: KanikoSandbox
) -> None:
    """With COPY layers cached (the kit's default), a COPY --from still takes the changed file."""
    import hashlib

    from tests.support.images import ImageReader

    dockerfile = (
        "FROM scratch AS gen\nCOPY busybox /bin/busybox\nCOPY app/main.txt /in\n"
        'RUN ["/bin/busybox", "cp", "/in", "/out"]\n\n'
        "FROM scratch AS code\nCOPY busybox /bin/busybox\nCOPY --from=gen /out /out\n"
    )
    repo = busybox_service(
        tmp_path / "repo", f"{registry.host}/kaniko/stale", "kaniko", dockerfile=dockerfile
    )
    build_in_process(repo, kaniko.builder(), "--tag", "one")
    repo.commit({"app/main.txt": "hello v2\n"})
    before = len(kaniko.runs)
    build_in_process(repo, kaniko.builder(), "--tag", "two")
    (run,) = kaniko.runs[before:]
    assert "--cache-copy-layers=true" in run.argv
    assert "COPY busybox /bin/busybox" in cached_commands(run.text)
    tree = ImageReader(tmp_path / "reader").filesystem(f"{registry.host}/kaniko/stale:two")
    assert tree["/out"].sha256 == hashlib.sha256(b"hello v2\n").hexdigest()


# ------------------------------------------------------- the kit's flags, as the executor lists

# A flag line of ``executor --help`` (cobra): ``  -d, --destination multi-arg type   Registry...``.
# The words between the name and the description name the value's type; a boolean has none.
HELP_FLAG = re.compile(
    r"^ {2,}(?:-[A-Za-z], )?--(?P<name>[A-Za-z][\w-]*)(?: (?P<kind>\S.*?))? {2,}"
)
GO_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+")

REQUEST = BuildRequest(
    image="registry.example.com/ml/llm",
    dockerfile=Path("/workspace/Dockerfile"),
    context=Path("/workspace"),
    target="code",
    build_args={"BASE_IMAGE": "busybox:1.36", "A": "1"},
    labels={"org.opencontainers.image.revision": "abc123", "dev.pipeline-kit.image-key": "k"},
    tags=("sha-abc1234", "pk-k"),
    cache_repo="registry.example.com/ml/llm/cache",
    cache_ttl="336h",
)
# The kinds of build the kit asks Kaniko for: together they reach every branch of executor_argv.
REQUESTS = {
    "trusted": REQUEST,
    "untrusted": dataclasses.replace(
        REQUEST,
        push_cache=False,
        target=None,
        build_args={},
        labels={},
        tags=("pr-7",),
        platform="linux/arm64",
    ),
    "large-layers": dataclasses.replace(
        REQUEST, compressed_caching=False, cache_copy_layers=False, cache_ttl="1h30m"
    ),
    "plain-http": dataclasses.replace(
        REQUEST, insecure_hosts=frozenset({"registry.example.com", "mirror.lan:5000"})
    ),
    "plain-http-mirror-only": dataclasses.replace(
        REQUEST, insecure_hosts=frozenset({"mirror.lan:5000"}), push_retry=0, download_retry=5
    ),
}


def listed_flags(help_text: str) -> dict[str, str | None]:
    """The flags ``executor --help`` lists: name -> value type, None for a boolean."""
    flags: dict[str, str | None] = {}
    section = False
    for line in help_text.splitlines():
        if line.endswith("Flags:"):  # "Flags:", "Global Flags:"
            section = True
        elif not line.strip():
            section = False
        elif section and (match := HELP_FLAG.match(line)):
            flags[match["name"]] = match["kind"]
    return flags


def flag_problems(argv: list[str], flags: dict[str, str | None]) -> list[str]:
    """Each argument of ``argv`` (the executor's path first) the executor would not take as it
    stands: a flag it does not list, a value given to a flag that takes none or the reverse,
    and a value that is not of the listed type (bool, int, duration)."""
    problems = []
    for arg in argv[1:]:
        name, has_value, value = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or name not in flags:
            problems.append(f"{arg}: not a flag the executor lists")
            continue
        kind = flags[name]
        if kind is None:
            if has_value and value not in ("true", "false"):
                problems.append(f"{arg}: --{name} is a boolean")
        elif not has_value:
            problems.append(f"{arg}: --{name} takes a value ({kind})")
        elif kind == "int" and not re.fullmatch(r"-?\d+", value):
            problems.append(f"{arg}: --{name} takes an int")
        elif kind == "duration" and not GO_DURATION.fullmatch(value):
            problems.append(f"{arg}: --{name} takes a Go duration")
    return problems


@pytest.fixture(scope="module")
def executor_flags(kaniko: KanikoSandbox) -> dict[str, str | None]:
    """What the real executor's ``--help`` lists, run in a throwaway root like a build."""
    run = kaniko.run(["--help"])
    assert run.returncode == 0, run.text
    flags = listed_flags(run.text)
    assert {"destination", "cache-repo", "force", "help"} <= flags.keys(), run.text
    return flags


@pytest.mark.parametrize("kind", REQUESTS)
def test_every_flag_the_kit_passes_is_one_the_executor_lists(
    kind: str, executor_flags: dict[str, str | None]
) -> None:
    argv = kit_kaniko.executor_argv(REQUESTS[kind], Path("/kaniko/work/digest"), "/k/executor")
    assert flag_problems(argv, executor_flags) == []


def test_the_requests_reach_every_flag_in_the_kits_kaniko_module() -> None:
    """A flag the module can emit that no request above produces would go unchecked."""
    in_source = set(re.findall(r"[\"']--([a-z][a-z0-9-]*)", inspect.getsource(kit_kaniko)))
    emitted = {
        arg.removeprefix("--").split("=", 1)[0]
        for request in REQUESTS.values()
        for arg in kit_kaniko.executor_argv(request, Path("/d"))[1:]
    }
    assert len(in_source) >= 18
    assert in_source - emitted == set()


@pytest.mark.parametrize(
    ("arg", "problem"),
    [
        ("--destinations=registry.example.com/ml/llm:x", "not a flag the executor lists"),
        ("--snapshot=redo", "not a flag the executor lists"),
        ("--labels=a=b", "not a flag the executor lists"),
        ("--no-push-cache=maybe", "--no-push-cache is a boolean"),
        ("--cache-repo", "--cache-repo takes a value (string)"),
        ("--push-retry=three", "--push-retry takes an int"),
        ("--cache-ttl=2 weeks", "--cache-ttl takes a Go duration"),
    ],
)
def test_an_argument_the_executor_refuses_fails_the_check(
    arg: str, problem: str, executor_flags: dict[str, str | None], kaniko: KanikoSandbox
) -> None:
    """The check finds what the executor itself refuses (run in a throwaway root: it stops at
    parsing its flags, before any build)."""
    assert flag_problems(["/k/executor", "--cache=true", arg], executor_flags) == [
        f"{arg}: {problem}"
    ]
    run = kaniko.run([arg])
    assert run.returncode != 0
    assert run.log[0].startswith("Error: ") and arg.split("=")[0] in run.log[0], run.text


def test_the_cold_build_is_attested_and_verifies(
    rows: dict[str, Any], registry: RegistryServer
) -> None:
    """The builder's digest gets provenance naming the builder and an SBOM; verify passes."""
    assert_attested_by(registry, "kaniko/rows", rows["cold"], "kaniko")

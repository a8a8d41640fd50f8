"""Preview names, labels and command lines: pure functions, checked as tables.

The names come from CI contexts read from environment dumps shaped like real runners'; the
podman command lines are the ones tests/integration/preview/test_preview.py runs for real.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pipeline_kit.adapters.podman import ContainerSpec, PodmanOptions, ps_argv, rm_argv, run_argv
from pipeline_kit.ci.context import CIContext, from_environ
from pipeline_kit.errors import ConfigError
from pipeline_kit.preview.command import NAME_FIELDS, UP_FIELDS, expand
from pipeline_kit.preview.local import conf_mode
from pipeline_kit.preview.model import (
    Preview,
    PreviewSpec,
    dns_name,
    label_value,
    parse_time,
    preview_name,
    ref_slug,
)
from tests.support.ci_contexts import load_environ
from tests.support.docs import doc, fenced

DIGEST = "sha256:" + "d" * 64
LABEL = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")  # Kubernetes' own rule
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@pytest.mark.parametrize(
    ("dump", "name", "ref", "owner"),
    [
        ("github-pull-request", "llm-service-pr-57", "fix/tokenizer", "octo-dev"),
        ("gitlab-merge-request", "llm-service-mr-12", "fix/tokenizer", "ml-dev"),
        ("github-push-branch", "llm-service-feature-faster-builds", "feature/Faster_Builds", None),
        ("gitlab-branch", "llm-service-feature-kv-cache", "Feature/KV-cache", None),
    ],
)
def test_names_come_from_the_ref(
    dump: str, name: str, ref: str, owner: str | None, tmp_path: Path
) -> None:
    ci = from_environ(load_environ(dump, tmp_path))
    assert preview_name("llm-service", ci) == name
    assert ref_slug(ci)[1] == ref
    if owner:
        assert ci.actor == owner


def test_long_refs_stay_unique_dns_labels() -> None:
    long_a = CIContext("local", branch="feature/" + "a" * 80 + "-one")
    long_b = CIContext("local", branch="feature/" + "a" * 80 + "-two")
    a, b = preview_name("llm-service", long_a), preview_name("llm-service", long_b)
    assert a != b and len(a) <= 63 and len(b) <= 63
    assert DNS_LABEL.match(a) and DNS_LABEL.match(b)
    assert preview_name("svc", CIContext("local", sha="9f46be4" + "0" * 33)) == "svc-sha-9f46be4"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("feature/Faster_Builds", "feature-Faster_Builds"),
        ("ml-dev@example.com", "ml-dev-example.com"),
        ("-._x_.-", "x"),
        ("registry.example.com:5000/team/llm", "registry.example.com-5000-team-llm"),
    ],
)
def test_label_values(text: str, expected: str) -> None:
    assert label_value(text) == expected


def test_labels_are_kubernetes_label_safe_and_read_back() -> None:
    created = datetime(2026, 3, 1, 12, 0, 5, tzinfo=timezone.utc)
    spec = PreviewSpec(
        name=dns_name("llm-service-" + "x" * 90),
        scope=label_value("registry.example.com/team/" + "y" * 80),
        image=f"registry.example.com/team/llm@{DIGEST}",
        ref="feature/" + "z" * 90,
        owner="Ana María <ana@example.com>",
        created=created,
        expires=created + timedelta(hours=24),
    )
    labels = spec.labels()
    for key, value in labels.items():
        assert LABEL.match(value) and len(value) <= 63, (key, value)
    assert labels["pipeline-kit.dev/expires"] == "20260302T120005Z"
    back = Preview.from_metadata("kubernetes", labels, spec.annotations(), name=spec.name)
    assert back.ref == spec.ref and back.owner == spec.owner and back.digest == DIGEST
    assert back.expires == spec.expires and back.created == created
    assert not back.expired(created) and back.expired(created + timedelta(hours=24))


def test_an_unreadable_expiry_counts_as_expired() -> None:
    """A preview whose expiry label was edited or lost is collected, not kept forever."""
    preview = Preview.from_metadata("local", {"pipeline-kit.dev/expires": "tomorrow"})
    assert preview.expires is None and preview.expired(datetime.now(timezone.utc))
    assert parse_time("2026-03-01T12:00:05Z") == parse_time("20260301T120005Z")


@pytest.mark.parametrize(
    ("setting", "environ", "systemd", "mode"),
    [
        ("auto", {}, False, "relaxed"),  # a CI job in a container
        ("auto", {}, True, "system"),  # a workstation or a VM runner
        ("auto", {"CONTAINERS_CONF": "/etc/mine.conf"}, False, "system"),  # the user chose
        ("relaxed", {}, True, "relaxed"),
        ("system", {}, False, "system"),
        ("ci/containers.conf", {}, False, "ci/containers.conf"),
    ],
)
def test_which_containers_conf(
    setting: str, environ: dict[str, str], systemd: bool, mode: str
) -> None:
    assert conf_mode(setting, environ, systemd) == mode


IMAGE = f"127.0.0.1:5000/examples/llm-service@{DIGEST}"
STORAGE = PodmanOptions("vfs", "/s/root", "/s/run", "runc", Path("/tmp/c.conf"))


@pytest.mark.parametrize(
    ("options", "spec", "expected"),
    [
        (
            STORAGE,
            ContainerSpec("pk-preview-a", IMAGE, 8000, None, ("/w:/models:ro",),
                          {"MODEL_PATH": "/models"}, {"pipeline-kit.dev/preview": "a"}, 5, False),
            ["podman", "--storage-driver=vfs", "--root=/s/root", "--runroot=/s/run",
             "--runtime=runc", "run", "--detach", "--name=pk-preview-a", "--pull=missing",
             "--tls-verify=false", "--publish=127.0.0.1::8000", "--volume=/w:/models:ro",
             "--env=MODEL_PATH=/models", "--label=pipeline-kit.dev/preview=a",
             "--stop-timeout=5", IMAGE],
        ),
        (
            PodmanOptions(),
            ContainerSpec("b", "registry.example.com/ml/llm@" + DIGEST, 9000, 18080,
                          authfile=Path("/tmp/x/auth/config.json")),
            ["podman", "run", "--detach", "--name=b", "--pull=missing",
             "--authfile=/tmp/x/auth/config.json", "--publish=127.0.0.1:18080:9000",
             "--stop-timeout=10", "registry.example.com/ml/llm@" + DIGEST],
        ),
    ],
)  # fmt: skip
def test_podman_run_argv(options: PodmanOptions, spec: ContainerSpec, expected: list[str]) -> None:
    assert run_argv(options, spec) == expected


def test_podman_lists_and_removes_by_label() -> None:
    labels = {"pipeline-kit.dev/scope": "s", "app.kubernetes.io/managed-by": "pipeline-kit"}
    assert ps_argv(PodmanOptions(), labels) == [
        "podman", "ps", "--all", "--filter=label=app.kubernetes.io/managed-by=pipeline-kit",
        "--filter=label=pipeline-kit.dev/scope=s", "--format=json",
    ]  # fmt: skip
    assert rm_argv(PodmanOptions(), ["c1"]) == ["podman", "rm", "--force", "--ignore", "c1"]


def test_command_placeholders() -> None:
    values = {field: f"<{field}>" for field in UP_FIELDS}
    argv = ["helm", "upgrade", "--install", "{name}", "--set", "image={repository}@{digest}",
            "--set-json", '{{"port": {port}}}']  # fmt: skip
    assert expand(argv, values, "up", UP_FIELDS) == [
        "helm", "upgrade", "--install", "<name>", "--set", "image=<repository>@<digest>",
        "--set-json", '{"port": <port>}',
    ]  # fmt: skip
    with pytest.raises(ConfigError, match=r"preview.command.down: '\{image\}' uses \{image\}"):
        expand(["{image}"], values, "down", NAME_FIELDS)
    with pytest.raises(ConfigError, match=r"preview\.command\.up"):
        expand(["{name"], values, "up", UP_FIELDS)


def test_the_documented_preview_example_is_valid(tmp_path: Path) -> None:
    from pipeline_kit.config.loader import load_config

    example = fenced(doc("docs/commands.md"), "preview:\n")
    (tmp_path / "pipeline-kit.yaml").write_text(example)
    section = load_config(None, tmp_path).section("preview")
    assert set(section) == {"provider", "scope", "local", "kubernetes", "command"}
    assert section["command"]["down"][:2] == ["helm", "uninstall"]

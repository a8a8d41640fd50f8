"""From a detection to a build plan, on a real git repository and config file: the settings a
config gives, the labels an image carries, the builder's request, and which way it publishes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from pipeline_kit.adapters.git import Git
from pipeline_kit.build.builders.base import BuildRequest
from pipeline_kit.build.plan import (
    BuildPlan,
    BuildSettings,
    CheckoutPaths,
    build_request,
    image_labels,
    plan_build,
    trust_label,
)
from pipeline_kit.ci.context import CIContext
from pipeline_kit.ci.trust import Trust
from pipeline_kit.config.loader import Config, load_config
from pipeline_kit.detect.changes import Detection, detect_changes
from pipeline_kit.detect.provenance import PROVENANCE_LABEL, Provenance
from pipeline_kit.detect.revisions import RevisionRange
from pipeline_kit.errors import ExitCode, InputError
from tests.support.gitrepo import GitRepo

DOCKERFILE = """\
FROM scratch AS base
COPY busybox /bin/busybox

FROM base AS deps
COPY requirements.txt /deps/requirements.txt

FROM deps AS code
COPY app/ /srv/app/
"""
CONFIG = "image: registry.example/team/svc\n"
UNTRUSTED = Trust(False, "a pull request (#7)", "pr-7")
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo.init(tmp_path / "svc")
    repo.commit(
        {
            "Dockerfile": DOCKERFILE,
            "pipeline-kit.yaml": CONFIG,
            "busybox": "x\n",
            "requirements.txt": "numpy==2.1.3\n",
            "app/main.py": "print(1)\n",
        },
        message="service",
    )
    return repo


def _detect(repo: GitRepo, base: str | None, fail_safe: str | None = None) -> Detection:
    git = Git(repo.path)
    try:
        head = repo.head()
        tree = git.tree_of(head)
        assert tree is not None
        rng = RevisionRange(base, head, tree, False, "test", fail_safe)
        return detect_changes(git, load_config(None, repo.path), rng, with_chain=True)
    finally:
        git.close()


def _config(repo: GitRepo, text: str) -> Config:
    (repo.path / "pipeline-kit.yaml").write_text(CONFIG + text)
    return load_config(None, repo.path)


def test_settings_default_from_a_bare_config(repo: GitRepo) -> None:
    settings = BuildSettings.from_config(load_config(None, repo.path), "r.example/svc")
    assert settings == BuildSettings(cache_repo="r.example/svc/cache")


def test_settings_from_every_key_of_the_config(repo: GitRepo) -> None:
    config = _config(
        repo,
        "build:\n  builder: buildah\n  strategy: builder\n  large_layer_mb: 10\n"
        "  cache_copy_layers: false\n  push_retry: 5\n  download_retry: 0\n"
        "  buildah:\n    storage_driver: vfs\n    root: store/root\n    runroot: store/run\n"
        "    isolation: oci\n    volumes: ['/etc/pip.conf:/etc/pip.conf:ro']\n"
        "cache:\n  repository: r.example/cache\n  ttl: 36h\n"
        "registry:\n  insecure: ['127.0.0.1:5000']\n",
    )
    settings = BuildSettings.from_config(config, "r.example/svc", insecure=["127.0.0.1:6000"])
    assert settings == BuildSettings(
        builder="buildah",
        strategy="builder",
        cache_repo="r.example/cache",
        cache_ttl_seconds=36 * 3600,
        large_layer_mb=10,
        cache_copy_layers=False,
        push_retry=5,
        download_retry=0,
        volumes=("/etc/pip.conf:/etc/pip.conf:ro",),
        storage={
            "storage-driver": "vfs",
            "root": str((repo.path / "store/root").resolve()),
            "runroot": str((repo.path / "store/run").resolve()),
        },
        isolation="oci",
        insecure_hosts=frozenset({"127.0.0.1:5000", "127.0.0.1:6000"}),
    )


def test_flags_win_over_the_config_and_an_untrusted_run_writes_no_cache(repo: GitRepo) -> None:
    config = _config(repo, "build:\n  builder: buildah\n  strategy: append\n")
    settings = BuildSettings.from_config(
        config,
        "r.example/svc",
        builder="kaniko",
        strategy="builder",
        cache_repo="r.example/other-cache",
        trust=UNTRUSTED,
    )
    assert (settings.builder, settings.strategy, settings.cache_repo) == (
        "kaniko",
        "builder",
        "r.example/other-cache",
    )
    assert settings.push_cache is False


def test_a_bad_cache_ttl_names_its_line(repo: GitRepo) -> None:
    """The schema refuses it first; a config that reaches here unchecked (a value put in by
    a layer above the file) still gets the file's line."""
    config = _config(repo, "build:\n  builder: buildah\ncache:\n  ttl: 14d\n")
    config = dataclasses.replace(config, data={**config.data, "cache": {"ttl": "soon"}})
    with pytest.raises(InputError) as raised:
        BuildSettings.from_config(config, "r.example/svc")
    assert raised.value.exit_code == ExitCode.USAGE
    assert raised.value.message == "pipeline-kit.yaml:5:3: cache.ttl: 'soon' is not a duration."


def test_labels_name_the_revision_the_keys_and_the_provenance(repo: GitRepo) -> None:
    detection = _detect(repo, None)
    ci = CIContext(provider="local", sha="f" * 40, repository_url="https://git.example/t/svc")
    labels = image_labels(detection, ci, "2026-01-02T03:04:05Z")
    assert detection.chain is not None
    provenance = Provenance.of(detection.chain, detection.chain_stages).to_label()
    assert labels == {
        "org.opencontainers.image.revision": "f" * 40,
        "org.opencontainers.image.created": "2026-01-02T03:04:05Z",
        "dev.pipeline-kit.image-key": detection.image_key,
        "dev.pipeline-kit.trust": "protected",
        "org.opencontainers.image.source": "https://git.example/t/svc",
        **{f"dev.pipeline-kit.layer.{layer.name}.key": layer.key for layer in detection.layers},
        PROVENANCE_LABEL: provenance,
    }
    assert [layer.name for layer in detection.layers] == ["base", "deps", "code"]
    assert json.loads(provenance)["stages"] == [list(s) for s in detection.chain_stages]


def test_labels_without_a_ci_sha_or_a_chain(repo: GitRepo) -> None:
    detection = _detect(repo, None)
    plain = dataclasses.replace(detection, chain=None)
    pull = CIContext(provider="github", event="pull_request", pr_number=7)
    labels = image_labels(plain, pull, "t")
    assert labels == {
        "org.opencontainers.image.revision": repo.head(),
        "org.opencontainers.image.created": "t",
        "dev.pipeline-kit.image-key": detection.image_key,
        "dev.pipeline-kit.trust": "untrusted (a pull request (#7))",
        **{f"dev.pipeline-kit.layer.{layer.name}.key": layer.key for layer in detection.layers},
    }


def test_trust_label() -> None:
    assert trust_label(Trust(True, "refs/heads/main is protected")) == "protected"
    assert trust_label(UNTRUSTED) == "untrusted (a pull request (#7))"


def _request(repo: GitRepo, detection: Detection, **kwargs: object) -> BuildRequest:
    config = load_config(None, repo.path)
    settings = BuildSettings.from_config(config, "r.example/svc")
    options: dict[str, object] = {
        "image": "r.example/svc",
        "tags": ["sha-abc", "main"],
        "labels": {"a": "b"},
        "largest_previous_layer": 5 << 20,
        "paths": CheckoutPaths.of(config, repo.path),
        **kwargs,
    }
    return build_request(detection, config, settings, **options)  # type: ignore[arg-type]


def test_the_request_tags_the_content_key_and_each_stage_below(repo: GitRepo) -> None:
    detection = _detect(repo, None)
    request = _request(repo, detection, tags=["sha-abc", "main", "sha-abc"])
    on = [f"pk-on-{key}" for _, key in reversed(detection.chain_stages[:-1])]
    assert request.tags == ("sha-abc", "main", f"pk-{detection.image_key}", *on)
    assert len(on) == 2
    assert request == BuildRequest(
        image="r.example/svc",
        dockerfile=repo.path.resolve() / "Dockerfile",
        context=repo.path.resolve(),
        target=None,
        build_args={},
        labels={"a": "b"},
        tags=request.tags,
        cache_repo="r.example/svc/cache",
        cache_ttl="336h",
        compressed_caching=True,
    )


def test_an_untrusted_request_records_under_its_own_prefix(repo: GitRepo) -> None:
    detection = _detect(repo, None)
    request = _request(repo, detection, trust=UNTRUSTED)
    assert request.tags[:3] == ("sha-abc", "main", f"pkx-pr-7-{detection.image_key}")
    assert all(tag.startswith("pkx-pr-7-on-") for tag in request.tags[3:])


@pytest.mark.parametrize(
    ("largest", "compressed"),
    [(None, False), (1024 << 20, True), ((1024 << 20) + 1, False), (0, True)],
)
def test_compressed_caching_only_below_the_large_layer_size(
    repo: GitRepo, largest: int | None, compressed: bool
) -> None:
    request = _request(repo, _detect(repo, None), largest_previous_layer=largest)
    assert request.compressed_caching is compressed


def _plan(repo: GitRepo, detection: Detection, digest: str | None, **kwargs: object) -> BuildPlan:
    return plan_build(detection, _request(repo, detection), digest, **kwargs)  # type: ignore[arg-type]


def test_a_recorded_key_is_retagged(repo: GitRepo) -> None:
    first = repo.head()
    repo.commit({"app/main.py": "print(2)\n"})
    detection = _detect(repo, first)
    plan = _plan(repo, detection, DIGEST, appended_to="r.example/svc@" + DIGEST)
    assert plan == BuildPlan(
        "retag",
        f"an image with the same content key was built before: pk-{detection.image_key} "
        f"is {DIGEST[:19]}",
        plan.request,
        retag_from=f"r.example/svc@{DIGEST}",
    )


def test_nothing_changed_is_retagged_under_the_run_s_record(repo: GitRepo) -> None:
    first = repo.head()
    repo.commit({"README.md": "not copied\n"})
    detection = _detect(repo, first)
    assert not detection.image_changed
    plan = _plan(repo, detection, DIGEST, recorded_tag="pkx-pr-7-x")
    assert plan.strategy == "retag"
    assert plan.reason == f"nothing that goes into the image changed: pkx-pr-7-x is {DIGEST[:19]}"


def test_an_append_plan_comes_after_retag(repo: GitRepo) -> None:
    first = repo.head()
    repo.commit({"app/main.py": "print(2)\n"})
    plan = _plan(repo, _detect(repo, first), None, appended_to="r.example/svc@" + DIGEST)
    assert (plan.strategy, plan.reason) == (
        "append",
        f"only COPY/ADD and metadata changed: appending to {DIGEST[:19]}",
    )
    assert (plan.retag_from, plan.fallback) == (None, None)


def test_the_builder_says_what_changed_and_why_append_could_not(repo: GitRepo) -> None:
    first = repo.head()
    repo.commit({"requirements.txt": "numpy==2.2.0\n"})
    plan = _plan(repo, _detect(repo, first), None, append_refused="RUN comes after the change")
    assert plan == BuildPlan(
        "builder",
        "rebuild from deps at Dockerfile:5 COPY requirements.txt /deps/requirements.txt",
        plan.request,
        fallback="RUN comes after the change",
    )


def test_strategy_builder_skips_retag_and_append(repo: GitRepo) -> None:
    first = repo.head()
    repo.commit({"app/main.py": "print(2)\n"})
    plan = _plan(
        repo, _detect(repo, first), DIGEST, strategy="builder", appended_to="r.example/svc@x"
    )
    assert (plan.strategy, plan.reason) == (
        "builder",
        "rebuild from code at Dockerfile:8 COPY app/ /srv/app/ (--strategy builder)",
    )
    assert plan.retag_from is None


def test_a_fail_safe_range_rebuilds_everything(repo: GitRepo) -> None:
    plan = _plan(repo, _detect(repo, None, fail_safe="the base commit is unknown"), None)
    assert (plan.strategy, plan.reason) == (
        "builder",
        "rebuilding everything: the base commit is unknown",
    )


def test_an_unchanged_image_with_no_record_is_built(repo: GitRepo) -> None:
    first = repo.head()
    repo.commit({"README.md": "not copied\n"})
    detection = _detect(repo, first)
    plan = _plan(repo, detection, None)
    assert (plan.strategy, plan.reason) == (
        "builder",
        f"no image recorded under pk-{detection.image_key[:12]}…: building it",
    )

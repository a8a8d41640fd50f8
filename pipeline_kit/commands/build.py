"""``pipeline-kit build``: detect, then retag or run a builder, push, and report the digest."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pipeline_kit.ci.context import DEFAULT_DOTENV
from pipeline_kit.errors import ExitCode, InputError, KitError

if TYPE_CHECKING:
    from pipeline_kit.adapters.git import Git
    from pipeline_kit.adapters.registry.client import Manifest
    from pipeline_kit.append.planner import AppendPlan, IndexAppendPlan
    from pipeline_kit.attest.attach import Attested
    from pipeline_kit.attest.inventory import Parent
    from pipeline_kit.build.builders.base import Builder, BuildRequest
    from pipeline_kit.build.plan import BuildPlan, BuildSettings, CheckoutPaths
    from pipeline_kit.build.record import BuildRecord
    from pipeline_kit.ci.context import CIContext
    from pipeline_kit.ci.trust import Trust
    from pipeline_kit.config.loader import Config
    from pipeline_kit.detect.changes import Detection
    from pipeline_kit.publish.publisher import Publisher
    from pipeline_kit.rebase.planner import RebasePlan


@dataclass(frozen=True)
class BuildOptions:
    config_path: Path | None
    cwd: Path
    base: str | None = None
    head: str | None = None
    merge_base: bool = False
    build_args: Mapping[str, str] = field(default_factory=dict)
    platform: str | None = None  # overrides the config's platform (or picks one of platforms)
    platforms: tuple[str, ...] = ()  # overrides the config's platform and platforms
    builder: str | None = None
    strategy: str | None = None
    extra_tags: tuple[str, ...] = ()
    cache_repo: str | None = None
    insecure_registries: tuple[str, ...] = ()
    dry_run: bool = False
    format: str = "text"
    dotenv: Path = DEFAULT_DOTENV
    environ: Mapping[str, str] = field(default_factory=dict)


class AppendRefused(KitError):
    """``--strategy append`` and the change cannot be appended: a verdict on the change."""

    exit_code = ExitCode.VERDICT


class _Phases:
    """Wall time of each phase, for the build record."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = self._mark = time.monotonic()

    def done(self, phase: str) -> None:
        """``phase`` took the time since the previous phase ended."""
        now = time.monotonic()
        self.seconds[phase] = round(now - self._mark, 3)
        self._mark = now

    def total(self) -> dict[str, float]:
        return {**self.seconds, "total": round(time.monotonic() - self._start, 3)}


@dataclass(frozen=True)
class _Checkout:
    """What the build reads from the repository: the config, the change and the tags; and
    the image's registry, which it started talking to while detection ran."""

    config: Config
    image: str
    trust: Trust
    ci: CIContext
    detection: Detection
    paths: CheckoutPaths
    tags: tuple[str, ...]
    root: Path  # the repository's top directory
    settings: BuildSettings
    publisher: Publisher


@dataclass(frozen=True)
class _Planned:
    """The plan and what carrying it out needs."""

    settings: BuildSettings
    publisher: Publisher
    request: BuildRequest
    plan: BuildPlan
    append: AppendPlan | IndexAppendPlan | None
    builder: Builder | None
    offline: Mapping[str, Any] | None = None  # dry run: the lookups the registry did not answer
    rebase: RebasePlan | None = None
    environ: Mapping[str, str] = field(default_factory=dict)  # where the secrets' values are
    parent_read: Callable[[], Parent | None] | None = None  # an append's parent's SBOM, going


def run(options: BuildOptions, out: TextIO, log: TextIO = sys.stderr) -> int:
    from pipeline_kit.report.outputs import check_destination

    check_destination(options.format, options.environ)
    started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    phases = _Phases()
    checkout = _read_checkout(options, log)
    phases.done("detect")
    planned = _plan(checkout, options, log)
    phases.done("plan")
    record = _record(checkout, planned)
    _say_plan(checkout.trust, planned.plan, log)
    if options.dry_run:
        record = _dry_run(record, checkout, planned)
    elif planned.append is not None:
        record = _append_and_attest(record, checkout, planned, started, phases, log)
    else:
        record = _publish(record, checkout, planned, phases, log)
        attested = _attest(record, checkout, planned, started)
        record = _attested(record, attested, phases, log)
    _write(dataclasses.replace(record, timings=phases.total()), options, out)
    return ExitCode.OK


def _read_checkout(options: BuildOptions, log: TextIO) -> _Checkout:
    """The config as this run may use it, the change between the revisions, and the tags."""
    from pipeline_kit.adapters.git import Git
    from pipeline_kit.build.plan import CheckoutPaths
    from pipeline_kit.ci.context import from_environ, resolve_context
    from pipeline_kit.config.loader import for_run, load_config
    from pipeline_kit.detect.changes import detect_changes
    from pipeline_kit.detect.revisions import choose_range
    from pipeline_kit.dockerfile.platform import child_of, tag_suffix
    from pipeline_kit.publish.tags import compute_tags, rules_from_section

    config = for_run(load_config(options.config_path, options.cwd), options.environ, log)
    if options.platform and options.platforms:
        raise InputError(
            f"--platform {options.platform} and --platforms {','.join(options.platforms)}: "
            "give one or the other.",
            hint="--platforms for one multi-platform build (BuildKit); --platform for one "
            "child of it (a Kaniko or buildah job), then `pipeline-kit merge`.",
        )
    config = config.with_environ(options.environ).with_build_args(options.build_args)
    config = config.with_platforms(options.platforms)
    config = config.with_platform(options.platform)
    child = child_of(config)
    if not config.image:
        raise InputError(
            f"{config.display}: no `image` to build.",
            hint="Set `image: registry.example.com/team/service` in the config.",
        )
    ci_environ = from_environ(options.environ)
    with Git(config.root) as git:
        rng = choose_range(
            git,
            ci_environ,
            base=options.base,
            head=options.head,
            merge_base=options.merge_base,
            worktree=None,
        )
        _check_builds_checkout(git, rng.head, rng.worktree)
        settings = _settings(config, config.image, ci_environ.trust, options)
        publisher = _connect(config.image, settings, options, log)
        if not ci_environ.is_ci:
            git.ask_local_facts(rng.head)  # the tags' facts come while detection reads objects
        detection = detect_changes(git, config, rng, with_chain=True)
        paths = CheckoutPaths.of(config, git.root)
        ci = resolve_context(config.root, options.environ, rng.head, git)
    tags = [t.name for t in compute_tags(ci, rules_from_section(config.section("tags")))]
    tags += [t for t in options.extra_tags if t not in tags]
    if child is not None:  # one job of several: its tags must not overwrite the others'
        tags = [f"{tag}{tag_suffix(child)}" for tag in tags]
    return _Checkout(config, config.image, ci_environ.trust, ci, detection, paths, tuple(tags),
                     git.root, settings, publisher)  # fmt: skip


def _connect(image: str, settings: BuildSettings, options: BuildOptions, log: TextIO) -> Publisher:
    """The image's registry; with credentials, its connection and token got while the
    checkout is read: on a registry a network away those are round trips of their own."""
    from pipeline_kit.adapters.registry.client import RetryPolicy
    from pipeline_kit.publish.publisher import Publisher

    publisher = Publisher(image, settings.insecure_hosts, options.environ, progress=log)
    if options.dry_run:
        # A plan is made without the registry if need be: ask once more, not for seconds
        # (and no warm-up, which would wait out an unreachable registry's connect timeout).
        publisher.client.retry = RetryPolicy(attempts=2)
        return publisher
    publisher.client.will_push(publisher.ref.repository)  # one token for reads and pushes
    if publisher.client.credential is not None:
        # A registry that takes credentials asks for them (a 401, then the token service):
        # those round trips go while detection runs. Without credentials (a loopback or
        # open registry) there is nothing to get ahead of: the HTTP stack's import would
        # only contend with detection, measured at 20 ms from the registry.
        publisher.warm_up()
    return publisher


def _plan(checkout: _Checkout, options: BuildOptions, log: TextIO) -> _Planned:
    """retag > append > builder, from one round of registry lookups."""
    from pipeline_kit.adapters.registry.client import RegistryUnreachable
    from pipeline_kit.build.plan import build_request, image_labels, plan_build
    from pipeline_kit.detect.records import previous_candidates

    detection, trust = checkout.detection, checkout.trust
    settings, publisher = checkout.settings, checkout.publisher
    # One round trip for the content key and every place a previous image may be.
    wants_append = settings.strategy != "builder"
    candidates = previous_candidates(detection, trust) if wants_append else []
    offline = None
    try:
        recorded, manifests = publisher.lookup(
            detection.image_key, candidates, trust,
            preconnect=not options.dry_run and settings.strategy != "builder",
        )  # fmt: skip
    except RegistryUnreachable as unreachable:
        if not options.dry_run:
            raise
        # A plan needs no registry: say what was not looked up and what each answer would do.
        offline = _offline(unreachable, checkout, candidates)
        recorded, manifests = None, {}
        log.write(
            f"pipeline-kit: dry run without the registry: {unreachable.message} Planned as "
            "if nothing was found there.\n"
        )
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    labels = image_labels(detection, checkout.ci, created)
    append_plan, refused, rebase_plan, parent_read = None, None, None, None
    if recorded is not None and settings.rebase and settings.strategy != "builder":
        rebase_plan, not_rebased = _try_rebase(
            publisher, checkout, recorded.digest, labels, created
        )
        if not_rebased is not None:  # the base moved, and only a build can follow it
            recorded, wants_append, refused = None, False, f"not rebased: {not_rebased}"
    if offline is not None and wants_append:
        refused = "the registry could not be reached to read a previous image (dry run)"
    elif wants_append and recorded is None:
        append_plan, refused, parent_read = _try_append(
            publisher, checkout, labels, created, options, manifests
        )
        if append_plan is None and settings.strategy == "append":
            raise AppendRefused(
                f"append cannot publish this change: {refused}.",
                hint="Build it with --strategy auto (or builder).",
            )
    largest = None
    if recorded is None and append_plan is None and offline is None:
        largest = publisher.largest_layer(detection.base_image_key)
    request = build_request(
        detection,
        checkout.config,
        settings,
        image=checkout.image,
        tags=checkout.tags,
        labels=labels,
        largest_previous_layer=largest,
        paths=checkout.paths,
        trust=trust,
    )
    plan = plan_build(
        detection,
        request,
        recorded.digest if recorded else None,
        strategy=settings.strategy,
        appended_to=append_plan.previous.reference if append_plan else None,
        append_refused=refused,
        recorded_tag=recorded.tag if recorded else None,
        rebased=(rebase_plan.base.reference, rebase_plan.base.digest) if rebase_plan else None,
    )
    builder = None
    if plan.strategy == "builder":
        from pipeline_kit.build.builders import choose_builder
        from pipeline_kit.build.secrets import configured, resolve_secrets

        builder = choose_builder(settings.builder)
        # A builder that cannot take secrets refuses them before any value is looked at.
        builder.preflight(dataclasses.replace(request, secrets=configured(checkout.config)))
        secrets = resolve_secrets(
            checkout.config, options.environ, (checkout.root, *_keep_out(checkout))
        )
        request = dataclasses.replace(request, secrets=secrets)
        plan = dataclasses.replace(plan, request=request)
    return _Planned(
        settings, publisher, request, plan, append_plan, builder, offline, rebase_plan,
        options.environ, parent_read,
    )  # fmt: skip


def _offline(
    unreachable: KitError, checkout: _Checkout, candidates: Sequence[str]
) -> dict[str, Any]:
    """What a dry run could not look up with the registry out of reach, and what each answer
    would have decided; the plan is made as if none was found."""
    from pipeline_kit.detect.records import key_tag, read_prefixes

    detection, image = checkout.detection, checkout.image
    lookups = [
        f"{image}:{key_tag(detection.image_key, prefix)}: if it is there, the same content was "
        "built before and is retagged, with no build"
        for prefix in read_prefixes(checkout.trust)
    ]
    if candidates:
        lookups.append(
            f"{', '.join(f'{image}:{tag}' for tag in candidates)}: if one is there and only "
            "COPY/ADD and metadata changed, the change is appended to it by registry operations"
        )
    if detection.base_image_key is not None:
        lookups.append(
            f"{image}:{key_tag(detection.base_image_key)}: its largest layer decides Kaniko's "
            "--compressed-caching (planned as if there is no previous image: false)"
        )
    return {"reason": f"{unreachable.message} {unreachable.hint or ''}".strip(), "lookups": lookups}


def _settings(config: Config, image: str, trust: Trust, options: BuildOptions) -> BuildSettings:
    """The config's build settings with the flags applied; loopback registries are plain HTTP."""
    from pipeline_kit.adapters.registry.client import is_plain_http
    from pipeline_kit.adapters.registry.references import ImageRef
    from pipeline_kit.build.plan import BuildSettings

    settings = BuildSettings.from_config(
        config,
        image,
        builder=options.builder,
        strategy=options.strategy,
        cache_repo=options.cache_repo,
        insecure=options.insecure_registries,
        trust=trust,
    )
    plain = {
        host
        for host in (
            ImageRef.parse(image).registry,
            ImageRef.parse(settings.cache_repo).registry,
        )
        if is_plain_http(host, settings.insecure_hosts)
    }
    return dataclasses.replace(settings, insecure_hosts=settings.insecure_hosts | plain)


def _record(checkout: _Checkout, planned: _Planned) -> BuildRecord:
    """The record of the plan; publishing fills in the digest and the bytes sent."""
    from pipeline_kit.build.record import BuildRecord, LayerState

    detection, plan, append = checkout.detection, planned.plan, planned.append
    return BuildRecord(
        image=checkout.image,
        tags=planned.request.tags,
        references=tuple(planned.request.references()),
        strategy=plan.strategy,
        reason=plan.reason,
        image_key=detection.image_key,
        rebuild_from=detection.rebuild_from,
        image_changed=detection.image_changed,
        layers={layer.name: LayerState(layer.changed, layer.key) for layer in detection.layers},
        head=detection.range.head,
        trust=checkout.trust,
        builder=planned.builder.name if planned.builder else None,
        fallback=plan.fallback,
        previous=append.previous.reference if append else None,
        append=append.summary() if append else None,
        rebase=planned.rebase.summary() if planned.rebase else None,
    )


def _say_plan(trust: Trust, plan: BuildPlan, log: TextIO) -> None:
    if not trust.trusted:
        log.write(
            f"pipeline-kit: untrusted: {trust.why}: records go under {trust.key_prefix}, "
            "no protected tag is written, the builders' cache is read only\n"
        )
    log.write(f"pipeline-kit: {plan.strategy}: {plan.reason}\n")
    if plan.fallback:
        said = (
            plan.fallback if plan.fallback.startswith("not ") else f"not appended: {plan.fallback}"
        )
        log.write(f"pipeline-kit: {said}\n")


def _dry_run(record: BuildRecord, checkout: _Checkout, planned: _Planned) -> BuildRecord:
    """The builder's argv lists and the registry operations, nothing run or written."""
    from pipeline_kit.build.scratch import scratch_dir

    commands: list[list[str]] = []
    if planned.builder is not None:
        with scratch_dir("pipeline-kit-build-", *_keep_out(checkout)) as tmp:
            request = _own_storage(planned.request, tmp, checkout.trust)
            commands = planned.builder.commands(request, tmp)
    publish = planned.publisher.describe(planned.plan)
    return dataclasses.replace(record, commands=commands, publish=publish, offline=planned.offline)


def _publish(
    record: BuildRecord,
    checkout: _Checkout,
    planned: _Planned,
    phases: _Phases,
    log: TextIO,
    on_manifest: Callable[[], None] | None = None,
) -> BuildRecord:
    """Carry the plan out: a retag, an append, or the builder and then its push."""
    plan, publisher, tags = planned.plan, planned.publisher, planned.request.tags
    if plan.strategy == "retag":
        assert plan.retag_from is not None
        record = record.published(publisher.retag(plan.retag_from, tags), 0)
    elif plan.strategy == "rebase":
        assert planned.rebase is not None
        record = record.published(*publisher.publish_rebase(planned.rebase, tags))
    elif plan.strategy == "append":
        assert planned.append is not None
        record = record.published(
            *publisher.publish_append(planned.append, tags, on_manifest=on_manifest)
        )
    else:
        record = _run_builder(record, checkout, planned, phases, log)
    # An index: its platforms' image digests too. An append knows whether it wrote one.
    multi = planned.request.platforms or plan.strategy == "retag"
    if plan.strategy == "append":
        from pipeline_kit.append.planner import IndexAppendPlan

        multi = isinstance(planned.append, IndexAppendPlan)
    if record.digest is not None and multi:
        record = dataclasses.replace(record, children=publisher.children(record.digest))
    phases.done("push")
    return record


def _run_builder(
    record: BuildRecord, checkout: _Checkout, planned: _Planned, phases: _Phases, log: TextIO
) -> BuildRecord:
    from pipeline_kit.build.scratch import scratch_dir
    from pipeline_kit.build.secrets import write_secrets
    from pipeline_kit.ci.logs import LogGroups

    builder, publisher = planned.builder, planned.publisher
    assert builder is not None
    groups = LogGroups(checkout.ci.provider, log)
    with scratch_dir("pipeline-kit-build-", *_keep_out(checkout)) as workdir:
        request = _own_storage(planned.request, workdir, checkout.trust)
        docker_config = publisher.docker_config(workdir / "docker", request)
        write_secrets(request.secrets, workdir, planned.environ)
        with groups.group(f"{builder.name}: build {checkout.image}"):
            output = builder.build(request, workdir, docker_config, groups.line)
        phases.done("build")
        if output.layout is None:
            return record.published(output.digest, None)
        with groups.group(f"push {checkout.image}"):
            return record.published(*publisher.push_layout(output.layout, request.tags))


def _append_and_attest(
    record: BuildRecord,
    checkout: _Checkout,
    planned: _Planned,
    started_at: str,
    phases: _Phases,
    log: TextIO,
) -> BuildRecord:
    """An append and its attestations side by side.

    The append knows its manifests, and so its digest, before it sends anything: its
    statements are made (the parent's SBOM read, the new layers read from memory) and their
    blobs uploaded while the image goes up; only their manifests wait for the image's to be
    in. On a registry a network away that saves the attestations' round trips after the
    tags. Their outcome is reported once the image is published, as for any build.
    """
    from pipeline_kit.adapters.registry.client import Gate, started
    from pipeline_kit.append.remote import written

    assert planned.append is not None
    client = planned.publisher.client
    for layer in planned.append.new_layers:  # the SBOM reads them before they are up
        client.hold(layer.digest, layer.spool.body())
    manifests = written(planned.append)
    in_registry = Gate(f"the publish of {manifests[-1].digest[:19]}")
    attesting = started(
        partial(
            _attest, record, checkout, planned, started_at,
            digest=manifests[-1].digest,
            known={manifest.digest: manifest for manifest in manifests},
            subject_ready=in_registry.wait,
        )
    )  # fmt: skip
    try:
        record = _publish(record, checkout, planned, phases, log, on_manifest=in_registry.open)
    finally:
        in_registry.close()  # a failed publish: the attestations stop waiting for it
    return _attested(record, attesting(), phases, log)


def _attest(
    record: BuildRecord,
    checkout: _Checkout,
    planned: _Planned,
    started: str,
    *,
    digest: str | None = None,
    known: Mapping[str, Manifest] | None = None,
    subject_ready: Callable[[], None] | None = None,
) -> Attested | None:
    """Provenance and an SBOM attached to the published digest (``digest``: the one being
    published), unless it has them or the config's ``attest`` section turns them off."""
    from pipeline_kit.attest.attach import AttestSettings, attest, now
    from pipeline_kit.attest.facts import build_facts

    settings = AttestSettings.from_section(checkout.config.section("attest"))
    digest = digest or record.digest
    if not settings.any or digest is None:
        return None
    parent, bases = None, _base_images(checkout, planned)
    if planned.append is not None:
        parent = planned.append.previous.reference
    elif planned.rebase is not None:
        parent = planned.rebase.image.reference
    facts = build_facts(
        record, checkout.config, checkout.ci, checkout.detection.dockerfile, checkout.root,
        started=started, finished=now(), parent=parent, base_images=bases,
        secrets=[secret.id for secret in planned.request.secrets],
    )  # fmt: skip
    publisher = planned.publisher
    # An append's SBOM is its previous image's plus the new layers; a rebase's new layers are
    # the bottom ones, so its SBOM reads every layer.
    return attest(
        publisher.client, publisher.ref.repository, digest, facts, settings,
        parent=parent if planned.append is not None else None, parent_read=planned.parent_read,
        known=known, subject_ready=subject_ready,
    )  # fmt: skip


def _attested(
    record: BuildRecord, attested: Attested | None, phases: _Phases, log: TextIO
) -> BuildRecord:
    """The record with what ``_attest`` attached, said on the log."""
    if attested is None:
        return record
    phases.done("attest")
    if attested.attached:
        assert record.digest is not None
        log.write(f"pipeline-kit: attested {record.digest[:19]} ({attested.seconds:.2f}s)\n")
    if attested.no_sbom:
        log.write(f"pipeline-kit: warning: published without an SBOM: {attested.no_sbom}\n")
    return dataclasses.replace(record, attestations=attested.to_json())


def _base_images(checkout: _Checkout, planned: _Planned) -> list[tuple[str, str | None]]:
    """The base image by digest where the plan knows it (a rebase) or its registry says it
    at once (a build); an append's and a retag's base is its previous image's."""
    if planned.rebase is not None:
        return [(planned.rebase.base.reference, planned.rebase.base.digest)]
    chain = checkout.detection.chain
    if planned.builder is None or chain is None or chain.from_ref == "scratch":
        return []
    from pipeline_kit.adapters.registry.client import RegistryClient, RetryPolicy
    from pipeline_kit.adapters.registry.references import ImageRef

    try:
        ref = ImageRef.parse(chain.from_ref)
        client = RegistryClient.connect(
            ref.registry, planned.environ, planned.settings.insecure_hosts
        )
        client.retry = RetryPolicy(attempts=1)
        found = client.head_manifest(ref.repository, ref.reference)
    except KitError:
        found = None
    return [(chain.from_ref, found.digest if found else None)]


def _keep_out(checkout: _Checkout) -> tuple[Path, Path]:
    """Where a working directory holding credentials must not be (scratch.py)."""
    return checkout.config.root, checkout.config.context_path


def _try_append(
    publisher: Publisher,
    checkout: _Checkout,
    labels: Mapping[str, str],
    created: str,
    options: BuildOptions,
    manifests: Mapping[str, Manifest | None],
) -> tuple[AppendPlan | IndexAppendPlan | None, str | None, Callable[[], Parent | None] | None]:
    """An append plan, or None and why the builder is needed; and the read of the previous
    image's SBOM, which the new one extends: set going for each candidate as soon as the
    registry names it, its round trips overlap the plan's reads and the publish."""
    from pipeline_kit.adapters.registry.client import started
    from pipeline_kit.append import CannotAppend
    from pipeline_kit.append.attempt import prepare_append
    from pipeline_kit.attest.attach import AttestSettings, read_parent

    reading: dict[str, Callable[[], Parent | None]] = {}
    sbom = AttestSettings.from_section(checkout.config.section("attest")).sbom

    def read_sbom(reference: str) -> None:
        if sbom and not options.dry_run:
            reading[reference] = started(partial(read_parent, publisher.client, reference))

    try:
        plan = prepare_append(
            publisher.append_remote(),
            checkout.detection,
            context=checkout.paths.context,
            dockerfile=checkout.paths.dockerfile,
            build_args=checkout.config.build_args,
            labels=labels,
            created=created,
            environ=options.environ,
            manifests=manifests,
            trust=checkout.trust,
            on_candidate=read_sbom,
        )
    except CannotAppend as refusal:
        return None, refusal.reason, None
    return plan, None, reading.get(plan.previous.reference)


def _try_rebase(
    publisher: Publisher,
    checkout: _Checkout,
    recorded: str,
    labels: Mapping[str, str],
    created: str,
) -> tuple[RebasePlan | None, str | None]:
    """A rebase plan for the recorded image (None, None: its base has not moved), or why the
    base's move needs the builder."""
    from pipeline_kit.rebase import CannotRebase
    from pipeline_kit.rebase.planner import plan_rebase

    chain = checkout.detection.chain
    if chain is None or chain.from_ref == "scratch":
        return None, None
    remote = publisher.rebase_remote()
    try:
        image = remote.image(recorded)
        platform = {k: image.config.get(k) for k in ("os", "architecture", "variant")}
        base = remote.base(chain.from_ref, platform)
        plan = plan_rebase(image, base, chain, checkout.config.build_args, labels, created)
    except CannotRebase as refusal:
        return None, refusal.reason
    return plan, None


def _own_storage(request: BuildRequest, workdir: Path, trust: Trust) -> BuildRequest:
    """An untrusted build keeps buildah's layers in a storage of its own, removed after it:
    buildah's layer cache does not key on host mounts, so a later build sharing the storage
    would take a RUN layer that a mount made."""
    if trust.trusted:
        return request
    private = {
        "root": str(workdir / "storage" / "root"),
        "runroot": str(workdir / "storage" / "run"),
    }
    return dataclasses.replace(request, storage={**request.storage, **private})


def _check_builds_checkout(git: Git, head: str, worktree: bool) -> None:
    """The builder builds the files on disk: --head must be what is checked out."""
    checked_out = git.resolve_commit("HEAD")
    if not worktree and head != checked_out:
        raise InputError(
            f"--head {head[:12]} is not the checked-out commit ({(checked_out or '?')[:12]}); "
            "the builder builds the files on disk.",
            hint="Check out that commit first, or leave --head out.",
        )


def _write(record: BuildRecord, options: BuildOptions, out: TextIO) -> None:
    from pipeline_kit.report import build as report
    from pipeline_kit.report.outputs import export

    if options.format == "json":
        out.write(json.dumps(record.to_json(), indent=2) + "\n")
        return
    export(
        options.format,
        report.outputs(record),
        environ=options.environ,
        dotenv=options.cwd / options.dotenv,
        summary=report.markdown(record),
    )
    out.write(report.as_text(record))

"""Registry faults the client must survive or name: rewritten manifests, broken auth challenges
and token services, refused pushes, lost upload sessions, answers without a Location, 429s, and
errors inside ``in_parallel`` and ``started``; what a client holds and asks only once.

The registry is a real docker-registry on loopback. The faults come from the tests' proxy in
front of it (tests/support/services/fault_proxy.py), which gives the answer a test scripts,
alters the registry's own answer on its way back, or cancels an upload session at the registry
before the request that continues it; and from the tests' token endpoint
(tests/support/services/token_server.py) run broken: answering 500, answering without a token,
or over TLS with a certificate nobody trusts. Each failure must be an ``EnvironmentFault``
(exit code 3) whose message says what happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from email.utils import formatdate
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from pipeline_kit.adapters.registry.client import (
    HELD_LIMIT,
    Descriptor,
    Gate,
    GateClosed,
    RegistryClient,
    RetryPolicy,
    in_parallel,
    started,
)
from pipeline_kit.adapters.registry.credentials import Credential
from pipeline_kit.errors import EnvironmentFault, ExitCode
from pipeline_kit.publish.layout import push_layout, read_layout
from pipeline_kit.publish.referrers import OCI_INDEX, OCI_MANIFEST, attach, attach_all, listed
from tests.support.layouts import digest_of, make_layout
from tests.support.services.fault_proxy import Answer, FaultProxy, Rule
from tests.support.services.registry import RegistryServer, running_registry
from tests.support.services.token_server import TokenServer

RETRY = RetryPolicy(attempts=3, base_delay=0.01)
USER, PASSWORD = "robot", "t0ken-pass"
ROBOT = Credential(USER, PASSWORD, "PIPELINE_KIT_REGISTRY_USER/PASSWORD")
WAIT_S = 10.0  # for calls that wait on each other: a bound so a broken order fails, not hangs


def client(
    host: str,
    credential: Credential | None = None,
    progress: Callable[[str], None] | None = None,
) -> RegistryClient:
    return RegistryClient(host, credential=credential, retry=RETRY, progress=progress)


def fault(raised: pytest.ExceptionInfo[EnvironmentFault]) -> EnvironmentFault:
    """The fault, checked to be one the kit reports as infrastructure (exit code 3)."""
    assert raised.value.exit_code is ExitCode.INFRA and int(raised.value.exit_code) == 3
    return raised.value


class Pushed(NamedTuple):
    repo: str
    digest: str
    raw: bytes


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer) -> Pushed:
    """A small image pushed straight to the registry as ``faults/image:v1``."""
    layout = make_layout(tmp_path_factory.mktemp("image"), layers=1, size=2000)
    digest = push_layout(client(registry.host), layout, "faults/image", ["v1"])
    return Pushed("faults/image", digest, read_layout(layout)[0])


@pytest.fixture
def proxy() -> Iterator[Callable[..., FaultProxy]]:
    """``proxy(server, *rules)``: a fault proxy in front of ``server`` that fails only what
    ``rules`` script (no random faults), stopped after the test."""
    started: list[FaultProxy] = []

    def start(server: RegistryServer, *rules: Rule) -> FaultProxy:
        front = FaultProxy(server.port, rate=0.0, rules=list(rules)).start()
        started.append(front)
        return front

    yield start
    for front in started:
        front.stop()


@contextlib.contextmanager
def token_service(workdir: Path, **broken: Any) -> Iterator[tuple[RegistryServer, TokenServer]]:
    """A registry whose challenge names a token endpoint of its own, run with ``broken``."""
    (workdir / "token").mkdir()
    tokens = TokenServer(workdir / "token", USER, PASSWORD, **broken).start()
    try:
        with running_registry(workdir / "registry", tokens.registry_auth()) as server:
            yield server, tokens
    finally:
        tokens.stop()


@pytest.fixture(scope="module")
def token_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RegistryServer, TokenServer]]:
    with token_service(tmp_path_factory.mktemp("token-registry")) as pair:
        yield pair


# -- what the registry serves -------------------------------------------------------------


@pytest.mark.parametrize("by_digest", [False, True], ids=["by-tag", "by-digest"])
def test_a_manifest_rewritten_on_its_way_is_refused(
    registry: RegistryServer,
    image: Pushed,
    proxy: Callable[..., FaultProxy],
    by_digest: bool,
) -> None:
    """A proxy re-indents the manifest JSON. Fetched by tag, the bytes no longer hash to the
    registry's ``Docker-Content-Digest``; fetched by digest, the proxy also rewrites that header
    to match its bytes, and only the digest asked for can tell."""

    def reindent(answer: Answer) -> Answer:
        assert answer.status == 200 and answer.headers["docker-content-digest"] == image.digest
        body = json.dumps(json.loads(answer.body), indent=2).encode()
        headers = dict(answer.headers)
        if by_digest:
            headers["docker-content-digest"] = digest_of(body)
        return Answer(answer.status, headers, body)

    front = proxy(registry, Rule("GET", "/manifests/", alter=reindent, times=None))
    reference = image.digest if by_digest else "v1"
    # The registry's own copy is intact: only the proxy's rewrite can make the check fail.
    assert client(registry.host).get_manifest(image.repo, reference).digest == image.digest

    with pytest.raises(EnvironmentFault) as raised:
        client(front.host).get_manifest(image.repo, reference)
    error = fault(raised)
    rewritten = digest_of(json.dumps(json.loads(image.raw), indent=2).encode())
    assert error.message == (
        f"{front.host}: manifest {image.repo}:{reference} has digest {rewritten}, "
        f"not {image.digest}."
    )
    assert error.hint == "The registry (or a proxy) altered the manifest; check it."
    assert [entry.outcome for entry in front.log] == ["altered"]  # not asked again


# -- auth challenges and token endpoints --------------------------------------------------


def _drop_realm(challenge: str) -> str:
    return re.sub(r'realm="[^"]*",?', "", challenge)


@pytest.mark.parametrize(
    ("rewrite", "message", "hint"),
    [
        (_drop_realm, "bearer challenge without a realm.", "Check the registry."),
        (
            lambda challenge: "Negotiate",
            "unsupported auth challenge 'Negotiate'.",
            "The registry must offer Basic or Bearer auth.",
        ),
    ],
    ids=["bearer-without-realm", "negotiate"],
)
def test_a_challenge_the_client_cannot_answer_is_named(
    token_registry: tuple[RegistryServer, TokenServer],
    proxy: Callable[..., FaultProxy],
    rewrite: Callable[[str], str],
    message: str,
    hint: str,
) -> None:
    """The registry's real Bearer challenge, rewritten by the proxy: no token is asked for."""
    server, tokens = token_registry
    challenges: list[str] = []

    def alter(answer: Answer) -> Answer:
        challenge = answer.headers["www-authenticate"]
        challenges.append(challenge)
        return answer._replace(headers={**answer.headers, "www-authenticate": rewrite(challenge)})

    front = proxy(server, Rule("HEAD", "/manifests/", alter=alter, times=None))
    asked_before = len(tokens.requests)
    with pytest.raises(EnvironmentFault) as raised:
        client(front.host, ROBOT).head_manifest("faults/challenge", "v1")
    error = fault(raised)
    assert (error.message, error.hint) == (f"{front.host}: {message}", hint)
    assert len(challenges) == 1 and challenges[0].startswith(f'Bearer realm="{tokens.realm}"')
    assert len(tokens.requests) == asked_before


def test_a_token_endpoint_answering_500_is_retried_then_named(tmp_path: Path) -> None:
    with (
        token_service(tmp_path, status=500) as (server, tokens),
        pytest.raises(EnvironmentFault) as raised,
    ):
        client(server.host, ROBOT).head_manifest("faults/token", "v1")
    error = fault(raised)
    assert error.message == (
        f"{server.host}: HEAD faults/token:v1 failed after 3 attempts (token endpoint HTTP 500)."
    )
    assert error.hint == "Check that the registry is up and reachable; then run again."
    assert [request["user"] for request in tokens.requests] == [USER] * RETRY.attempts


def test_a_token_endpoint_answering_without_a_token_is_named(tmp_path: Path) -> None:
    with (
        token_service(tmp_path, give_token=False) as (server, tokens),
        pytest.raises(EnvironmentFault) as raised,
    ):
        client(server.host, ROBOT).head_manifest("faults/token", "v1")
    error = fault(raised)
    assert error.message == f"{server.host}: the token endpoint gave no token (HTTP 200)."
    assert error.hint == "Check the registry's auth service."
    assert len(tokens.requests) == 1  # an answer without a token is not asked for again


def test_a_token_endpoint_with_an_untrusted_certificate_gets_no_credentials(
    tmp_path: Path,
) -> None:
    """The token service speaks HTTPS with a self-signed certificate: the handshake fails, so
    the credential never goes out, and the error says TLS failed and how to trust a CA."""
    with token_service(tmp_path, tls=True) as (server, tokens):
        assert tokens.realm.startswith("https://")
        with pytest.raises(EnvironmentFault) as raised:
            client(server.host, ROBOT).head_manifest("faults/token", "v1")
    error = fault(raised)
    assert error.message.startswith(f"{server.host}: TLS to the token endpoint failed (")
    assert "CERTIFICATE_VERIFY_FAILED" in error.message
    assert error.hint is not None and "REQUESTS_CA_BUNDLE" in error.hint
    assert tokens.requests == []  # no HTTP request got through the handshake


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"])
def test_a_token_endpoint_signed_by_a_ca_the_environment_names_is_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """The error above tells the user to point REQUESTS_CA_BUNDLE (or SSL_CERT_FILE) at the CA:
    doing so works for the token endpoint of a loopback registry too, whose own requests go
    without the environment's proxies. The bundle is the system's with the CA added."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    with token_service(tmp_path, tls=True) as (server, tokens):
        bundle = tmp_path / "ca-bundle.pem"
        system = Path("/etc/ssl/certs/ca-certificates.crt")
        bundle.write_bytes(
            (system.read_bytes() if system.is_file() else b"") + tokens.tls_cert.read_bytes()
        )
        monkeypatch.setenv(variable, str(bundle))
        assert client(server.host, ROBOT).head_manifest("faults/token", "v1") is None
    assert [request["user"] for request in tokens.requests] == [USER]


# -- pushes -------------------------------------------------------------------------------

DENIED = Answer(
    403,
    {"Content-Type": "application/json"},
    json.dumps(
        {"errors": [{"code": "DENIED", "message": "requested access to the resource is denied"}]}
    ).encode(),
)


def test_a_push_refused_with_403_names_the_scope(
    tmp_path: Path, registry: RegistryServer, proxy: Callable[..., FaultProxy]
) -> None:
    """The registry's front answers 403 to every upload, as GHCR does to a token without
    ``write:packages``: not retried, and nothing is tagged."""
    front = proxy(registry, Rule("POST", "/blobs/uploads/", answer=DENIED, times=None))
    layout = make_layout(tmp_path / "layout", layers=1, size=1000)
    with pytest.raises(EnvironmentFault) as raised:
        push_layout(client(front.host, ROBOT), layout, "faults/denied", ["v1"])
    error = fault(raised)
    assert re.fullmatch(
        rf"{re.escape(front.host)}: upload sha256:[0-9a-f]{{12}}: access denied as 'robot' "
        r"\(PIPELINE_KIT_REGISTRY_USER/PASSWORD\) for 'repository:faults/denied:pull,push' "
        r"\(requested access to the resource is denied\)\.",
        error.message,
    ), error.message
    assert error.hint is not None and "may push and pull this repository" in error.hint
    assert len(front.seen("POST", "/blobs/uploads/")) == 1
    assert front.seen("PUT", "") == []
    assert not registry.has_manifest("faults/denied", "v1")


@pytest.mark.parametrize(("method", "chunk_size"), [("PUT", None), ("PATCH", 4096)])
def test_an_upload_session_lost_once_restarts_from_a_new_post(
    registry: RegistryServer,
    proxy: Callable[..., FaultProxy],
    method: str,
    chunk_size: int | None,
) -> None:
    """The registry forgets the session (it is cancelled there) before the first PUT or PATCH:
    that request gets the registry's 404, and the upload starts over and completes."""
    front = proxy(registry, Rule(method, "/blobs/uploads/.", cancel_upload=True))
    data = os.urandom(10_000)
    repo = f"faults/lost-once-{method.lower()}"
    client(front.host).upload_blob(repo, data, digest_of(data), chunk_size=chunk_size)
    assert client(registry.host).get_blob(repo, digest_of(data)) == data
    assert len(front.seen("POST", "/blobs/uploads/")) == 2
    lost = [(entry.method, entry.status) for entry in front.log if entry.outcome == "cancelled"]
    assert lost == [(method, 404)]


def test_a_layer_in_a_file_is_sent_whole_again_after_a_lost_session(
    registry: RegistryServer, proxy: Callable[..., FaultProxy], tmp_path: Path
) -> None:
    """A layer spooled to disk (append's large layers) is uploaded from its file: the PUT of
    the first session is lost after the file was read, and the second sends it from its start,
    not from where the first left it."""
    front = proxy(registry, Rule("PUT", "/blobs/uploads/.", cancel_upload=True))
    data = os.urandom(300_000)
    path = tmp_path / "layer"
    path.write_bytes(data)
    repo = "faults/lost-file-body"
    with path.open("rb") as body:
        body.seek(1000)  # wherever it was left: the upload reads it from its start
        assert client(front.host).upload_missing_blob(repo, body, digest_of(data)) is True
    assert client(registry.host).get_blob(repo, digest_of(data)) == data
    assert [(e.method, e.status) for e in front.log if e.outcome == "cancelled"] == [("PUT", 404)]


def test_an_upload_session_lost_every_time_fails_after_the_attempts(
    registry: RegistryServer, proxy: Callable[..., FaultProxy]
) -> None:
    front = proxy(registry, Rule("PUT", "/blobs/uploads/.", cancel_upload=True, times=None))
    data = os.urandom(10_000)
    digest = digest_of(data)
    with pytest.raises(EnvironmentFault) as raised:
        client(front.host).upload_blob("faults/lost-always", data, digest)
    error = fault(raised)
    assert error.message == (
        f"{front.host}: upload of {digest[:19]} to faults/lost-always failed after 3 attempts "
        "(upload session lost)."
    )
    assert len(front.seen("POST", "/blobs/uploads/")) == RETRY.attempts
    assert [entry.status for entry in front.seen("PUT", "")] == [404] * RETRY.attempts
    assert not client(registry.host).blob_exists("faults/lost-always", digest)


def _without_location(answer: Answer) -> Answer:
    assert answer.status == 202 and "location" in answer.headers
    return answer._replace(headers={k: v for k, v in answer.headers.items() if k != "location"})


def test_an_upload_answer_without_location_is_retried(
    registry: RegistryServer, proxy: Callable[..., FaultProxy]
) -> None:
    front = proxy(registry, Rule("POST", "/blobs/uploads/", alter=_without_location))
    data = os.urandom(3000)
    client(front.host).upload_blob("faults/no-location-once", data, digest_of(data))
    assert client(registry.host).get_blob("faults/no-location-once", digest_of(data)) == data
    assert [e.outcome for e in front.seen("POST", "/blobs/uploads/")] == ["altered", "ok"]


def test_an_upload_answer_never_with_location_fails_clearly(
    registry: RegistryServer, proxy: Callable[..., FaultProxy]
) -> None:
    front = proxy(registry, Rule("POST", "/blobs/uploads/", alter=_without_location, times=None))
    data = os.urandom(3000)
    digest = digest_of(data)
    with pytest.raises(EnvironmentFault) as raised:
        client(front.host).upload_blob("faults/no-location", data, digest)
    error = fault(raised)
    assert error.message == (
        f"{front.host}: upload of {digest[:19]} to faults/no-location failed after 3 attempts "
        "(upload answer without a Location header)."
    )
    assert len(front.seen("POST", "/blobs/uploads/")) == RETRY.attempts
    assert front.seen("PUT", "") == [] and front.seen("PATCH", "") == []
    assert not client(registry.host).blob_exists("faults/no-location", digest)


# -- 429 ----------------------------------------------------------------------------------


def test_429_waits_at_least_as_long_as_retry_after_says(
    registry: RegistryServer, image: Pushed, proxy: Callable[..., FaultProxy]
) -> None:
    busy = Answer(429, {"Retry-After": "1"})
    front = proxy(registry, Rule("HEAD", "/manifests/v1$", answer=busy))
    said: list[str] = []
    started = time.monotonic()
    found = client(front.host, progress=said.append).head_manifest(image.repo, "v1")
    waited = time.monotonic() - started
    assert found is not None and found.digest == image.digest
    assert waited >= 1.0  # the policy's own delay is about 0.01 s
    outcomes = [(e.outcome, e.status) for e in front.seen("HEAD", "/manifests/v1$")]
    assert outcomes == [("answered", 429), ("ok", 200)]
    assert said == [f"HEAD {image.repo}:v1: HTTP 429; trying again in 1.0s"]


NOW = 1_800_000_000.0  # the client's clock in the Retry-After tests: a whole second


def paced(host: str, sleeps: list[float], credential: Credential | None = None) -> RegistryClient:
    """A client whose waits are recorded in ``sleeps`` instead of slept, and whose clock says
    ``NOW``: what it waits is asserted exactly, and no test sleeps for real."""
    return RegistryClient(
        host, credential=credential, retry=RETRY, sleep=sleeps.append, now=lambda: NOW
    )


@pytest.mark.parametrize(
    ("retry_after", "waited"),
    [
        ("2", 2.0),
        ("30", 30.0),
        (formatdate(NOW + 5, usegmt=True), 5.0),
        (formatdate(NOW - 60, usegmt=True), None),
        ("soon", None),
    ],
    ids=["seconds", "at-most", "http-date", "http-date-past", "unreadable"],
)
def test_retry_after_in_seconds_or_as_a_date_is_waited_for(
    registry: RegistryServer,
    image: Pushed,
    proxy: Callable[..., FaultProxy],
    retry_after: str,
    waited: float | None,
) -> None:
    """Retry-After in both of its forms, delta-seconds and an HTTP-date (from the client's
    clock); a date already past or a value that is neither leaves the policy's own backoff
    (about 0.01 s)."""
    front = proxy(
        registry, Rule("HEAD", "/manifests/v1$", answer=Answer(429, {"Retry-After": retry_after}))
    )
    sleeps: list[float] = []
    found = paced(front.host, sleeps).head_manifest(image.repo, "v1")
    assert found is not None and found.digest == image.digest
    assert len(sleeps) == 1
    if waited is None:
        assert sleeps[0] <= RETRY.base_delay
    else:
        assert sleeps == [waited]


@pytest.mark.parametrize(
    ("retry_after", "asked"),
    [("86400", "86400s"), (formatdate(NOW + 3600, usegmt=True), "3600s"), ("31", "31s")],
    ids=["a-day", "http-date-an-hour-on", "just-over"],
)
def test_a_retry_after_longer_than_the_kit_waits_fails_at_once(
    registry: RegistryServer,
    image: Pushed,
    proxy: Callable[..., FaultProxy],
    retry_after: str,
    asked: str,
) -> None:
    """A registry that asks for longer than ``max_retry_after`` (30 s) is not waited for, nor
    asked again sooner than it said: the job stops (exit 3) naming the registry and the wait."""
    front = proxy(
        registry, Rule("HEAD", "/manifests/v1$", answer=Answer(429, {"Retry-After": retry_after}))
    )
    sleeps: list[float] = []
    with pytest.raises(EnvironmentFault) as raised:
        paced(front.host, sleeps).head_manifest(image.repo, "v1")
    error = fault(raised)
    assert error.message == (
        f"{front.host}: HEAD {image.repo}:v1: the registry asked to wait {asked} before trying "
        "again (HTTP 429); the kit waits at most 30s."
    )
    assert error.hint == "It is rate-limiting or under maintenance: run again later."
    assert sleeps == []
    assert [(e.outcome, e.status) for e in front.seen("HEAD", "/manifests/v1$")] == [
        ("answered", 429)
    ]


def test_a_token_endpoint_asking_for_a_long_wait_fails_at_once(tmp_path: Path) -> None:
    with token_service(tmp_path, status=503, retry_after="600") as (server, tokens):
        sleeps: list[float] = []
        with pytest.raises(EnvironmentFault) as raised:
            paced(server.host, sleeps, ROBOT).head_manifest("faults/token", "v1")
    error = fault(raised)
    assert error.message == (
        f"{server.host}: HEAD faults/token:v1: the registry asked to wait 600s before trying "
        "again (token endpoint HTTP 503); the kit waits at most 30s."
    )
    assert sleeps == [] and len(tokens.requests) == 1


# -- in_parallel --------------------------------------------------------------------------


def test_in_parallel_raises_the_first_error_after_every_call_finished(
    registry: RegistryServer, image: Pushed, proxy: Callable[..., FaultProxy]
) -> None:
    """Ten requests, more than the six that run at once. Call 1 fails first and every other
    call waits for that: call 0 then fails too, and calls 6 to 9, queued, start only after the
    first failure. The error raised is call 0's (the first in call order, the last to happen),
    once all ten have finished."""
    front = proxy(registry)  # faultless: it counts what reached the registry
    reader = client(front.host)
    call_1_failed = threading.Event()
    finished: list[int] = []
    lock = threading.Lock()

    def call(index: int) -> Callable[[], str]:
        def run() -> str:
            try:
                if index != 1:
                    assert call_1_failed.wait(WAIT_S), "call 1 did not run"
                if index in (0, 1):
                    reader.get_manifest(image.repo, f"gone-{index}")
                found = reader.head_manifest(image.repo, "v1")
                assert found is not None
                return found.digest
            finally:
                with lock:
                    finished.append(index)
                if index == 1:
                    call_1_failed.set()

        return run

    with pytest.raises(EnvironmentFault) as raised:
        in_parallel([call(index) for index in range(10)])
    with lock:
        finished_when_raised = list(finished)
    error = fault(raised)
    assert error.message == (
        f"{front.host}: manifest {image.repo}:gone-0: not found (manifest unknown)."
    )
    assert sorted(finished_when_raised) == list(range(10))
    assert finished_when_raised.index(1) < finished_when_raised.index(0)
    assert [e.status for e in front.seen("GET", "/manifests/gone-")] == [404, 404]
    assert [e.status for e in front.seen("HEAD", "/manifests/v1$")] == [200] * 8


def test_in_parallel_gives_results_in_call_order_not_finishing_order(
    registry: RegistryServer,
) -> None:
    """Four blob reads where each waits for the next to finish: they finish last to first."""
    reader = client(registry.host)
    blobs = [os.urandom(1000 + index) for index in range(4)]
    for blob in blobs:
        reader.upload_blob("faults/parallel", blob, digest_of(blob))
    done = [threading.Event() for _ in blobs]
    finishing: list[int] = []

    def call(index: int) -> Callable[[], bytes]:
        def run() -> bytes:
            try:
                if index + 1 < len(blobs):
                    assert done[index + 1].wait(WAIT_S), f"call {index + 1} did not finish"
                return reader.get_blob("faults/parallel", digest_of(blobs[index]))
            finally:
                finishing.append(index)
                done[index].set()

        return run

    assert in_parallel([call(index) for index in range(len(blobs))]) == blobs
    assert finishing == [3, 2, 1, 0]


def test_started_hands_back_the_result_or_the_error_when_waited_for(
    registry: RegistryServer, image: Pushed, proxy: Callable[..., FaultProxy]
) -> None:
    """``started`` runs a read at once beside the caller: the call has reached the registry
    before anyone waits for it, and waiting gives its result, or raises its error then."""
    reached = threading.Event()

    def note(answer: Answer) -> Answer:
        reached.set()
        return answer

    front = proxy(registry, Rule("HEAD", "/manifests/v1$", alter=note, times=None))
    reader = client(front.host)
    wait = started(partial(reader.head_manifest, image.repo, "v1"))
    assert reached.wait(WAIT_S), "the read did not start before it was waited for"
    found = wait()
    assert found is not None and found.digest == image.digest
    failing = started(partial(reader.get_manifest, image.repo, "gone"))
    with pytest.raises(EnvironmentFault, match="gone: not found"):
        failing()


def test_a_client_holds_small_blobs_it_sent_or_read_and_asks_once_for_referrers(
    registry: RegistryServer, image: Pushed, proxy: Callable[..., FaultProxy]
) -> None:
    """What an append's attestations use to save round trips: a blob the client uploaded or
    read whole is held by digest (up to a size, so a big layer never sits in memory), and a
    registry that has no referrers API (distribution 2.x: 404) is asked only once."""
    front = proxy(registry)
    writer = client(front.host)
    small, big = os.urandom(1000), os.urandom(HELD_LIMIT + 1)
    writer.upload_missing_blob("faults/held", small, digest_of(small))
    writer.upload_blob("faults/held", big, digest_of(big))
    assert writer.held_blob(digest_of(small)) == small
    assert writer.held_blob(digest_of(big)) is None
    layer = json.loads(image.raw)["layers"][0]["digest"]
    reader = client(front.host)
    assert reader.held_blob(layer) is None
    data = reader.get_blob(image.repo, layer)
    assert reader.held_blob(layer) == data and digest_of(data) == layer
    assert reader.referrers(image.repo, image.digest) is None
    assert reader.referrers(image.repo, image.digest) is None
    assert len(front.seen("GET", "/referrers/")) == 1


def test_attaching_where_the_registry_lists_referrers_writes_no_referrers_tag(
    registry: RegistryServer, image: Pushed, proxy: Callable[..., FaultProxy]
) -> None:
    """A registry with the referrers API (the proxy answers it as one: an empty OCI index)
    lists artifacts by their ``subject`` itself: the attach sends the blob and the manifest
    and no ``sha256-<hex>`` tag. Distribution 2.x (404) gets the tag instead."""
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode()
    listing = Rule("GET", "/referrers/", answer=Answer(200, {"Content-Type": OCI_INDEX}, index),
                   times=None)  # fmt: skip
    front = proxy(registry, listing)
    subject = Descriptor(OCI_MANIFEST, image.digest, len(image.raw))
    made = attach(client(front.host), image.repo, subject, "application/x.test", b"note", "t")
    assert front.seen("PUT", f"/manifests/{made}$")
    assert not front.seen("PUT", "/manifests/sha256-"), "a referrers tag beside the API"
    assert not front.seen("GET", "/manifests/sha256-")

    plain = proxy(registry)
    made = attach(client(plain.host), image.repo, subject, "application/x.test", b"other", "t")
    tag = f"/manifests/sha256-{image.digest.removeprefix('sha256:')}$"
    assert [e.status for e in plain.seen("PUT", tag)] == [201]
    listed = json.loads(client(registry.host).get_manifest(image.repo, tag[11:-1]).raw)
    assert made in [entry["digest"] for entry in listed["manifests"]]


def test_the_referrers_api_is_asked_for_once_by_threads_at_the_same_time(
    registry: RegistryServer, image: Pushed, proxy: Callable[..., FaultProxy]
) -> None:
    """Two threads (an append's parent read and its attestations) ask for referrers while the
    first answer is still on its way: the second waits for it instead of asking too. The
    proxy holds that first answer until a second request arrives, or ``HOLD_S`` at most (the
    bound for the right order, in which none arrives)."""
    hold_s = 2.0
    arrived: list[int] = []
    first_in, second_in = threading.Event(), threading.Event()

    def hold(answer: Answer) -> Answer:
        arrived.append(1)
        if len(arrived) == 1:
            first_in.set()
            second_in.wait(hold_s)
        else:
            second_in.set()
        return answer

    front = proxy(registry, Rule("GET", "/referrers/", alter=hold, times=None))
    reader = client(front.host)
    first = started(partial(reader.referrers, image.repo, image.digest))
    assert first_in.wait(WAIT_S), "the first request did not reach the registry"
    second = started(partial(reader.referrers, image.repo, image.digest))
    assert first() is None and second() is None
    assert len(front.seen("GET", "/referrers/")) == 1


def test_attaching_beside_a_publish_sends_the_blobs_first_and_the_manifests_once_it_is_in(
    registry: RegistryServer, image: Pushed, proxy: Callable[..., FaultProxy]
) -> None:
    """An append attests while its image goes up (``subject_ready``): the artifacts' blobs
    and the referrers tag's read go first, and no manifest naming the subject is sent before
    ``subject_ready`` returns (the proxy's log at that moment has none; every manifest PUT
    comes after). A gate closed without opening (the publish failed) raises instead of
    leaving the attestations waiting."""
    front = proxy(registry)
    seen_at_ready: list[list[tuple[str, str]]] = []

    def subject_ready() -> None:
        seen_at_ready.append([(e.method, e.path) for e in front.log])

    subject = Descriptor(OCI_MANIFEST, image.digest, len(image.raw))
    specs = [("application/x.test", data, "t", None) for data in (b"beside", b"too")]
    made = attach_all(client(front.host), image.repo, subject, specs, subject_ready)
    assert len(seen_at_ready) == 1, "subject_ready was not waited for"
    before = seen_at_ready[0]
    assert [p for m, p in before if m == "PUT" and "/manifests/" in p] == []
    assert sum(1 for m, p in before if m == "POST" and "/blobs/uploads/" in p) == 3  # {}, two
    after = [(e.method, e.path) for e in front.log][len(before) :]
    assert not [p for m, p in after if "/blobs/" in p], "a blob went up after subject_ready"
    manifests_put = {p.rsplit("/", 1)[-1] for m, p in after if m == "PUT" and "/manifests/" in p}
    tag = f"sha256-{image.digest.removeprefix('sha256:')}"
    assert manifests_put == {*made, tag}

    gate = Gate("the publish of sha256:test")
    waiting = started(gate.wait)
    gate.close()
    with pytest.raises(GateClosed, match="the publish of sha256:test did not happen"):
        waiting()
    opened = Gate("x")
    opened.open()
    opened.close()
    opened.wait()


def test_listing_referrers_reads_the_referrers_tag_beside_the_first_question(
    registry: RegistryServer, image: Pushed, proxy: Callable[..., FaultProxy]
) -> None:
    """A client that does not know yet whether the registry has the referrers API asks it and
    reads the referrers tag at once (the proxy holds the API's answer until the tag's read
    arrives, ``WAIT_S`` at most): distribution 2.x answers 404 to the first, so listing costs
    one round trip, not two in a row. Once the client knows, it reads only the tag."""
    subject = Descriptor(OCI_MANIFEST, image.digest, len(image.raw))
    made = attach(client(registry.host), image.repo, subject, "application/x.test", b"l", "t")
    tag_read, held = threading.Event(), []

    def note(answer: Answer) -> Answer:
        tag_read.set()
        return answer

    def hold(answer: Answer) -> Answer:
        held.append(tag_read.wait(WAIT_S))
        return answer

    tag = f"/manifests/sha256-{image.digest.removeprefix('sha256:')}$"
    front = proxy(registry, Rule("GET", "/referrers/", alter=hold, times=None),
                  Rule("GET", tag, alter=note, times=None))  # fmt: skip
    reader = client(front.host)
    assert made in [entry["digest"] for entry in listed(reader, image.repo, image.digest)]
    assert held == [True], "the referrers tag was read only after the API's answer"
    front.log.clear()
    assert made in [entry["digest"] for entry in listed(reader, image.repo, image.digest)]
    assert [e.method for e in front.log] == ["GET"] and front.seen("GET", tag)


def test_an_upload_session_opened_ahead_and_lost_gives_way_to_a_whole_upload(
    registry: RegistryServer, proxy: Callable[..., FaultProxy]
) -> None:
    """A session ``open_upload`` opened ahead of its bytes is used by ``finish_upload`` (one
    PUT); one the registry lost by then (deleted at the registry as the PUT goes through:
    404) gives way to a whole upload, and the blob is there either way."""
    front = proxy(registry)
    writer = client(front.host)
    first = os.urandom(500)
    writer.finish_upload("faults/ahead", writer.open_upload("faults/ahead"), first,
                         digest_of(first))  # fmt: skip
    assert [e.method for e in front.log] == ["POST", "PUT"]
    assert writer.held_blob(digest_of(first)) == first

    lost = proxy(registry, Rule("PUT", "/blobs/uploads/", cancel_upload=True))
    writer = client(lost.host)
    second = os.urandom(500)
    writer.finish_upload("faults/ahead", writer.open_upload("faults/ahead"), second,
                         digest_of(second))  # fmt: skip
    assert [(e.method, e.outcome) for e in lost.log] == [
        ("POST", "ok"),
        ("PUT", "cancelled"),
        ("POST", "ok"),
        ("PUT", "ok"),
    ]
    reader = client(registry.host)
    for data in (first, second):
        assert reader.get_blob("faults/ahead", digest_of(data)) == data

"""The HTTP transport the registry client and the smoke gate share (requests), against real
loopback servers.

Kept-alive connections (one for serial requests, as many as run at once for parallel ones, a
new one when the server closed the old), TLS trust (the system's store via SSL_CERT_FILE, or
REQUESTS_CA_BUNDLE), forward proxies from the environment (CONNECT tunnels and absolute-URI
requests, with credentials from the proxy URL, and ``no_proxy``), redirects that drop
``Authorization`` when they leave the origin, and no credential the caller did not give
(``.netrc`` is the registry client's credential source, never requests' own).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from pipeline_kit.adapters.http import TLSFailed, Transport, UnsupportedProxy
from pipeline_kit.adapters.registry.client import (
    IN_FLIGHT,
    RegistryClient,
    RetryPolicy,
    in_parallel,
)
from pipeline_kit.errors import EnvironmentFault, ExitCode
from tests.support.services.web import Origin as OriginServer
from tests.support.services.web import Proxy

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "NETRC",
                   "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")  # fmt: skip


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests reads the process environment: each test sets what it needs."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OriginServer]:
    server = OriginServer(tmp_path_factory.mktemp("plain")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OriginServer]:
    server = OriginServer(tmp_path_factory.mktemp("tls"), tls=True).start()
    yield server
    server.stop()


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    server = Proxy().start()
    yield server
    server.stop()


def seen(body: bytes) -> dict[str, Any]:
    """What the origin saw of the request it answered with ``body``."""
    answer: dict[str, Any] = json.loads(body)
    return answer


def test_serial_requests_share_one_connection(plain: OriginServer) -> None:
    transport = Transport(trust_env=False)
    answers = [transport.request("GET", f"{plain.url}/n/{i}") for i in range(5)]
    answers.append(transport.request("PUT", f"{plain.url}/put", body=b"x" * 1000))
    answers.append(transport.request("HEAD", f"{plain.url}/head"))
    answers.append(transport.request("GET", f"{plain.url}/after-head"))
    assert [a.status for a in answers] == [200] * 8
    assert len({seen(a.body)["connection"] for a in answers if a.body}) == 1
    assert seen(answers[5].body)["body"] == "x" * 1000
    assert answers[6].body == b"" and answers[6].header("content-type") == "application/json"


def test_requests_with_a_deadline_share_one_connection(plain: OriginServer) -> None:
    """A body read whole by its deadline leaves its connection for the next request, as the
    smoke gate's readiness polls need."""
    transport = Transport(trust_env=False)
    answers = [
        transport.request("GET", f"{plain.url}/n/{i}", deadline=time.monotonic() + 10)
        for i in range(3)
    ]
    assert [a.status for a in answers] == [200] * 3
    assert [seen(a.body)["path"] for a in answers] == ["/n/0", "/n/1", "/n/2"]
    assert len({seen(a.body)["connection"] for a in answers}) == 1


def test_a_connection_the_server_closed_is_not_reused(plain: OriginServer) -> None:
    transport = Transport(trust_env=False)
    first = seen(transport.request("GET", f"{plain.url}/close").body)["connection"]
    second = seen(transport.request("GET", f"{plain.url}/next").body)["connection"]
    assert first != second


def test_a_kept_alive_connection_the_server_dropped_is_replaced(plain: OriginServer) -> None:
    transport = Transport(trust_env=False)
    first = seen(transport.request("GET", f"{plain.url}/drop").body)["connection"]
    deadline = time.monotonic() + 10
    while first not in plain.closed:  # closed by the server without a word to the client
        assert time.monotonic() < deadline, "the origin never closed the connection"
        time.sleep(0.01)
    answer = transport.request("GET", f"{plain.url}/after-drop")
    assert answer.status == 200 and seen(answer.body)["connection"] != first


def test_tls_needs_a_trusted_certificate(
    tls: OriginServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv("SSL_CERT_DIR", str(tls.workdir / "no-such-dir"))
    with pytest.raises(TLSFailed, match="CERTIFICATE_VERIFY_FAILED"):
        Transport().request("GET", f"{tls.url}/untrusted")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls.ca_file))
    assert Transport().request("GET", f"{tls.url}/bundle").status == 200
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    # The system's store, as OpenSSL finds it (where a private CA is installed): SSL_CERT_FILE
    # counts, as it does for curl; certifi's bundle would not know this CA.
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca_file))
    assert Transport().request("GET", f"{tls.url}/system").status == 200


def test_registry_over_tls_to_a_plain_http_server_says_what_to_do(plain: OriginServer) -> None:
    client = RegistryClient(plain.url.removeprefix("http://"))
    client.base = plain.url.replace("http://", "https://")  # as for a non-loopback host
    with pytest.raises(EnvironmentFault, match=r"TLS failed.*--insecure-registry"):
        client.ping()


def test_https_through_a_connect_proxy_with_credentials(
    tls: OriginServer, proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url.replace("://", f"://u%40corp:{quote('p@ss:1')}@"))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls.ca_file))
    answer = Transport().request("GET", f"{tls.url}/via-proxy")
    assert answer.status == 200 and seen(answer.body)["path"] == "/via-proxy"
    (entry,) = proxy.log
    assert entry["method"] == "CONNECT" and entry["target"] == tls.url.removeprefix("https://")
    assert entry["authorization"] == "Basic dUBjb3JwOnBAc3M6MQ=="  # u@corp:p@ss:1
    monkeypatch.setenv("no_proxy", "127.0.0.0/8")
    assert Transport().request("GET", f"{tls.url}/bypassed").status == 200
    assert len(proxy.log) == 1


def test_plain_http_through_a_proxy_sends_the_absolute_url(
    plain: OriginServer, proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", proxy.url)
    monkeypatch.setenv("HTTP_PROXY", "http://unused:1")  # the lower-case name wins
    answer = Transport().request("GET", f"{plain.url}/absolute?q=1")
    assert seen(answer.body)["path"] == "/absolute?q=1"
    assert proxy.log == [
        {"method": "GET", "target": f"{plain.url}/absolute?q=1", "authorization": ""}
    ]
    unproxied = Transport(trust_env=False)  # a loopback registry's: no proxy
    assert unproxied.request("GET", f"{plain.url}/not-proxied").status == 200
    assert len(proxy.log) == 1


def test_redirects_keep_credentials_only_within_the_origin(
    plain: OriginServer, tmp_path: Path
) -> None:
    other = OriginServer(tmp_path).start()
    try:
        transport = Transport(trust_env=False)
        secret = {"Authorization": "Bearer s3cret"}
        same = transport.request(
            "GET", f"{plain.url}/redirect?to={quote('/landed', safe='')}", headers=secret
        )
        assert same.url == f"{plain.url}/landed"
        assert seen(same.body)["headers"]["authorization"] == "Bearer s3cret"
        away = transport.request(
            "GET", f"{plain.url}/redirect?to={quote(other.url + '/blob', safe='')}", headers=secret
        )
        assert away.url == f"{other.url}/blob"
        assert "authorization" not in seen(away.body)["headers"]
        posted = transport.request(
            "POST", f"{plain.url}/redirect?to=%2Fgot", headers=secret, body=b"payload"
        )
        assert seen(posted.body)["method"] == "GET" and seen(posted.body)["body"] == ""
    finally:
        other.stop()


def test_a_socks_proxy_is_named_as_such(
    plain: OriginServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("all_proxy", "socks5://127.0.0.1:1080")
    with pytest.raises(UnsupportedProxy, match="SOCKS"):
        Transport().request("GET", f"{plain.url}/socks")


def test_no_netrc_credential_is_sent_that_the_caller_did_not_give(
    plain: OriginServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests would add a .netrc entry (or its ``default``) to every request and to every
    host a redirect leads to; the transport sends only what its caller gave."""
    other = OriginServer(tmp_path).start()
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-secret\n"
                     "default login any password any-secret\n")  # fmt: skip
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    try:
        transport = Transport()
        plain_answer = transport.request("GET", f"{plain.url}/no-netrc")
        assert "authorization" not in seen(plain_answer.body)["headers"]
        elsewhere = quote(other.url.replace("127.0.0.1", "localhost"), safe="")
        away = transport.request(
            "GET", f"{plain.url}/redirect?to={elsewhere}", headers={"Authorization": "Bearer s3"}
        )
        assert "authorization" not in seen(away.body)["headers"]
    finally:
        other.stop()


def test_parallel_requests_keep_one_connection_each(plain: OriginServer) -> None:
    """The registry client's pool holds a connection for each request ``in_parallel`` runs at
    once: a second round of parallel requests opens none.

    The origin answers ``/together?n=IN_FLIGHT`` only when that many requests are in flight at
    once, so each round really holds IN_FLIGHT connections, however loaded the machine is."""
    client = RegistryClient(plain.url.removeprefix("http://"))
    url = f"{plain.url}/together?n={IN_FLIGHT}"

    def round_of_requests() -> set[int]:
        before = len(plain.seen)
        answers = in_parallel([lambda: client.transport.request("GET", url)] * (IN_FLIGHT * 2))
        assert [a.status for a in answers] == [200] * (IN_FLIGHT * 2)
        return {entry["connection"] for entry in plain.seen[before:]}

    first = round_of_requests()
    second = round_of_requests()
    assert len(first) == IN_FLIGHT
    assert second == first, "the second round opened connections: the pool kept too few"


def test_a_blob_that_does_not_match_its_digest_is_retried_then_refused(
    plain: OriginServer,
) -> None:
    """The origin answers every GET with its own JSON, never the bytes the digest names."""
    client = RegistryClient(
        plain.url.removeprefix("http://"), retry=RetryPolicy(attempts=3, base_delay=0.01)
    )
    before = len(plain.seen)
    with pytest.raises(EnvironmentFault, match=r"failed after 3 attempts.*does not match") as error:
        client.get_blob("repo", "sha256:" + "0" * 64)
    assert error.value.exit_code == ExitCode.INFRA
    assert len(plain.seen) - before == 3


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _no_dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Resolution fails as glibc fails it for an unknown name (no DNS query leaves the
    machine); returns the names asked for."""
    import socket

    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".invalid"):
            asked.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def test_a_host_that_does_not_resolve_is_said_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline_kit.adapters.http import CannotResolve

    _no_dns(monkeypatch)
    with pytest.raises(CannotResolve) as caught:
        Transport().request("GET", "https://registry.invalid/v2/")
    assert str(caught.value) == "registry.invalid: cannot resolve host registry.invalid"
    assert caught.value.host == "registry.invalid"


def test_a_refused_connection_names_the_address() -> None:
    from pipeline_kit.adapters.http import Refused

    port = _closed_port()
    with pytest.raises(Refused) as caught:
        Transport().request("GET", f"http://127.0.0.1:{port}/v2/")
    assert str(caught.value) == f"127.0.0.1:{port}: connection refused at 127.0.0.1:{port}"


def test_the_registry_client_says_it_cannot_resolve_and_does_not_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipeline_kit.adapters.registry.client import RegistryUnreachable

    asked = _no_dns(monkeypatch)
    said: list[str] = []
    client = RegistryClient("registry.invalid", retry=RetryPolicy(attempts=4), progress=said.append)
    with pytest.raises(RegistryUnreachable) as caught:
        client.head_manifest("team/svc", "latest")
    message = str(caught.value)
    assert message.startswith("registry.invalid: cannot resolve host registry.invalid.")
    assert "the registry in `image`" in message and "DNS" in message
    assert "gaierror" not in message and "Errno" not in message
    assert caught.value.exit_code == ExitCode.INFRA
    assert said == [] and 1 <= len(asked) <= 3  # not the client's retries: urllib3's connect


def test_the_registry_client_says_the_connection_was_refused() -> None:
    from pipeline_kit.adapters.registry.client import RegistryUnreachable

    port = _closed_port()
    said: list[str] = []
    client = RegistryClient(
        f"127.0.0.1:{port}", retry=RetryPolicy(attempts=2, base_delay=0.01), progress=said.append
    )
    with pytest.raises(RegistryUnreachable) as caught:
        client.head_manifest("team/svc", "latest")
    assert str(caught.value).startswith(
        f"127.0.0.1:{port}: HEAD team/svc:latest failed after 2 attempts: connection refused "
        f"at 127.0.0.1:{port}: nothing listens there."
    )
    assert "Check that the registry is running" in str(caught.value)
    assert len(said) == 1 and "trying again" in said[0]

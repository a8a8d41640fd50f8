"""The HTTP transport the registry client and the smoke gate share, against real loopback servers.

Kept-alive connections (one for serial requests, a new one when the server closed the old),
TLS trust (the system's store via SSL_CERT_FILE, or REQUESTS_CA_BUNDLE), forward proxies
(CONNECT tunnels and absolute-URI requests, with credentials from the proxy URL, and
``no_proxy``), and redirects that drop ``Authorization`` when they leave the origin.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from pipeline_kit.adapters.registry.client import RegistryClient, RetryPolicy
from pipeline_kit.adapters.registry.transport import (
    Origin,
    TLSFailed,
    Transport,
    UnsupportedProxy,
    bypasses_proxy,
    proxy_for,
)
from pipeline_kit.errors import EnvironmentFault, ExitCode
from tests.support.services.web import Origin as OriginServer
from tests.support.services.web import Proxy


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
        Transport(environ={}).request("GET", f"{tls.url}/untrusted")
    bundle = {"REQUESTS_CA_BUNDLE": str(tls.ca_file)}
    assert Transport(environ=bundle).request("GET", f"{tls.url}/bundle").status == 200
    # The system's store, as OpenSSL finds it: SSL_CERT_FILE counts.
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca_file))
    assert Transport(environ={}).request("GET", f"{tls.url}/system").status == 200


def test_registry_over_tls_to_a_plain_http_server_says_what_to_do(plain: OriginServer) -> None:
    client = RegistryClient(plain.url.removeprefix("http://"))
    client.base = plain.url.replace("http://", "https://")  # as for a non-loopback host
    with pytest.raises(EnvironmentFault, match=r"TLS failed.*--insecure-registry"):
        client.ping()


def test_https_through_a_connect_proxy_with_credentials(tls: OriginServer, proxy: Proxy) -> None:
    environ = {
        "HTTPS_PROXY": proxy.url.replace("://", f"://u%40corp:{quote('p@ss:1')}@"),
        "REQUESTS_CA_BUNDLE": str(tls.ca_file),
    }
    answer = Transport(environ=environ).request("GET", f"{tls.url}/via-proxy")
    assert answer.status == 200 and seen(answer.body)["path"] == "/via-proxy"
    (entry,) = proxy.log
    assert entry["method"] == "CONNECT" and entry["target"] == tls.url.removeprefix("https://")
    assert entry["authorization"] == "Basic dUBjb3JwOnBAc3M6MQ=="  # u@corp:p@ss:1
    direct = Transport(environ={**environ, "no_proxy": "127.0.0.0/8"})
    assert direct.request("GET", f"{tls.url}/bypassed").status == 200
    assert len(proxy.log) == 1


def test_plain_http_through_a_proxy_sends_the_absolute_url(
    plain: OriginServer, proxy: Proxy
) -> None:
    transport = Transport(environ={"http_proxy": proxy.url, "HTTP_PROXY": "http://unused:1"})
    answer = transport.request("GET", f"{plain.url}/absolute?q=1")
    assert seen(answer.body)["path"] == "/absolute?q=1"
    assert proxy.log == [
        {"method": "GET", "target": f"{plain.url}/absolute?q=1", "authorization": ""}
    ]
    unproxied = Transport(environ={"http_proxy": proxy.url}, trust_env=False)
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


@pytest.mark.parametrize(
    ("url", "no_proxy", "bypass"),
    [
        ("https://registry.example.com", "", False),
        ("https://registry.example.com", "*", True),
        ("https://registry.example.com", "example.com", True),
        ("https://registry.example.com", ".example.com", True),
        ("https://badexample.com", "example.com", False),
        ("https://registry.example.com:5000", "registry.example.com:5000", True),
        ("https://registry.example.com:5000", "registry.example.com:443", False),
        ("https://10.1.2.3", "10.0.0.0/8", True),
        ("https://10.1.2.3", "10.1.2.3", True),
        ("https://11.1.2.3", "10.0.0.0/8, other", False),
        ("https://[::1]:5000", "::1", True),
    ],
)
def test_no_proxy(url: str, no_proxy: str, bypass: bool) -> None:
    assert bypasses_proxy(Origin.of(url), no_proxy) is bypass


def test_proxy_variables_lower_case_first_and_only_http_proxies() -> None:
    origin = Origin.of("https://ghcr.io")
    chosen = proxy_for(origin, {"https_proxy": "http://a:3128", "HTTPS_PROXY": "http://b:3128"})
    assert chosen is not None and (chosen.host, chosen.port) == ("a", 3128)
    fallback = proxy_for(origin, {"ALL_PROXY": "proxy.corp"})
    assert fallback is not None and (fallback.host, fallback.port) == ("proxy.corp", 80)
    assert proxy_for(origin, {"http_proxy": "http://a:3128"}) is None
    with pytest.raises(UnsupportedProxy, match="only http:// proxies"):
        proxy_for(origin, {"https_proxy": "socks5://a:1080"})


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

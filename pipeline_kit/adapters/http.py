"""HTTP for the registry and model-server adapters: a ``requests`` session per peer.

Each ``Transport`` is one ``requests.Session``: kept-alive connections per origin (a pool as
large as the requests its caller runs at once), redirects followed (at most 30), and, with
``trust_env`` (every peer but a loopback registry), the environment as requests reads it:
``https_proxy``/``http_proxy``/``all_proxy`` and ``no_proxy``, ``REQUESTS_CA_BUNDLE`` or
``CURL_CA_BUNDLE``. Without a bundle named, TLS trusts the system's store as OpenSSL finds it
(``SSL_CERT_FILE``/``SSL_CERT_DIR`` count), where a private CA is usually installed; certifi's
bundle only where the system has none.

Credentials are the caller's alone: requests never adds ``~/.netrc`` entries by itself (the
registry client reads ``.netrc`` as one of its credential sources, bound to the host it names),
and a redirect to another origin drops ``Authorization`` with nothing put in its place, as a
registry's redirect to its blob storage needs. Failures become ``TransportError``s: the caller
decides what is retried; connections that fail before anything was sent are tried again here.
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import requests
import requests.adapters
import requests.auth
import urllib3.exceptions
from urllib3.util.retry import Retry

MAX_REDIRECTS = 30
CONNECT_RETRIES = 2  # a refused or reset connect: nothing was sent, any method may go again


class TransportError(Exception):
    """No HTTP answer: the connection failed, timed out or was cut."""


class TimedOut(TransportError):
    pass


class TLSFailed(TransportError):
    """The TLS handshake failed (certificate not trusted, or the server speaks plain HTTP)."""


class UnsupportedProxy(TransportError):
    pass


class CannotResolve(TransportError):
    """DNS has no address for the host (or the proxy): asking again will not help."""

    def __init__(self, message: str, host: str) -> None:
        super().__init__(message)
        self.host = host


class Refused(TransportError):
    """Nothing listens at the host and port (or the proxy's)."""

    def __init__(self, message: str, address: str) -> None:
        super().__init__(message)
        self.address = address


class Response(NamedTuple):
    status: int
    headers: Mapping[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes
    url: str  # where the answer came from, after redirects

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def json(self) -> Any:
        """The body as JSON (``ValueError`` when it is not)."""
        return json.loads(self.body)


class _NoAuth(requests.auth.AuthBase):
    """Given with every request, so requests adds no ``.netrc`` credential of its own."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


class _Session(requests.Session):
    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: Any) -> None:
        """On a redirect: drop ``Authorization`` when it leaves the origin (requests' own
        rule: another host, port or scheme, but for http to https on the default ports), and
        put no ``.netrc`` credential in its place."""
        headers = prepared_request.headers
        if "Authorization" in headers and self.should_strip_auth(
            response.request.url, prepared_request.url or ""
        ):
            del headers["Authorization"]


def system_ca() -> str | bool:
    """The system's CA store as OpenSSL finds it, else True (certifi's bundle)."""
    paths = ssl.get_default_verify_paths()
    if paths.cafile and os.path.isfile(paths.cafile):
        return paths.cafile
    if paths.capath and os.path.isdir(paths.capath) and os.listdir(paths.capath):
        return paths.capath
    return True


class Transport:
    def __init__(
        self,
        *,
        trust_env: bool = True,
        user_agent: str = "pipeline-kit",
        timeout: tuple[float, float] = (10.0, 300.0),
        pool: int = 1,
    ) -> None:
        self.timeout = timeout
        self.session = _Session()
        self.session.trust_env = trust_env
        self.session.max_redirects = MAX_REDIRECTS
        self.session.headers["User-Agent"] = user_agent
        self.session.verify = system_ca() if trust_env else True
        retry = Retry(total=CONNECT_RETRIES, connect=CONNECT_RETRIES, read=0, status=0, other=0,
                      redirect=False, raise_on_status=False)  # fmt: skip
        for scheme in ("http://", "https://"):
            self.session.mount(
                scheme,
                requests.adapters.HTTPAdapter(
                    pool_connections=4, pool_maxsize=max(1, pool), max_retries=retry
                ),
            )

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: tuple[float, float] | None = None,
    ) -> Response:
        """One request, redirects followed, the whole body read. Raises ``TransportError``."""
        with self._errors(url):
            answer = self.session.request(
                method, url, headers=dict(headers or {}), data=body, auth=_NoAuth(),
                timeout=timeout or self.timeout, allow_redirects=True,
            )  # fmt: skip
            content = answer.content
        names = {name.lower(): value for name, value in answer.headers.items()}
        return Response(answer.status_code, names, content, answer.url)

    @contextmanager
    def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: tuple[float, float] | None = None,
    ) -> Iterator[requests.Response]:
        """The answer to one request (no redirects), its body read as it arrives: lines from
        ``lines(answer)``. The body is asked for uncompressed, so each line is there as soon as
        the server sent it."""
        sent = {"Accept-Encoding": "identity", **(headers or {})}
        with self._errors(url):
            answer = self.session.request(
                method, url, headers=sent, data=body, auth=_NoAuth(),
                timeout=timeout or self.timeout, allow_redirects=False, stream=True,
            )  # fmt: skip
            try:
                yield answer
            finally:
                answer.close()

    def close(self) -> None:
        self.session.close()

    @contextmanager
    def _errors(self, url: str) -> Iterator[None]:
        """requests' and urllib3's failures as ``TransportError``s naming the peer, not the URL
        (a query string may carry a token)."""
        peer = urlsplit(url).netloc.rpartition("@")[2] or url[:100]
        try:
            yield
        except requests.exceptions.SSLError as exc:
            raise TLSFailed(f"{peer}: {_reason(exc)}") from None
        except requests.exceptions.InvalidSchema as exc:
            if "SOCKS" in str(exc):
                raise UnsupportedProxy(
                    f"{peer}: a SOCKS proxy is set, and SOCKS needs the PySocks package"
                ) from None
            raise TransportError(f"{peer}: {exc}") from None
        except requests.exceptions.InvalidProxyURL as exc:
            raise UnsupportedProxy(f"{peer}: {exc}") from None
        except (requests.exceptions.ConnectTimeout, requests.exceptions.ReadTimeout) as exc:
            raise TimedOut(f"{peer}: timed out ({exc.__class__.__name__})") from None
        except requests.exceptions.TooManyRedirects:
            raise TransportError(f"{peer}: more than {MAX_REDIRECTS} redirects") from None
        except (requests.exceptions.RequestException, OSError) as exc:
            raise _connection_error(exc, url, peer) from None


def lines(answer: requests.Response) -> Iterator[bytes]:
    """The body of a streamed answer line by line, each as soon as it arrived."""
    raw = answer.raw
    read = raw.read1 if hasattr(raw, "read1") else (lambda _: raw.read(1))  # urllib3 < 2.1
    buffered = b""
    while True:
        try:
            chunk = read(65536)
        except (urllib3.exceptions.ReadTimeoutError, TimeoutError) as exc:
            raise TimedOut(f"timed out reading ({exc.__class__.__name__})") from None
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:  # a cut body
            raise TransportError(f"reading the answer: {exc.__class__.__name__}") from None
        if not chunk:
            break
        buffered += chunk
        *complete, buffered = buffered.split(b"\n")
        for line in complete:
            yield line + b"\n"
    if buffered:
        yield buffered


_UNRESOLVED = re.compile(r"Failed to resolve '([^']+)'")


def _connection_error(exc: BaseException, url: str, peer: str) -> TransportError:
    """A failed connection said as a person would: which host did not resolve, or which
    address refused, rather than the name of a socket exception."""
    parts = urlsplit(url)
    host = parts.hostname or peer
    port = parts.port or (443 if parts.scheme == "https" else 80)
    chain = list(_chain(exc))
    if any(isinstance(e, socket.gaierror) for e in chain) or any(
        type(e).__name__ == "NameResolutionError" for e in chain
    ):
        named = next((m.group(1) for e in chain if (m := _UNRESOLVED.search(str(e)))), host)
        return CannotResolve(f"{peer}: cannot resolve host {named}", named)
    if any(
        isinstance(e, ConnectionRefusedError)
        or (isinstance(e, OSError) and e.errno == errno.ECONNREFUSED)
        for e in chain
    ) or any("Connection refused" in str(e) for e in chain):
        address = f"{host}:{port}"
        return Refused(f"{peer}: connection refused at {address}", address)
    return TransportError(f"{peer}: {exc.__class__.__name__}: {_reason(exc)}")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it wraps (arguments, ``reason``, causes), each once."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        inner = [a for a in current.args if isinstance(a, BaseException)]
        inner += [
            e
            for e in (getattr(current, "reason", None), current.__cause__, current.__context__)
            if isinstance(e, BaseException)
        ]
        todo.extend(inner)


def _reason(exc: BaseException) -> str:
    """The innermost reason urllib3 wrapped (a MaxRetryError's ``reason``), shortened."""
    while True:
        inner = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
        inner = getattr(inner, "reason", None) or inner
        if not isinstance(inner, BaseException) or inner is exc:
            return str(exc)[:300]
        exc = inner

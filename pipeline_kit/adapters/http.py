"""HTTP for the registry and model-server adapters: a ``requests`` session per peer.

Each ``Transport`` is one ``requests.Session``: kept-alive connections per origin (a pool as
large as the requests its caller runs at once), redirects followed (at most 30), and, with
``trust_env`` (every peer but a loopback registry), the proxies as requests reads them:
``https_proxy``/``http_proxy``/``all_proxy`` and ``no_proxy``. TLS trusts, for every peer (a
loopback registry's token service on HTTPS too), the bundle ``REQUESTS_CA_BUNDLE`` or
``CURL_CA_BUNDLE`` names, else the system's store as OpenSSL finds it (``SSL_CERT_FILE``/
``SSL_CERT_DIR`` count), where a private CA is usually installed; certifi's bundle only where
the system has none.

Credentials are the caller's alone: requests never adds ``~/.netrc`` entries by itself (the
registry client reads ``.netrc`` as one of its credential sources, bound to the host it names),
and a redirect to another origin drops ``Authorization`` with nothing put in its place, as a
registry's redirect to its blob storage needs. Failures become ``TransportError``s: the caller
decides what is retried; connections that fail before anything was sent are tried again here.

A request given a ``deadline`` ends by it however the server sends: each wait for the headers
is cut to the time left, and at the deadline a timer shuts the connection down under the body
being read, so a server that trickles a byte at a time cannot hold it open (``TimedOut``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any, NamedTuple
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


def ca_bundle() -> str | bool:
    """What TLS trusts: the bundle ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` names (as
    requests reads them), else the system's store."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or system_ca()


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
        # Chosen here, not left to requests: without trust_env it would read no bundle at all.
        self.session.verify = ca_bundle()
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
        body: bytes | IO[bytes] | None = None,
        timeout: tuple[float, float] | None = None,
        deadline: float | None = None,
    ) -> Response:
        """One request, redirects followed, the whole body read. Raises ``TransportError``;
        ``TimedOut`` when it has not ended by ``deadline`` (``time.monotonic()``)."""
        if deadline is not None:
            with self.stream(
                method, url, headers=headers, body=body, timeout=timeout, deadline=deadline,
                redirects=True,
            ) as streamed:  # fmt: skip
                return Response(streamed.status, streamed.headers, streamed.read(), streamed.url)
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
        body: bytes | IO[bytes] | None = None,
        timeout: tuple[float, float] | None = None,
        deadline: float | None = None,
        redirects: bool = False,
    ) -> Iterator[Streamed]:
        """The answer to one request (no redirects unless asked), its body read as it
        arrives. The body is asked for uncompressed, so each line is there as soon as the
        server sent it. With ``deadline`` (``time.monotonic()``), the request ends by then."""
        sent = {"Accept-Encoding": "identity", **(headers or {})}
        with self._errors(url):
            answer = self.session.request(
                method, url, headers=sent, data=body, auth=_NoAuth(),
                timeout=_within(timeout or self.timeout, deadline), allow_redirects=redirects,
                stream=True,
            )  # fmt: skip
            expired = threading.Event()
            timer = _cut_at(answer, deadline, expired)
            try:
                yield Streamed(answer, expired)
            finally:
                if timer is not None:
                    timer.cancel()
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


class Streamed:
    """A streamed answer: its status and headers, and its body as it arrives (``lines``) or
    whole (``read``). Once the deadline has passed, reading raises ``TimedOut``."""

    def __init__(self, answer: requests.Response, expired: threading.Event) -> None:
        self.status = answer.status_code
        self.headers = {name.lower(): value for name, value in answer.headers.items()}
        self.url = answer.url
        self._answer = answer
        self._expired = expired

    def lines(self) -> Iterator[bytes]:
        """The body line by line, each as soon as it arrived."""
        with self._by_deadline():
            buffered = b""
            for chunk in _chunks(self._answer):
                buffered += chunk
                *complete, buffered = buffered.split(b"\n")
                for line in complete:
                    yield line + b"\n"
            if buffered:
                yield buffered

    def read(self) -> bytes:
        with self._by_deadline():
            return b"".join(_chunks(self._answer))

    def chunks(self) -> Iterator[bytes]:
        """The body in pieces as they arrive, never whole (a layer can be gigabytes)."""
        with self._by_deadline():
            yield from _chunks(self._answer)

    @contextmanager
    def _by_deadline(self) -> Iterator[None]:
        """A body cut at the deadline ends early or fails: either way, it timed out."""
        try:
            yield
        except TransportError:
            if self._expired.is_set():
                raise TimedOut("the deadline passed") from None
            raise
        if self._expired.is_set():
            raise TimedOut("the deadline passed")


def _chunks(answer: requests.Response) -> Iterator[bytes]:
    """The body of a streamed answer as it arrives, in pieces as read."""
    raw = answer.raw
    read = raw.read1 if hasattr(raw, "read1") else (lambda _: raw.read(1))  # urllib3 < 2.1
    while True:
        try:
            chunk = read(65536)
        except (urllib3.exceptions.ReadTimeoutError, TimeoutError) as exc:
            raise TimedOut(f"timed out reading ({exc.__class__.__name__})") from None
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:  # a cut body
            raise TransportError(f"reading the answer: {exc.__class__.__name__}") from None
        if not chunk:
            return
        yield chunk


def _within(timeout: tuple[float, float], deadline: float | None) -> tuple[float, float]:
    """``timeout``, each wait cut to the time left before ``deadline``."""
    if deadline is None:
        return timeout
    left = max(0.001, deadline - time.monotonic())
    return min(timeout[0], left), min(timeout[1], left)


def _cut_at(
    answer: requests.Response, deadline: float | None, expired: threading.Event
) -> threading.Timer | None:
    """A timer that, at ``deadline``, sets ``expired`` and shuts the answer's connection down:
    a read blocked on it returns at once, however slowly the server was sending."""
    if deadline is None:
        return None

    def cut() -> None:
        expired.set()
        # The answer's socket, through a duplicate of its descriptor: a shutdown reaches the
        # connection itself (TLS or not) and wakes the read blocked on it. OSError and
        # ValueError: the body was read and its socket closed already.
        with (
            contextlib.suppress(OSError, ValueError),
            socket.socket(fileno=os.dup(answer.raw.fileno())) as duplicate,
        ):
            duplicate.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(max(0.0, deadline - time.monotonic()), cut)
    timer.daemon = True
    timer.start()
    return timer


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

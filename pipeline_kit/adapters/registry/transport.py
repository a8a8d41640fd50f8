"""HTTP/1.1 for the registry and model-server adapters: the standard library's ``http.client``.

One ``Transport`` holds kept-alive connections per origin and hands an idle one to the next
request, so a build's registry calls share one connection (one per request in flight when
they run side by side). Before reuse a connection is checked for a close from the server.

With ``trust_env`` (everything but loopback registries) the environment is read as curl and
requests read it: ``https_proxy``/``http_proxy``/``all_proxy`` (lower case first, then upper
case) and ``no_proxy``; TLS trusts ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` when set, else
the system's store (OpenSSL's default paths, which honour ``SSL_CERT_FILE``/``SSL_CERT_DIR``).
Redirects are followed (at most 30) and a redirect to another host drops ``Authorization``,
as a registry's redirect to its blob storage needs.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import select
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote, urljoin, urlsplit

if TYPE_CHECKING:
    import ssl

MAX_REDIRECTS = 30
REDIRECTS = (301, 302, 303, 307, 308)
DEFAULT_PORTS = {"http": 80, "https": 443}


class TransportError(Exception):
    """No HTTP answer: the connection failed, timed out or was cut."""


class TimedOut(TransportError):
    pass


class TLSFailed(TransportError):
    """The TLS handshake failed (certificate not trusted, or the server speaks plain HTTP)."""


class UnsupportedProxy(TransportError):
    pass


class Response(NamedTuple):
    status: int
    headers: Mapping[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes
    url: str

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def json(self) -> Any:
        """The body as JSON (``ValueError`` when it is not)."""
        return json.loads(self.body)


class Origin(NamedTuple):
    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise TransportError(f"not an http(s) URL: {url[:200]}")
        return cls(parts.scheme, parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme])

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if DEFAULT_PORTS[self.scheme] == self.port else f"{host}:{self.port}"


class Proxy(NamedTuple):
    host: str
    port: int
    authorization: str | None  # the Proxy-Authorization value, from user:password in its URL


def proxy_for(origin: Origin, environ: Mapping[str, str]) -> Proxy | None:
    """The proxy the environment names for ``origin``, or None (none set, or ``no_proxy``)."""

    def variable(name: str) -> str:
        return environ.get(name) or environ.get(name.upper()) or ""

    url = variable(f"{origin.scheme}_proxy") or variable("all_proxy")
    if not url or bypasses_proxy(origin, variable("no_proxy")):
        return None
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise UnsupportedProxy(
            f"proxy {parts.scheme}://{parts.hostname}: only http:// proxies are supported"
        )
    authorization = None
    if parts.username is not None:
        secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        authorization = "Basic " + base64.b64encode(secret).decode()
    return Proxy(parts.hostname, parts.port or 80, authorization)


def bypasses_proxy(origin: Origin, no_proxy: str) -> bool:
    """``no_proxy`` as curl reads it: ``*``, host names matching by suffix, IPs and CIDRs."""
    entries = [entry for entry in no_proxy.replace(" ", "").split(",") if entry]
    try:
        address = ipaddress.ip_address(origin.host)
    except ValueError:
        address = None
    with_port = f"{origin.host}:{origin.port}"
    for entry in entries:
        if entry == "*":
            return True
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry.strip("[]"), strict=False):
                    return True
            except ValueError:
                pass
            if with_port == entry:
                return True
            continue
        name = entry.lstrip(".").lower()
        for candidate in (origin.host.lower(), with_port.lower()):
            if candidate == name or candidate.endswith("." + name):
                return True
    return False


def strips_authorization(old: Origin, new: Origin) -> bool:
    """Whether a redirect from ``old`` to ``new`` must not carry the credentials along."""
    if old.host != new.host:
        return True
    if (old.scheme, old.port, new.scheme, new.port) == ("http", 80, "https", 443):
        return False
    return (old.scheme, old.port) != (new.scheme, new.port)


class Transport:
    def __init__(
        self,
        *,
        environ: Mapping[str, str] | None = None,
        trust_env: bool = True,
        user_agent: str = "pipeline-kit",
        connect_timeout: float = 10.0,
        read_timeout: float = 300.0,
    ) -> None:
        self.environ: Mapping[str, str] = environ if environ is not None and trust_env else {}
        self.user_agent = user_agent
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: dict[Origin, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None

    # -- requests ------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: tuple[float, float] | None = None,
    ) -> Response:
        """One request, redirects followed; the whole body read. Raises ``TransportError``."""
        sent = dict(headers or {})
        for _ in range(MAX_REDIRECTS + 1):
            origin = Origin.of(url)
            with self._exchange(origin, method, url, sent, body, timeout) as answer:
                data = answer.read()
                status = answer.status
                names = answer.msg.keys()
                got = {n.lower(): ", ".join(answer.msg.get_all(n) or ()) for n in names}
            location = got.get("location")
            if status not in REDIRECTS or not location:
                return Response(status, got, data, url)
            url = urljoin(url, location)
            if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
                method, body = "GET", None
                sent = {k: v for k, v in sent.items() if k.lower() != "content-type"}
            if strips_authorization(origin, Origin.of(url)):
                sent = {k: v for k, v in sent.items() if k.lower() != "authorization"}
        raise TransportError(f"more than {MAX_REDIRECTS} redirects")

    @contextmanager
    def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: tuple[float, float] | None = None,
    ) -> Iterator[http.client.HTTPResponse]:
        """The answer to one request (no redirects), for reading as it arrives."""
        with self._exchange(Origin.of(url), method, url, dict(headers or {}), body, timeout) as a:
            yield a

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    # -- connections ---------------------------------------------------------------------

    @contextmanager
    def _exchange(
        self,
        origin: Origin,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        timeout: tuple[float, float] | None,
    ) -> Iterator[http.client.HTTPResponse]:
        """Send on a kept-alive (or new) connection; give it back when the answer was read."""
        proxy = proxy_for(origin, self.environ) if self.environ else None
        connection = self._checkout(origin, proxy, timeout)
        reusable = False
        try:
            parts = urlsplit(url)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            full = {"User-Agent": self.user_agent, "Accept": "*/*", **headers}
            if proxy is not None and origin.scheme == "http":
                target = f"http://{origin.netloc}{target}"  # a plain-HTTP proxy takes the URL
                if proxy.authorization:
                    full["Proxy-Authorization"] = proxy.authorization
            try:
                connection.request(method, target, body=body, headers=full)
                answer = connection.getresponse()
            except TimeoutError as exc:
                raise TimedOut(f"{origin.netloc}: timed out ({exc})") from None
            except (OSError, http.client.HTTPException) as exc:
                raise TransportError(f"{origin.netloc}: {exc.__class__.__name__}") from None
            try:
                yield answer
            except TimeoutError as exc:
                raise TimedOut(f"{origin.netloc}: timed out reading ({exc})") from None
            except (OSError, http.client.HTTPException) as exc:
                raise TransportError(f"{origin.netloc}: {exc.__class__.__name__}") from None
            reusable = answer.isclosed() and not answer.will_close
        finally:
            if reusable:
                with self._lock:
                    self._idle.setdefault(origin, []).append(connection)
            else:
                connection.close()

    def _checkout(
        self, origin: Origin, proxy: Proxy | None, timeout: tuple[float, float] | None
    ) -> http.client.HTTPConnection:
        with self._lock:
            idle = self._idle.get(origin) or []
            while idle:
                connection = idle.pop()
                if not _closed_by_peer(connection):
                    if connection.sock is not None:
                        connection.sock.settimeout((timeout or (0, self.read_timeout))[1])
                    return connection
                connection.close()
        connect_timeout, read_timeout = timeout or (self.connect_timeout, self.read_timeout)
        connection = self._new_connection(origin, proxy, connect_timeout)
        try:
            connection.connect()
        except TimeoutError:
            connection.close()
            raise TimedOut(f"{origin.netloc}: connect timed out") from None
        except OSError as exc:
            connection.close()
            if _is_tls_error(exc):
                raise TLSFailed(f"{origin.netloc}: {exc.__class__.__name__}: {exc}") from None
            raise TransportError(f"{origin.netloc}: {exc.__class__.__name__}") from None
        except http.client.HTTPException as exc:  # a proxy refusing the tunnel
            connection.close()
            raise TransportError(f"{origin.netloc}: {exc.__class__.__name__}: {exc}") from None
        if connection.sock is not None:
            connection.sock.settimeout(read_timeout)
        return connection

    def _new_connection(
        self, origin: Origin, proxy: Proxy | None, connect_timeout: float
    ) -> http.client.HTTPConnection:
        if origin.scheme == "http":
            if proxy is not None:
                return http.client.HTTPConnection(proxy.host, proxy.port, timeout=connect_timeout)
            return http.client.HTTPConnection(origin.host, origin.port, timeout=connect_timeout)
        if proxy is None:
            return http.client.HTTPSConnection(
                origin.host, origin.port, timeout=connect_timeout, context=self._tls_context()
            )
        connection = http.client.HTTPSConnection(
            proxy.host, proxy.port, timeout=connect_timeout, context=self._tls_context()
        )
        tunnel_headers = {"Proxy-Authorization": proxy.authorization} if proxy.authorization else {}
        connection.set_tunnel(origin.host, origin.port, headers=tunnel_headers)
        return connection

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            import os
            import ssl

            bundle = self.environ.get("REQUESTS_CA_BUNDLE") or self.environ.get("CURL_CA_BUNDLE")
            if bundle and os.path.isdir(bundle):
                self._tls = ssl.create_default_context(capath=bundle)
            elif bundle:
                self._tls = ssl.create_default_context(cafile=bundle)
            else:
                self._tls = ssl.create_default_context()
        return self._tls


def _closed_by_peer(connection: http.client.HTTPConnection) -> bool:
    """An idle kept-alive connection that is readable has been closed (or broken) by the server."""
    sock = connection.sock
    if sock is None:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _is_tls_error(exc: OSError) -> bool:
    import ssl  # already loaded: http.client imports it

    return isinstance(exc, ssl.SSLError)

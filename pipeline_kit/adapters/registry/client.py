"""The OCI distribution API as registries really serve it (docker-registry, GitLab, GHCR, Hub).

Auth: anonymous, basic, and bearer tokens from the registry's ``WWW-Authenticate`` challenge,
cached per scope; an identity token (user ``<token>``) is exchanged by OAuth2's refresh-token
grant, as Docker does. A client's credential (``credentials``, bound to its host) goes
only to the registry's own origin and to the token service that registry's own challenge names:
never along a redirect to another host (blob storage), nor to a host a redirect led to that asks
for credentials itself, nor in clear text to the token service of an HTTPS registry.
Retries with backoff and jitter on connection errors, 429 and 5xx, waiting as long as
``Retry-After`` asks (seconds or an HTTP-date) up to ``RetryPolicy.max_retry_after``, and
stopping with an ``EnvironmentFault`` when it asks for longer; 401/403/404 are not retried and
say what to check. Plain HTTP only for loopback and hosts the user marked insecure. HTTP is
``adapters.http``'s (requests, imported on the first request): a session per registry with a
connection for each request in flight, the environment's proxies for every registry but a
loopback one, and its CA bundle for all.
"""

from __future__ import annotations

import base64
import datetime
import email.utils
import hashlib
import io
import ipaddress
import random
import re
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple, TextIO, TypeVar, cast
from urllib.parse import urlencode, urljoin, urlsplit

from pipeline_kit import __version__
from pipeline_kit.adapters.registry.credential_helpers import TOKEN_USERNAME
from pipeline_kit.adapters.registry.credentials import Credential, resolve_credential
from pipeline_kit.adapters.registry.references import sha256_digest
from pipeline_kit.errors import EnvironmentFault, InputError, KitError

if TYPE_CHECKING:
    from pipeline_kit.adapters.http import Response, Transport

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
INDEX_TYPES = MANIFEST_TYPES[1], MANIFEST_TYPES[3]
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
TIMEOUT = (10, 300)  # connect, read
HELD_LIMIT = 8 << 20  # blobs up to this size are kept once sent or read (``held_blob``),
HELD_TOTAL = 32 << 20  # until they add up to this much
IN_FLIGHT = 6  # requests at once: a build's tags in one round (Docker pushes 5 layers at once)
T = TypeVar("T")


def in_parallel(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Run independent requests side by side (each waits on a round trip); results in order.

    At most ``IN_FLIGHT`` at once. The first error is raised once every call has finished.
    (Plain threads: ``concurrent.futures`` would cost a code-change build more to import than
    its requests take on a nearby registry.)
    """
    if len(calls) <= 1:
        return [call() for call in calls]
    results: list[T | None] = [None] * len(calls)
    errors: list[BaseException | None] = [None] * len(calls)
    pending = iter(range(len(calls)))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                index = next(pending, None)
            if index is None:
                return
            try:
                results[index] = calls[index]()
            except BaseException as exc:  # handed to the caller below
                errors[index] = exc

    # Daemon threads: an interrupted build exits without waiting for requests in flight.
    count = min(IN_FLIGHT, len(calls))
    threads = [threading.Thread(target=work, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for error in errors:
        if error is not None:
            raise error
    return cast("list[T]", results)  # every call returned: no None is left


def started(call: Callable[[], T]) -> Callable[[], T]:
    """``call`` set going at once on a thread of its own, for reads that may overlap other
    work; the function returned waits for it and gives its result, or raises its error.

    A daemon thread, as in ``in_parallel``: a build that fails first does not wait for it.
    """
    outcome: list[T] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # handed to whoever waits
            errors.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()

    def wait() -> T:
        thread.join()
        if errors:
            raise errors[0]
        return outcome[0]

    return wait


class Gate:
    """Work on another thread waits here (``wait``) until this thread has done something it
    needs (``open``); if that never comes (``close`` without ``open``: it failed), ``wait``
    raises instead of blocking for ever."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._event = threading.Event()
        self._opened = False

    def open(self) -> None:
        self._opened = True
        self._event.set()

    def close(self) -> None:
        self._event.set()

    def wait(self) -> None:
        self._event.wait()
        if not self._opened:
            raise GateClosed(f"{self.what} did not happen")


class GateClosed(Exception):
    """What a ``Gate`` waited for failed (its own error is the one to report)."""


def is_plain_http(host: str, insecure_hosts: Collection[str] = ()) -> bool:
    """Loopback registries and hosts the user named are reached over HTTP; all others HTTPS."""
    if host in insecure_hosts:
        return True
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class RetryPolicy(NamedTuple):
    attempts: int = 6
    base_delay: float = 0.2
    max_delay: float = 10.0  # the longest backoff of the kit's own
    # The longest wait a registry's Retry-After gets: asked for more, the kit stops (exit 3)
    # rather than stall a job for as long, or ask again sooner than the registry said.
    max_retry_after: float = 30.0

    def delays(self) -> Iterator[float]:
        for attempt in range(self.attempts - 1):
            delay = min(self.max_delay, self.base_delay * (2**attempt))
            yield delay * (0.5 + random.random() / 2)  # full jitter's gentler cousin


class Descriptor(NamedTuple):
    media_type: str
    digest: str
    size: int


class Manifest(NamedTuple):
    media_type: str
    digest: str
    raw: bytes

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


class RegistryUnreachable(EnvironmentFault):
    """No answer from the registry at all: its host does not resolve, nothing listens there,
    or every connection failed. A plan can still be made without it (``build --dry-run``)."""


def _cannot_resolve(registry: str, host: str, whose: str = "") -> RegistryUnreachable:
    where = (
        "the realm in the registry's challenge"
        if whose
        else "the registry in `image`, `cache.repository` or --cache-repo"
    )
    return RegistryUnreachable(
        f"{registry}: cannot resolve {whose}host {host}.",
        hint=f"Check the host name ({where}), and this machine's DNS and network (and "
        "https_proxy/no_proxy if a proxy is used).",
    )


class _Retry(Exception):
    def __init__(self, why: str, wait: float | None = None, *, unreachable: bool = False) -> None:
        super().__init__(why)
        self.wait = wait
        self.unreachable = unreachable  # no connection at all, rather than an error answer


class Origin(NamedTuple):
    """Where a credential may go: scheme, host and port (the default port filled in)."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin:
        """``ValueError`` when ``url`` is not an http(s) URL."""
        parts = urlsplit(url)
        default = {"http": 80, "https": 443}.get(parts.scheme)
        if default is None or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url[:200]}")
        return cls(parts.scheme, parts.hostname, parts.port or default)

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = {"http": 80, "https": 443}[self.scheme]
        return host if self.port == default else f"{host}:{self.port}"


class RegistryClient:
    def __init__(
        self,
        host: str,
        *,
        credential: Credential | None = None,
        insecure: bool = False,
        retry: RetryPolicy | None = None,
        progress: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.host = host
        api = "registry-1.docker.io" if host == "docker.io" else host
        self.base = f"{'http' if insecure else 'https'}://{api}"
        if not insecure and is_plain_http(host):
            self.base = f"http://{api}"
        self.credential = credential
        self.retry = retry or RetryPolicy()
        self.progress = progress or (lambda message: None)
        self.sleep = sleep  # between tries; tests record the waits instead
        self.now = now  # the wall clock, for Retry-After given as a date
        self._tokens: dict[str, str] = {}
        self._basic = False
        self._transport: Transport | None = None
        self._transport_lock = threading.Lock()
        # Whether the registry has the referrers API: None until its first answer, which is
        # asked for once (``referrers``); a registry without it (404) is not asked again.
        self._referrers_api: bool | None = None
        self._referrers_probe = threading.Lock()
        # Small blobs this client sent or read whole, by digest (``held_blob``).
        self._held: dict[str, bytes] = {}
        self._held_bytes = 0
        self._held_lock = threading.Lock()
        self._pushes: set[str] = set()  # repositories this client will push to (``will_push``)

    @classmethod
    def connect(
        cls,
        host: str,
        environ: Mapping[str, str],
        insecure_hosts: Collection[str] = (),
        log: TextIO | None = None,
    ) -> RegistryClient:
        """A client for ``host`` with the credentials the environment provides."""

        def say(message: str) -> None:
            if log is not None:
                log.write(f"pipeline-kit: {message}\n")
                log.flush()

        return cls(
            host,
            credential=resolve_credential(host, environ),
            insecure=is_plain_http(host, insecure_hosts),
            progress=say,
        )

    # -- transport ---------------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        """The registry's HTTP session, made on the first request (requests is imported then;
        ``in_parallel``'s first requests ask at once, and share one)."""
        with self._transport_lock:
            if self._transport is None:
                from pipeline_kit.adapters.http import Transport

                self._transport = Transport(
                    trust_env=not is_plain_http(self.host),  # no proxy for loopback
                    user_agent=f"pipeline-kit/{__version__}",
                    timeout=TIMEOUT,
                    # in_parallel's requests each keep their connection; two rounds may
                    # go at once (an append's tags and its attestations' manifests)
                    pool=2 * IN_FLIGHT,
                )
            return self._transport

    def _request(
        self,
        method: str,
        path_or_url: str,
        *,
        scope: str,
        ok: Collection[int],
        headers: dict[str, str] | None = None,
        data: bytes | IO[bytes] | None = None,
        what: str,
        retries: bool = True,
    ) -> Response:
        """One request with auth and retries; a status outside ``ok`` raises a KitError.

        ``retries=False`` lets ``_Retry`` through, for steps that must restart a whole sequence
        (an upload session does not survive a lost PUT).
        """
        url = path_or_url if "://" in path_or_url else self.base + path_or_url
        if not retries:
            return self._attempt(method, url, scope, ok, headers or {}, data, what)
        return self._with_retries(
            lambda: self._attempt(method, url, scope, ok, headers or {}, data, what), what
        )

    def _with_retries(self, step: Callable[[], T], what: str) -> T:
        """Run ``step`` until it stops raising ``_Retry``, waiting between tries."""
        delays = self.retry.delays()
        while True:
            try:
                return step()
            except _Retry as retry:
                delay = next(delays, None)
                if delay is None and retry.unreachable:
                    raise RegistryUnreachable(
                        f"{self.host}: {what} failed after {self.retry.attempts} attempts: "
                        f"{retry}.",
                        hint="Check that the registry is running and reachable from here at "
                        "that address (the host and port in `image`, or the proxy in "
                        "https_proxy/no_proxy); then run again.",
                    ) from None
                if delay is None:
                    raise EnvironmentFault(
                        f"{self.host}: {what} failed after {self.retry.attempts} attempts "
                        f"({retry}).",
                        hint="Check that the registry is up and reachable; then run again.",
                    ) from None
                if retry.wait is not None and retry.wait > self.retry.max_retry_after:
                    raise EnvironmentFault(
                        f"{self.host}: {what}: the registry asked to wait {retry.wait:.0f}s "
                        f"before trying again ({retry}); the kit waits at most "
                        f"{self.retry.max_retry_after:g}s.",
                        hint="It is rate-limiting or under maintenance: run again later.",
                    ) from None
                wait = max(delay, retry.wait or 0.0)
                self.progress(f"{what}: {retry}; trying again in {wait:.1f}s")
                self.sleep(wait)

    def _attempt(
        self,
        method: str,
        url: str,
        scope: str,
        ok: Collection[int],
        headers: dict[str, str],
        data: bytes | IO[bytes] | None,
        what: str,
    ) -> Response:
        for authenticated in (False, True):
            auth_headers = dict(headers)
            auth = self._authorization(scope) if self._is_own(url) else None
            if auth:
                auth_headers["Authorization"] = auth
            response = self._send(method, url, auth_headers, data)
            status = response.status
            if status == 401 and not self._is_own(response.url):
                raise self._foreign_challenge(what, response.url)
            if status == 401 and not authenticated:
                self._authenticate(response, scope)
                continue
            if status in ok:
                return response
            if status == 429 or status >= 500:
                raise _Retry(f"HTTP {status}", _retry_after(response, self.now()))
            raise self._error(status, what, scope, response)
        raise self._error(401, what, scope, response)

    def _send(
        self, method: str, url: str, headers: Mapping[str, str], data: bytes | IO[bytes] | None
    ) -> Response:
        from pipeline_kit.adapters import http

        if data is not None and not isinstance(data, bytes):
            data.seek(0)  # a file body is sent whole by every try
        try:
            return self.transport.request(method, url, headers=headers, body=data)
        except http.TLSFailed as exc:
            raise EnvironmentFault(
                f"{self.host}: TLS failed ({exc}).",
                hint="If this registry serves plain HTTP, name it with --insecure-registry "
                "or registry.insecure in the config; if its certificate is signed by a private "
                "CA, point REQUESTS_CA_BUNDLE (or SSL_CERT_FILE) at that CA's certificate.",
            ) from None
        except http.UnsupportedProxy as exc:
            raise EnvironmentFault(
                f"{self.host}: {exc}.",
                hint="Name an http:// or https:// proxy, or the host in no_proxy.",
            ) from None
        except http.CannotResolve as exc:
            raise _cannot_resolve(self.host, exc.host) from None
        except http.Refused as exc:
            raise _Retry(
                f"connection refused at {exc.address}: nothing listens there", unreachable=True
            ) from None
        except http.TimedOut as exc:
            raise _Retry(f"no answer in time ({exc})", unreachable=True) from None
        except http.TransportError as exc:
            raise _Retry(f"connection error: {exc}") from None

    def _is_own(self, url: str) -> bool:
        """Whether ``url`` is on the registry's own origin, the one its credential is for."""
        try:
            return Origin.of(url) == Origin.of(self.base)
        except ValueError:  # not a URL any request could reach
            return False

    def _foreign_challenge(self, what: str, url: str) -> EnvironmentFault:
        return EnvironmentFault(
            f"{self.host}: {what}: {Origin.of(url).netloc}, where the registry sent the request, "
            "asks for credentials; the credentials for this registry go to it alone.",
            hint="Check the registry's storage redirect (it should lead to a URL that needs no "
            "credentials), or name that host as the registry.",
        )

    def will_push(self, repo: str) -> None:
        """Say that this client will push to ``repo``: the first token it asks for a read of
        ``repo`` is asked for pull and push at once, so the first write does not take a 401
        and a second token request (two round trips, on every build that publishes)."""
        self._pushes.add(repo)

    def _authorization(self, scope: str) -> str | None:
        if scope in self._tokens:
            return f"Bearer {self._tokens[scope]}"
        if self._basic and self.credential:
            token = f"{self.credential.username}:{self.credential.password}".encode()
            return "Basic " + base64.b64encode(token).decode()
        return None

    def _authenticate(self, response: Response, scope: str) -> None:
        repo = scope.removeprefix("repository:").removesuffix(":pull")
        if scope == _pull(repo) and repo in self._pushes and _push(repo) not in self._tokens:
            try:
                self._token_for(response, _push(repo))
            except EnvironmentFault:  # a token service that refuses what it does not grant
                pass
            else:
                # A pull and push token is good for reads too; a service that grants only a
                # part of it gets its 401 on the write, and the write asks again as before.
                if _push(repo) in self._tokens:
                    self._tokens[scope] = self._tokens[_push(repo)]
                return  # (or Basic auth, which has no scopes)
        self._token_for(response, scope)

    def _token_for(self, response: Response, scope: str) -> None:
        challenge = response.header("WWW-Authenticate")
        kind = challenge.split(" ", 1)[0].lower()
        if kind == "basic":
            if self.credential is None:
                raise self._no_credentials()
            self._basic = True
            return
        if kind != "bearer":
            raise EnvironmentFault(
                f"{self.host}: unsupported auth challenge '{challenge[:60]}'.",
                hint="The registry must offer Basic or Bearer auth.",
            )
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        if "realm" not in params:
            raise EnvironmentFault(
                f"{self.host}: bearer challenge without a realm.", hint="Check the registry."
            )
        query: list[tuple[str, str]] = [("service", params.get("service", ""))]
        query += [("scope", one) for one in scope.split(" ") if one]
        realm = params["realm"]
        url = f"{realm}{'&' if '?' in realm else '?'}{urlencode(query)}"
        try:
            realm_origin = Origin.of(url)
        except ValueError:
            raise EnvironmentFault(
                f"{self.host}: the token realm '{realm[:200]}' is not an http(s) URL.",
                hint="Check the registry's auth service.",
            ) from None
        headers = {}
        # The realm comes from this registry's own challenge (``_attempt`` takes none from
        # elsewhere): GitLab and GHCR name their token service so, on another host.
        if self.credential and realm_origin.scheme == "http" and self.base.startswith("https:"):
            raise EnvironmentFault(
                f"{self.host}: its token service {realm_origin.netloc} is plain HTTP; the "
                "credentials are not sent in clear text.",
                hint="Check the registry's auth service: its realm should be an https:// URL.",
            )
        method, body = "GET", None
        if self.credential and self.credential.username == TOKEN_USERNAME:
            # An identity token (a helper's or ``docker login``'s): OAuth2's refresh-token
            # grant, in a POST body as Docker sends it, never in the URL.
            method, url = "POST", realm
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            form = [("grant_type", "refresh_token"), ("refresh_token", self.credential.password)]
            form += [("client_id", "pipeline-kit"), ("service", params.get("service", ""))]
            form += [("scope", scope)] if scope else []
            body = urlencode(form).encode()
        elif self.credential:
            secret = f"{self.credential.username}:{self.credential.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(secret).decode()
        from pipeline_kit.adapters import http

        try:
            answer = self.transport.request(method, url, headers=headers, body=body)
        except http.TLSFailed as exc:
            raise EnvironmentFault(
                f"{self.host}: TLS to the token endpoint failed ({exc}).",
                hint="Point REQUESTS_CA_BUNDLE (or SSL_CERT_FILE) at the CA that signed it.",
            ) from None
        except http.CannotResolve as exc:
            raise _cannot_resolve(self.host, exc.host, "its token endpoint's host ") from None
        except http.TransportError as exc:
            raise _Retry(f"token endpoint: {exc}") from None
        if answer.status in (401, 403):
            raise self._error(answer.status, "token request", scope, answer)
        if answer.status == 429 or answer.status >= 500:
            raise _Retry(f"token endpoint HTTP {answer.status}", _retry_after(answer, self.now()))
        try:
            body = answer.json()
        except ValueError:
            body = None
        token = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
        if not token:
            raise EnvironmentFault(
                f"{self.host}: the token endpoint gave no token (HTTP {answer.status}).",
                hint="Check the registry's auth service.",
            )
        self._tokens[scope] = str(token)

    def _no_credentials(self) -> EnvironmentFault:
        return EnvironmentFault(
            f"{self.host} asks for credentials and none were found.",
            hint=f"If it is the registry your credentials are for, set PIPELINE_KIT_REGISTRY="
            f"{self.host} with PIPELINE_KIT_REGISTRY_USER and PIPELINE_KIT_REGISTRY_PASSWORD (or "
            "CI_REGISTRY_USER/CI_REGISTRY_PASSWORD on GitLab, GITHUB_TOKEN for ghcr.io), "
            "or log in so your docker config.json has them: credentials go to the registry they "
            "are for, and nowhere else.",
        )

    def _error(self, status: int, what: str, scope: str, response: Response) -> EnvironmentFault:
        detail = _error_detail(response)
        who = (
            f"as '{self.credential.username}' ({self.credential.source})"
            if self.credential
            else "anonymously"
        )
        if status == 401:
            if self.credential is None:
                return self._no_credentials()
            return EnvironmentFault(
                f"{self.host}: {what}: credentials refused {who}{detail}.",
                hint="Check the user name and the password or token, and that they are for "
                "this registry.",
            )
        if status == 403:
            return EnvironmentFault(
                f"{self.host}: {what}: access denied {who} for '{scope}'{detail}.",
                hint="Check that the credentials may push and pull this repository (token scopes, "
                "project permissions).",
            )
        if status == 404:
            return EnvironmentFault(
                f"{self.host}: {what}: not found{detail}.",
                hint="Check the repository name and the tag or digest.",
            )
        return EnvironmentFault(
            f"{self.host}: {what}: HTTP {status}{detail}.", hint="Check the registry's logs."
        )

    # -- API ----------------------------------------------------------------------------

    def ping(self) -> None:
        self._request("GET", "/v2/", scope="", ok=(200,), what="API check")

    def warm_up(self, repo: str) -> None:
        """Open a connection (importing the HTTP stack on the way) and, if the registry
        challenges, get the token ``repo``'s requests will use (``will_push``'s, for a push):
        the work of a first request, done while the caller reads its checkout. Whatever goes
        wrong here is left to the requests that follow, which meet it again and say so."""
        try:
            response = self._send("GET", f"{self.base}/v2/", {}, None)
            if response.status == 401 and self._is_own(response.url):
                self._authenticate(response, _pull(repo))
        except (KitError, _Retry):
            pass

    def preconnect(self, repo: str, count: int) -> None:
        """Open ``count`` connections at once (a ``GET /v2/`` on each, with ``repo``'s token
        if there is one yet, its answer left aside): a later round of requests side by side
        (a build's tags and its attestations) then finds them open instead of opening its
        own, each a round trip or more (TLS) away. Whatever goes wrong is left to the
        requests that follow."""
        auth = self._authorization(_pull(repo))
        headers = {"Authorization": auth} if auth else {}

        def open_one() -> None:
            with suppress(KitError, _Retry):
                self._send("GET", f"{self.base}/v2/", headers, None)

        in_parallel([open_one] * count)

    def head_manifest(self, repo: str, reference: str) -> Descriptor | None:
        response = self._request(
            "HEAD",
            f"/v2/{repo}/manifests/{reference}",
            scope=_pull(repo),
            ok=(200, 404),
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
            what=f"HEAD {repo}:{reference}",
        )
        if response.status == 404:
            return None
        return Descriptor(
            media_type=response.header("Content-Type").split(";")[0],
            digest=response.header("Docker-Content-Digest"),
            size=int(response.header("Content-Length", "0")),
        )

    def get_manifest(self, repo: str, reference: str) -> Manifest:
        found = self.find_manifest(repo, reference, missing_ok=False)
        assert found is not None
        return found

    def find_manifest(
        self, repo: str, reference: str, *, missing_ok: bool = True
    ) -> Manifest | None:
        """The manifest, or None when there is none (``missing_ok``; else 404 is an error)."""
        response = self._request(
            "GET",
            f"/v2/{repo}/manifests/{reference}",
            scope=_pull(repo),
            ok=(200, 404) if missing_ok else (200,),
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
            what=f"manifest {repo}:{reference}",
        )
        if response.status == 404:
            return None
        raw = response.body
        digest = sha256_digest(raw)
        served = response.header("Docker-Content-Digest")
        expected = reference if reference.startswith("sha256:") else served
        if expected and expected != digest:
            raise EnvironmentFault(
                f"{self.host}: manifest {repo}:{reference} has digest {digest}, not {expected}.",
                hint="The registry (or a proxy) altered the manifest; check it.",
            )
        media_type = response.header("Content-Type").split(";")[0]
        return Manifest(media_type, digest, raw)

    def put_manifest(self, repo: str, reference: str, raw: bytes, media_type: str) -> str:
        self._request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            scope=_push(repo),
            ok=(201, 200),
            headers={"Content-Type": media_type},
            data=raw,
            what=f"PUT manifest {repo}:{reference}",
        )
        return sha256_digest(raw)

    def delete_manifest(self, repo: str, digest: str) -> None:
        self._request(
            "DELETE",
            f"/v2/{repo}/manifests/{digest}",
            scope=_push(repo, "delete"),
            ok=(202, 200),
            what=f"DELETE {repo}@{digest}",
        )

    def blob_exists(self, repo: str, digest: str) -> bool:
        response = self._request(
            "HEAD",
            f"/v2/{repo}/blobs/{digest}",
            scope=_pull(repo),
            ok=(200, 404),
            what=f"HEAD blob {digest[:19]}",
        )
        return response.status == 200

    def get_blob(self, repo: str, digest: str) -> bytes:
        """The blob, checked against its digest (a mismatch is retried like a lost answer)."""

        def fetch() -> bytes:
            response = self._request(
                "GET",
                f"/v2/{repo}/blobs/{digest}",
                scope=_pull(repo),
                ok=(200,),
                what=f"blob {digest[:19]}",
                retries=False,
            )
            if sha256_digest(response.body) != digest:
                raise _Retry("blob content does not match its digest")
            return response.body

        return self.hold(digest, self._with_retries(fetch, f"blob {digest[:19]}"))

    def held_blob(self, digest: str) -> bytes | None:
        """The bytes of ``digest`` if this client uploaded them or read them whole (up to
        ``HELD_LIMIT``), else None: a digest names its content, so what was sent or checked
        on the way in is what the registry serves, without a round trip to ask it again."""
        return self._held.get(digest)

    def hold(self, digest: str, data: T) -> T:
        """Keep ``data`` as the bytes of ``digest`` (if bytes, and small enough): what this
        client reads or sends, or a blob its caller is about to send, whose readers should
        not have to wait for the upload. The caller vouches for the digest."""
        if isinstance(data, bytes) and len(data) <= HELD_LIMIT:
            with self._held_lock:
                if self._held_bytes + len(data) <= HELD_TOTAL and digest not in self._held:
                    self._held[digest] = data
                    self._held_bytes += len(data)
        return data

    @contextmanager
    def open_blob(self, repo: str, digest: str) -> Iterator[IO[bytes]]:
        """The blob as a stream read as it arrives, never held whole (a layer can be
        gigabytes). Leaving the block normally reads what is left and checks the digest."""
        from pipeline_kit.adapters import http

        what = f"{self.host}: blob {repo}@{digest[:19]}"
        for asked in range(2):
            auth = self._authorization(_pull(repo))
            headers = {"Authorization": auth} if auth else {}
            try:
                with self.transport.stream(
                    "GET", f"{self.base}/v2/{repo}/blobs/{digest}", headers=headers,
                    redirects=True,
                ) as answer:  # fmt: skip
                    refused = answer.status == 401 and not asked
                    if answer.status == 404:
                        raise EnvironmentFault(
                            f"{what}: not found.",
                            hint="Check that the image's layers are in its repository.",
                        )
                    if answer.status != 200 and not refused:
                        raise EnvironmentFault(
                            f"{what}: HTTP {answer.status}.", hint="Check the registry's logs."
                        )
                    if not refused:
                        stream = _CheckedStream(answer.chunks(), digest, what)
                        # Buffered: read(n) gives n bytes (but at the end), as readers expect.
                        yield cast(IO[bytes], io.BufferedReader(stream, 1 << 16))
                        stream.finish()
                        return
            except http.TransportError as exc:
                raise EnvironmentFault(
                    f"{what}: reading it failed ({exc}).", hint="Check the registry; run again."
                ) from None
            # No token for this scope yet: a HEAD goes through the challenge and fetches one.
            self.blob_exists(repo, digest)
        raise EnvironmentFault(f"{what}: access refused.", hint="Check the credentials.")

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Cross-repository mount; False when the registry chose to open an upload instead."""
        response = self._request(
            "POST",
            f"/v2/{repo}/blobs/uploads/?mount={digest}&from={from_repo}",
            scope=f"{_push(repo)} {_pull(from_repo)}",
            ok=(201, 202),
            what=f"mount {digest[:19]} from {from_repo}",
        )
        return response.status == 201

    def upload_blob(
        self, repo: str, source: bytes | Path, digest: str, *, chunk_size: int | None = None
    ) -> None:
        """Monolithic (POST + PUT) or chunked (PATCH ranges) upload; restarts whole on failure."""
        data = source.read_bytes() if isinstance(source, Path) else source
        _check_digest(sha256_digest(data), digest, "The layout or file is corrupt; rebuild it.")
        # A lost answer can leave the upload session unusable: each try starts a new one.
        self._with_retries(
            lambda: self._upload_once(repo, data, digest, chunk_size),
            f"upload of {digest[:19]} to {repo}",
        )
        self.hold(digest, data)

    def upload_missing_blob(self, repo: str, data: bytes | IO[bytes], digest: str) -> bool:
        """Upload ``data`` unless ``repo`` has it; True when it was sent.

        The upload starts as a mount of the blob from ``repo`` itself: a registry that has it
        answers 201 and nothing is sent, one that has not opens the upload session (202), as
        the distribution spec has it. One round trip fewer than HEAD, POST, PUT.
        """
        _check_digest(_stream_digest(data), digest)
        sent = self._with_retries(
            lambda: self._upload_once(repo, data, digest, None, mount=True),
            f"upload of {digest[:19]} to {repo}",
        )
        self.hold(digest, data)
        return sent

    def open_upload(self, repo: str) -> str:
        """An upload session opened ahead of its bytes (``finish_upload``): where the bytes
        go. For blobs made later (an append's attestations), whose POST then need not wait
        for them."""
        response = self._request(
            "POST",
            f"/v2/{repo}/blobs/uploads/",
            scope=_push(repo),
            ok=(202,),
            what=f"an upload session in {repo}",
        )
        return self._location(response)

    def finish_upload(self, repo: str, location: str, data: bytes, digest: str) -> None:
        """Send ``data`` into the session ``open_upload`` gave; a session that is gone, or
        any failure of that one request, gives way to a whole upload (with its retries)."""
        _check_digest(sha256_digest(data), digest)
        separator = "&" if "?" in location else "?"
        try:
            done = self._request(
                "PUT",
                f"{location}{separator}digest={digest}",
                scope=_push(repo),
                ok=(201,),
                headers={"Content-Type": "application/octet-stream"},
                data=data,
                what=f"upload {digest[:19]}",
                retries=False,
            )
        except (KitError, _Retry):
            done = None
        if done is None:
            self.upload_blob(repo, data, digest)
        self.hold(digest, data)

    def _upload_once(
        self,
        repo: str,
        data: bytes | IO[bytes],
        digest: str,
        chunk_size: int | None,
        *,
        mount: bool = False,
    ) -> bool:
        what = f"upload {digest[:19]}"
        scope = _push(repo)
        query = f"?mount={digest}&from={repo}" if mount else ""
        start = self._request(
            "POST",
            f"/v2/{repo}/blobs/uploads/{query}",
            scope=scope,
            ok=(201, 202) if mount else (202,),
            what=what,
            retries=False,
        )
        if start.status == 201:  # mounted: the repository has it already
            return False
        location = self._location(start)
        body = data
        if chunk_size:
            assert isinstance(data, bytes), "chunked uploads take bytes"
            for offset in range(0, len(data), chunk_size):
                chunk = data[offset : offset + chunk_size]
                patched = self._request(
                    "PATCH",
                    location,
                    scope=scope,
                    ok=(202, 404),
                    data=chunk,
                    what=what,
                    retries=False,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                    },
                )
                if patched.status == 404:
                    raise _Retry("upload session lost")
                location = self._location(patched)
            body = b""
        separator = "&" if "?" in location else "?"
        done = self._request(
            "PUT",
            f"{location}{separator}digest={digest}",
            scope=scope,
            ok=(201, 404),
            headers={"Content-Type": "application/octet-stream"},
            data=body,
            what=what,
            retries=False,
        )
        if done.status == 404:
            raise _Retry("upload session lost")
        return True

    def _location(self, response: Response) -> str:
        location = response.header("Location")
        if not location:
            raise _Retry("upload answer without a Location header")
        return urljoin(self.base + "/", location)

    @property
    def referrers_api(self) -> bool | None:
        """Whether the registry has the referrers API; None until it has been asked."""
        return self._referrers_api

    def referrers(self, repo: str, digest: str) -> list[dict[str, Any]] | None:
        """The descriptors of the manifests whose ``subject`` is ``digest`` (the OCI 1.1
        referrers API), or None when the registry has no such API (the caller falls back to the
        referrers tag, ``sha256-<hex>``). A registry that answered 404 once is taken at its
        word for the rest of this client's life: an attach would otherwise ask again. Until
        the first answer, calls from other threads wait for it instead of asking too."""
        with self._referrers_probe if self._referrers_api is None else nullcontext():
            if self._referrers_api is False:
                return None
            response = self._request(
                "GET",
                f"/v2/{repo}/referrers/{digest}",
                scope=_pull(repo),
                ok=(200, 404),
                headers={"Accept": MANIFEST_TYPES[1]},
                what=f"referrers of {repo}@{digest[:19]}",
            )
            self._referrers_api = response.status != 404
        if not self._referrers_api:
            return None
        try:
            index = response.json()
            manifests = index.get("manifests") or []
        except (ValueError, AttributeError):
            raise EnvironmentFault(
                f"{self.host}: the referrers of {repo}@{digest} are not an OCI index.",
                hint="The registry's referrers API answered something else; check it.",
            ) from None
        return [entry for entry in manifests if isinstance(entry, dict)]

    def list_tags(self, repo: str, page_size: int = 100) -> list[str]:
        tags: list[str] = []
        url: str | None = f"/v2/{repo}/tags/list?n={page_size}"
        while url:
            response = self._request(
                "GET", url, scope=_pull(repo), ok=(200, 404), what=f"tags of {repo}"
            )
            if response.status == 404:
                return []
            tags += response.json().get("tags") or []
            match = _LINK_NEXT.search(response.header("Link"))
            url = urljoin(self.base + "/", match.group(1)) if match else None
        return tags


class _CheckedStream(io.RawIOBase):
    """A blob's bytes as they arrive, hashed on the way; its end checks them against the
    digest the blob was asked for."""

    def __init__(self, chunks: Iterator[bytes], digest: str, what: str) -> None:
        self._chunks = chunks
        self._pending = b""
        self._hash = hashlib.sha256()
        self._digest = digest
        self._what = what
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending and not self._ended:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._ended = True
                self._check()
            else:
                self._hash.update(chunk)
                self._pending = chunk
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def finish(self) -> None:
        """Read what the reader left (a tar's end padding) and check the digest."""
        while self.readinto(bytearray(1 << 16)):
            pass

    def _check(self) -> None:
        if f"sha256:{self._hash.hexdigest()}" != self._digest:
            raise EnvironmentFault(
                f"{self._what}: its content does not match its digest.",
                hint="The registry (or a proxy) altered the blob; check it.",
            )


def _pull(repo: str) -> str:
    return f"repository:{repo}:pull"


def _push(repo: str, extra: str = "") -> str:
    return f"repository:{repo}:pull,push{',' + extra if extra else ''}"


def _check_digest(
    actual: str, digest: str, hint: str = "The layer or file is corrupt; build it again."
) -> None:
    """A blob about to be sent as ``digest`` must have it (``actual``)."""
    if actual != digest:
        raise InputError(f"the blob given for {digest} does not have that digest.", hint=hint)


def _stream_digest(data: bytes | IO[bytes]) -> str:
    """The sha256 digest of bytes, or of a file read in blocks from its start."""
    if isinstance(data, bytes):
        return sha256_digest(data)
    data.seek(0)
    hasher = hashlib.sha256()
    for block in iter(lambda: data.read(1024 * 1024), b""):
        hasher.update(block)
    data.seek(0)
    return f"sha256:{hasher.hexdigest()}"


def _retry_after(response: Response, now: float) -> float | None:
    """The seconds ``Retry-After`` asks for, given as seconds or as an HTTP-date (RFC 9110),
    from ``now``; None when there is none or it is neither."""
    value = response.header("Retry-After").strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": an HTTP-date is in GMT
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, when.timestamp() - now)


def _error_detail(response: Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    errors = (body.get("errors") if isinstance(body, dict) else None) or []
    messages = [str(e.get("message") or e.get("code")) for e in errors if isinstance(e, dict)]
    return f" ({'; '.join(messages)})" if messages else ""

"""A bearer-token endpoint as GitLab, GHCR and Docker Hub run one, for distribution's `auth.token`.

It checks basic credentials, grants the scopes it is asked for (to the right user only), and
signs RS256 JWTs with an openssl-made key whose certificate is both in the token header's `x5c`
and in the registry's `rootcertbundle`.

A broken token service on demand: ``status`` other than 200 answers every request with that
status (and ``Retry-After: <retry_after>`` when that is given), ``give_token=False`` answers 200
with JSON that holds no token, and ``tls=True`` serves HTTPS with a self-signed certificate for
127.0.0.1 that no client trusts (``tls_cert`` is it). ``identity_token`` is a refresh token it
grants ``user``'s scopes for, in a POST, as Docker sends an identity token. ``refuse_push``
answers 403 to a request for a push scope instead of granting what it may (as some do).
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.support.services.web import self_signed

SERVICE = "pipeline-kit-test-registry"
ISSUER = "pipeline-kit-test-issuer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    workdir: Path
    user: str
    password: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    retry_after: str | None = None
    give_token: bool = True
    tls: bool = False
    identity_token: str | None = None  # a refresh token it takes for ``user`` (POST, OAuth2)
    refuse_push: bool = False  # answer 403 to a request for any push scope (some services do)

    def start(self) -> TokenServer:
        self.key = self.workdir / "token.key"
        self.cert = self.workdir / "token.crt"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=pipeline-kit-test-token", "-keyout", str(self.key),
             "-out", str(self.cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        der = subprocess.run(
            ["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
            check=True,
            capture_output=True,
        ).stdout
        self.x5c = base64.b64encode(der).decode()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                scopes = [s for value in query.get("scope", []) for s in value.split(" ")]
                user = server._basic_user(self.headers.get("Authorization", ""))
                server.requests.append({"user": user, "scopes": scopes})
                if user is False:
                    self.send_response(401)
                    self.end_headers()
                    return
                pushes = any("push" in s.rpartition(":")[2].split(",") for s in scopes)
                if server.refuse_push and pushes:
                    self._json(403, {"errors": [{"code": "DENIED"}]})
                elif server.status != 200:
                    self._json(
                        server.status,
                        {"errors": [{"code": "UNAVAILABLE"}]},
                        {"Retry-After": server.retry_after} if server.retry_after else {},
                    )
                elif not server.give_token:
                    self._json(200, {"expires_in": 300, "issued_at": "2026-01-01T00:00:00Z"})
                else:
                    self._json(200, {"token": server._token(user, scopes)})

            def do_POST(self) -> None:
                """OAuth2's refresh-token grant, as Docker sends an identity token."""
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                scopes = [s for value in form.get("scope", []) for s in value.split(" ")]
                given = form.get("refresh_token", [""])[0]
                grant = form.get("grant_type", [""])[0]
                expected = server.identity_token
                ok = grant == "refresh_token" and expected is not None and given == expected
                user = server.user if ok else False
                server.requests.append({"user": user, "scopes": scopes, "grant": grant})
                if not ok:
                    self._json(401, {"error": "invalid_grant"})
                else:
                    self._json(200, {"access_token": server._token(user, scopes)})

            def _json(
                self, status: int, answer: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                body = json.dumps(answer).encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if self.tls:
            self.tls_cert, tls_key = self_signed(self.workdir)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.tls_cert, tls_key)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )  # stop() waits one poll at most
        self.thread.start()
        return self

    @property
    def realm(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}/token"

    def registry_auth(self) -> dict[str, Any]:
        return {
            "token": {
                "realm": self.realm,
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": str(self.cert),
            }
        }

    def _basic_user(self, header: str) -> str | bool | None:
        """The user name, None for anonymous, False for wrong credentials."""
        if not header:
            return None
        try:
            user, _, password = base64.b64decode(header.split(" ", 1)[1]).decode().partition(":")
        except (IndexError, ValueError):
            return False
        return user if (user, password) == (self.user, self.password) else False

    def _token(self, user: str | bool | None, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind == "repository" and user == self.user:
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {
            "iss": ISSUER,
            "sub": user or "",
            "aud": SERVICE,
            "exp": now + 600,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(),
            check=True,
            capture_output=True,
        ).stdout
        return f"{signing_input}.{_b64url(signature)}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

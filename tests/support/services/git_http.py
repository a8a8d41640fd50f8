"""A git server on loopback: git's smart HTTP protocol (``git http-backend``) over the bare
repositories in one folder, as a forge serves clones and fetches. It records the
``Authorization`` header of every request (``authorizations``), so a test sees what credential
a fetch sent, and refuses nothing.
"""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.services import QuietHandler

HTTP_BACKEND = Path("/usr/lib/git-core/git-http-backend")


@dataclass
class GitHttpServer:
    root: Path  # holds <name>.git bare repositories
    authorizations: list[str] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)

    def start(self) -> GitHttpServer:
        served = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                self._backend()

            def do_POST(self) -> None:
                self._backend()

            def _backend(self) -> None:
                served.authorizations.append(self.headers.get("Authorization", ""))
                url = urlsplit(self.path)
                env = {
                    "GIT_PROJECT_ROOT": str(served.root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "REQUEST_METHOD": self.command,
                    "PATH_INFO": url.path,
                    "QUERY_STRING": url.query,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                    "REMOTE_ADDR": self.client_address[0],
                }
                body = self.read_body()
                if self.headers.get("Content-Encoding") == "gzip":
                    env["HTTP_CONTENT_ENCODING"] = "gzip"
                env["CONTENT_LENGTH"] = str(len(body))
                proc = subprocess.run(
                    [str(HTTP_BACKEND)], input=body, env=env, capture_output=True, timeout=120
                )
                head, _, payload = proc.stdout.partition(b"\r\n\r\n")
                status, headers = 200, []
                for line in head.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.lower() == "status":
                        status = int(value.split()[0])
                    elif name:
                        headers.append((name, value.strip()))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

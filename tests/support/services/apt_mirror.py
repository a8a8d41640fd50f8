"""A Debian archive mirror on loopback, as apt reads one: a flat repository (``deb URL ./``) of
a set of .deb files, its ``Packages`` index made here from each file's control fields
(``dpkg-deb --field``; apt-ftparchive is not installed on these machines) and a ``Release``
that lists it, served by the standard library's HTTP server. ``requested`` holds each request's
path and status.

The ``Release`` file is not signed: a base image names the mirror with ``[trusted=yes]``, which
is for a mirror on loopback in the tests only.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from email.utils import formatdate
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote


def make_flat_repository(root: Path, debs: list[Path]) -> Path:
    """``root/<file>.deb``, ``root/Packages`` and ``root/Release``; returns ``root``."""
    root.mkdir(parents=True)
    stanzas = []
    for deb in sorted(debs):
        copy = Path(shutil.copy2(deb, root / deb.name))
        control = subprocess.run(
            ["dpkg-deb", "--field", str(copy)], capture_output=True, text=True, check=True
        ).stdout.rstrip("\n")
        data = copy.read_bytes()
        stanzas.append(
            f"{control}\nFilename: ./{copy.name}\nSize: {len(data)}\n"
            f"MD5sum: {hashlib.md5(data).hexdigest()}\n"
            f"SHA256: {hashlib.sha256(data).hexdigest()}\n"
        )
    packages = "\n".join(stanzas).encode()
    (root / "Packages").write_bytes(packages)
    (root / "Release").write_text(
        f"Date: {formatdate(usegmt=True)}\nArchitectures: amd64 all\nSHA256:\n"
        f" {hashlib.sha256(packages).hexdigest()} {len(packages)} Packages\n"
    )
    return root


@dataclass
class AptMirror:
    root: Path
    requested: list[tuple[str, int]] = field(default_factory=list)  # (path, status)

    def start(self) -> AptMirror:
        mirror = self

        class Handler(SimpleHTTPRequestHandler):
            def log_request(self, code: Any = "-", size: Any = "-") -> None:
                mirror.requested.append((self.path, int(code)))

            def log_message(self, format: str, *args: Any) -> None:
                pass

        handler = partial(Handler, directory=str(self.root))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)  # listening from here on
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def sources_line(self) -> str:
        """The ``sources.list`` line of a base image that takes its packages from here."""
        return f"deb [trusted=yes] {self.url} ./\n"

    def packages(self) -> dict[str, str]:
        """Package name -> version of what the mirror holds (its ``Packages`` index)."""
        stanzas = (self.root / "Packages").read_text().split("\n\n")
        fields = [dict(re.findall(r"^(Package|Version): (.+)$", s, re.MULTILINE)) for s in stanzas]
        return {f["Package"]: f["Version"] for f in fields if f}

    def fetched(self) -> set[str]:
        """The names of the .deb files served (status 200)."""
        paths = (unquote(path) for path, code in self.requested if code == 200)
        return {path.rsplit("/", 1)[-1] for path in paths if path.endswith(".deb")}

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

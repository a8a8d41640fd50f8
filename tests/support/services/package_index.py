"""A Python package index on loopback, as pip reads one: a PEP 503 simple index (a directory
per normalized project name, each an HTML page of links with the file's sha256) made from a
set of wheels and sdists, served by the standard library's HTTP server. ``requested`` holds
the paths pip asked for."""

from __future__ import annotations

import hashlib
import html
import re
import shutil
import threading
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def project_name(filename: str) -> str:
    """The normalized project name (PEP 503) of a wheel's or an sdist's file name."""
    stem = filename.removesuffix(".tar.gz").removesuffix(".whl")
    name = stem.split("-", 1)[0] if filename.endswith(".whl") else stem.rsplit("-", 1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def make_index(root: Path, files: list[Path]) -> Path:
    """``root/simple/<project>/index.html`` and ``root/files/<file>``; returns ``root``."""
    by_project: dict[str, list[Path]] = {}
    (root / "files").mkdir(parents=True)
    for path in files:
        copy = Path(shutil.copy2(path, root / "files" / path.name))
        by_project.setdefault(project_name(path.name), []).append(copy)
    for project, copies in by_project.items():
        links = "".join(
            f'<a href="../../files/{html.escape(copy.name)}#sha256='
            f'{hashlib.sha256(copy.read_bytes()).hexdigest()}">{html.escape(copy.name)}</a>\n'
            for copy in sorted(copies)
        )
        page = root / "simple" / project / "index.html"
        page.parent.mkdir(parents=True)
        page.write_text(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")
    top = "".join(f'<a href="{p}/">{p}</a>\n' for p in sorted(by_project))
    (root / "simple" / "index.html").write_text(
        f"<!DOCTYPE html>\n<html><body>\n{top}</body></html>\n"
    )
    return root


@dataclass
class PackageIndex:
    root: Path
    requested: list[str] = field(default_factory=list)

    def start(self) -> PackageIndex:
        index = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                index.requested.append(self.path)

        handler = partial(Handler, directory=str(self.root))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)  # listening from here on
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/simple/"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

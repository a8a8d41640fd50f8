"""A Python package index on loopback, as pip reads one and as twine and PyPI's publishing
action write to one.

Reading: a PEP 503 simple index (a directory per normalized project name, each an HTML page of
links with the file's sha256) made from a set of wheels and sdists, served by the standard
library's HTTP server. ``requested`` holds the paths pip asked for.

Writing: the legacy upload API that PyPI (``/legacy/``) and pypiserver take: a
``multipart/form-data`` POST with ``:action=file_upload`` and the file in ``content`` (with
``sha256_digest`` checked when sent). The file joins the index and the pages are written
again; a file of a name the index already holds is refused with 400 "File already exists",
as PyPI refuses it. ``uploads`` records each accepted upload's form fields and file.
"""

from __future__ import annotations

import hashlib
import html
import re
import shutil
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

UPLOAD_PATH = "/legacy/"


def project_name(filename: str) -> str:
    """The normalized project name (PEP 503) of a wheel's or an sdist's file name."""
    stem = filename.removesuffix(".tar.gz").removesuffix(".whl")
    name = stem.split("-", 1)[0] if filename.endswith(".whl") else stem.rsplit("-", 1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def write_pages(root: Path) -> None:
    """``root/simple/``: the PEP 503 pages of the files in ``root/files``."""
    by_project: dict[str, list[Path]] = {}
    for path in sorted((root / "files").iterdir()):
        by_project.setdefault(project_name(path.name), []).append(path)
    shutil.rmtree(root / "simple", ignore_errors=True)
    for project, copies in by_project.items():
        links = "".join(
            f'<a href="../../files/{html.escape(copy.name)}#sha256='
            f'{hashlib.sha256(copy.read_bytes()).hexdigest()}">{html.escape(copy.name)}</a>\n'
            for copy in copies
        )
        page = root / "simple" / project / "index.html"
        page.parent.mkdir(parents=True)
        page.write_text(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")
    top = "".join(f'<a href="{p}/">{p}</a>\n' for p in sorted(by_project))
    (root / "simple").mkdir(exist_ok=True)
    (root / "simple" / "index.html").write_text(
        f"<!DOCTYPE html>\n<html><body>\n{top}</body></html>\n"
    )


def make_index(root: Path, files: list[Path]) -> Path:
    """``root/simple/<project>/index.html`` and ``root/files/<file>``; returns ``root``."""
    (root / "files").mkdir(parents=True)
    for path in files:
        shutil.copy2(path, root / "files" / path.name)
    write_pages(root)
    return root


@dataclass(frozen=True)
class Upload:
    fields: dict[str, str]  # the form's text fields (":action", "name", "version", ...)
    filename: str
    sha256: str  # of the bytes received


def parse_form(content_type: str, body: bytes) -> tuple[dict[str, str], tuple[str, bytes] | None]:
    """A ``multipart/form-data`` body: its text fields, and its ``content`` file if any."""
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: dict[str, str] = {}
    upload = None
    assert isinstance(message, EmailMessage)
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        assert isinstance(name, str) and isinstance(data, bytes)
        filename = part.get_filename()
        if filename is not None and name == "content":
            upload = (filename, data)
        else:
            fields[name] = data.decode()
    return fields, upload


@dataclass
class PackageIndex:
    root: Path
    requested: list[str] = field(default_factory=list)
    uploads: list[Upload] = field(default_factory=list)

    def start(self) -> PackageIndex:
        index = self
        lock = threading.Lock()

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                index.requested.append(self.path)

            def do_POST(self) -> None:
                if self.path.rstrip("/") != UPLOAD_PATH.rstrip("/"):
                    self.send_error(404)
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                fields, upload = parse_form(self.headers.get("Content-Type", ""), body)
                status, reason = index._accept(fields, upload, lock)
                self.send_response(status, reason)
                self.send_header("Content-Length", "0")
                self.end_headers()

        handler = partial(Handler, directory=str(self.root))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)  # listening from here on
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def _accept(
        self, fields: dict[str, str], upload: tuple[str, bytes] | None, lock: threading.Lock
    ) -> tuple[int, str]:
        if fields.get(":action") != "file_upload" or upload is None:
            return 400, "Expected :action=file_upload and a file in content"
        filename, data = upload
        if "/" in filename or not filename.endswith((".whl", ".tar.gz")):
            return 400, f"Invalid file name {filename!r}"
        digest = hashlib.sha256(data).hexdigest()
        if fields.get("sha256_digest", digest) != digest:
            return 400, "The sha256_digest does not match the file"
        with lock:
            target = self.root / "files" / filename
            if target.exists():
                return 400, "File already exists"
            target.write_bytes(data)
            write_pages(self.root)
            self.uploads.append(Upload(fields, filename, digest))
        return 200, "OK"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/simple/"

    @property
    def upload_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{UPLOAD_PATH}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

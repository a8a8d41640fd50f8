"""The package databases an image holds, and the packages each one lists.

Three kinds are read: dpkg's ``var/lib/dpkg/status`` (packages whose Status is ``install ok
installed``), Python's ``*/site-packages/*.dist-info/METADATA`` and ``dist-packages`` (Name
and Version), and conda's ``conda-meta/*.json`` (name and version). Each package carries the
path of the database that listed it: a later layer that rewrites or deletes that file changes
exactly what it listed.
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple
from urllib.parse import quote

DPKG_STATUS = "var/lib/dpkg/status"
_PYTHON = re.compile(r"(?:^|/)(?:site|dist)-packages/[^/]+\.dist-info/METADATA$")
_CONDA = re.compile(r"(?:^|/)conda-meta/[^/]+\.json$")
INSTALLED = "install ok installed"
MAX_DATABASE_BYTES = 64 * 1024 * 1024  # a dpkg status file is a few MB; anything larger is not one


class Package(NamedTuple):
    kind: str  # "deb", "pypi" or "conda": the purl type
    name: str
    version: str
    database: str  # the path (no leading /) of the file that lists it
    arch: str = ""  # deb: the architecture; conda: the build string

    @property
    def purl(self) -> str:
        version = quote(self.version, safe="")
        if self.kind == "deb":
            qualifier = f"?arch={quote(self.arch, safe='')}" if self.arch else ""
            return f"pkg:deb/debian/{quote(self.name, safe='')}@{version}{qualifier}"
        if self.kind == "pypi":
            name = re.sub(r"[-_.]+", "-", self.name).lower()
            return f"pkg:pypi/{quote(name, safe='')}@{version}"
        qualifier = f"?build={quote(self.arch, safe='')}" if self.arch else ""
        return f"pkg:conda/{quote(self.name, safe='')}@{version}{qualifier}"


def database_kind(path: str) -> str | None:
    """Which kind of package database the file at ``path`` (no leading /) is, if any."""
    if path == DPKG_STATUS:
        return "deb"
    if path.endswith("/METADATA") and _PYTHON.search(path):
        return "pypi"
    if path.endswith(".json") and _CONDA.search(path):
        return "conda"
    return None


def parse_database(kind: str, path: str, data: bytes) -> tuple[Package, ...]:
    """The packages the database file lists; nothing for one that cannot be read."""
    text = data.decode("utf-8", errors="replace")
    if kind == "deb":
        return dpkg_status(text, path)
    if kind == "pypi":
        found = python_metadata(text, path)
        return (found,) if found else ()
    found = conda_meta(text, path)
    return (found,) if found else ()


def dpkg_status(text: str, path: str = DPKG_STATUS) -> tuple[Package, ...]:
    packages = []
    for paragraph in re.split(r"\n\s*\n", text):
        fields = _headers(paragraph)
        if fields.get("status") != INSTALLED or not fields.get("package"):
            continue
        version = fields.get("version", "")
        packages.append(
            Package("deb", fields["package"], version, path, fields.get("architecture", ""))
        )
    return tuple(packages)


def python_metadata(text: str, path: str) -> Package | None:
    fields = _headers(text.split("\n\n", 1)[0])
    if not fields.get("name") or not fields.get("version"):
        return None
    return Package("pypi", fields["name"], fields["version"], path)


def conda_meta(text: str, path: str) -> Package | None:
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict) or not record.get("name") or not record.get("version"):
        return None
    build = record.get("build")
    return Package("conda", str(record["name"]), str(record["version"]), path,
                   str(build) if build else "")  # fmt: skip


def _headers(block: str) -> dict[str, str]:
    """RFC 822 style ``Name: value`` lines (continuation lines skipped), first one wins."""
    fields: dict[str, str] = {}
    for line in block.splitlines():
        if not line or line[0] in " \t" or ":" not in line:
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name.strip().lower(), value.strip())
    return fields

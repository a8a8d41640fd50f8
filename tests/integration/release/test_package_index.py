"""The kit as a user installs it: the sdist and wheel scripts/build-dist makes of this commit,
published to a package index on loopback (with the kit's dependencies from the test cache),
installed by plain pip with the README's install line and the GitLab template's default
``install``, each in a fresh virtual environment, with pip's own settings left out."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pipeline_kit import DISTRIBUTION, __version__
from tests.support import REPO
from tests.support.example_image import CACHE
from tests.support.gitrepo import GIT_ENV
from tests.support.services.package_index import PackageIndex, make_index

KIT_WHEELHOUSE = CACHE / "kit-wheelhouse"


def pip_env(**extra: str) -> dict[str, str]:
    """The environment without this machine's pip settings: the index is all pip knows."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV"))}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PackageIndex]:
    if not any(KIT_WHEELHOUSE.glob("setuptools-*.whl")):
        pytest.fail(f"no kit wheelhouse in {CACHE}: run scripts/test-images (scripts/test does)")
    work = tmp_path_factory.mktemp("index")
    clone = work / "kit"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    built = subprocess.run(
        [str(REPO / "scripts" / "build-dist"), "--out", str(work / "dist")], cwd=clone,
        env=pip_env(**GIT_ENV, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(KIT_WHEELHOUSE)),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    dependencies = [p for p in KIT_WHEELHOUSE.glob("*.whl") if not p.name.startswith("setuptools")]
    served = PackageIndex(make_index(work / "index", [*(work / "dist").iterdir(), *dependencies]))
    yield served.start()
    served.stop()


def fresh_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    return path / "bin"


def readme_install() -> list[str]:
    (line,) = re.findall(r"^pip install (.+)$", (REPO / "README.md").read_text(), re.M)
    return line.split()


def template_install() -> list[str]:
    text = (REPO / ".gitlab-ci-template.yml").read_text()
    default = yaml.safe_load(text.split("\n---\n", 1)[0])["spec"]["inputs"]["install"]["default"]
    (version,) = re.findall(r'^    PIPELINE_KIT_VERSION: "([^"]+)"$', text, re.M)
    return [default.replace("$PIPELINE_KIT_VERSION", version)]


@pytest.mark.parametrize("source", [readme_install, template_install])
def test_the_documented_install_installs_this_kit_from_the_index(
    index: PackageIndex, tmp_path: Path, source: object
) -> None:
    requirement = source()  # type: ignore[operator]
    assert requirement == [f"{DISTRIBUTION}=={__version__}"]
    bin_dir = fresh_venv(tmp_path / "venv")
    installed = subprocess.run(
        [str(bin_dir / "pip"), "install", "--no-cache-dir", "--index-url", index.url, *requirement],
        env=pip_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]
    assert "/simple/llm-pipeline-kit/" in index.requested
    assert any(
        path.startswith(f"/files/llm_pipeline_kit-{__version__}-") for path in index.requested
    )

    version = subprocess.run(
        [str(bin_dir / "pipeline-kit"), "--version"], capture_output=True, text=True, timeout=60,
        cwd=tmp_path,
    )  # fmt: skip
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"pipeline-kit, version {__version__}"
    where = subprocess.run(
        [str(bin_dir / "python"), "-c",
         "import importlib.metadata as m, pipeline_kit; "
         f"print(m.version('{DISTRIBUTION}'), pipeline_kit.__file__)"],
        capture_output=True, text=True, cwd=tmp_path, check=True,
    ).stdout.split()  # fmt: skip
    assert where[0] == __version__
    assert where[1].startswith(str(tmp_path / "venv"))  # the installed copy, not this checkout


def test_the_foreign_name_finds_nothing_there(index: PackageIndex, tmp_path: Path) -> None:
    """The failing direction: the index serves what it holds and no more."""
    bin_dir = fresh_venv(tmp_path / "venv")
    installed = subprocess.run(
        [str(bin_dir / "pip"), "install", "--no-cache-dir", "--index-url", index.url,
         f"pipeline-kit=={__version__}"],
        env=pip_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert installed.returncode == 1
    assert "No matching distribution found for pipeline-kit" in installed.stderr


def test_an_upload_joins_the_index_once(tmp_path: Path) -> None:
    """The legacy upload API as PyPI takes it: the file is served on its project's page with
    its sha256; the same file name again is refused, as PyPI refuses it."""
    wheel = tmp_path / "demo_pkg-1.0-py3-none-any.whl"
    wheel.write_bytes(b"not really a wheel")
    served = PackageIndex(make_index(tmp_path / "index", [])).start()
    try:
        fields = {":action": "file_upload", "protocol_version": "1", "name": "demo-pkg",
                  "version": "1.0", "filetype": "bdist_wheel",
                  "sha256_digest": hashlib.sha256(wheel.read_bytes()).hexdigest()}  # fmt: skip
        statuses = [post_form(served.upload_url, fields, wheel) for _ in range(2)]
        assert statuses == [(200, "OK"), (400, "File already exists")]
        wrong = post_form(served.upload_url, {**fields, "sha256_digest": "0" * 64}, wheel)
        assert wrong[0] == 400
        page = urllib.request.urlopen(served.url + "demo-pkg/").read().decode()
        digest = fields["sha256_digest"]
        assert f'href="../../files/{wheel.name}#sha256={digest}"' in page
        assert [(u.filename, u.fields["filetype"]) for u in served.uploads] == [
            (wheel.name, "bdist_wheel")
        ]
    finally:
        served.stop()


def post_form(url: str, fields: dict[str, str], path: Path) -> tuple[int, str]:
    boundary = "pk-boundary-7f3a"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
        f'filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        + path.read_bytes()
        + b"\r\n"
    )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request) as response:
            return response.status, response.reason
    except urllib.error.HTTPError as refused:
        return refused.code, refused.reason

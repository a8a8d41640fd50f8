"""The name the kit is published under, and the one version it has, as every default and doc
that installs it names them."""

from __future__ import annotations

import re
import subprocess

import tomllib
import yaml

import pipeline_kit
from tests.support import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
TEMPLATE = REPO / ".gitlab-ci-template.yml"
# A requirement on, or a pip install of, the name `pipeline-kit` (not ours on PyPI).
# Files that name it on purpose: this one's examples, and the install the index must refuse.
EXAMPLES_OF_THE_FOREIGN_NAME = {
    "tests/unit/test_distribution.py",
    "tests/integration/release/test_package_index.py",
}
FOREIGN = re.compile(r"(?<![\w-])pipeline[-_]kit(?:\[[\w,]+\])?(?:==|>=|~=)")
FOREIGN_INSTALL = re.compile(r"pip3? install(?:[ \t]+[^\s`'\"]+)*?[ \t]+pipeline[-_]kit(?![\w/-])")


def tracked_text() -> dict[str, str]:
    names = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    found = {}
    for name in filter(None, names):
        try:
            found[name] = (REPO / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
    return found


def template_spec() -> dict[str, object]:
    header = TEMPLATE.read_text().split("\n---\n", 1)[0]
    spec: dict[str, object] = yaml.safe_load(header)["spec"]["inputs"]
    return spec


def test_the_package_is_published_under_the_name_the_kit_names() -> None:
    assert PYPROJECT["project"]["name"] == pipeline_kit.DISTRIBUTION == "llm-pipeline-kit"
    assert PYPROJECT["project"]["scripts"] == {"pipeline-kit": "pipeline_kit.cli:main"}
    test_extra = PYPROJECT["project"]["optional-dependencies"]["test"]
    assert f"{pipeline_kit.DISTRIBUTION}[example]" in test_extra


def test_the_version_has_one_source() -> None:
    """pyproject.toml reads the version from the package; nothing else states it but pins."""
    assert "version" not in PYPROJECT["project"]
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    dynamic = PYPROJECT["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "pipeline_kit.__version__"}


def test_the_templates_install_default_names_the_distribution_at_the_pinned_version() -> None:
    install = template_spec()["install"]
    assert install == {
        "description": install["description"],  # type: ignore[index]
        "default": f"{pipeline_kit.DISTRIBUTION}==$PIPELINE_KIT_VERSION",
    }
    pinned = re.findall(r'^    PIPELINE_KIT_VERSION: "([^"]*)"$', TEMPLATE.read_text(), re.M)
    assert pinned == [pipeline_kit.__version__]


def test_the_readme_installs_this_release() -> None:
    lines = re.findall(r"^pip install (\S+)$", (REPO / "README.md").read_text(), re.M)
    assert lines == [f"{pipeline_kit.DISTRIBUTION}=={pipeline_kit.__version__}"]


def test_nothing_installs_the_kit_under_a_name_that_is_not_ours() -> None:
    """`pipeline-kit` on PyPI is another project: a pin of it would install a stranger's code."""
    found = [
        f"{name}:{text.count(chr(10), 0, match.start()) + 1}: {match[0]}"
        for name, text in tracked_text().items()
        if name not in EXAMPLES_OF_THE_FOREIGN_NAME
        for pattern in (FOREIGN, FOREIGN_INSTALL)
        for match in pattern.finditer(text)
    ]
    assert found == []


def test_the_check_finds_a_foreign_pin() -> None:
    """The failing direction of the check above."""
    assert FOREIGN.search("default: pipeline-kit==$PIPELINE_KIT_VERSION")
    assert FOREIGN.search('"pipeline-kit[example]>=0.1"')
    assert not FOREIGN.search("default: llm-pipeline-kit==$PIPELINE_KIT_VERSION")
    assert FOREIGN_INSTALL.search("pip install --quiet pipeline-kit")
    assert not FOREIGN_INSTALL.search("pip install llm-pipeline-kit==0.1.0")
    assert not FOREIGN_INSTALL.search("pip install llm-pipeline-kit==0.1.0`), see pipeline-kit")

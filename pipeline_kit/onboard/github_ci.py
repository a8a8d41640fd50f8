"""The kit in a repository's GitHub Actions: the ready-to-copy caller workflows (the files in
the kit's ``workflows/``, shipped with the package) under ``.github/workflows/``, calling the
kit's reusable workflows by commit SHA, never by a tag that can be moved."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pipeline_kit import DISTRIBUTION, __version__
from pipeline_kit.errors import EnvironmentFault, InputError

CALLERS = ("pull-request", "main", "cleanup")
# Written into a release's wheel by scripts/release-pins --stamp: the commit it was built from.
RELEASE_STAMP = "release.json"
SHA = re.compile(r"[0-9a-f]{40}")
_KIT_WORKFLOW = re.compile(
    r"^(?P<uses>[ \t]*uses:[ \t]*pipeline-kit/pipeline-kit/\.github/workflows/[\w.-]+)@\S+.*$",
    re.M,
)
_PIN_ADVICE = "# Pin pipeline-kit/pipeline-kit to the release's commit SHA in your copy.\n"


@dataclass(frozen=True)
class KitPin:
    """The kit's commit the callers call, and the release it is (their comment)."""

    commit: str  # 40 hex digits
    version: str


def caller_workflows(default_branch: str, pin: KitPin) -> dict[str, str]:
    """``.github/workflows/pipeline-kit-<name>.yml`` -> its text, the main-branch pipeline on
    ``default_branch``, every reference to the kit's reusable workflows pinned to ``pin``."""
    files = resources.files("pipeline_kit.onboard").joinpath("workflows")
    callers = {}
    for name in CALLERS:
        text = files.joinpath(f"{name}.yml").read_text(encoding="utf-8")
        if name == "main" and default_branch != "main":
            text = text.replace("branches: [main]", f"branches: [{default_branch}]")
        callers[f".github/workflows/pipeline-kit-{name}.yml"] = pinned(text, pin)
    return callers


def pinned(text: str, pin: KitPin) -> str:
    """``text`` with each ``uses: pipeline-kit/pipeline-kit/.github/workflows/X@ref`` as
    ``@<sha> # v<version>``."""
    text = _KIT_WORKFLOW.sub(lambda m: f"{m['uses']}@{pin.commit} # v{pin.version}", text)
    return text.replace(
        _PIN_ADVICE,
        f"# pipeline-kit/pipeline-kit is pinned to the commit of v{pin.version}: a tag can be "
        "moved, a commit cannot.\n",
    )


def kit_pin(kit_ref: str | None = None, package_dir: Path | None = None) -> KitPin:
    """What the callers pin: ``kit_ref`` if given, else the release stamp in the package, else
    the commit of the git checkout the package is (a development install).

    ``package_dir`` is the ``pipeline_kit`` package directory (default: this one)."""
    if kit_ref is not None:
        return KitPin(kit_ref, __version__)
    package = package_dir or Path(__file__).resolve().parents[1]
    found = _stamped(package / "onboard" / RELEASE_STAMP) or _checkout(package)
    if found is None:
        raise InputError(
            "no commit of the kit to pin the GitHub callers to: this pipeline-kit "
            f"({package}) has no release stamp (onboard/{RELEASE_STAMP}) and is not a git "
            "checkout of the kit, and a tag can be moved.",
            hint=f"Install a release (pip install {DISTRIBUTION}=={__version__}), or pass "
            "--kit-ref SHA: the 40-hex commit of the release (git ls-remote "
            f"https://github.com/pipeline-kit/pipeline-kit v{__version__}).",
        )
    return found


def _stamped(stamp: Path) -> KitPin | None:
    try:
        document = json.loads(stamp.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise EnvironmentFault(
            f"{stamp}: not a readable release stamp ({exc}).",
            hint=f"Reinstall the kit from a release: pip install {DISTRIBUTION}=={__version__}.",
        ) from None
    commit = document.get("commit") if isinstance(document, dict) else None
    version = document.get("version") if isinstance(document, dict) else None
    if not isinstance(commit, str) or not SHA.fullmatch(commit) or not isinstance(version, str):
        raise EnvironmentFault(
            f'{stamp}: a release stamp is {{"version": "X.Y.Z", "commit": "<40 hex>"}}.',
            hint=f"Reinstall the kit from a release: pip install {DISTRIBUTION}=={__version__}.",
        )
    return KitPin(commit, version)


def _checkout(package: Path) -> KitPin | None:
    """The HEAD of the kit's own git checkout when the package is its ``pipeline_kit/``; not
    the commit of some other repository an installed package happens to sit in."""
    from pipeline_kit.adapters.process import run

    proc = run(["git", "rev-parse", "--show-toplevel", "HEAD"], cwd=package, check=False)
    lines = proc.stdout.decode(errors="replace").split()
    if proc.returncode != 0 or len(lines) != 2 or not SHA.fullmatch(lines[1]):
        return None
    top = Path(lines[0])
    own = (top / "pipeline_kit").resolve() == package.resolve() and (top / "action.yml").is_file()
    return KitPin(lines[1], __version__) if own else None

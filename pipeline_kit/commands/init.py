"""``pipeline-kit init``: onboard a repository in one command.

Writes ``pipeline-kit.yaml`` from the Dockerfile's stages, then adds the kit to the CI the
repository already has: the template's ``include`` in ``.gitlab-ci.yml`` (edited in place: its
comments, order and quoting stay), or a caller workflow under ``.github/workflows/``. A file
that already has what init would add is left untouched, so a second run changes nothing.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from pipeline_kit.errors import ExitCode, InputError

CI_CHOICES = ("auto", "github", "gitlab", "none")
GITLAB_CI = ".gitlab-ci.yml"


@dataclass(frozen=True)
class InitOptions:
    cwd: Path
    ci: str = "auto"  # auto: the CI the repository has (.gitlab-ci.yml, .github/)
    dockerfile: str = "Dockerfile"  # relative to the repository root
    image: str | None = None  # default: the forge's registry for the origin remote
    dry_run: bool = False
    format: str = "text"
    kit_ref: str | None = None  # the kit's commit the GitHub callers pin; default: its release
    platform: str | None = None  # written as `platform`; default: the runner's, not written


@dataclass(frozen=True)
class FileChange:
    path: str  # relative to the repository root
    action: str  # created, updated or unchanged
    before: str
    after: str
    note: str = ""


def run(options: InitOptions, out: TextIO) -> int:
    from pipeline_kit.adapters.git import Git

    with Git(options.cwd) as git:
        root = git.root
        remote = git.remote_url()
        branch = git.default_branch() or git.current_branch() or "main"
    changes = [_config_change(root, options, remote)]
    for ci in _chosen_ci(root, options.ci, remote):
        if ci == "gitlab":
            changes += _gitlab_changes(root)
        else:
            changes += _github_changes(root, branch, options)
    if not options.dry_run:
        from pipeline_kit.adapters.checkout import write_file

        for change in changes:
            if change.action != "unchanged":
                write_file(root / change.path, change.after, root=root)
    _report(changes, options, out)
    return ExitCode.OK


def _config_change(root: Path, options: InitOptions, remote: str | None) -> FileChange:
    from pipeline_kit.config.loader import CONFIG_NAME

    if _present(root, CONFIG_NAME):
        text = _read(root, CONFIG_NAME)
        return FileChange(CONFIG_NAME, "unchanged", text, text, "kept as it is")
    from pipeline_kit.detect.layers import infer_layers
    from pipeline_kit.dockerfile.platform import parse_platform
    from pipeline_kit.dockerfile.stages import parse_dockerfile
    from pipeline_kit.onboard.config_file import config_text, image_from_remote
    from pipeline_kit.onboard.service import service_facts

    if not _present(root, options.dockerfile):
        raise InputError(
            f"--dockerfile {options.dockerfile}: no such file in {root}.",
            hint="Give the Dockerfile's path relative to the repository root.",
        )
    source = _read(root, options.dockerfile, f"--dockerfile {options.dockerfile}")
    image = options.image or image_from_remote(remote)
    if not image:
        raise InputError(
            "no image repository to publish to: the origin remote is not on github.com or "
            f"gitlab.com ({remote or 'no origin remote'}).",
            hint="Give it: pipeline-kit init --image registry.example.com/team/service",
        )
    from pipeline_kit.onboard.build_context import find_context

    platform = None if options.platform is None else parse_platform(options.platform)
    graph = parse_dockerfile(source, source=options.dockerfile, platform=platform)
    layers = infer_layers(graph, len(graph.stages) - 1)
    service = service_facts(graph, len(graph.stages) - 1)
    context = find_context(root, Path(options.dockerfile).as_posix(), graph)
    text = config_text(
        graph,
        layers,
        image=image,
        dockerfile=options.dockerfile,
        service=service,
        platform=None if platform is None else str(platform),
        context=context,
    )
    notes = [f"context {context.path}: {context.origin}"]
    if len(layers.layers) < 2:
        notes.append(
            "one layer only: `pipeline-kit lint` shows how to split the Dockerfile into stages"
        )
    return FileChange(CONFIG_NAME, "created", "", text, "; ".join(notes))


def _chosen_ci(root: Path, ci: str, remote: str | None) -> list[str]:
    if ci == "none":
        return []
    if ci != "auto":
        return [ci]
    found = [
        name
        for name, present in (
            ("gitlab", _present(root, GITLAB_CI)),
            ("github", (root / ".github").is_dir() and not (root / ".github").is_symlink()),
        )
        if present
    ]
    if found:
        return found
    if remote and "gitlab" in remote:
        return ["gitlab"]
    if remote and "github.com" in remote:
        return ["github"]
    return []


def _gitlab_changes(root: Path) -> list[FileChange]:
    from pipeline_kit.config.loader import CONFIG_NAME
    from pipeline_kit.onboard.gitlab_ci import add_kit

    before = _read(root, GITLAB_CI) if _present(root, GITLAB_CI) else ""
    after = add_kit(before, GITLAB_CI, {"config": CONFIG_NAME})
    if after is None:
        return [FileChange(GITLAB_CI, "unchanged", before, before, "already includes the template")]
    return [FileChange(GITLAB_CI, "updated" if before else "created", before, after)]


def _github_changes(root: Path, default_branch: str, options: InitOptions) -> list[FileChange]:
    from pipeline_kit.onboard.github_ci import caller_workflows, kit_pin

    changes = []
    for path, text in caller_workflows(default_branch, kit_pin(options.kit_ref)).items():
        if _present(root, path):
            kept = _read(root, path)
            changes.append(FileChange(path, "unchanged", kept, kept, "kept as it is"))
        else:
            changes.append(FileChange(path, "created", "", text))
    return changes


def _present(root: Path, rel: str) -> bool:
    """Whether ``rel`` is there, a dangling symlink included (init never writes through it)."""
    path = root / rel
    return path.exists() or path.is_symlink()


def _read(root: Path, rel: str, what: str | None = None) -> str:
    """A file of the repository, read only where it resolves inside it."""
    from pipeline_kit.adapters.checkout import read_text

    return read_text(root, rel, what or rel)


def _report(changes: list[FileChange], options: InitOptions, out: TextIO) -> None:
    if options.format == "json":
        document = {
            "dry_run": options.dry_run,
            "files": [
                {"path": c.path, "action": c.action, **({"note": c.note} if c.note else {})}
                for c in changes
            ],
        }
        out.write(json.dumps(document, indent=2) + "\n")
        return
    for change in changes:
        pending = options.dry_run and change.action != "unchanged"
        verb = f"would be {change.action}" if pending else change.action
        out.write(f"{change.path}: {verb}" + (f" ({change.note})" if change.note else "") + "\n")
        if options.dry_run and change.action != "unchanged":
            out.writelines(
                difflib.unified_diff(
                    change.before.splitlines(keepends=True),
                    change.after.splitlines(keepends=True),
                    fromfile=f"a/{change.path}",
                    tofile=f"b/{change.path}",
                )
            )
    if not options.dry_run and any(c.action != "unchanged" for c in changes):
        out.write("next: `pipeline-kit config show`, `pipeline-kit lint`, then commit the files\n")

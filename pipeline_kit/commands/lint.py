"""``pipeline-kit lint``: the Dockerfile doctor for model-serving images."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from pipeline_kit.dockerfile.dockerignore import DockerIgnore, ignore_file_candidates
from pipeline_kit.errors import ExitCode, InputError
from pipeline_kit.lint.model import display_path

if TYPE_CHECKING:
    from pipeline_kit.config.loader import Config
    from pipeline_kit.dockerfile.stages import StageGraph


@dataclass(frozen=True)
class LintOptions:
    config_path: Path | None
    cwd: Path
    dockerfile: Path | None = None  # overrides the config's dockerfile
    format: str = "text"  # "text" | "json" | "github" | "gitlab"
    output: Path | None = None  # write the report there instead of to ``out``
    builder: str | None = None  # overrides build.builder (rules that depend on the builder)
    platform: str | None = None  # overrides the config's platform


def run(options: LintOptions, out: TextIO) -> int:
    from pipeline_kit.adapters.checkout import repository_root
    from pipeline_kit.config.loader import load_config
    from pipeline_kit.dockerfile.platform import platform_of
    from pipeline_kit.dockerfile.stages import parse_dockerfile
    from pipeline_kit.lint.doctor import diagnose, enabled_rules
    from pipeline_kit.lint.model import LintInput, Severity
    from pipeline_kit.report.lint import RENDERERS

    render = RENDERERS.get(options.format)
    if render is None:
        raise InputError(
            f"--format {options.format}: unknown report format.",
            hint=f"Choose one of {', '.join(RENDERERS)}.",
        )
    config = load_config(options.config_path, options.cwd).with_platform(options.platform)
    rules = enabled_rules(config)
    if options.dockerfile is not None:
        dockerfile = options.cwd / options.dockerfile
    else:
        dockerfile = config.dockerfile_path
    root = repository_root(dockerfile) or options.cwd
    name = display_path(dockerfile, root)
    text = _read_dockerfile(dockerfile, root, name, config.where("dockerfile"), options)
    graph = parse_dockerfile(
        text, source=name, build_args=config.build_args, platform=platform_of(config)
    )
    context = _confine(root, config.context_path, f"{config.where('context')}: context")
    if not context.is_dir():
        raise InputError(
            f"{config.where('context')}: context: {display_path(context, root)} is not a "
            "directory.",
            hint="Set `context` to the build context directory, relative to the config file.",
        )
    ignore, ignore_file = read_dockerignore(dockerfile, context, root)
    _check_sources(graph, graph.target(config.target).index, context, ignore, name, root)
    builder = options.builder or str(config.section("build").get("builder", "auto"))
    code_stage, code_line = _code_layer(graph, config) if builder == "buildkit" else (None, None)
    lint = LintInput(
        graph=graph,
        target=graph.target(config.target),
        dockerfile=dockerfile,
        context=context,
        ignore=ignore,
        ignore_file=ignore_file,
        max_file_mb=config.lint_max_file_mb,
        display_root=root,
        builder=builder,
        code_stage=code_stage,
        code_line=code_line,
    )
    findings = diagnose(lint, rules)
    report = render(findings)
    if options.output is not None:
        from pipeline_kit.adapters.checkout import write_file

        write_file(options.cwd / options.output, report, root=options.cwd)
    else:
        out.write(report)
    failed = any(f.severity is Severity.ERROR for f in findings)
    return ExitCode.VERDICT if failed else ExitCode.OK


def _check_sources(
    graph: StageGraph, target: int, context: Path, ignore: DockerIgnore, name: str, root: Path
) -> None:
    """Stop on a COPY/ADD source that takes nothing, as BuildKit would."""
    from pipeline_kit.detect.sources import unmatched_error
    from pipeline_kit.lint.context_files import ContextFiles
    from pipeline_kit.lint.unmatched import unmatched_source

    found = unmatched_source(graph, target, ContextFiles(context, ignore))
    if found is not None:
        where = f"the build context {display_path(context, root)} in the working tree"
        raise unmatched_error(
            found[0], found[1], dockerfile=name, where=where, ignore_file=ignore.source
        )


def _code_layer(graph: StageGraph, config: Config) -> tuple[int, int | None]:
    """The stage of the code layer (configured or inferred), else the target; and the line
    its range starts at in that stage (None: the whole stage is code)."""
    from pipeline_kit.detect.layers import chain_instructions, layers_for

    layers, target = layers_for(graph, config)
    code = next((layer for layer in layers.layers if layer.name == "code"), None)
    if code is None:
        return target, None
    steps = chain_instructions(graph, target)
    if code.steps is None or code.steps.start >= len(steps):
        return code.stage, None
    return code.stage, steps[code.steps.start][1].line


def _read_dockerfile(
    path: Path, root: Path, name: str, config_where: str, options: LintOptions
) -> str:
    try:
        return _read_inside(root, path, name)
    except FileNotFoundError:
        if options.dockerfile is not None:
            hint = "Give the path of a Dockerfile, relative to the working directory."
        else:
            hint = f"Set `dockerfile` ({config_where}) to your Dockerfile, or pass its path."
        raise InputError(f"{name}: no such Dockerfile.", hint=hint) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{name}: cannot read the Dockerfile ({exc}).") from None


def _read_inside(root: Path, path: Path, what: str) -> str:
    return _confine(root, path, what).read_text(encoding="utf-8")


def _confine(root: Path, path: Path, what: str) -> Path:
    """``path`` resolved inside ``root`` (or, for a path given outside the repository,
    inside its own directory): symlinks that leave are refused."""
    from pipeline_kit.adapters.checkout import inside

    absolute = Path(os.path.abspath(path))
    base = root if absolute.is_relative_to(os.path.abspath(root)) else absolute.parent
    return inside(base, absolute, what)


def read_dockerignore(
    dockerfile: Path, context: Path, root: Path
) -> tuple[DockerIgnore, Path | None]:
    """BuildKit's ignore file: ``<Dockerfile>.dockerignore`` beside it, else the context's."""
    for candidate in ignore_file_candidates(dockerfile, context):
        try:
            text = _read_inside(root, Path(candidate), str(candidate))
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            shown = display_path(Path(candidate), root)
            raise InputError(f"{shown}: cannot read it ({exc}).") from None
        return DockerIgnore.parse(text, source=display_path(Path(candidate), root)), Path(candidate)
    return DockerIgnore.empty(), None

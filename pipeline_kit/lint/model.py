"""What the rules read (``LintInput``) and what the doctor reports (``Finding``)."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from pipeline_kit.dockerfile.dockerignore import DockerIgnore
from pipeline_kit.dockerfile.stages import Stage, StageGraph
from pipeline_kit.lint.context_files import ContextFiles


class Severity(enum.Enum):
    ERROR = "error"  # fails the lint step
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Hit:
    """One problem a check found; the doctor turns it into a Finding of its rule."""

    path: Path  # the file on disk the line is in (the Dockerfile or a requirements file)
    line: int
    message: str
    fix: str | None = None  # a sharper fix than the rule's general one, when the check knows it
    stage: int | None = None  # the stage it is about; None: the stage holding ``line``


@dataclass(frozen=True)
class Finding:
    rule: str  # PK001
    name: str  # weights-in-image
    severity: Severity
    path: str  # relative to the repository root (or the working directory)
    line: int
    message: str
    fix: str
    targets: tuple[str, ...] = ()  # the final stages built on the stage the finding is in

    @property
    def title(self) -> str:
        return f"{self.rule} {self.name}"

    def sort_key(self) -> tuple[str, int, str, str]:
        return (self.path, self.line, self.rule, self.message)

    def to_json(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "name": self.name,
            "severity": self.severity.value,
            "path": self.path,
            "line": self.line,
            "message": self.message,
            "fix": self.fix,
            "targets": list(self.targets),
        }


@dataclass(frozen=True)
class LintInput:
    """A parsed Dockerfile with the build context and .dockerignore that go with it."""

    graph: StageGraph
    target: Stage
    dockerfile: Path
    context: Path
    ignore: DockerIgnore
    ignore_file: Path | None  # None when the context has no .dockerignore at all
    max_file_mb: float
    display_root: Path  # findings name files relative to this directory
    builder: str | None = None  # the builder that will build it, when known (build.builder)
    code_stage: int | None = None  # the stage of the code layer (rules that care about it)
    code_line: int | None = None  # where the code layer starts in it (None: the whole stage)

    @property
    def stages(self) -> tuple[Stage, ...]:
        """Every stage: one built only for another target (a dev or test image) ships too."""
        return self.graph.stages

    @cached_property
    def final_stages(self) -> tuple[Stage, ...]:
        """The stages no other stage builds on: what ``--target`` names in practice."""
        used = {dep for stage in self.graph.stages for dep in stage.depends_on()}
        return tuple(s for s in self.graph.stages if s.index not in used)

    @cached_property
    def image_stages(self) -> tuple[Stage, ...]:
        """The stages whose layers a final image is made of: the FROM chains of the final
        stages. A builder stage that others only COPY --from ships what they copy, not its
        layers."""
        chained = {s.index for final in self.final_stages for s in self.chain(final)}
        return tuple(s for s in self.graph.stages if s.index in chained)

    def targets_of(self, index: int) -> tuple[str, ...]:
        """The final stages whose build runs stage ``index``."""
        return tuple(
            final.label for final in self.final_stages if index in self.graph.upstream(final.index)
        )

    def stage_at(self, line: int) -> Stage | None:
        """The stage whose instructions span Dockerfile line ``line``."""
        found = None
        for stage in self.graph.stages:
            if stage.line <= line:
                found = stage
        return found

    @cached_property
    def files(self) -> ContextFiles:
        return ContextFiles(self.context, self.ignore)

    def chain(self, stage: Stage) -> list[Stage]:
        """``stage`` and the stages it is built FROM, the first base first."""
        chain = [stage]
        while chain[-1].parent is not None:
            chain.append(self.graph.stages[chain[-1].parent])
        return chain[::-1]

    def context_file(self, path: str) -> Path | None:
        """Where a context path is on disk (None: a symlink on it leaves the context)."""
        return self.files.disk(path)

    def display(self, path: Path) -> str:
        return display_path(path, self.display_root)


def display_path(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with forward slashes, as CI annotations want it."""
    relative = os.path.relpath(path.resolve(), root.resolve())
    return Path(relative).as_posix()

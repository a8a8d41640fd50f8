"""One table per family of implementations (builders, preview providers, smoke protocols,
strategies): the CLI's choices and the schema's enums are that table's names, each
implementation answers to its name, and the docs describe every name."""

from __future__ import annotations

from typing import Any

import click
import pytest

from pipeline_kit import cli
from pipeline_kit.build import STRATEGIES
from pipeline_kit.build.builders import BUILDERS
from pipeline_kit.catalog import Catalog
from pipeline_kit.config.loader import schema
from pipeline_kit.errors import InputError
from pipeline_kit.preview import PROVIDERS
from pipeline_kit.smoke import PROTOCOLS
from tests.support.docs import doc


def _choices(command: click.Command, name: str) -> tuple[str, ...]:
    (option,) = [p for p in command.params if p.name == name]
    assert isinstance(option.type, click.Choice)
    return tuple(option.type.choices)


def _enum(*path: str) -> tuple[str, ...]:
    node: Any = schema()
    for part in path:
        node = node["properties"][part]
    return tuple(node["enum"])


FAMILIES = [
    # (choices, the CLI options that offer them, the schema key that takes them)
    (BUILDERS.choices, [(cli.build, "builder"), (cli.lint, "builder")], ("build", "builder")),
    (STRATEGIES, [(cli.build, "strategy")], ("build", "strategy")),
    (PROVIDERS.choices, [(cli.preview_up, "provider"), (cli.preview_run, "provider")],
     ("preview", "provider")),
    (PROTOCOLS.choices, [(cli.smoke, "protocol"), (cli.preview_run, "protocol")],
     ("smoke", "protocol")),
]  # fmt: skip


@pytest.mark.parametrize(("choices", "options", "key"), FAMILIES, ids=lambda v: str(v)[:20])
def test_the_cli_and_the_schema_offer_the_catalog(
    choices: tuple[str, ...], options: list[tuple[click.Command, str]], key: tuple[str, ...]
) -> None:
    for command, name in options:
        assert _choices(command, name) == choices, (command.name, name)
    assert _enum(*key) == choices


@pytest.mark.parametrize("catalog", [BUILDERS, PROVIDERS, PROTOCOLS], ids=lambda c: c.family)
def test_each_implementation_answers_to_its_name(catalog: Catalog[Any]) -> None:
    made = dict(catalog.items())
    assert list(made) == list(catalog.names)
    assert all(implementation.name == name for name, implementation in made.items())


def test_an_unknown_name_names_the_input_and_the_choices() -> None:
    with pytest.raises(InputError, match=r"--builder docker: unknown builder.*auto, kaniko"):
        BUILDERS.get("docker", given_as="--builder")
    assert PROVIDERS.get("nowhere", None) is None
    catalog: Catalog[object] = Catalog("thing", {"a": "builtins:object"})
    assert isinstance(catalog["a"], object) and "b" not in catalog
    with pytest.raises(KeyError):
        catalog["b"] = object()


def _first_column(text: str, header: str) -> list[str]:
    """The first cells (unquoted) of the Markdown table whose header row starts ``header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(line.split("|")[1].strip().strip("`"))
    return rows


@pytest.mark.parametrize(
    ("choices", "key"),
    [(BUILDERS.choices, "build.builder"), (STRATEGIES, "build.strategy"),
     (PROVIDERS.choices, "preview.provider"), (PROTOCOLS.choices, "smoke.protocol")],
    ids=lambda v: str(v)[:20],
)  # fmt: skip
def test_the_config_docs_offer_the_catalog(choices: tuple[str, ...], key: str) -> None:
    row = next(
        line
        for line in doc("docs/configuration.md").splitlines()
        if line.startswith(f"| `{key}` |")
    )
    assert [name for name in choices if f"`{name}`" not in row] == []


def test_the_command_docs_describe_each_provider_and_protocol() -> None:
    commands = doc("docs/commands.md")
    assert _first_column(commands, "| provider |") == list(PROVIDERS.names)
    assert _first_column(commands, "| protocol |") == list(PROTOCOLS.names)


CATALOGS = {
    "BUILDERS": BUILDERS.choices,
    "PROVIDERS": PROVIDERS.choices,
    "PROTOCOLS": PROTOCOLS.choices,
    "STRATEGIES": STRATEGIES,
}


@pytest.mark.parametrize("name", CATALOGS)
def test_the_architecture_docs_list_each_catalog(name: str) -> None:
    row = next(
        line
        for line in doc("docs/architecture.md").splitlines()
        if line.startswith(f"| `{name}` |")
    )
    assert [choice for choice in CATALOGS[name] if f"`{choice}`" not in row] == []

"""One table per family of implementations (builders, preview providers, smoke protocols,
strategies): the CLI's choices and the schema's enums are that table's names, and each
implementation answers to its name."""

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

"""GitLab CI YAML as GitLab reads it: ``!reference [job, key]`` is GitLab's own tag.

PyYAML's safe loader refuses unknown tags; this one keeps a reference as the tagged sequence
(``Reference``) so a test can both load a pipeline and see where it reuses another job's keys.
"""

from __future__ import annotations

from typing import Any

import yaml


class Reference(list[str]):
    """``!reference [job, key, ...]``: the path of the reused value."""


class _Loader(yaml.SafeLoader):
    pass


def _reference(loader: yaml.SafeLoader, node: yaml.Node) -> Reference:
    assert isinstance(node, yaml.SequenceNode), "GitLab's !reference takes a sequence"
    return Reference(loader.construct_sequence(node))


_Loader.add_constructor("!reference", _reference)


def load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # a SafeLoader with one more tag

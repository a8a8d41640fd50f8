"""The package's layers, lowest first: a module may import its own layer and those below it,
never one above (tests/unit/test_architecture.py enforces it; docs/architecture.md lists it)."""

from __future__ import annotations

LAYERS: tuple[tuple[str, ...], ...] = (
    ("pipeline_kit", "errors", "catalog"),
    ("adapters",),
    ("ci",),
    ("config",),
    ("dockerfile",),
    ("detect",),
    ("append",),
    ("rebase",),
    ("build",),
    ("publish",),
    ("attest",),
    ("render",),
    ("preview",),
    ("smoke",),
    ("deploy",),
    ("lint",),
    ("onboard",),
    ("report",),
    ("commands",),
    ("cli", "__main__", "github_action"),
)

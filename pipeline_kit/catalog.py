"""The implementations of one family (builders, preview providers, smoke protocols), by name.

A catalog knows its names without importing any implementation, so the CLI can offer them as
choices at start-up for nothing; ``get`` imports the one a command asks for, once. The CLI's
choices, the schema's enums and the docs all come from the catalog (tests/unit tie them).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar, cast, overload

from pipeline_kit.errors import InputError

T = TypeVar("T")
D = TypeVar("D")
_UNKNOWN = object()


class Catalog(Generic[T]):
    def __init__(
        self, family: str, entries: Mapping[str, str], *, extra: tuple[str, ...] = ()
    ) -> None:
        """``entries``: name -> ``"module:Class"`` (made with no arguments on first use);
        ``extra``: further choices that name no implementation (``auto``)."""
        self.family = family
        self._entries = dict(entries)
        self.extra = extra
        self._made: dict[str, T] = {}

    @property
    def names(self) -> tuple[str, ...]:
        """The implementations' names, in the catalog's order."""
        return tuple(self._entries)

    @property
    def choices(self) -> tuple[str, ...]:
        """What a user may write: the extra choices first, then the names."""
        return (*self.extra, *self._entries)

    @overload
    def get(self, name: str, *, given_as: str | None = None) -> T: ...

    @overload
    def get(self, name: str, default: D, *, given_as: str | None = None) -> T | D: ...

    def get(self, name: str, default: object = _UNKNOWN, *, given_as: str | None = None) -> object:
        """The implementation called ``name``. An unknown name returns ``default`` when one is
        given, else is an error naming the input (``given_as``, e.g. ``--builder``) and the
        choices."""
        made = self._made.get(name)
        if made is not None:
            return made
        target = self._entries.get(name)
        if target is None:
            if default is not _UNKNOWN:
                return default
            raise InputError(
                f"{given_as or self.family} {name}: unknown {self.family}.",
                hint=f"Choose one of: {', '.join(self.choices)}.",
            )
        module, _, attribute = target.partition(":")
        made = cast(T, getattr(importlib.import_module(module), attribute)())
        self._made[name] = made
        return made

    def __getitem__(self, name: str) -> T:
        if name not in self._entries:
            raise KeyError(name)
        return self.get(name)

    def __setitem__(self, name: str, implementation: T) -> None:
        """Put ``implementation`` in the place of ``name`` (a test's stand-in, say)."""
        if name not in self._entries:
            raise KeyError(name)
        self._made[name] = implementation

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def items(self) -> Iterator[tuple[str, T]]:
        """Every implementation, made (imports them all: for tests and docs, not start-up)."""
        return ((name, self.get(name)) for name in self._entries)

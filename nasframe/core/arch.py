"""Architectures: immutable, hashable assignments of an option to every choice."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any


class Arch(Mapping[str, str]):
    """An immutable, hashable mapping ``choice name -> option name``.

    The order of the items is the order in which they were given (a space builds archs in its choice
    order), but equality and hashing ignore order. ``Arch.from_json(arch.to_json()) == arch``.
    """

    __slots__ = ("_items", "_lookup", "_hash")

    def __init__(self, assignment: Mapping[str, str] | None = None, **options: str) -> None:
        items = dict(assignment or {})
        items.update(options)
        for key, value in items.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(f"Arch maps choice names to option names (str -> str), got {key!r}: {value!r}")
        self._items: tuple[tuple[str, str], ...] = tuple(items.items())
        self._lookup: dict[str, str] = items
        self._hash = hash(frozenset(self._items))

    def __getitem__(self, choice: str) -> str:
        return self._lookup[choice]

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Arch):
            return self._hash == other._hash and self._lookup == other._lookup
        return NotImplemented

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self._items)
        return f"Arch({inner})"

    def replace(self, **changes: str) -> Arch:
        """A copy with some choices set to other options."""
        unknown = set(changes) - set(self._lookup)
        if unknown:
            raise KeyError(f"Arch has no choice(s) {sorted(unknown)}")
        return Arch({k: changes.get(k, v) for k, v in self._items})

    def to_dict(self) -> dict[str, str]:
        return dict(self._items)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str | Mapping[str, Any]) -> Arch:
        data = json.loads(text) if isinstance(text, str) else text
        if not isinstance(data, Mapping):
            raise ValueError(f"an Arch in JSON is an object of choice -> option, got {type(data).__name__}")
        return cls({str(k): str(v) for k, v in data.items()})

"""Encoding archs as rows of 0/1 table terms, so a population is one matrix.

A search space's choices define the columns: one column per ``(choice, option)`` pair, in the space's choice
order and each choice's option order (for NAS-Bench-201: 6 edges x 5 ops = 30 columns). An arch's row has a 1 in
the column of each choice's chosen option and 0 elsewhere. An additive latency model is then a weight per column
plus an intercept, and the predictions for a whole population are one matrix-vector product.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from nasframe.core.choice import Choice
from nasframe.errors import InvalidArchError


ArchMap = Callable[[Mapping[str, str]], Mapping[str, str]]


class TermEncoder:
    """Columns ``(choice, option)`` of the choices given, and the 0/1 encoding of archs over them.

    ``arch_map`` (optional) turns an arch of the search space into an arch over these choices first: a space
    whose latency is not additive in its own choices declares *table choices* that are (MobileNet: one choice
    per block position with options ``skipped`` or ``k<kernel>_e<expand>``, since a block's cost depends on its
    kernel and expand ratio together, and on whether the stage depth reaches it)."""

    def __init__(self, choices: Sequence[Choice], arch_map: ArchMap | None = None) -> None:
        self.arch_map = arch_map
        self.choices: tuple[Choice, ...] = tuple(choices)
        if not self.choices:
            raise InvalidArchError("a term encoder needs at least one choice")
        self.columns: tuple[tuple[str, str], ...] = tuple((c.name, o) for c in self.choices for o in c.options)
        self.offsets = np.cumsum([0] + [len(c) for c in self.choices[:-1]]).astype(np.int64)
        self._option_index = [{o: k for k, o in enumerate(c.options)} for c in self.choices]
        self._column_index = {col: k for k, col in enumerate(self.columns)}

    @property
    def num_terms(self) -> int:
        return len(self.columns)

    def column(self, choice: str, option: str) -> int:
        try:
            return self._column_index[(choice, option)]
        except KeyError:
            raise InvalidArchError(f"no table term for option '{option}' of choice '{choice}'") from None

    def option_indices(self, archs: Iterable[Mapping[str, str]]) -> np.ndarray:
        """``(n_archs, n_choices)`` int array: the index of each arch's option in each choice."""
        rows = []
        for arch in archs:
            if self.arch_map is not None:
                arch = self.arch_map(arch)
            try:
                rows.append([lookup[arch[c.name]] for c, lookup in zip(self.choices, self._option_index)])
            except KeyError as exc:
                raise InvalidArchError(f"arch {dict(arch)!r} has no valid option for {exc}") from None
        return np.asarray(rows, dtype=np.int64).reshape(len(rows), len(self.choices))

    def from_option_indices(self, indices: np.ndarray) -> np.ndarray:
        """The ``(n_archs, n_terms)`` 0/1 matrix of a population given as option indices (vectorised)."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.ndim != 2 or indices.shape[1] != len(self.choices):
            raise InvalidArchError(f"option indices need shape (n, {len(self.choices)}), got {indices.shape}")
        sizes = np.array([len(c) for c in self.choices])
        if (indices < 0).any() or (indices >= sizes).any():
            raise InvalidArchError("an option index is out of range for its choice")
        matrix = np.zeros((indices.shape[0], self.num_terms), dtype=np.float64)
        rows = np.repeat(np.arange(indices.shape[0]), len(self.choices))
        matrix[rows, (indices + self.offsets).ravel()] = 1.0
        return matrix

    def encode(self, archs: Iterable[Mapping[str, str]]) -> np.ndarray:
        """The ``(n_archs, n_terms)`` 0/1 matrix of a population of archs."""
        return self.from_option_indices(self.option_indices(archs))

    def encode_one(self, arch: Mapping[str, str]) -> np.ndarray:
        """One arch's 0/1 row (column by column; :meth:`encode` is the vectorised form)."""
        row = np.zeros(self.num_terms, dtype=np.float64)
        if self.arch_map is not None:
            arch = self.arch_map(arch)
        for choice in self.choices:
            if choice.name not in arch:
                raise InvalidArchError(f"arch has no option for choice '{choice.name}'")
            row[self.column(choice.name, arch[choice.name])] = 1.0
        return row

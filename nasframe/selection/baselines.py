"""The trivial baselines of a selection: the largest arch and random search on the same budget.

A search result means little alone. Every report puts the pick beside two baselines measured the same way:

* the **largest arch** that meets the run's constraints (most parameters, ``space.count_params``), scored by
  the same evaluator: bigger networks are often better, so a search that cannot beat "take the biggest thing
  allowed" has found nothing (:func:`largest_arch`, :func:`find_largest`);
* **random search** with the same number of evaluations, the same evaluator and the same constraints
  ("Random Search and Reproducibility for Neural Architecture Search", Li & Talwalkar, 2019)
  (:func:`random_baseline`).

:class:`BaselineRow` holds one reported arch and :func:`render_baselines` writes the rows as a markdown section;
:func:`baseline_rows` computes the three rows (pick, largest, random) for a selection result.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Optional

import numpy as np

from nasframe.core.arch import Arch
from nasframe.core.space import SearchSpace
from nasframe.errors import ConfigError, InvalidArchError, NasframeError
from nasframe.markdown import markdown_table
from nasframe.selection.base import Evaluate, SelectionResult, sample_satisfying
from nasframe.selection.constraints import Constraint, ParamBudget, satisfies
from nasframe.selection.random_search import RandomSearch

log = logging.getLogger("nasframe.selection")


# --------------------------------------------------------------------------------------------------------
# The largest arch
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LargestArch:
    """What :func:`find_largest` found: the arch, its parameter count, whether it is provably the largest
    (``exact``: the space's ``largest()`` or an enumeration; a local search's answer is not), how it was found
    (``method``) and how many archs' parameters it counted."""

    arch: Arch
    params: int
    exact: bool
    method: str
    counted: int


class _CountBudgetSpent(Exception):
    """Raised by :class:`_ParamCounter` when the search has counted ``max_counts`` archs."""


class _ParamCounter:
    """Exact parameter counts (``space.count_params``), cached per arch, at most ``max_counts`` of them: each
    count builds a network on the meta device (~35 ms for NAS-Bench-201, ~0.2 s for a graph network).

    ``counts`` holds archs that are valid and meet the constraints (the search counts no others);
    ``rejected`` holds the counts of archs a :class:`ParamBudget` among the constraints turned down, which it
    had to count anyway (it shares them: no arch is counted twice). Both feed :class:`_AdditiveModel`."""

    def __init__(self, space: SearchSpace, constraints: Sequence[Constraint], max_counts: int) -> None:
        self.max_counts = max_counts
        self.budget = next((c for c in constraints if _is_param_budget(c, space)), None)
        self._count: Callable[[Arch], int] = self.budget.params if self.budget is not None else space.count_params
        self.counts: dict[Arch, int] = {}
        self.rejected: dict[Arch, int] = {}

    def __call__(self, arch: Arch) -> int:
        if arch not in self.counts:
            if len(self.counts) >= self.max_counts:
                raise _CountBudgetSpent
            self.counts[arch] = int(self._count(arch))
        return self.counts[arch]

    def note_rejected(self, arch: Arch) -> None:
        """Keep the count of a rejected arch when the parameter budget already paid for it."""
        if self.budget is not None and arch not in self.counts:
            known = self.budget.known(arch)
            if known is not None:
                self.rejected[arch] = known

    def known(self) -> dict[Arch, int]:
        return {**self.rejected, **self.counts}

    def largest(self) -> Arch | None:
        """The arch with the most parameters among those counted (all valid and within the constraints)."""
        return max(self.counts, key=self.counts.__getitem__) if self.counts else None


def _is_param_budget(constraint: Constraint, space: SearchSpace) -> bool:
    """Whether ``constraint`` is a :class:`ParamBudget` counting the networks of ``space`` (same settings)."""
    return isinstance(constraint, ParamBudget) and (
        constraint.space is space or constraint.space.describe() == space.describe())


class _AdditiveModel:
    """A surrogate of the parameter count: ``bias + sum over choices of weight[choice, option]``, fitted by
    least squares to exact counts.

    Cell spaces are additive in this sense (each edge's op brings its own parameters, NAS-Bench-201 and DARTS
    exactly), so a model fitted to the counts of one coordinate-ascent climb (every option of every choice
    tried) predicts every arch in microseconds instead of tens of milliseconds. The search only uses it to
    propose candidates; what it reports is always counted exactly."""

    def __init__(self, space: SearchSpace, data: Mapping[Arch, int]) -> None:
        self.names = [c.name for c in space.choices]
        columns = {(c.name, o): 1 + i for i, (c, o) in enumerate((c, o) for c in space.choices for o in c.options)}
        archs = list(data)
        design = np.zeros((len(archs), 1 + len(columns)))
        design[:, 0] = 1.0
        for row, arch in enumerate(archs):
            for name in self.names:
                design[row, columns[name, arch[name]]] = 1.0
        target = np.array([data[a] for a in archs], dtype=float)
        weights, *_ = np.linalg.lstsq(design, target, rcond=None)  # options never counted get weight 0
        self.bias = float(weights[0])
        self.weights = {key: float(weights[col]) for key, col in columns.items()}
        self.max_error = float(np.abs(design @ weights - target).max()) if archs else 0.0
        self._cache: dict[Arch, float] = {}

    def __call__(self, arch: Arch) -> float:
        if arch not in self._cache:
            self._cache[arch] = self.bias + sum(self.weights[name, arch[name]] for name in self.names)
        return self._cache[arch]


class _PredictedBudget:
    """A :class:`ParamBudget` judged on the surrogate's prediction (for the search on the surrogate)."""

    def __init__(self, model: _AdditiveModel, max_params: int) -> None:
        self.model, self.max_params = model, max_params

    def __call__(self, arch: Arch) -> bool:
        return self.model(arch) <= self.max_params + 0.5

    def describe(self) -> str:
        return f"predicted params <= {self.max_params:,}"


Count = Callable[[Arch], float]


class _Neighbourhood:
    """The moves of the local search in a space, keeping every arch valid.

    Validity verdicts are cached per arch (a DARTS ``validate`` takes ~0.1 ms, and climbs from nearby starts
    see the same archs again). A single-choice change that turns an edge of an :class:`EdgeGroup` on or off
    breaks that group's rule (exactly ``keep`` edges not ``zero_option``), so it is skipped without asking."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.names = [c.name for c in space.choices]
        self.options = {c.name: c.options for c in space.choices}
        self.zero = space.zero_option
        self.groups: dict[str, list[tuple[str, ...]]] = {}
        for group in space.edge_groups():
            for name in group.choices:
                self.groups.setdefault(name, []).append(group.choices)
        self._valid: dict[Arch, Arch | None] = {}

    def valid(self, arch: Arch) -> Arch | None:
        """``arch`` in the space's choice order if it obeys the space's rules (options, topology), else None."""
        if arch not in self._valid:
            try:
                self._valid[arch] = self.space.validate(arch)
            except InvalidArchError:
                self._valid[arch] = None
        return self._valid[arch]

    def moves(self, arch: Arch, name: str) -> Iterator[Arch]:
        """The valid neighbours of ``arch`` that change choice ``name``.

        Every other option of the choice, where the result is still an arch of the space; and in spaces with
        topology rules (:meth:`SearchSpace.edge_groups`: a node keeps exactly ``keep`` incoming edges), the
        moves that keep the arch valid where a single-choice change cannot: the kept edge ``name`` is dropped
        (set to the space's ``zero_option``) and a dropped edge of the same node takes its op instead (any
        other op where the sub-space does not allow that one there). An edge move and an op change, one after
        the other, reach every other assignment of a node's kept edges.
        """
        current, zero, grouped = arch[name], self.zero, name in self.groups
        for option in self.options[name]:
            if option == current or (grouped and (option == zero) != (current == zero)):
                continue
            moved = self.valid(arch.replace(**{name: option}))
            if moved is not None:
                yield moved
        if not grouped or current == zero:
            return
        for group in self.groups[name]:
            for other in group:
                if other == name or arch[other] != zero:
                    continue
                options = self.options[other]
                targets = [current] if current in options else [o for o in options if o != zero]
                for option in targets:
                    moved = self.valid(arch.replace(**{name: zero, other: option}))
                    if moved is not None:
                        yield moved

    def climb(self, start: Arch, constraints: Sequence[Constraint], count: Count,
              on_reject: Callable[[Arch], None] | None = None) -> tuple[Arch, bool]:
        """Coordinate ascent on ``count`` from ``start`` (which meets the constraints): for each choice in
        turn, move to its valid, constraint-meeting neighbour (:meth:`moves`) with the largest count if that
        is larger than the current arch's; sweep the choices until a sweep changes nothing (a local maximum:
        no single move gives a larger arch that meets the constraints). Returns the arch, and whether a
        constraint rejected some neighbour in the last sweep (the constraints bind there: a larger arch may
        need several moves at once). ``on_reject`` sees each rejected neighbour."""
        current, best = start, count(start)
        changed, blocked = True, False
        while changed:
            changed, blocked = False, False
            for name in self.names:
                move, move_count = None, best
                for neighbour in self.moves(current, name):
                    if not satisfies(neighbour, constraints):
                        blocked = True
                        if on_reject is not None:
                            on_reject(neighbour)
                        continue
                    value = count(neighbour)
                    if value > move_count:
                        move, move_count = neighbour, value
                if move is not None:
                    current, best, changed = move, move_count, True
        return current, blocked

    def pair_move(self, arch: Arch, constraints: Sequence[Constraint], count: Count, max_pairs: int) -> Arch | None:
        """The arch two moves away (moves of two different choices) with the largest count above ``arch``'s
        that meets the constraints; None if there is none, or if ``arch`` has so many single moves that their
        pairs could number more than ``max_pairs``. Under a budget this is the trade that no single move makes:
        one choice gives up parameters so that another can take more."""
        limit = int(math.isqrt(2 * max_pairs)) + 1
        singles: dict[str, list[Arch]] = {}
        total = 0
        for name in self.names:
            singles[name] = list(self.moves(arch, name))
            total += len(singles[name])
            if total > limit:
                return None
        best, best_count = None, count(arch)
        for i, first in enumerate(self.names):
            for step in singles[first]:
                for second in self.names[i + 1:]:
                    for neighbour in self.moves(step, second):
                        if not satisfies(neighbour, constraints):
                            continue
                        value = count(neighbour)
                        if value > best_count:
                            best, best_count = neighbour, value
        return best

    def kick(self, arch: Arch, constraints: Sequence[Constraint], rng: np.random.Generator,
             tries: int = 100) -> Arch | None:
        """A random perturbation of ``arch`` through ``space.mutate`` (about three choices changed, within the
        space's rules) that meets the constraints and differs from ``arch``; None if ``tries`` draws find none."""
        prob = min(1.0, 3.0 / max(1, len(self.names)))
        for _ in range(tries):
            mutant = self.space.mutate(arch, rng, prob)
            if mutant != arch and satisfies(mutant, constraints):
                return mutant
        return None

    def iterated_local_search(self, first: Arch, constraints: Sequence[Constraint], count: Count,
                              rng: np.random.Generator, starts: int, kicks: int, max_pairs: int,
                              max_tries: int) -> dict[Arch, float]:
        """Local maxima of ``count`` (a cheap surrogate) under the constraints, with their counts: from
        ``first`` and ``starts - 1`` uniform samples, each a climb plus pair moves (:meth:`climb`,
        :meth:`pair_move`) repeated until no pair helps, then ``kicks`` times a perturbation (:meth:`kick`)
        and the same again, moving on from the larger of the two."""

        def local_search(start: Arch) -> Arch:
            current, _ = self.climb(start, constraints, count)
            while (paired := self.pair_move(current, constraints, count, max_pairs)) is not None:
                current, _ = self.climb(paired, constraints, count)
            return current

        found: dict[Arch, float] = {}
        for index in range(starts):
            local = local_search(first if index == 0 else sample_satisfying(self.space, rng, constraints, max_tries))
            found[local] = count(local)
            for _ in range(kicks):
                kicked = self.kick(local, constraints, rng)
                if kicked is None:
                    break
                climbed = local_search(kicked)
                found[climbed] = count(climbed)
                if found[climbed] > found[local]:
                    local = climbed
        return found


def find_largest(
    space: SearchSpace,
    constraints: Sequence[Constraint] = (),
    seed: int = 0,
    *,
    starts: int = 8,
    kicks: int = 8,
    verify: int = 5,
    rounds: int = 3,
    max_pairs: int = 500,
    exhaustive_limit: int = 128,
    max_counts: int = 2000,
    max_tries: int = 1000,
) -> LargestArch:
    """The arch with the most parameters (``space.count_params``) among those meeting ``constraints``.

    Exact where that is cheap, a documented local search otherwise:

    1. a space whose options are ordered by size (:attr:`SearchSpace.options_ordered_by_size`) has a
       :meth:`~SearchSpace.largest` arch; if it meets the constraints it is the answer (exact, one count);
    2. a space of at most ``exhaustive_limit`` archs is enumerated (exact);
    3. otherwise, coordinate ascent on the exact count from a uniform sample that meets the constraints
       (:meth:`_Neighbourhood.climb`: for each choice try every option, and in spaces with topology rules
       every move of a kept edge to another input of its node; keep the best move that meets the
       constraints; sweep until nothing changes). If no constraint rejected a move of the final sweep, the
       count itself stopped the climb and its arch is the answer: parameter counts are (close to) a sum over
       the choices, and such a sum's unconstrained local maximum is its global one (on NAS-Bench-201 the
       all-``nor_conv_3x3`` cell, from any start);
    4. where the constraints bind (a budget), a larger arch may need trades that no single move makes. The
       counts gathered so far fit an additive surrogate of the count (:class:`_AdditiveModel`), and an
       iterated local search on the surrogate (``starts`` starts, each a climb plus pair moves, then ``kicks``
       random perturbations by ``space.mutate`` and the same again:
       :meth:`_Neighbourhood.iterated_local_search`) proposes local maxima; parameter budgets are judged on
       the surrogate there, other constraints as given. The ``verify`` largest proposals are counted exactly
       and checked against the real constraints, and a last exact climb starts from the best of them. Where
       a proposal's exact count or budget verdict differs from the surrogate's, the surrogate is refitted
       with the new counts and the search repeated, at most ``rounds`` times.

    Every arch is built by the space's own moves and checked with ``space.validate`` (``space.mutate`` keeps
    them valid), and the answer is the largest arch counted exactly that met the real constraints: a valid
    arch of the space. At most ``max_counts`` archs are counted; the search then stops with a warning and
    returns the largest so far. ``max_tries`` bounds the rejection sampling of each start.
    """
    if starts < 1 or kicks < 0 or verify < 1 or rounds < 1 or max_counts < 1 or max_pairs < 0:
        raise ConfigError("largest arch: starts, verify, rounds and max_counts must be >= 1, kicks and max_pairs >= 0")
    if space.options_ordered_by_size:
        largest = space.largest()
        if satisfies(largest, constraints):
            return LargestArch(largest, space.count_params(largest), True, "largest()", 1)
    count = _ParamCounter(space, constraints, max_counts)
    if space.size <= min(exhaustive_limit, max_counts):
        return _enumerate_largest(space, constraints, count)

    rng = np.random.default_rng(seed)
    moves = _Neighbourhood(space)
    method = "coordinate ascent"
    try:
        start = sample_satisfying(space, rng, constraints, max_tries)
        local, binding = moves.climb(start, constraints, count, count.note_rejected)
        for _ in range(rounds if binding else 0):
            method = "coordinate ascent, then iterated local search on an additive surrogate"
            model = _AdditiveModel(space, count.known())
            predicted = [_PredictedBudget(model, c.max_params) if _is_param_budget(c, space) else c
                         for c in constraints]
            found = moves.iterated_local_search(local, predicted, model, rng, starts, kicks, max_pairs, max_tries)
            surprised = model.max_error > 0.5
            for arch in sorted(found, key=found.__getitem__, reverse=True)[:verify]:
                if satisfies(arch, constraints):
                    surprised |= abs(count(arch) - found[arch]) > 0.5
                else:
                    surprised = True
                    count.note_rejected(arch)
            best = count.largest()
            local, _ = moves.climb(local if best is None else best, constraints, count, count.note_rejected)
            if not surprised:
                break
    except _CountBudgetSpent:
        log.warning("largest arch: stopped after counting the parameters of %d archs (max_counts); the "
                    "reported largest arch is the largest found so far", max_counts)
    best = count.largest()
    if best is None:
        raise NasframeError("largest arch: no arch meeting the constraints was counted")
    return LargestArch(best, count(best), False, method, len(count.counts))


def _enumerate_largest(space: SearchSpace, constraints: Sequence[Constraint], count: _ParamCounter) -> LargestArch:
    """The exact maximum over every arch of a small space (first in enumeration order on ties)."""
    best, best_params = None, -1
    for arch in space.enumerate():
        if not satisfies(arch, constraints):
            continue
        params = count(arch)
        if params > best_params:
            best, best_params = arch, params
    if best is None:
        described = "; ".join(c.describe() for c in constraints)
        raise NasframeError(f"largest arch: no arch of the space meets the constraints ({described})")
    return LargestArch(best, best_params, True, "enumeration", len(count.counts))


def largest_arch(space: SearchSpace, constraints: Sequence[Constraint] = (), seed: int = 0) -> Arch:
    """The arch with the most parameters among those meeting ``constraints``: :func:`find_largest` with its
    default search settings (exact when the space's ``largest()`` qualifies or the space is small)."""
    return find_largest(space, constraints, seed).arch


# --------------------------------------------------------------------------------------------------------
# Random search on the same budget
# --------------------------------------------------------------------------------------------------------
def random_baseline(
    space: SearchSpace,
    evaluate: Evaluate,
    num_evaluations: int,
    constraints: Sequence[Constraint] = (),
    seed: int = 0,
) -> SelectionResult:
    """Random search with ``num_evaluations`` evaluations of ``evaluate`` (distinct uniform samples meeting
    ``constraints``): :class:`~nasframe.selection.random_search.RandomSearch` run as any selector is, so it
    spends exactly the budget it is given, through the same evaluator. Give it the pick's number of
    evaluations (``len(result.history)``). Fewer are made only when the constraints leave fewer distinct archs
    than that within rejection sampling's reach; ``details`` records the budget and the evaluations made."""
    if num_evaluations < 1:
        raise ConfigError(f"random baseline: num_evaluations must be >= 1, got {num_evaluations}")
    result = RandomSearch(num_samples=int(num_evaluations)).select(
        space, evaluate, constraints=constraints, seed=seed, max_queries=int(num_evaluations)
    )
    result.details.update({"baseline": "random search", "budget": int(num_evaluations),
                           "evaluations": len(result.history)})
    return result


# --------------------------------------------------------------------------------------------------------
# Report rows
# --------------------------------------------------------------------------------------------------------
RANDOM_SEARCH = "random search"  # the kind of the random-search row


def counted_label(kind: str, evaluations: int | str) -> str:
    """A baseline's label with its number of evaluations ("random search, 200 evaluations"); ``evaluations`` may
    be a range over runs ("193-200")."""
    return f"{kind}, {evaluations} evaluations"


@dataclass
class BaselineRow:
    """One reported arch: how it was found (``label``), its native string, its score from the run's
    evaluator, its parameters, and where known the test accuracy of its subnet and the benchmark's (true)
    accuracy. ``kind`` names the baseline without run-specific numbers ("selected", "largest", "random search",
    an evaluator's own) and ``evaluations`` is the number of evaluations it made, where it searched: rows of many
    runs are grouped by ``kind``, never by parsing ``label``."""

    label: str
    native: str
    score: float
    params: int
    test_accuracy: Optional[float] = None
    true_accuracy: Optional[float] = None
    kind: str = ""
    evaluations: Optional[int] = None

    def __post_init__(self) -> None:
        self.kind = self.kind or self.label

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def baseline_rows(
    space: SearchSpace,
    evaluate: Evaluate,
    selected: SelectionResult,
    constraints: Sequence[Constraint] = (),
    seed: int = 0,
    *,
    test_accuracy: Callable[[Arch], float] | None = None,
    true_accuracy: Callable[[Arch], float | None] | None = None,
    selected_label: str = "selected",
) -> list[BaselineRow]:
    """The rows of a selection and its baselines, all scored by ``evaluate``: the pick (its score from the
    selection), the largest arch meeting ``constraints`` (scored by one more call of ``evaluate``) and random
    search with the pick's number of evaluations. ``test_accuracy(arch)`` and ``true_accuracy(arch)`` (e.g. a
    benchmark lookup) fill the optional columns."""
    evaluations = max(1, len(selected.history))
    largest = find_largest(space, constraints, seed).arch
    randomly = random_baseline(space, evaluate, evaluations, constraints, seed)
    made = len(randomly.history)
    found = [(selected_label, "selected", None, selected.arch, selected.score),
             ("largest arch meeting the constraints" if constraints else "largest arch", "largest", None, largest,
              float(evaluate(largest))),
             (counted_label(RANDOM_SEARCH, made), RANDOM_SEARCH, made, randomly.arch, randomly.score)]
    return [
        BaselineRow(label, space.format(arch), float(score), space.count_params(arch),
                    None if test_accuracy is None else float(test_accuracy(arch)),
                    None if true_accuracy is None else true_accuracy(arch), kind, evaluations)
        for label, kind, evaluations, arch, score in found
    ]


def _number(value: float | None, percent: bool) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}%" if percent else f"{value:.6g}"


def render_baselines(
    rows: Sequence[BaselineRow],
    constraints: Sequence[Constraint] = (),
    *,
    heading: str = "## Beside the trivial baselines",
    truth_metric: str | None = None,
) -> str:
    """A markdown section with one table row per arch (pass the pick first, then the largest arch and random
    search), saying that all were measured the same way. The test and true accuracy columns appear only
    when some row has a value."""
    has_test = any(r.test_accuracy is not None for r in rows)
    has_true = any(r.true_accuracy is not None for r in rows)
    header = ["found by", "arch", "evaluator score", "parameters"]
    header += ["test accuracy"] if has_test else []
    header += [f"true accuracy ({truth_metric})" if truth_metric else "true accuracy"] if has_true else []
    where = f" and constraints ({'; '.join(c.describe() for c in constraints)})" if constraints else ""
    lines = [
        heading, "",
        f"Every row is scored by the same evaluator{where}; random search evaluates as many archs as the "
        "selection did.", "",
    ]
    table = []
    for r in rows:  # markdown_table escapes the "|" of NAS-Bench-201 strings, also inside the code span
        cells = [r.label, f"`{r.native}`", _number(r.score, False), f"{r.params:,}"]
        cells += [_number(r.test_accuracy, True)] if has_test else []
        cells += [_number(r.true_accuracy, True)] if has_true else []
        table.append(cells)
    lines.append(markdown_table(header, table, "ll" + "r" * (len(header) - 2)))
    return "\n".join(lines) + "\n"

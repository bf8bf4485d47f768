"""Evolutionary and random selectors on problems whose answer is known by construction."""

from __future__ import annotations

import pytest

from nasframe.core.arch import Arch
from nasframe.errors import ConfigError, NasframeError
from nasframe.selection import ParamBudget, build_selector
from nasframe.selection.evolutionary import EvolutionarySearch
from nasframe.selection.random_search import RandomSearch
from search_spaces.nb201 import NB201Space

TARGET = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"


@pytest.fixture(scope="module")
def space():
    return NB201Space()


def matches(target: Arch):
    """Score = number of choices that agree with the target: the optimum is the target, uniquely."""
    return lambda arch: float(sum(arch[k] == v for k, v in target.items()))


def test_evolution_finds_the_known_optimum_with_few_queries(space):
    target = space.parse(TARGET)
    result = EvolutionarySearch(population_size=20, generations=15).select(space, matches(target), seed=0)
    assert result.arch == target and result.score == 6
    queries = [r.query for r in result.history]
    assert queries == list(range(1, len(queries) + 1)) and len(queries) <= 20 * 15
    assert len({r.arch for r in result.history}) == len(result.history)  # nothing evaluated twice
    curve = result.best_so_far()
    assert curve == sorted(curve) and curve[-1] == 6


def test_evolution_beats_random_search_at_equal_budget(space):
    target = space.parse(TARGET)
    evo = [EvolutionarySearch(population_size=10, generations=10).select(space, matches(target), seed=s).score for s in range(5)]
    rnd = [RandomSearch(num_samples=100).select(space, matches(target), seed=s).score for s in range(5)]
    assert sum(evo) > sum(rnd)


def test_constraints_are_never_violated(space):
    budget = ParamBudget(space, max_params=500_000)
    big = space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    assert not budget(big)
    score = lambda arch: float(sum(op == "nor_conv_3x3" for op in arch.values()))  # prefers the biggest archs
    for selector in (EvolutionarySearch(population_size=10, generations=5), RandomSearch(num_samples=40)):
        result = selector.select(space, score, constraints=[budget], seed=0)
        assert all(budget(r.arch) for r in result.history)
        assert budget.params(result.arch) <= 500_000


def test_unsatisfiable_constraints_fail_clearly(space):
    never = ParamBudget(space, max_params=10)
    with pytest.raises(NasframeError, match=r"params <= 10"):
        RandomSearch(num_samples=5, max_tries=20).select(space, lambda a: 0.0, constraints=[never])


def test_random_search_evaluates_distinct_archs_and_keeps_the_best(space):
    target = space.parse(TARGET)
    result = RandomSearch(num_samples=50).select(space, matches(target), seed=1)
    assert len(result.history) == 50 == len({r.arch for r in result.history})
    assert result.score == max(r.score for r in result.history)


def test_selectors_are_deterministic_given_a_seed(space):
    target = space.parse(TARGET)
    a = EvolutionarySearch(population_size=8, generations=4).select(space, matches(target), seed=7)
    b = EvolutionarySearch(population_size=8, generations=4).select(space, matches(target), seed=7)
    assert [r.arch for r in a.history] == [r.arch for r in b.history]


def test_build_selector_checks_names_and_keys():
    assert isinstance(build_selector({"name": "random", "num_samples": 3}), RandomSearch)
    with pytest.raises(NasframeError, match="unknown selector 'genetic'"):
        build_selector({"name": "genetic"})
    with pytest.raises(ConfigError, match=r"selector\.population: unknown key"):
        build_selector({"name": "evolutionary", "population": 3})
    with pytest.raises(ConfigError, match="must be >= 1"):
        build_selector({"name": "evolutionary", "generations": 0})


def test_query_budget_caps_every_selector(space):
    target = space.parse(TARGET)
    for selector in (EvolutionarySearch(population_size=20, generations=10), RandomSearch(num_samples=100)):
        result = selector.select(space, matches(target), seed=0, max_queries=37)
        assert len(result.history) == 37
        assert result.score == max(r.score for r in result.history)

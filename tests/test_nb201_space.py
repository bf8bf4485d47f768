"""The NAS-Bench-201 space: choices, native strings, enumeration, isomorphism, sub-spaces, state-dict keys
(the invariants every space keeps: tests/test_space_conformance.py)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from nasframe.core.space import DataSpec
from nasframe.errors import ConfigError, InvalidArchError
from search_spaces.nb201 import OPS, NB201Space
from test_space_conformance import state_dict_digest

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


@pytest.fixture(scope="module")
def space() -> NB201Space:
    return NB201Space()


def test_choices_are_six_edges_over_five_ops(space):
    assert [c.name for c in space.choices] == ["edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2"]
    assert all(c.options == OPS for c in space.choices)
    assert space.size == 5**6 == 15_625


def test_enumerates_all_15625_distinct_archs_and_strings_round_trip(space):
    archs = list(space.enumerate())
    assert len(archs) == len(set(archs)) == 15_625
    strings = [space.format(a) for a in archs]
    assert len(set(strings)) == 15_625
    assert all(space.parse(s) == a for s, a in zip(strings, archs))


def test_native_string_layout(space):
    arch = space.parse(BEST)
    assert arch["edge_1_0"] == "nor_conv_3x3" and arch["edge_3_0"] == "skip_connect" and arch["edge_3_2"] == "nor_conv_3x3"
    assert space.format(arch) == BEST
    assert space.parse(arch.to_json()) == arch  # JSON form accepted too


def test_isomorphism_gives_the_papers_6466_classes(space):
    keys = {space.isomorphism_key(a) for a in space.enumerate()}
    assert len(keys) == 6_466
    assert len({space.canonical(a) for a in space.enumerate()}) == 6_466


def test_canonical_merges_known_isomorphic_pair(space):
    # output = conv3x3(input), reached through node 1 + skip, or directly; node 1 is dead in b and d
    a = space.parse("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|")
    b = space.parse("|nor_conv_3x3~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|")
    d = space.parse("|nor_conv_1x1~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|")
    c = space.parse("|nor_conv_1x1~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|")  # conv1x1 instead
    assert space.canonical(a) == space.canonical(b) == space.canonical(d) != space.canonical(c)
    assert space.canonical(space.canonical(a)) == space.canonical(a)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected 3 node groups"),
        ("|nor_conv_3x3~0|+|none~0|none~1|", "expected 3 node groups"),
        ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'conv'"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 needs 2 inputs, got 1"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "should be 'op~0'"),
        ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "must look like"),
        ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "should be 'op~0'"),
        ("{\"edge_1_0\": \"none\"}", "no option for choice 'edge_2_0'"),
        ("{not json", "cannot parse"),
    ],
)
def test_malformed_strings_raise_clear_errors(space, text, message):
    with pytest.raises(InvalidArchError, match=message):
        space.parse(text)


def test_validate_names_the_bad_choice_or_option(space):
    arch = space.parse(BEST).to_dict()
    with pytest.raises(InvalidArchError, match="unknown option 'conv' for choice 'edge_1_0'"):
        space.validate({**arch, "edge_1_0": "conv"})
    with pytest.raises(InvalidArchError, match="unknown choice 'edge_4_0'"):
        space.validate({**arch, "edge_4_0": "none"})


def test_restrict_narrows_sampling_enumeration_and_validation(space, rng):
    sub = space.restrict({"edge_1_0": ["nor_conv_3x3", "skip_connect"]})
    assert sub.choice("edge_1_0").options == ("skip_connect", "nor_conv_3x3")  # space order kept
    assert sub.size == 2 * 5**5 and sub.is_restricted and not space.is_restricted
    assert all(sub.sample(rng)["edge_1_0"] in {"nor_conv_3x3", "skip_connect"} for _ in range(200))
    outside = space.parse(BEST).replace(edge_1_0="avg_pool_3x3")
    with pytest.raises(InvalidArchError, match="outside this restricted sub-space"):
        sub.validate(outside)
    assert len(set(sub.enumerate())) == sub.size
    assert sub.canonical(space.parse(BEST)) == space.canonical(space.parse(BEST))


def test_sampling_is_uniform_per_choice(space):
    rng = np.random.default_rng(1)
    n = 20_000
    counts = Counter(space.sample(rng)["edge_2_1"] for _ in range(n))
    expected = n / len(OPS)
    # each count is Binomial(n, 1/5): sd = sqrt(n * 0.2 * 0.8) ~ 57; 5 sd keeps the test stable
    assert set(counts) == set(OPS)
    assert all(abs(c - expected) < 5 * np.sqrt(n * 0.2 * 0.8) for c in counts.values())


def test_crossover_takes_each_edge_from_a_parent_and_mutate_at_one_changes_every_edge(space, rng):
    """The base class's variation on a space of independent choices (validity: the conformance suite)."""
    a, b = space.parse(BEST), space.sample(rng)
    for _ in range(100):
        c = space.crossover(a, b, rng)
        assert all(c[k] in (a[k], b[k]) for k in c)
    assert all(m[k] != a[k] for m in [space.mutate(a, rng, prob=1.0)] for k in a)


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match=r"nb201\.chanels: unknown key for NB201Config; valid keys: channels"):
        NB201Space(chanels=8)
    with pytest.raises(ConfigError, match=r"nb201\.channels"):
        NB201Space(channels="many")


def test_supernet_state_dict_keys_are_unchanged():
    """Checkpoints keep loading: the supernet's state-dict keys and shapes are those of the code before its layers
    (ReLUConvBN, the stem) moved to search_spaces/layers.py (the digest of the sorted (key, shape) pairs)."""
    supernet = NB201Space(DataSpec(3, (8, 8), 10), channels=4, cells_per_stage=1).build_supernet()
    keys = supernet.state_dict()
    assert {"stem.0.weight", "stem.1.running_var", "cells.1.conv_a.1.weight", "cells.1.conv_b.2.bias",
            "cells.0.edges.edge_3_2.candidates.nor_conv_3x3.1.weight",
            "cells.0.edges.edge_1_0.candidates.nor_conv_1x1.2.running_mean"} <= set(keys)
    assert state_dict_digest(supernet) == ("8700e09868d296d1", 255)


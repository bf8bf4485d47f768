"""The DARTS search space: genotype strings, the 2-edges-per-node rule, sampling, state-dict keys, the evaluation
network (the invariants every space keeps: tests/test_space_conformance.py)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from nasframe.core.space import DataSpec
from nasframe.errors import InvalidArchError
from search_spaces.darts import OPS, DARTSSpace, node_edges
from test_space_conformance import DARTS_V2, state_dict_digest  # DARTS_V2: DARTS (2nd order)'s CIFAR-10 cell


@pytest.fixture
def space() -> DARTSSpace:
    return DARTSSpace(DataSpec(3, (16, 16), 10), channels=4, layers=3)


def test_genotype_round_trip_and_encoding(space):
    arch = space.parse(DARTS_V2)
    assert arch["normal_2_0"] == "sep_conv_3x3" and arch["normal_5_2"] == "dil_conv_3x3"
    assert arch["reduce_3_2"] == "skip_connect" and arch["normal_5_3"] == "none"
    assert sum(v != "none" for v in arch.values()) == 16  # 2 edges x 4 nodes x 2 cells
    text = space.format(arch)
    assert text.startswith("Genotype(normal=[") and "normal_concat=[2, 3, 4, 5]" in text
    assert space.parse(text) == arch
    assert space.parse(arch.to_json()) == arch  # JSON of choices is accepted too


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("DARTS_V2", "expected Genotype("),
        (DARTS_V2.replace("'dil_conv_3x3', 2", "'conv_7x7', 2"), "unknown op 'conv_7x7'"),
        (DARTS_V2.replace("'dil_conv_3x3', 2", "'none', 2"), "unknown op 'none'"),
        (DARTS_V2.replace("('skip_connect', 0), ('dil_conv_3x3', 2)", "('skip_connect', 0), ('dil_conv_3x3', 0)"), "takes input 0 twice"),
        (DARTS_V2.replace("('skip_connect', 0), ('dil_conv_3x3', 2)", "('skip_connect', 0), ('dil_conv_3x3', 6)"), "can take input 0..4, got 6"),
        (DARTS_V2.replace(", ('dil_conv_3x3', 2)]", "]"), "must list 8 (op, input) pairs"),
        (DARTS_V2.replace("normal_concat=range(2, 6)", "normal_concat=[2, 3, 5]"), "normal_concat must be [2, 3, 4, 5]"),
        (DARTS_V2.replace("reduce=", "reduced="), "unknown field 'reduced'"),
        (DARTS_V2.split(", reduce=")[0] + ")", "missing field 'reduce'"),
        (DARTS_V2.replace("('sep_conv_3x3', 0)", "__import__('os')", 1), "cannot read"),
    ],
)
def test_malformed_genotypes_are_refused_with_a_named_reason(space, text, message):
    with pytest.raises(InvalidArchError, match=None) as info:
        space.parse(text)
    assert message in str(info.value)


def test_validate_enforces_two_edges_per_node(space, rng):
    arch = dict(space.sample(rng))
    kept = [n for n in node_edges("normal", 4) if arch[n] != "none"]
    arch[kept[0]] = "none"
    with pytest.raises(InvalidArchError, match="node 4 of the normal cell has 1 input edges"):
        space.validate(arch)


def test_size_sampling_and_variation(space, rng):
    assert space.size == (1 * 3 * 6 * 10 * 7**8) ** 2
    assert [c.options for c in space.choices] == [OPS] * 28
    parents = [space.sample(rng) for _ in range(50)]
    for a, b in zip(parents, parents[1:]):  # validity of mutate and crossover: the conformance suite
        child = space.crossover(a, b, rng)
        for node in range(2, 6):  # each node's edges come together from one parent
            edges = node_edges("normal", node)
            assert [child[e] for e in edges] in ([a[e] for e in edges], [b[e] for e in edges])


def test_sampling_is_uniform_over_the_valid_archs_of_a_sub_space(space):
    # node 3 of the normal cell: edges from states 0, 1, 2; edge 3_0 may only be none or sep_conv_3x3.
    sub = space.restrict({"normal_3_0": ["none", "sep_conv_3x3"]})
    # kept pairs (0,1): 1 * 7 op choices, (0,2): 1 * 7, (1,2): 7 * 7 -> probabilities 7/63, 7/63, 49/63
    rng = np.random.default_rng(1)
    draws = 6000
    pairs = Counter()
    for _ in range(draws):
        arch = sub.sample(rng)
        assert sub.contains(arch) and arch["normal_3_0"] in ("none", "sep_conv_3x3")
        pairs[tuple(n for n in node_edges("normal", 3) if arch[n] != "none")] += 1
    expected = {("normal_3_0", "normal_3_1"): 7 / 63, ("normal_3_0", "normal_3_2"): 7 / 63, ("normal_3_1", "normal_3_2"): 49 / 63}
    for pair, p in expected.items():
        sd = math.sqrt(p * (1 - p) / draws)
        assert abs(pairs[pair] / draws - p) < 4 * sd, (pair, pairs[pair] / draws, p)
    assert sub.size == space.size // (3 * 49) * (7 + 7 + 49)


def test_enumeration_of_a_small_sub_space_matches_its_size(space):
    allowed = {}
    for cell in ("normal", "reduce"):
        for node in range(2, 6):
            for j, name in enumerate(node_edges(cell, node)):
                allowed[name] = ["sep_conv_3x3"] if j < 2 else ["none"]
    allowed["reduce_5_4"] = ["none", "skip_connect", "max_pool_3x3"]
    allowed["reduce_5_0"] = ["none", "sep_conv_3x3"]
    sub = space.restrict(allowed)
    archs = list(sub.enumerate())
    assert len(archs) == sub.size == 1 + 2  # edge 5_1 cannot be none: kept pairs (0,1), or (1,4) with 2 ops
    assert all(sub.contains(a) for a in archs) and len(set(archs)) == len(archs)


def test_state_dict_keys_are_unchanged(space):
    """Checkpoints keep loading: the search and evaluation networks' state-dict keys and shapes are those of the
    code before their layers (ReLUConvBN, the stem) moved to search_spaces/layers.py."""
    supernet = DARTSSpace(DataSpec(3, (8, 8), 10), channels=4, layers=3).build_supernet()
    assert {"stem.0.weight", "stem.1.bias", "cells.0.preprocess0.1.weight", "cells.2.preprocess1.2.running_var",
            "cells.0.edges.normal_2_0.candidates.sep_conv_3x3.7.running_mean"} <= set(supernet.state_dict())
    assert state_dict_digest(supernet) == ("dc37a4ffdc542614", 1625)
    evaluation = space.build_eval_network(space.parse(DARTS_V2), channels=8, layers=5)
    assert state_dict_digest(evaluation) == ("d88c8caccd75bb75", 315)


def test_evaluation_network_auxiliary_head_and_drop_path():
    space = DARTSSpace(DataSpec(3, (32, 32), 10))
    arch = space.parse(DARTS_V2)
    net = space.build_eval_network(arch, channels=36, layers=20, auxiliary=False)
    params = sum(p.numel() for p in net.parameters())
    assert 3.2e6 < params < 3.5e6  # DARTS reports 3.3M parameters for this cell at C=36, 20 cells
    small = space.build_eval_network(arch, channels=8, layers=8, auxiliary=True, drop_path_prob=0.0)
    x = torch.randn(2, 3, 32, 32)
    small.train()
    logits, aux = small(x)
    assert logits.shape == aux.shape == (2, 10)
    small.eval()
    assert small(x).shape == (2, 10)


def test_drop_path_zeroes_whole_examples_with_the_given_probability():
    from search_spaces.darts import drop_path

    torch.manual_seed(0)
    x = torch.ones(20000, 1, 1, 1)
    out = drop_path(x, 0.3)
    dropped = (out == 0).float().mean().item()
    assert abs(dropped - 0.3) < 0.02
    assert torch.allclose(out[out != 0], torch.full_like(out[out != 0], 1 / 0.7))


def test_evaluation_network_exports_to_a_plain_torch_program(tmp_path):
    from nasframe.export.save import export_program

    space = DARTSSpace(DataSpec(3, (32, 32), 10))
    net = space.build_eval_network(space.parse(DARTS_V2), channels=8, layers=5, auxiliary=True).eval()
    path = export_program(net, *space.example_inputs(), tmp_path / "eval.pt2")
    program = torch.export.load(str(path)).module()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(program(x), net(x), atol=1e-5)  # eval mode: logits only, no auxiliary output

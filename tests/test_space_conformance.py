"""The conformance suite: the invariants every registered search space keeps, run for each name in
``SPACES.names()``, so that registering a space (an entry point of the ``nasframe.spaces`` group) runs it.

Checked per space: arch strings round-trip (``format`` / ``parse`` / JSON) and ``validate`` names bad archs;
``canonical`` is idempotent and isomorphism-invariant; ``mutate`` and ``crossover`` stay in the space; the
supernet routes every choice and leaves no stale path after a failed routing; a single-path step touches only
the active path; the extracted subnet is plain torch, holds copies of the path's weights and computes the supernet
path's function (1e-6, eval and train mode, several archs); its ``.pt2`` program and its reloaded export compute the
subnet's function; ``count_params`` is the subnet's parameter count; the zero option (``none``) never runs.

A space is built from its entry in :data:`TOY` (small settings, a data spec, archs worth checking, a generator of
isomorphic archs). A space without an entry is built with its default settings on a small generic data spec
(:data:`IMAGE_DATA` or :data:`GRAPH_DATA`); add an entry when the defaults are slow, or when the space overrides
``canonical`` (the suite then needs a way to draw isomorphic archs: :attr:`Toy.isomorphic_pair`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Union

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasframe.core.arch import Arch
from nasframe.core.modules import ChoiceModule, Supernet, is_zero_op, path_state_dict
from nasframe.core.registry import SPACES
from nasframe.core.space import DataSpec, SearchSpace
from nasframe.errors import InvalidArchError
from nasframe.export import extract, load_export, save_export
from search_spaces.gnn_bench import LINK_CHOICE, op_choice
from search_spaces.mobilenet import depth_choice, expand_choice, kernel_choice

#: The largest difference allowed between the supernet path and its subnet (and between a subnet and its program).
TOLERANCE = 1e-6
#: Generic data specs for spaces without a :data:`TOY` entry (and the toy entries that need nothing else).
IMAGE_DATA = DataSpec(in_channels=3, input_size=(8, 8), num_classes=10)
GRAPH_DATA = DataSpec(in_channels=12, input_size=(1, 1), num_classes=3)
#: Archs drawn per check, beside a space's special archs.
NUM_SAMPLED = 6
#: Steps of plain SGD that move a supernet's weights and BatchNorm statistics off their init.
TRAIN_STEPS = 3
#: A second input size for the exported programs (their batch / node / edge dimensions are dynamic).
OTHER_BATCH, OTHER_NODES, OTHER_EDGES = 3, 23, 71

ArchLike = Union[str, Mapping[str, str]]
PairMaker = Callable[[SearchSpace, np.random.Generator], tuple[Arch, Arch]]


@dataclass(frozen=True)
class Toy:
    """How the suite builds and exercises one space.

    ``settings``: the space's settings (small networks: the suite trains and exports several); ``data``: the data
    spec (default :data:`IMAGE_DATA` or :data:`GRAPH_DATA`); ``special``: archs checked beside sampled ones (native
    strings, JSON strings or mappings); ``export``: the archs exported to ``.pt2`` (default: the first special
    arch, or a sampled one); ``isomorphic_pair``: draws two archs that are the same network (required when the
    space overrides ``canonical``).
    """

    settings: Mapping[str, Any] = field(default_factory=dict)
    data: DataSpec | None = None
    special: Sequence[ArchLike] = ()
    export: Sequence[ArchLike] = ()
    isomorphic_pair: PairMaker | None = None


# --------------------------------------------------------------------------------------------------------
# Isomorphic pairs: two encodings of one network, built from each space's own notion of isomorphism
# --------------------------------------------------------------------------------------------------------
def _other_option(space: SearchSpace, choice: str, rng: np.random.Generator) -> str:
    options = space.choice(choice).options
    return options[int(rng.integers(len(options)))]


def _nb201_pair(space: SearchSpace, rng: np.random.Generator) -> tuple[Arch, Arch]:
    """NAS-Bench-201 cells that differ only where nothing flows: the edges out of a zero node 1, or into a node 1
    that no later node reads; or two cells that swap the ops on node 3's edges from the input and from a node 1
    that copies the input."""
    arch = space.sample(rng)
    rule = int(rng.integers(3))
    if rule == 0:  # node 1 is zero: whatever edges 2_1 and 3_1 apply gives zero
        first = arch.replace(edge_1_0="none")
        return first, first.replace(edge_2_1=_other_option(space, "edge_2_1", rng),
                                    edge_3_1=_other_option(space, "edge_3_1", rng))
    if rule == 1:  # node 1 is read by no node: its own edge does not matter
        first = arch.replace(edge_2_1="none", edge_3_1="none")
        return first, first.replace(edge_1_0=_other_option(space, "edge_1_0", rng))
    first = arch.replace(edge_1_0="skip_connect")  # node 1 == input: edges 3_0 and 3_1 read the same tensor
    return first, first.replace(edge_3_0=first["edge_3_1"], edge_3_1=first["edge_3_0"])


def _mobilenet_pair(space: SearchSpace, rng: np.random.Generator) -> tuple[Arch, Arch]:
    """Archs that differ only in the kernel and expand ratio of blocks beyond their stage's depth (skipped)."""
    arch = space.sample(rng)
    changes = {}
    for stage in space.layout.stages:
        for block in range(int(arch[depth_choice(stage.number)]) + 1, stage.max_depth + 1):
            for name in (kernel_choice(stage.number, block), expand_choice(stage.number, block)):
                changes[name] = _other_option(space, name, rng)
    return arch, arch.replace(**changes)


def _gnn_bench_pair(space: SearchSpace, rng: np.random.Generator) -> tuple[Arch, Arch]:
    """Cells whose parallel nodes (every node reading the input, or nodes 2-4 all reading node 1) hold their ops
    in another order: the same model with renamed nodes, one benchmark key."""
    link, movable = [("0000", (1, 2, 3, 4)), ("0111", (2, 3, 4))][int(rng.integers(2))]
    first = space.sample(rng).replace(**{LINK_CHOICE: link})
    ops = [first[op_choice(node)] for node in movable]
    order = rng.permutation(len(ops))
    return first, first.replace(**{op_choice(node): ops[k] for node, k in zip(movable, order)})


# --------------------------------------------------------------------------------------------------------
# The per-space table
# --------------------------------------------------------------------------------------------------------
NB201_SPECIAL = (
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # every node zero
    "|none~0|+|none~0|none~1|+|nor_conv_3x3~0|avg_pool_3x3~1|skip_connect~2|",  # zero nodes feeding ops
    "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
)
DARTS_V2 = (  # DARTS (second order)'s published CIFAR-10 cell
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=range(2, 6), "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=range(2, 6))"
)
GNN_BENCH_SPECIAL = (
    "Arch([0, 1, 2, 3], ['gcn', 'gin', 'fc', 'cheb'])",  # a chain: one output node
    "Arch([0, 0, 0, 0], ['gat', 'sage', 'arma', 'graph'])",  # four output nodes, all reading the input
    "Arch([0, 0, 0, 0], ['gcn', 'gcn', 'gcn', 'skip'])",  # an input-valued leaf: not an output
    "Arch([0, 1, 2, 3], ['skip', 'skip', 'gcn', 'fc'])",  # ops reading the input through skips
    "Arch([0, 1, 1, 2], ['fc', 'skip', 'gat', 'gin'])",  # a skip between computed nodes
    "Arch([0, 0, 1, 3], ['cheb', 'skip', 'arma', 'skip'])",  # an input-valued leaf, and a skip leaf of a computed node
    "Arch([0, 1, 1, 1], ['gcn', 'skip', 'gat', 'gin'])",  # a skip leaf of a computed node among the outputs
)
GRAPHNAS_BASE = {"layer1_agg": "gcn", "layer1_act": "elu", "layer1_heads": "2", "layer1_hidden": "8",
                 "layer2_agg": "gcn", "layer2_heads": "2"}
#: every layer type at layer 1 and at layer 2, and every activation
GRAPHNAS_SPECIAL = tuple(
    {**GRAPHNAS_BASE, "layer1_agg": first, "layer2_agg": second, "layer1_act": act}
    for (first, second), act in zip([("gcn", "gat"), ("sage", "gin"), ("graph", "arma"), ("cheb", "gcn"),
                                     ("gat", "cheb"), ("arma", "sage")],
                                    ("relu", "tanh", "leaky_relu", "sigmoid", "identity", "elu"))
)

TOY: dict[str, Toy] = {
    "nb201": Toy({"channels": 4, "cells_per_stage": 1}, special=NB201_SPECIAL, isomorphic_pair=_nb201_pair),
    "darts": Toy({"channels": 4, "layers": 3}, special=(DARTS_V2,)),
    "mobilenet": Toy(
        {"stem_channels": 8, "stage_channels": [8, 16], "stage_strides": [1, 2], "stage_se": [False, True],
         "stage_activation": ["relu", "hswish"], "head_channels": 32},  # two stages: no SE + ReLU, SE + hard-swish
        data=DataSpec(1, (8, 8), 10), isomorphic_pair=_mobilenet_pair,
    ),
    "gnn_bench": Toy(
        {"hidden": 8}, special=GNN_BENCH_SPECIAL, isomorphic_pair=_gnn_bench_pair,
        export=(GNN_BENCH_SPECIAL[1], "Arch([0, 1, 1, 1], ['gcn', 'cheb', 'gin', 'fc'])"),  # every op
    ),
    "graphnas": Toy({"heads": [1, 2], "hidden": [8, 16]}, special=GRAPHNAS_SPECIAL,
                    export=GRAPHNAS_SPECIAL[:4]),  # every layer type
}

NAMES = SPACES.names()
ZERO_NAMES = [name for name in NAMES if SPACES.get(name).zero_option is not None]


def test_every_builtin_space_is_in_the_suite():
    """The suite reaches the spaces through the registry: the built-in ones must be among them."""
    assert set(TOY) <= set(NAMES), sorted(set(TOY) - set(NAMES))


# --------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def toy_space(name: str) -> SearchSpace:
    """The space ``name`` with its toy settings (its defaults on a generic data spec when it has no entry)."""
    cls = SPACES.get(name)
    toy = TOY.get(name, Toy())
    data = toy.data or (GRAPH_DATA if cls.takes_graphs else IMAGE_DATA)
    try:
        return cls(data, **toy.settings)
    except Exception as exc:
        raise AssertionError(
            f"space '{name}' has no working entry in TOY of {Path(__file__).name} (built with {dict(toy.settings)} "
            f"on {data}: {type(exc).__name__}: {exc}); add small settings and a data spec for it"
        ) from exc


@pytest.fixture(autouse=True)
def _one_thread(_two_threads) -> None:
    """Toy networks run as fast on one thread, which never stalls in OpenMP waits on a busy machine (after
    conftest's ``_two_threads``)."""
    torch.set_num_threads(1)


@pytest.fixture(params=NAMES)
def space(request) -> SearchSpace:
    return toy_space(request.param)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _arch(space: SearchSpace, arch: ArchLike) -> Arch:
    return space.parse(arch) if isinstance(arch, str) else space.validate(arch)


def special_archs(space: SearchSpace) -> list[Arch]:
    """The space's special archs, and its smallest and largest arch where its options are ordered by size."""
    archs = [_arch(space, a) for a in TOY.get(space.name, Toy()).special]
    if space.options_ordered_by_size:
        archs += [space.smallest(), space.largest()]
    return archs


def checked_archs(space: SearchSpace, rng: np.random.Generator, sampled: int = NUM_SAMPLED) -> list[Arch]:
    """Special archs followed by ``sampled`` drawn ones."""
    return special_archs(space) + [space.sample(rng) for _ in range(sampled)]


def inputs(space: SearchSpace, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """The space's example inputs (a batch of images, or a small graph), drawn from ``seed``."""
    torch.manual_seed(seed)
    return space.example_inputs()[0]


def other_inputs(space: SearchSpace) -> tuple[torch.Tensor, ...]:
    """Inputs of other sizes than the example's (another batch size; another number of nodes and edges)."""
    gen = torch.Generator().manual_seed(1)
    if space.takes_graphs:
        x = torch.rand(OTHER_NODES, space.data.in_channels, generator=gen)
        return x, torch.randint(0, OTHER_NODES, (2, OTHER_EDGES), generator=gen)
    return (torch.randn(OTHER_BATCH, *space.data.input_shape, generator=gen),)


def trained_supernet(space: SearchSpace, rng: np.random.Generator) -> Supernet:
    """A supernet whose weights and BatchNorm statistics moved off their init (so equality is not trivial)."""
    torch.manual_seed(0)
    supernet = space.build_supernet()
    opt = torch.optim.SGD(supernet.parameters(), lr=0.1)
    supernet.train()
    for step, arch in enumerate(special_archs(space)[:1] + [space.sample(rng) for _ in range(TRAIN_STEPS)]):
        supernet.set_arch(arch)
        opt.zero_grad(set_to_none=True)
        logits = supernet(*inputs(space, seed=step))
        labels = torch.randint(0, space.data.num_classes, logits.shape[:1])
        F.cross_entropy(logits, labels).backward()
        opt.step()
    return supernet


def run(model: nn.Module, xs: Sequence[torch.Tensor], seed: int = 0) -> torch.Tensor:
    """``model(*xs)`` without gradients, from a fixed seed (the same dropout masks in train mode)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        return model(*xs)


def state_dict_digest(model: nn.Module) -> tuple[str, int]:
    """A short digest of ``model`` 's sorted (state-dict key, shape) pairs, and their number (the per-space files
    pin their checkpoints' layout with it)."""
    items = sorted((key, tuple(value.shape)) for key, value in model.state_dict().items())
    return hashlib.sha256(repr(items).encode()).hexdigest()[:16], len(items)


def max_diff(first: torch.Tensor, second: torch.Tensor) -> float:
    assert first.shape == second.shape, (first.shape, second.shape)
    return (first - second).abs().max().item()


# --------------------------------------------------------------------------------------------------------
# Archs: strings, validation, canonical form, variation
# --------------------------------------------------------------------------------------------------------
def test_sampled_archs_are_valid_and_round_trip_through_strings(space, rng):
    names = [c.name for c in space.choices]
    for arch in checked_archs(space, rng, sampled=4 * NUM_SAMPLED):
        assert space.validate(arch) == arch and space.contains(arch) and list(arch) == names
        assert all(arch[c.name] in c.options for c in space.choices)
        text = space.format(arch)
        assert isinstance(text, str) and space.parse(text) == arch, text
        assert space.format(space.parse(text)) == text
        assert space.parse(arch.to_json()) == arch and Arch.from_json(arch.to_json()) == arch
        if not space.has_native_string:
            assert text == arch.to_json()


def test_validate_names_the_bad_choice_or_option(space, rng):
    arch = space.sample(rng).to_dict()
    first = space.choices[0].name
    with pytest.raises(InvalidArchError, match="unknown choice 'no_such_choice'"):
        space.validate({**arch, "no_such_choice": "x"})
    with pytest.raises(InvalidArchError, match=f"unknown option 'no_such_option' for choice '{first}'"):
        space.validate({**arch, first: "no_such_option"})
    with pytest.raises(InvalidArchError, match=f"no option for choice '{first}'"):
        space.validate({k: v for k, v in arch.items() if k != first})
    with pytest.raises(InvalidArchError):
        space.parse("{not json")


def test_enumeration_starts_with_distinct_valid_archs(space):
    archs = list(itertools.islice(space.enumerate(), 3 * NUM_SAMPLED))
    assert archs and len(set(archs)) == len(archs) and all(space.contains(a) for a in archs)


def test_canonical_is_a_member_and_idempotent(space, rng):
    for arch in checked_archs(space, rng, sampled=4 * NUM_SAMPLED):
        canonical = space.canonical(arch)
        assert space.contains(canonical) and space.canonical(canonical) == canonical, space.format(arch)


def test_canonical_is_isomorphism_invariant(space, rng):
    """Two encodings of one network share their canonical form; a space with no isomorphism rule (``canonical``
    not overridden) is its own canonical form."""
    make_pair = TOY.get(space.name, Toy()).isomorphic_pair
    if type(space).canonical is SearchSpace.canonical:
        assert all(space.canonical(a) == a for a in checked_archs(space, rng))
        return
    assert make_pair is not None, (
        f"space '{space.name}' overrides canonical(): give its TOY entry an isomorphic_pair that draws two "
        "encodings of one network"
    )
    for _ in range(4 * NUM_SAMPLED):
        first, second = make_pair(space, rng)
        assert space.canonical(first) == space.canonical(second), (space.format(first), space.format(second))


def test_mutate_and_crossover_stay_in_the_space(space, rng):
    archs = checked_archs(space, rng, sampled=4 * NUM_SAMPLED)
    for first, second in zip(archs, archs[1:]):
        for prob in (0.1, 0.5, 1.0):
            assert space.contains(space.mutate(first, rng, prob=prob))
        assert space.contains(space.crossover(first, second, rng))
        assert space.mutate(first, rng, prob=0.0) == first
        assert space.crossover(first, first, rng) == first
    if any(len(c) > 1 for c in space.choices):
        assert space.mutate(archs[0], rng, prob=1.0) != archs[0]


def test_describe_rebuilds_the_space(space):
    described = json.loads(json.dumps(space.describe()))  # what arch.json stores
    data = described["data"]
    rebuilt = SPACES.get(described["name"])(
        DataSpec(data["in_channels"], tuple(data["input_size"]), data["num_classes"]), **described["config"]
    )
    assert type(rebuilt) is type(space) and rebuilt.config == space.config and rebuilt.choices == space.choices


# --------------------------------------------------------------------------------------------------------
# Supernet and subnet
# --------------------------------------------------------------------------------------------------------
def test_supernet_routes_every_choice_and_failed_routing_leaves_no_path(space, rng):
    supernet = space.build_supernet()
    assert sorted(supernet.choice_names) == sorted(c.name for c in space.choices)
    with pytest.raises(InvalidArchError, match="no option for choice"):
        supernet.set_arch({})
    good = space.sample(rng)
    supernet.set_arch(good)
    assert supernet.active_arch == good
    names = supernet.choice_names
    other = [o for o in space.choice(names[0]).options if o != good[names[0]]]
    half_bad = {**good, **({names[0]: other[0]} if other else {}), names[-1]: "no_such_option"}
    with pytest.raises(InvalidArchError, match=f"choice '{names[-1]}' has no option 'no_such_option'"):
        supernet.set_arch(half_bad)  # the first choice was routed before the last one failed
    assert supernet.active_arch is None
    supernet.set_arch(good)
    assert supernet.active_arch == good


def test_single_path_backward_touches_only_the_active_path(space, rng):
    """A single-path forward and backward gives gradients to exactly the supernet parameters behind the path
    tensors (whole tensors, or the slices of elastic layers) that get one in the standalone subnet (a layer may
    hold a parameter it never uses, as PyG's one-layer ARMAConv does)."""
    supernet = space.build_supernet().train()
    xs = inputs(space)
    for arch in checked_archs(space, rng, sampled=2):
        subnet = extract(space, supernet, arch)
        run_backward(subnet, xs)
        used = [key for key, p in subnet.named_parameters() if p.grad is not None]
        assert used, space.format(arch)
        path = path_state_dict(supernet)
        behind_path = {path[key].untyped_storage().data_ptr() for key in used}
        run_backward(supernet, xs)
        for name, p in supernet.named_parameters():
            assert (p.grad is not None) == (p.untyped_storage().data_ptr() in behind_path), (space.format(arch), name)


def run_backward(model: nn.Module, xs: Sequence[torch.Tensor]) -> None:
    """Clear the gradients of ``model``, then backpropagate a scalar function of its output on ``xs``."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)
    model(*xs).square().mean().backward()


def assert_plain_copy(subnet: nn.Module, supernet: Supernet) -> None:
    """``subnet`` holds no choice module or elastic layer, and copies (not views) of the path's tensors."""
    assert not any(isinstance(m, ChoiceModule) or hasattr(type(m), "active_state_dict") for m in subnet.modules())
    path = path_state_dict(supernet)
    state = subnet.state_dict()
    assert set(state) == set(path)
    for key, value in state.items():
        assert torch.equal(value, path[key]) and value.data_ptr() != path[key].data_ptr(), key


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_extracted_subnet_equals_the_supernet_path(space, rng, mode):
    supernet = trained_supernet(space, rng).train(mode == "train")
    xs = inputs(space, seed=1)
    for k, arch in enumerate(checked_archs(space, rng)):
        subnet = extract(space, supernet, arch)
        assert subnet.training == (mode == "train")
        assert_plain_copy(subnet, supernet)
        logits = run(supernet, xs, seed=k)
        assert logits.shape == (len(xs[0]), space.data.num_classes)  # one row per image, or per graph node
        assert max_diff(logits, run(subnet, xs, seed=k)) <= TOLERANCE, space.format(arch)


def test_count_params_is_the_subnet_parameter_count(space, rng):
    archs = checked_archs(space, rng)
    supernet = space.build_supernet()
    for arch in archs:
        count = space.count_params(arch)
        assert count == sum(p.numel() for p in space.build_subnet(arch).parameters()), space.format(arch)
        assert count == sum(p.numel() for p in extract(space, supernet, arch).parameters())
    assert max(space.count_params(a) for a in archs) <= sum(p.numel() for p in supernet.parameters())
    if space.options_ordered_by_size:
        small, large = space.count_params(space.smallest()), space.count_params(space.largest())
        assert all(small <= space.count_params(a) <= large for a in archs)


def export_archs(space: SearchSpace, rng: np.random.Generator) -> list[Arch]:
    """The archs the space's TOY entry exports; by default its first special arch, or a sampled one."""
    chosen = TOY.get(space.name, Toy()).export
    if chosen:
        return [_arch(space, a) for a in chosen]
    return special_archs(space)[:1] or [space.sample(rng)]


def test_export_program_and_reloaded_export_equal_the_subnet(space, rng, tmp_path):
    supernet = trained_supernet(space, rng).eval()
    for k, arch in enumerate(export_archs(space, rng)):
        subnet = extract(space, supernet, arch)
        paths = save_export(tmp_path / str(k), space, arch, subnet)
        record = json.loads(paths.arch_json.read_text())
        assert record["native"] == space.format(arch) and space.validate(record["arch"]) == arch
        program = torch.export.load(str(paths.program)).module()
        reloaded = load_export(tmp_path / str(k))
        for xs in (inputs(space, seed=2), other_inputs(space)):
            expected = run(subnet, xs)
            assert max_diff(run(program, xs), expected) <= TOLERANCE, space.format(arch)
            assert torch.equal(run(reloaded, xs), expected)


# --------------------------------------------------------------------------------------------------------
# The zero option
# --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ZERO_NAMES)
def test_the_zero_option_never_runs(name, rng):
    """Edges set to the space's zero option are skipped, not computed and multiplied by zero: a forward hook on
    every zero op of the supernet and of the subnets never fires, in eval mode or in a training step."""
    space = toy_space(name)
    supernet = trained_supernet(space, rng)
    archs = [a for a in checked_archs(space, rng) if space.zero_option in a.values()]
    assert archs, f"space '{name}' declares zero_option={space.zero_option!r} but no checked arch uses it"
    assert any(is_zero_op(m) for m in supernet.modules())
    calls: list[str] = []

    def watch(model: nn.Module) -> None:
        for module_name, module in model.named_modules():
            if is_zero_op(module):
                module.register_forward_hook(lambda *_, where=module_name: calls.append(where))

    watch(supernet)
    xs = inputs(space)
    for arch in archs:
        subnet = extract(space, supernet.eval(), arch)
        watch(subnet)
        run(supernet, xs), run(subnet, xs)
        supernet.train()
        supernet(*xs).sum().backward()
        subnet.train()(*xs).sum().backward()
    assert calls == []

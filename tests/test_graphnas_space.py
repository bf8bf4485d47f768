"""The GraphNAS / Auto-GNN micro GNN space (search_spaces/graphnas.py): choices, Auto-GNN's homogeneous weight
sharing, per-choice gradient norms and trainer steps, and a search on Cora (the invariants every space keeps, the
supernet against its extracted subnets and export among them: tests/test_space_conformance.py).

Needs torch-geometric; the Cora test skips when the shared Planetoid files are absent.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from nasframe.core.arch import Arch
from nasframe.core.graph import bind_graph
from nasframe.core.modules import path_state_dict
from nasframe.core.space import DataSpec
from nasframe.data.paths import data_root
from nasframe.errors import ConfigError, InvalidArchError

pyg = pytest.importorskip("torch_geometric", reason="needs the torch-geometric package")

from search_spaces.graphnas import AGGREGATORS, GraphNASSpace  # noqa: E402

SPEC = DataSpec(in_channels=12, input_size=(1, 1), num_classes=3)
SMALL = {"heads": [1, 2], "hidden": [8, 16]}  # 7 * 2 * 2 + 7 * 2 * 3 = 70 modules: quick to build
BASE = {"layer1_agg": "gcn", "layer1_act": "elu", "layer1_heads": "2", "layer1_hidden": "8", "layer2_agg": "gcn",
        "layer2_heads": "1"}


def arch(space: GraphNASSpace, **changes: str) -> Arch:
    return space.validate({**BASE, **changes})


@pytest.fixture(autouse=True)
def _one_thread(_two_threads) -> None:
    torch.set_num_threads(1)


def random_graph():
    """A small random graph (60 nodes, 12 features, 3 classes, a third of the nodes in each split) for fast tests."""
    from nasframe.data.graph import GraphData

    gen = torch.Generator().manual_seed(0)
    n = 60
    part = torch.arange(n) % 3
    return GraphData(
        x=torch.rand(n, 12, generator=gen), edge_index=torch.randint(0, n, (2, 240), generator=gen),
        y=torch.randint(0, 3, (n,), generator=gen), train_mask=part == 0, val_mask=part == 1, test_mask=part == 2,
        num_features=12, num_classes=3, name="random",
    )


@pytest.fixture(scope="module")
def graph():
    return random_graph()


@pytest.fixture(scope="module")
def small() -> GraphNASSpace:
    return GraphNASSpace(SPEC, **SMALL)


# --------------------------------------------------------------------------------------------------------
# Choices and settings
# --------------------------------------------------------------------------------------------------------
def test_choices_options_and_size(small):
    space = GraphNASSpace(SPEC)
    assert [c.name for c in space.choices] == [
        "layer1_agg", "layer1_act", "layer1_heads", "layer1_hidden", "layer2_agg", "layer2_heads",
    ]
    assert space.choice("layer1_agg").options == AGGREGATORS == ("gcn", "gat", "sage", "gin", "graph", "arma", "cheb")
    assert space.choice("layer1_act").options == ("relu", "elu", "tanh", "leaky_relu", "sigmoid", "identity")
    assert space.choice("layer2_heads").options == ("1", "2", "4", "8")
    assert space.choice("layer1_hidden").options == ("16", "32", "64", "128")
    assert space.size == 7 * 6 * 4 * 4 * 7 * 4 == 18_816 and space.takes_graphs and space.independent_choices
    deep = GraphNASSpace(SPEC, layers=3)
    assert [c.name for c in deep.choices][-6:] == [
        "layer2_agg", "layer2_act", "layer2_heads", "layer2_hidden", "layer3_agg", "layer3_heads",
    ]
    assert deep.size == (7 * 6 * 4 * 4) ** 2 * 7 * 4
    assert [c.name for c in GraphNASSpace(SPEC, layers=1).choices] == ["layer1_agg", "layer1_heads"]


@pytest.mark.parametrize(("settings", "message"), [
    ({"aggregators": ["gcn", "conv"]}, "aggregators: unknown option 'conv'"),
    ({"activations": []}, "activations: needs at least one option"),
    ({"heads": [1, 0]}, "heads: needs distinct positive integers"),
    ({"hidden": [8, 8]}, "hidden: needs distinct positive integers"),
    ({"layers": 0}, "layers must be >= 1"),
    ({"dropout": 1.0}, "dropout must be in"),
    ({"hiden": [8]}, r"graphnas\.hiden: unknown key"),
])
def test_bad_settings_are_config_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        GraphNASSpace(SPEC, **settings)


def test_config_file_and_entry_point_build_the_default_space():
    from nasframe.cli import compose_config
    from nasframe.core.registry import SPACES

    node = compose_config("search", ["space=graphnas"]).space
    assert SPACES.get("graphnas") is GraphNASSpace
    space = SPACES.build(node, where="space", data=SPEC)
    assert space.config == GraphNASSpace(SPEC).config and space.config.dropout == 0.6
    assert space.describe()["config"]["heads"] == [1, 2, 4, 8]


def test_plan_widths_and_keys():
    space = GraphNASSpace(SPEC, layers=3)
    a = space.validate({**BASE, "layer1_agg": "gat", "layer1_heads": "4", "layer1_hidden": "32",
                        "layer2_agg": "sage", "layer2_act": "relu", "layer2_heads": "2", "layer2_hidden": "16",
                        "layer3_agg": "gin", "layer3_heads": "8"})
    plan = space.plan(a)
    assert [(lp.in_dim, lp.out_dim, lp.heads, lp.concat) for lp in plan] == [
        (12, 32, 4, True), (128, 16, 2, True), (32, 3, 8, False),
    ]
    assert [lp.key for lp in plan] == ["gat_h4_12x32", "sage_h2_128x16", "gin_h8_32x3"]
    assert [lp.act for lp in plan] == ["elu", "relu", None]  # the last layer outputs logits


def test_default_supernet_holds_one_module_per_key():
    space = GraphNASSpace(SPEC)
    keys = space.candidate_keys()
    # layer 1: 7 types x 4 heads x 1 input width x 4 widths; layer 2: 7 x 4 x 7 input widths (16 .. 1024) x 1
    assert [len(k) for k in keys] == [112, 196] and all(len(set(k)) == len(k) for k in keys)
    supernet = space.build_supernet()
    assert [list(layer.conv.candidates) for layer in supernet.layers] == keys
    assert sorted(supernet.choice_names) == sorted(c.name for c in space.choices)  # every choice is routed


# --------------------------------------------------------------------------------------------------------
# Supernet, subnet, weight sharing
# --------------------------------------------------------------------------------------------------------
def _step(supernet, graph, lr=0.1):
    opt = torch.optim.SGD(supernet.parameters(), lr=lr)
    supernet.train()
    opt.zero_grad(set_to_none=True)
    logits = supernet(graph.x, graph.edge_index)
    torch.nn.functional.cross_entropy(logits[graph.train_mask], graph.y[graph.train_mask]).backward()
    opt.step()


def test_weights_are_shared_exactly_between_archs_with_one_key(small, graph):
    supernet = small.build_supernet()

    def path(a):
        supernet.set_arch(a)
        return {name: p for name, p in path_state_dict(supernet).items()}

    first = arch(small, layer1_heads="1", layer1_hidden="16", layer2_agg="sage")  # layer 2 reads 16 features
    second = arch(small, layer1_heads="2", layer1_hidden="8", layer2_agg="sage", layer1_act="tanh")  # 8 x 2 = 16
    a, b = path(first), path(second)
    assert [lp.key for lp in small.plan(first)] == ["gcn_h1_12x16", "sage_h1_16x3"]
    assert [lp.key for lp in small.plan(second)] == ["gcn_h2_12x8", "sage_h1_16x3"]
    layer2 = [k for k in a if k.startswith("layers.1.")]
    assert layer2 and set(layer2) == {k for k in b if k.startswith("layers.1.")}
    assert all(a[k] is b[k] for k in layer2)  # same key: the same Parameter objects
    assert not {id(p) for k, p in a.items() if k.startswith("layers.0.")} & {id(p) for p in b.values()}
    # any other type, heads or width at a position selects other weights
    for other in (arch(small, layer1_heads="1", layer1_hidden="16", layer2_agg="gcn"),
                  arch(small, layer1_heads="1", layer1_hidden="16", layer2_agg="sage", layer2_heads="2"),
                  arch(small, layer1_heads="2", layer1_hidden="16", layer2_agg="sage")):
        c = path(other)
        assert not {id(p) for k, p in c.items() if k.startswith("layers.1.")} & {id(a[k]) for k in layer2}
    # no parameter belongs to two modules: sharing happens only through one key
    owners = [id(p) for layer in supernet.layers for conv in layer.conv.candidates.values() for p in conv.parameters()]
    assert len(owners) == len(set(owners)) == len(list(supernet.parameters()))
    # training the first arch moves the layer the second arch inherits, and not the second's first layer
    before = {k: v.detach().clone() for k, v in b.items()}
    supernet.set_arch(first)
    _step(supernet, graph, lr=0.5)
    assert all(not torch.equal(before[k], b[k]) for k in layer2 if k.endswith("weight"))
    assert all(torch.equal(before[k], b[k]) for k in b if k.startswith("layers.0."))


def test_single_path_gradients_and_trainer_steps_touch_only_the_active_path(small, graph, rng):
    from nasframe.data.base import InMemoryLoader
    from nasframe.data.graph import node_splits
    from nasframe.sampling.uniform import UniformSampler
    from nasframe.training.trainer import SupernetTrainer, TrainerConfig

    supernet = bind_graph(small.build_supernet(), graph.x, graph.edge_index)
    a = arch(small, layer1_agg="gat", layer2_agg="gin", layer2_heads="2")
    supernet.set_arch(a)
    supernet(graph.x, graph.edge_index).sum().backward()
    active = {id(p) for p in path_state_dict(supernet).values()}
    norms = supernet.path_grad_norms()
    assert norms["layer1_act"] is None and all(norms[c] is not None for c in ("layer1_agg", "layer1_heads", "layer2_heads"))
    supernet.zero_grad(set_to_none=True)
    # the project's trainer: Adam, a few full-batch steps over uniformly drawn archs, then one fixed step
    trainer = SupernetTrainer(supernet, UniformSampler(small, seed=0), InMemoryLoader(node_splits(graph).train, 64),
                              TrainerConfig(epochs=4, batch_size=64, optimizer="adam", lr=0.01, progress=False))
    history = trainer.fit(until_epoch=3)
    assert len(history) == 3 and all(torch.isfinite(torch.tensor(h["loss"])) for h in history)
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    trainer.sampler.sample = lambda: a
    trainer.train_step(*next(iter(trainer.loader.epoch())))
    on_path = {name for name, p in supernet.named_parameters() if p.grad is not None}
    assert on_path == {name for name, p in supernet.named_parameters() if id(p) in active}
    for name, p in supernet.named_parameters():
        assert torch.equal(p, before[name]) != (name in on_path), name


def test_set_arch_failures_leave_no_stale_path(small, graph):
    supernet = small.build_supernet()
    with pytest.raises(InvalidArchError, match="no active arch"):
        supernet(graph.x, graph.edge_index)
    supernet.set_arch(arch(small))
    with pytest.raises(InvalidArchError, match="choice 'layer2_heads' has no option '4'"):
        supernet.set_arch({**BASE, "layer2_heads": "4"})  # layer1_* were routed before layer2_heads failed
    assert supernet.active_arch is None
    with pytest.raises(InvalidArchError, match="no active arch"):
        supernet(graph.x, graph.edge_index)
    with pytest.raises(InvalidArchError, match="single-path only"):
        supernet.set_mixture({})


# --------------------------------------------------------------------------------------------------------
# The search pipeline on Cora
# --------------------------------------------------------------------------------------------------------
def test_search_on_cora_with_space_graphnas(tmp_path):
    raw = data_root() / "planetoid" / "Cora" / "raw"
    if not raw.is_dir():
        pytest.skip(f"no Planetoid Cora files at {raw} (set $NASFRAME_DATA)")
    shutil.copytree(raw, tmp_path / "planetoid" / "Cora" / "raw")
    from hydra import compose, initialize_config_dir

    from nasframe.cli import CONFIG_DIR
    from nasframe.config import register_configs
    from nasframe.search import run_search

    register_configs()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("search", overrides=[
            "space=graphnas", "dataset=planetoid", f"dataset.root={tmp_path / 'planetoid'}", "space.heads=[1,2]",
            "space.hidden=[8]", "space.aggregators=[gcn,gat,sage]", "trainer.epochs=3", "trainer.batch_size=140",
            "trainer.optimizer=adam", "trainer.lr=0.01", "trainer.progress=false", "selector.population_size=2",
            "selector.generations=1", "threads=1",
        ])
    outcome = run_search(cfg, tmp_path / "run")
    assert outcome is not None and outcome.export_max_abs_diff <= 1e-5
    searched = GraphNASSpace(DataSpec(1433, (1, 1), 7), heads=[1, 2], hidden=[8], aggregators=["gcn", "gat", "sage"])
    assert searched.contains(outcome.arch) and 0.0 <= outcome.test_accuracy <= 100.0
    assert outcome.params == searched.count_params(outcome.arch)
    program = torch.export.load(str(outcome.files["program"])).module()
    from nasframe.data.planetoid import Planetoid

    cora = Planetoid(graph="Cora", root=str(tmp_path / "planetoid")).load_graph()
    with torch.no_grad():
        assert program(cora.x, cora.edge_index).shape == (2708, 7)

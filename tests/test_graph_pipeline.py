"""Graph data through the example-wise pipeline: bound graphs, node splits, Planetoid as a data set, a search on
Cora end to end (train, select, export), ranking against NAS-Bench-Graph and the tabular mode on it.

Tests that need torch-geometric, nas-bench-graph or the shared Cora files skip with the reason.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from nasframe.core.graph import bind_graph, bound_graph
from nasframe.data.graph import GraphData, node_splits
from nasframe.data.paths import data_root
from nasframe.errors import ConfigError

pyg = pytest.importorskip("torch_geometric", reason="needs the torch-geometric package")

from search_spaces.gnn_bench import GNNBenchSpace  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread(_two_threads) -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def graph() -> GraphData:
    gen = torch.Generator().manual_seed(1)
    n = 50
    part = torch.arange(n) % 5
    return GraphData(
        x=torch.rand(n, 6, generator=gen), edge_index=torch.randint(0, n, (2, 200), generator=gen),
        y=torch.randint(0, 3, (n,), generator=gen), train_mask=part < 2, val_mask=part == 2, test_mask=part > 2,
        num_features=6, num_classes=3, name="random",
    )


@pytest.fixture(scope="module")
def cora_root(tmp_path_factory):
    """A writable copy of the shared Cora raw files."""
    raw = data_root() / "planetoid" / "Cora" / "raw"
    if not raw.is_dir():
        pytest.skip(f"no Planetoid Cora files at {raw} (set $NASFRAME_DATA)")
    root = tmp_path_factory.mktemp("planetoid")
    shutil.copytree(raw, root / "Cora" / "raw")
    return root


def test_node_splits_hold_the_mask_nodes_and_their_labels(graph):
    splits = node_splits(graph)
    for split, mask in ((splits.train, graph.train_mask), (splits.valid, graph.val_mask), (splits.test, graph.test_mask)):
        assert split.x.dtype == torch.long and torch.equal(split.x, mask.nonzero().flatten())
        assert torch.equal(split.y, graph.y[mask])
    assert splits.is_graph and splits.graph is graph and splits.spec == graph.spec
    assert splits.summary() == graph.summary()


def test_a_bound_network_returns_the_full_graph_rows_of_the_asked_nodes(graph, rng):
    space = GNNBenchSpace(graph.spec, hidden=8, dropout=0.0)
    supernet = space.build_supernet().eval()
    arch = space.sample(rng)
    supernet.set_arch(arch)
    with pytest.raises(ValueError, match="graph network: call it as model\\(x, edge_index\\)"):
        supernet(torch.tensor([0, 1]))
    bind_graph(supernet, graph.x, graph.edge_index)
    ids = torch.tensor([7, 3, 3, 40])
    with torch.no_grad():
        assert torch.equal(supernet(ids), supernet(graph.x, graph.edge_index)[ids])
    with pytest.raises(ValueError, match="1-D tensor of node ids"):
        supernet(graph.x)
    assert bound_graph(supernet)[0] is graph.x
    assert not any("bound" in key for key in supernet.state_dict())  # never checkpointed
    with pytest.raises(TypeError, match="not a graph network"):
        bind_graph(torch.nn.Linear(2, 2), graph.x, graph.edge_index)


def test_adam_leaves_weights_off_the_path_untouched(graph, rng):
    from nasframe.data.base import InMemoryLoader
    from nasframe.sampling.uniform import UniformSampler
    from nasframe.training.trainer import SupernetTrainer, TrainerConfig

    space = GNNBenchSpace(graph.spec, hidden=8)
    supernet = bind_graph(space.build_supernet(), graph.x, graph.edge_index)
    splits = node_splits(graph)
    trainer = SupernetTrainer(supernet, UniformSampler(space, seed=0), InMemoryLoader(splits.train, 64),
                              TrainerConfig(epochs=3, batch_size=64, optimizer="adam", lr=0.01, progress=False))
    trainer.fit(until_epoch=2)
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    arch = trainer.sampler.sample()
    trainer.sampler.sample = lambda: arch  # the next step trains this path
    x, y, idx = next(iter(trainer.loader.epoch()))
    trainer.train_step(x, y, idx)
    on_path = {name for name, p in supernet.named_parameters() if p.grad is not None}
    assert on_path and isinstance(trainer.optimizer, torch.optim.Adam)
    for name, p in supernet.named_parameters():
        assert torch.equal(p, before[name]) != (name in on_path), name
    with pytest.raises(ConfigError, match="trainer.optimizer: 'lamb' is not one of sgd, adam"):
        TrainerConfig(optimizer="lamb").check()


def test_planetoid_is_a_registered_graph_data_set(cora_root):
    from nasframe.core.registry import DATASETS
    from nasframe.data.base import build_dataset

    assert "planetoid" in DATASETS
    data = build_dataset({"name": "planetoid", "graph": "Cora", "root": str(cora_root)})
    assert data.is_graph and (len(data.train), len(data.valid), len(data.test)) == (140, 500, 1000)
    assert torch.equal(data.train.y, data.graph.y[data.graph.train_mask])
    assert data.summary().startswith("Cora: 2708 nodes")


def _compose(*overrides: str):
    from hydra import compose, initialize_config_dir

    from nasframe.cli import CONFIG_DIR
    from nasframe.config import register_configs

    register_configs()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("search", overrides=list(overrides))


def test_spaces_refuse_data_of_the_other_kind(cora_root):
    from nasframe.search import setup_search

    with pytest.raises(ConfigError, match="space 'gnn_bench' holds graph networks .* use a graph data set"):
        setup_search(_compose("space=gnn_bench", "dataset=digits"))
    with pytest.raises(ConfigError, match="dataset 'Cora' is a graph .* space 'nb201' holds image networks"):
        setup_search(_compose("dataset=planetoid", f"dataset.root={cora_root}"))
    with pytest.raises(ConfigError, match="image-network options"):
        setup_search(_compose("space=gnn_bench", "dataset=planetoid", f"dataset.root={cora_root}", "evaluator.fold_bn=true"))


def test_experiment_preset_is_the_benchmarks_cora_model_trained_full_batch():
    cfg = _compose("+experiment=gnn_bench_cora_cpu")
    assert (cfg.space.name, cfg.dataset.name, cfg.dataset.graph) == ("gnn_bench", "planetoid", "Cora")
    assert (cfg.space.hidden, cfg.space.pre_layers, cfg.space.post_layers) == (256, 0, 1)
    assert cfg.trainer.batch_size >= 140 and cfg.trainer.optimizer == "adam"


@pytest.mark.slow
def test_search_on_cora_then_rank_against_nasbench_graph(cora_root, tmp_path):
    nbg = pytest.importorskip("nas_bench_graph", reason="needs the nas-bench-graph package")
    from nasframe.config import RankConfig
    from nasframe.rank import run_rank
    from nasframe.search import run_search
    from omegaconf import OmegaConf

    cfg = _compose(
        "+experiment=gnn_bench_cora_cpu", f"dataset.root={cora_root}", "space.hidden=16", "trainer.epochs=8",
        "trainer.checkpoint_every=4", "trainer.progress=false", "selector.population_size=4", "selector.generations=2",
        "threads=1",
    )
    outcome = run_search(cfg, tmp_path / "run")
    assert outcome is not None and outcome.export_max_abs_diff <= 1e-5
    assert 0.0 <= outcome.test_accuracy <= 100.0 and outcome.native.startswith("Arch([")
    history = json.loads((tmp_path / "run/selection.json").read_text())["history"]
    assert 1 <= len(history) <= 12

    # the exported program runs on the graph with plain torch, as the subnet does
    from nasframe.data.planetoid import Planetoid

    cora = Planetoid(graph="Cora", root=str(cora_root)).load_graph()
    program = torch.export.load(str(outcome.files["program"])).module()
    space = GNNBenchSpace.from_config(cfg.space, where="space", data=cora.spec)
    subnet = space.build_subnet(outcome.arch).eval()
    subnet.load_state_dict(torch.load(outcome.files["state_dict"]))
    with torch.no_grad():
        logits = program(cora.x, cora.edge_index)
        assert logits.shape == (2708, 7) and torch.allclose(logits, subnet(cora.x, cora.edge_index), atol=1e-5)
        test_acc = 100.0 * (logits[cora.test_mask].argmax(1) == cora.y[cora.test_mask]).float().mean().item()
    assert test_acc == pytest.approx(outcome.test_accuracy, abs=1e-3)

    rank_cfg = OmegaConf.structured(RankConfig)
    rank_cfg.run, rank_cfg.out, rank_cfg.threads = str(tmp_path / "run"), str(tmp_path / "rank"), 1
    rank_cfg.benchmark = {"name": "nasbench_graph", "dataset": "cora"}
    rank_cfg.ranking.update(num_archs=12, truth_metric="cora_test", also_against=["cora_valid"], canonical=True)
    rank_cfg.evaluator = {"name": "supernet", "bn_recalibration_batches": 1}
    report, out = run_rank(rank_cfg)
    assert len(report.archs) == 12 and len(set(report.archs)) == 12
    canonical = {space.format(space.canonical(space.parse(a))) for a in report.archs}
    assert canonical == set(report.archs)  # one arch per benchmark model
    table = nbg.light_read("cora")
    for native, truth in zip(report.archs, report.truth):
        assert truth == pytest.approx(100 * table[space.benchmark_key(space.parse(native))]["perf"])
    assert set(report.extra["against"]) == {"cora_valid"} and -1 <= report.extra["against"]["cora_valid"]["kendall_tau"] <= 1
    saved = json.loads((out / "ranking.json").read_text())
    assert saved["protocol"]["archs"].startswith("12 distinct models") and "full graph" in saved["protocol"]["bn"]


def test_canonical_sample_covers_every_benchmark_model_once():
    pytest.importorskip("nas_bench_graph", reason="needs the nas-bench-graph package")
    from nasframe.evaluation.ranking import sample_archs

    space = GNNBenchSpace()
    every = sample_archs(space, 0, 0, canonical=True)
    assert len(every) == len(set(every)) == 26_206
    assert len({space.benchmark_key(a) for a in every}) == 26_206
    some = sample_archs(space, 300, 5, canonical=True)
    assert len(set(some)) == 300 and all(space.canonical(a) == a for a in some)
    assert some == sample_archs(space, 300, 5, canonical=True)


def _tabular_config(*overrides: str):
    from hydra import compose, initialize_config_dir

    from nasframe.cli import CONFIG_DIR
    from nasframe.config import register_configs

    register_configs()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("tabular", overrides=["space=gnn_bench", "benchmark=nasbench_graph", "search_metric=cora_valid",
                                             "report_metric=cora_test", *overrides])


def test_tabular_mode_searches_nasbench_graph(cora_root, tmp_path):
    pytest.importorskip("nas_bench_graph", reason="needs the nas-bench-graph package")
    from nasframe.benchmarks.tabular_search import run_tabular

    cfg = _tabular_config("dataset=planetoid", f"dataset.root={cora_root}", "max_queries=40", "seeds=2")
    run_tabular(cfg, tmp_path)
    result = json.loads((tmp_path / "tabular.json").read_text())
    largest = result["baselines"]["largest_arch"]  # counted on Cora's 1,433 features: every node reads them
    assert largest["arch"] == "Arch([0, 0, 0, 0], ['arma', 'arma', 'arma', 'arma'])" and largest["params"] == 3_462_151
    assert set(result["selectors"]) == {"evolutionary", "random"}
    assert result["optimum"] == pytest.approx(83.13, abs=0.01)  # Cora's best test accuracy in the benchmark
    for run in result["selectors"].values():
        assert len(run["mean"]) == 40 and len(run["final_per_seed"]) == 2
        assert all(70.0 < f <= result["optimum"] for f in run["final_per_seed"])


def test_tabular_mode_on_a_graph_space_needs_the_data_set_that_sizes_its_networks(tmp_path):
    pytest.importorskip("nas_bench_graph", reason="needs the nas-bench-graph package")
    from nasframe.benchmarks.tabular_search import run_tabular

    with pytest.raises(ConfigError, match="need the data set: give it \\(dataset=planetoid\\)"):
        run_tabular(_tabular_config("max_queries=10", "seeds=1"), tmp_path)
    assert not (tmp_path / "tabular.json").exists()

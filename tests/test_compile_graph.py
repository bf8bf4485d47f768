"""``trainer.compile`` on the graph spaces: the PyG layers and op blocks are compiled, lone activations and the
``skip`` op are not, and a compiled supernet trains as the eager one does, dropout masks included (the op blocks
hold dropout, which inductor would otherwise draw from its own generator).

Needs torch-geometric.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nasframe.core.graph import bind_graph
from nasframe.training.compile import fixed_parts

pytest.importorskip("torch_geometric", reason="needs the torch-geometric package")

from search_spaces.gnn_bench import GNNBenchSpace  # noqa: E402
from search_spaces.graphnas import GraphNASSpace  # noqa: E402

from test_graphnas_space import SPEC, random_graph  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread(_two_threads) -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def graph():
    return random_graph()


def assert_every_weight_in_one_part(supernet: nn.Module, parts: dict[str, nn.Module]) -> None:
    owned = [id(p) for module in parts.values() for p in module.parameters()]
    assert len(owned) == len(set(owned)) and set(owned) == {id(p) for p in supernet.parameters()}


def test_graphnas_compiles_every_layer_candidate_and_no_lone_activation():
    supernet = GraphNASSpace(SPEC, heads=[1, 2], hidden=[8, 16]).build_supernet()
    parts = dict(fixed_parts(supernet))
    candidates = {name for name, _ in supernet.named_modules() if ".conv.candidates." in name and name.count(".") == 4}
    assert set(parts) == candidates  # the activation choices' options (ReLU, ELU, ...) stay eager: one kernel each
    assert_every_weight_in_one_part(supernet, parts)


def test_gnn_bench_compiles_the_op_blocks_and_not_the_skip_op():
    supernet = GNNBenchSpace(SPEC, hidden=16, ops=["gcn", "fc", "skip"]).build_supernet()
    parts = dict(fixed_parts(supernet))
    assert {type(m).__name__ for m in parts.values()} >= {"GraphOpBlock"}
    assert not any(name.endswith(".input.skip") for name in parts)  # the identity: nothing to compile
    # node 1 reads the input only (gcn, fc); nodes 2-4 also read hidden features, where a skip holds a BatchNorm
    assert sum(type(m).__name__ == "GraphOpBlock" for m in parts.values()) == 2 + 3 * (2 + 3)


def make_graph_trainer(space, graph, compile: str):
    from nasframe.data.base import InMemoryLoader
    from nasframe.data.graph import node_splits
    from nasframe.sampling.uniform import UniformSampler
    from nasframe.training.trainer import SupernetTrainer, TrainerConfig

    torch.manual_seed(0)
    supernet = bind_graph(space.build_supernet(), graph.x, graph.edge_index)
    config = TrainerConfig(epochs=3, batch_size=64, lr=0.1, progress=False, compile=compile)
    loader = InMemoryLoader(node_splits(graph).train, 64, seed=0)
    return SupernetTrainer(supernet, UniformSampler(space, seed=0), loader, config)


def test_compiled_graph_training_draws_the_eager_dropout_masks(graph):
    """Dropout 0.5 inside every compiled op block: the compiled steps equal the eager ones up to fp32 rounding.
    Inductor's own generator draws other masks: without ``fallback_random`` the first loss here is 1.195
    (eager: 1.159)."""
    space = GNNBenchSpace(SPEC, hidden=16, dropout=0.5, ops=["gcn", "fc", "skip"])
    runs = {}
    for mode in ("off", "default"):
        trainer = make_graph_trainer(space, graph, mode)
        torch.manual_seed(1)
        runs[mode] = (trainer, [h["loss"] for h in trainer.fit()])
    (eager, eager_losses), (compiled, compiled_losses) = runs["off"], runs["default"]
    assert compiled.compiled_parts and not eager.compiled_parts
    assert compiled_losses == pytest.approx(eager_losses, abs=1e-5)
    sa, sb = eager.supernet.state_dict(), compiled.supernet.state_dict()
    assert max((sa[k].float() - sb[k].float()).abs().max().item() for k in sa) < 1e-4

"""The NAS-Bench-Graph space (search_spaces/gnn_bench.py), its benchmark wrapper and the Planetoid loader (the
invariants every space keeps, on a small graph: tests/test_space_conformance.py).

Tests that need the ``nas-bench-graph`` or ``torch-geometric`` packages, or the shared Cora files, skip with a
message when they are absent.
"""

from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest
import torch

from nasframe.benchmarks.nasbench_graph import LINKS, OPS, PROTEINS_OPS, NASBenchGraph, decode_key, format_native
from nasframe.core.arch import Arch
from nasframe.core.space import DataSpec
from nasframe.data.paths import data_root
from nasframe.errors import ConfigError, DataError, InvalidArchError
from nasframe.export import extract
from search_spaces.gnn_bench import BENCHMARK_MODELS, NODES, GNNBenchSpace, op_choice, plan_cell
from test_space_conformance import GNN_BENCH_SPECIAL as SPECIAL

CORA = DataSpec(in_channels=1433, input_size=(1, 1), num_classes=7)


@pytest.fixture(autouse=True)
def _one_thread(_two_threads) -> None:
    """These graphs are small: one thread is as fast, and never stalls in OpenMP waits on a busy machine
    (runs after conftest's ``_two_threads``)."""
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def space() -> GNNBenchSpace:
    return GNNBenchSpace(CORA)


@pytest.fixture(scope="module")
def nbg():
    return pytest.importorskip("nas_bench_graph", reason="needs the nas-bench-graph package")


@pytest.fixture(scope="module")
def pyg():
    return pytest.importorskip("torch_geometric", reason="needs the torch-geometric package")


@pytest.fixture(scope="module")
def cora(pyg, tmp_path_factory):
    """Cora with the public split, loaded from a copy of the shared raw files (never from the shared folder)."""
    raw = data_root() / "planetoid" / "Cora" / "raw"
    if not raw.is_dir():
        pytest.skip(f"no Planetoid Cora files at {raw} (set $NASFRAME_DATA)")
    root = tmp_path_factory.mktemp("planetoid")
    shutil.copytree(raw, root / "Cora" / "raw")
    from nasframe.data.planetoid import Planetoid

    return Planetoid(graph="Cora", root=str(root)).load_graph()


@pytest.fixture(scope="module")
def graph(pyg):
    """A small random graph (60 nodes, 12 features, 3 classes) for the fast supernet tests."""
    from test_graphnas_space import random_graph

    return random_graph()


# --------------------------------------------------------------------------------------------------------
# Choices, encoding, membership
# --------------------------------------------------------------------------------------------------------
def test_constants_are_the_packages_lists(nbg):
    assert [list(link) for link in LINKS] == nbg.link_list
    assert list(OPS) == nbg.gnn_list and list(PROTEINS_OPS) == nbg.gnn_list_proteins


def test_choices_size_and_enumeration(space):
    assert [c.name for c in space.choices] == ["link", "op_1", "op_2", "op_3", "op_4"]
    assert space.choice("link").options == ("0000", "0001", "0011", "0012", "0013", "0111", "0112", "0122", "0123")
    assert all(space.choice(op_choice(n)).options == OPS for n in NODES)
    archs = list(space.enumerate())
    assert space.size == len(archs) == len(set(archs)) == 9 * 9**4 - 9 == 59_040  # all-skip is not an arch
    assert not any(all(a[op_choice(n)] == "skip" for n in NODES) for a in archs)


def test_archs_round_trip_through_their_native_strings(space):
    archs = list(space.enumerate())
    strings = [space.format(a) for a in archs]
    assert len(set(strings)) == len(archs)  # every arch has its own string
    # parsing is the slow half: every 7th arch (8,435, covering every link and every op at every node)
    assert all(space.parse(s) == a for s, a in zip(strings[::7], archs[::7]))


def test_native_string_layout(space):
    arch = space.parse(SPECIAL[0])
    assert arch.to_dict() == {"link": "0123", "op_1": "gcn", "op_2": "gin", "op_3": "fc", "op_4": "cheb"}
    assert space.format(arch) == SPECIAL[0]
    assert space.parse(' Arch( [0,1,2,3] , ["gcn","gin","fc","cheb"] ) ') == arch  # spacing and quotes are free
    assert space.parse(arch.to_json()) == arch  # the JSON form of the choices is accepted too


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected Arch"),
        ("[0, 1, 2, 3] ['gcn', 'gcn', 'gcn', 'gcn']", "expected Arch"),
        ("Arch([0, 1, 2, 3], ['gcn', 'gcn', 'gcn', 'gcn']", "expected Arch"),
        ("Arch([0, 1, 2, 3], [gcn, gcn, gcn, gcn])", "cannot read a link list and an op list"),
        ("Arch([0, 1, 2, 3])", "expected two lists"),
        ("Arch([0, 1, 2], ['gcn', 'gcn', 'gcn', 'gcn'])", "the link list needs 4 integers"),
        ("Arch([0, 1, 2, 3.0], ['gcn', 'gcn', 'gcn', 'gcn'])", "the link list needs 4 integers"),
        ("Arch([0, 2, 1, 1], ['gcn', 'gcn', 'gcn', 'gcn'])", "node 2 cannot read node 2"),
        ("Arch([1, 0, 1, 1], ['gcn', 'gcn', 'gcn', 'gcn'])", "node 1 cannot read node 1"),
        ("Arch([0, 1, 2, 3], ['gcn', 'gcn', 'gcn'])", "the op list needs 4 op names"),
        ("Arch([0, 1, 2, 3], ['gcn', 'conv', 'gcn', 'gcn'])", "unknown op 'conv' at node 2"),
        ("Arch([0, 1, 2, 3], ['skip', 'skip', 'skip', 'skip'])", "every op is 'skip'"),
        ("Arch([0, 1, 0, 2], ['gcn', 'gcn', 'gcn', 'gcn'])", r"link \[0, 1, 0, 2\] is not one of the benchmark's 9 patterns"),
        ('{"link": "0123", "op_1": "gcn"}', "no option for choice 'op_2'"),
        (
            '{"link": "0124", "op_1": "gcn", "op_2": "gcn", "op_3": "gcn", "op_4": "gcn"}',
            "unknown option '0124' for choice 'link'",
        ),
    ],
)
def test_malformed_strings_raise_clear_errors(space, text, message):
    with pytest.raises(InvalidArchError, match=message):
        space.parse(text)


def test_validate_rejects_all_skip_and_names_the_choices(space):
    arch = {"link": "0123", **{op_choice(n): "skip" for n in NODES}}
    with pytest.raises(InvalidArchError, match="every op is 'skip'.*op_1, op_2, op_3, op_4"):
        space.validate(arch)
    assert not space.contains(arch)


def test_sampling_and_variation_never_leave_the_space(rng):
    small = GNNBenchSpace(CORA, ops=["gcn", "skip"])  # all-skip would be 1 draw in 16 without the rule
    assert small.size == 9 * (2**4 - 1)
    draws = [small.sample(rng) for _ in range(400)]
    assert all(small.contains(a) for a in draws)
    assert len(set(draws)) > 100
    for a, b in zip(draws[:100], draws[100:200]):
        assert small.contains(small.mutate(a, rng, prob=0.9)) and small.contains(small.crossover(a, b, rng))
    counts = Counter(a["link"] for a in draws)
    assert set(counts) == set(small.choice("link").options)  # every link pattern is drawn
    # sub-spaces (few-shot splits) count their members the same way, and a split partitions the space
    parts = [small.restrict({"op_1": [op]}) for op in small.choice("op_1").options]
    assert [p.size for p in parts] == [len(list(p.enumerate())) for p in parts] == [9 * 2**3, 9 * (2**3 - 1)]
    assert sum(p.size for p in parts) == small.size


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match=r"gnn_bench\.hiden: unknown key"):
        GNNBenchSpace(CORA, hiden=8)
    with pytest.raises(ConfigError, match="unknown op 'conv'"):
        GNNBenchSpace(CORA, ops=["gcn", "conv"])
    with pytest.raises(ConfigError, match="at least one op besides 'skip'"):
        GNNBenchSpace(CORA, ops=["skip"])
    with pytest.raises(ConfigError, match="multiple of gat_heads"):
        GNNBenchSpace(CORA, hidden=10)
    with pytest.raises(ConfigError, match="dropout"):
        GNNBenchSpace(CORA, dropout=1.0)


def test_cell_plan_outputs_and_input_widths():
    # leaves are outputs, except a leaf whose value is the input (a skip chain from node 0)
    assert plan_cell((0, 0, 0, 0), ("gcn", "gcn", "gcn", "skip"), raw_input=True).outputs == (1, 2, 3)
    plan = plan_cell((0, 1, 2, 3), ("skip", "skip", "gcn", "fc"), raw_input=True)
    assert plan.outputs == (4,) and plan.widths == ("input", "input", "input", "hidden")
    assert plan_cell((0, 1, 2, 3), ("skip", "skip", "gcn", "fc"), raw_input=False).widths == ("hidden",) * 4
    assert plan_cell((0, 0, 1, 3), ("cheb", "skip", "arma", "skip"), raw_input=True).outputs == (4,)
    # a skip of a computed node is an output like any other leaf
    assert plan_cell((0, 1, 1, 1), ("gcn", "skip", "gat", "gin"), raw_input=True).outputs == (2, 3, 4)
    with pytest.raises(InvalidArchError, match="every op is 'skip'"):
        plan_cell((0, 1, 2, 3), ("skip",) * 4, raw_input=True)


# --------------------------------------------------------------------------------------------------------
# Agreement with the benchmark package
# --------------------------------------------------------------------------------------------------------
def test_keys_agree_with_the_package_and_cover_the_benchmark_exactly(space, nbg):
    keys = set()
    for arch in space.enumerate():
        link = [int(d) for d in arch["link"]]
        ops = [arch[op_choice(n)] for n in NODES]
        key = space.benchmark_key(arch)
        assert key == nbg.Arch(link, ops).valid_hash()
        keys.add(key)
    table = nbg.light_read("cora")
    assert len(table) == 26_206 and keys == set(table)  # 59,040 encodings -> exactly the 26,206 keys


def test_canonical_is_the_benchmarks_own_form(space, nbg):
    for key in nbg.light_read("cora"):
        link, ops = decode_key(key)
        assert nbg.Arch(list(link), list(ops)).valid_hash() == key
    a = space.parse("Arch([0, 0, 0, 0], ['gcn', 'gcn', 'gcn', 'skip'])")
    b = space.parse("Arch([0, 1, 1, 1], ['skip', 'gcn', 'gcn', 'gcn'])")
    assert space.canonical(a) == space.canonical(b) == b and space.canonical(space.canonical(a)) == b


def _renamed(state, nodes, outputs):
    """``state`` with node ``i`` 's op block moved to node ``nodes[i]`` and the readout block of output node
    ``j`` to ``outputs[j]``."""
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "nodes":
            parts[1] = str(nodes[int(parts[1])])
        elif parts[:2] == ["readout", "blocks"]:
            parts[2] = str(outputs[int(parts[2])])
        out[".".join(parts)] = value
    return out


def _same_model(space, first_arch, second_arch, graph) -> bool:
    """True when some renaming of node positions loads ``first_arch`` 's subnet weights into
    ``second_arch`` 's subnet (strictly) and gives the same output."""
    import itertools

    first, second = space.build_subnet(first_arch).eval(), space.build_subnet(second_arch).eval()
    ops_a, ops_b = space.link_and_ops(first_arch)[1], space.link_and_ops(second_arch)[1]
    outs_a, outs_b = space.plan(first_arch).outputs, space.plan(second_arch).outputs
    with torch.no_grad():
        expected = first(graph.x, graph.edge_index)
    node_orders = [o for o in itertools.permutations(NODES) if all(ops_a[i] == ops_b[j - 1] for i, j in enumerate(o))]
    for order, out_order in itertools.product(node_orders, itertools.permutations(outs_b)):
        try:
            second.load_state_dict(_renamed(first.state_dict(), dict(zip(NODES, order)), dict(zip(outs_a, out_order))))
        except RuntimeError:  # keys or shapes differ: not this renaming
            continue
        with torch.no_grad():
            if torch.allclose(second(graph.x, graph.edge_index), expected, atol=1e-5):
                return True
    return False


def _hidden_skips(space, arch) -> int:
    """How many skip nodes of ``arch`` read a computed node (and so run BatchNorm -> ReLU -> dropout)."""
    plan = space.plan(arch)
    return sum(op == "skip" and width == "hidden" for op, width in zip(plan.ops, plan.widths))


def test_archs_with_one_key_are_one_model_up_to_node_order(nbg, graph, rng):
    """The claim behind canonical(): an arch and the benchmark's canonical form of its key compute the same
    function once node positions are renamed -- exactly so where neither has a skip of a computed node. The
    benchmark's hash also merges archs that differ in where such a skip sits, which in its own model (the
    pre-activation cell) adds or removes a BatchNorm -> ReLU -> dropout: one key, two functions."""
    space = GNNBenchSpace(graph.spec, hidden=8, dropout=0.0)
    archs = [space.parse(s) for s in SPECIAL] + [space.sample(rng) for _ in range(40)]
    checked = 0
    for arch in archs:
        if _hidden_skips(space, arch) or _hidden_skips(space, space.canonical(arch)):
            continue
        assert _same_model(space, arch, space.canonical(arch), graph), space.format(arch)
        checked += 1
    assert checked >= 20
    merged = space.parse("Arch([0, 1, 1, 2], ['fc', 'skip', 'gat', 'gin'])")
    assert _hidden_skips(space, merged) == 1 and space.benchmark_key(merged) == space.benchmark_key(space.canonical(merged))
    assert not _same_model(space, merged, space.canonical(merged), graph)
    # the check can fail: same ops, same layer shapes, same number of outputs, but sage reads node 2 or node 1
    first = space.parse("Arch([0, 1, 2, 2], ['gcn', 'gat', 'sage', 'fc'])")
    second = space.parse("Arch([0, 1, 1, 2], ['gcn', 'gat', 'sage', 'fc'])")
    assert space.benchmark_key(first) != space.benchmark_key(second) and not _same_model(space, first, second, graph)


def test_proteins_op_set_enumerates_the_proteins_table(nbg):
    proteins = GNNBenchSpace(DataSpec(8, (1, 1), 112), ops=list(PROTEINS_OPS))
    assert {proteins.benchmark_key(a) for a in proteins.enumerate()} == set(nbg.light_read("proteins"))


@pytest.mark.parametrize(
    ("dataset", "features", "classes", "count"),
    [("cora", 1433, 7, 24), ("pubmed", 500, 3, 8), ("cs", 6805, 15, 8), ("computers", 767, 10, 8), ("proteins", 8, 112, 8)],
)
def test_parameter_counts_match_the_benchmark(nbg, pyg, dataset, features, classes, count):
    """The benchmark builds a BatchNorm per computing node, also where its input is the raw features and the
    BatchNorm never runs: para = ours + 2 * hidden * #nodes reading the raw input."""
    space = GNNBenchSpace.for_benchmark(dataset, DataSpec(features, (1, 1), classes))
    table = nbg.light_read(dataset)
    rng = np.random.default_rng(1)
    archs = [space.sample(rng) for _ in range(count)]
    if dataset != "proteins":  # the special archs use ops that proteins lacks
        archs += [space.parse(s) for s in SPECIAL]
    for arch in archs:
        raw_readers = space.plan(arch).widths.count("input")
        expected = round(float(table[space.benchmark_key(arch)]["para"]) * 1e6)
        assert space.count_params(arch) + 2 * space.config.hidden * raw_readers == expected, space.format(arch)
    assert BENCHMARK_MODELS[dataset].hidden == space.config.hidden


# --------------------------------------------------------------------------------------------------------
# Supernet, subnet, weight sharing
# --------------------------------------------------------------------------------------------------------
def _trained(space, graph, rng, steps=3):
    """A supernet whose weights and BatchNorm statistics moved off their init."""
    supernet = space.build_supernet()
    opt = torch.optim.SGD(supernet.parameters(), lr=0.1)
    supernet.train()
    for _ in range(steps):
        supernet.set_arch(space.sample(rng))
        opt.zero_grad(set_to_none=True)
        logits = supernet(graph.x, graph.edge_index)
        torch.nn.functional.cross_entropy(logits[graph.train_mask], graph.y[graph.train_mask]).backward()
        opt.step()
    return supernet


def _assert_same_function(space, supernet, graph, archs):
    supernet.eval()
    for arch in archs:
        subnet = extract(space, supernet, arch)
        assert not subnet.training
        with torch.no_grad():
            out = supernet(graph.x, graph.edge_index)
            diff = (out - subnet(graph.x, graph.edge_index)).abs().max().item()
        assert out.shape == (graph.num_nodes, graph.num_classes) and diff <= 1e-5, (space.format(arch), diff)


def test_subnet_equals_supernet_path_on_cora(cora, rng):
    space = GNNBenchSpace(cora.spec, hidden=16, dropout=0.5)
    supernet = _trained(space, cora, rng, steps=2)
    archs = [space.parse(s) for s in SPECIAL] + [space.sample(rng) for _ in range(2)]
    _assert_same_function(space, supernet, cora, archs)
    # train mode: BatchNorm on batch statistics, the same dropout masks from the same seed
    supernet.train()
    subnet = extract(space, supernet, archs[1])
    with torch.no_grad():
        torch.manual_seed(3)
        a = supernet(cora.x, cora.edge_index)
        torch.manual_seed(3)
        b = subnet(cora.x, cora.edge_index)
    assert (a - b).abs().max().item() <= 1e-5


@pytest.mark.parametrize("settings", [{"pre_layers": 1, "post_layers": 0}, {"post_layers": 2}])
def test_subnet_equals_supernet_path_with_other_pre_and_post_layers(graph, rng, settings):
    space = GNNBenchSpace(graph.spec, hidden=8, dropout=0.5, **settings)
    supernet = _trained(space, graph, rng)
    _assert_same_function(space, supernet, graph, [space.parse(s) for s in SPECIAL] + [space.sample(rng) for _ in range(6)])


def test_weights_are_shared_per_position_and_op(graph, rng):
    space = GNNBenchSpace(graph.spec, hidden=8, dropout=0.0)
    supernet = space.build_supernet()
    first = space.parse("Arch([0, 1, 2, 3], ['gcn', 'sage', 'fc', 'gat'])")
    second = space.parse("Arch([0, 1, 1, 1], ['fc', 'sage', 'gin', 'gcn'])")  # sage at node 2, reading node 1 again
    supernet.set_arch(first)
    shared = supernet.nodes["2"].active_module()
    supernet.set_arch(second)
    assert supernet.nodes["2"].active_module() is shared  # same (position, op, input width): one module
    assert supernet.nodes["4"].active_module() is supernet.nodes["4"].candidates["hidden"]["gcn"]
    # training the first arch moves the block the second arch inherits
    before = {k: v.clone() for k, v in extract(space, supernet, second).state_dict().items() if k.startswith("nodes.2.")}
    supernet.set_arch(first)
    supernet.train()
    opt = torch.optim.SGD(supernet.parameters(), lr=0.5)
    logits = supernet(graph.x, graph.edge_index)
    torch.nn.functional.cross_entropy(logits[graph.train_mask], graph.y[graph.train_mask]).backward()
    opt.step()
    after = extract(space, supernet, second).state_dict()
    assert before and all(not torch.equal(v, after[k]) for k, v in before.items() if k.endswith("weight"))
    # the same op at a position reading the raw features is another block (other input width)
    third = space.parse("Arch([0, 0, 1, 2], ['gcn', 'sage', 'fc', 'fc'])")
    supernet.set_arch(third)
    assert supernet.nodes["2"].active_module() is not shared and supernet.nodes["2"].width == "input"


def test_set_arch_failures_leave_no_stale_path(space, pyg):
    supernet = GNNBenchSpace(CORA, hidden=8).build_supernet()
    x, edges = torch.zeros(3, 1433), torch.zeros(2, 0, dtype=torch.long)
    with pytest.raises(InvalidArchError, match="no option for choice"):
        supernet.set_arch({})
    all_gcn = {op_choice(n): "gcn" for n in NODES}
    for bad, message in [
        ({"link": "0124", **all_gcn}, "choice 'link' has no option '0124'"),  # op_* were routed before the link failed
        ({"link": "0123", **{op_choice(n): "skip" for n in NODES}}, "every op is 'skip'"),
    ]:
        supernet.set_arch(space.parse(SPECIAL[0]))
        with pytest.raises(InvalidArchError, match=message):
            supernet.set_arch(bad)
        assert supernet.active_arch is None
        with pytest.raises(InvalidArchError, match="no active arch"):
            supernet(x, edges)
    with pytest.raises(InvalidArchError, match="single-path only"):
        supernet.set_mixture({})


# --------------------------------------------------------------------------------------------------------
# The benchmark wrapper
# --------------------------------------------------------------------------------------------------------
def test_benchmark_queries_enumeration_and_optimum(space, nbg):
    bench = NASBenchGraph(dataset="cora")
    assert bench.metrics == ("cora_valid", "cora_test", "latency_ms", "params_M") and len(bench) == 26_206
    natives = list(bench.archs())
    assert len(set(natives)) == 26_206 and all(space.contains(space.parse(n)) for n in natives[::97])
    best_valid, value = bench.optimum("cora_valid")
    # the figures of $NASFRAME_DATA/README.md: best valid 81.93 (its test 82.63), best test 83.13, median test 78.5
    assert value == pytest.approx(81.93, abs=0.01)
    assert bench.metric(best_valid, "cora_test") == pytest.approx(82.63, abs=0.01)
    assert bench.optimum("cora_test")[1] == pytest.approx(83.13, abs=0.01)
    assert np.median([bench.metric(n, "cora_test") for n in natives]) == pytest.approx(78.5, abs=0.05)
    # archs with one key share one row; the benchmark also reads links outside the 9 patterns
    row = bench.query("Arch([0, 1, 1, 1], ['skip', 'gcn', 'gcn', 'gcn'])")
    assert bench.query("Arch([0, 0, 0, 0], ['gcn', 'gcn', 'gcn', 'skip'])") == row
    outside = bench.query("Arch([0, 1, 0, 2], ['skip', 'gat', 'gcn', 'fc'])")
    assert outside == bench.query("Arch([0, 0, 1, 3], ['skip', 'gcn', 'gat', 'fc'])")
    all_gcn = format_native((0, 0, 0, 0), ("gcn",) * 4)
    assert all_gcn == "Arch([0, 0, 0, 0], ['gcn', 'gcn', 'gcn', 'gcn'])"
    assert bench.query_key(bench.key(all_gcn)) == bench.query(all_gcn) and bench.key(all_gcn) == 1111
    assert set(row) == set(bench.metrics) and 0 < row["params_M"] < 10 and row["latency_ms"] > 0


def test_benchmark_errors(nbg):
    proteins = NASBenchGraph(dataset="proteins")
    assert len(proteins) == 2_021
    with pytest.raises(InvalidArchError, match="no entry for arch"):
        proteins.query("Arch([0, 1, 2, 3], ['gat', 'gcn', 'gcn', 'gcn'])")  # gat is not a proteins op
    with pytest.raises(InvalidArchError, match="expected Arch"):
        proteins.query("|gcn~0|")
    with pytest.raises(ConfigError, match="unknown data set 'mnist'"):
        NASBenchGraph(dataset="mnist")
    with pytest.raises(ConfigError, match="no metric 'accuracy'"):
        proteins.check_metric("accuracy")


# --------------------------------------------------------------------------------------------------------
# Planetoid
# --------------------------------------------------------------------------------------------------------
def test_cora_public_split(cora):
    assert (cora.num_nodes, cora.num_features, cora.num_classes) == (2708, 1433, 7)
    assert cora.edge_index.shape == (2, 10556) and cora.edge_index.dtype == torch.long
    assert [int(m.sum()) for m in (cora.train_mask, cora.val_mask, cora.test_mask)] == [140, 500, 1000]
    assert not (cora.train_mask & cora.val_mask).any() and not (cora.val_mask & cora.test_mask).any()
    assert cora.spec == DataSpec(1433, (1, 1), 7)


def test_read_only_or_shared_roots_are_copied_to_the_cache(pyg, tmp_path, monkeypatch):
    raw = data_root() / "planetoid" / "Cora" / "raw"
    if not raw.is_dir():
        pytest.skip(f"no Planetoid Cora files at {raw} (set $NASFRAME_DATA)")
    import nasframe.data.planetoid as planetoid

    cache = tmp_path / "cache" / "planetoid"
    monkeypatch.setenv("NASFRAME_CACHE", str(tmp_path / "cache"))
    own = tmp_path / "own"
    shutil.copytree(raw, own / "Cora" / "raw")
    assert planetoid.Planetoid(graph="Cora", root=str(own)).working_root() == own  # writable and not shared: used as is
    # a read-only root (simulated: this test may run as root, whom chmod does not stop)
    monkeypatch.setattr(planetoid, "_writable", lambda folder: False)
    loader = planetoid.Planetoid(graph="cora", root=str(own))
    assert loader.working_root() == cache
    graph = loader.load_graph()
    assert graph.num_nodes == 2708 and (cache / "Cora" / "processed").is_dir()
    assert sorted(p.name for p in (own / "Cora").iterdir()) == ["raw"]  # nothing written beside raw/
    monkeypatch.undo()
    # the data folder ($NASFRAME_DATA) is never written into, even when writable
    monkeypatch.setenv("NASFRAME_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NASFRAME_DATA", str(tmp_path))
    shared = tmp_path / "planetoid" / "Cora"
    shutil.copytree(raw, shared / "raw")
    assert planetoid.Planetoid(graph="Cora").working_root() == cache  # default root: $NASFRAME_DATA/planetoid
    assert planetoid.Planetoid(graph="Cora", root=str(tmp_path / "planetoid")).load_graph().num_nodes == 2708
    assert sorted(p.name for p in shared.iterdir()) == ["raw"]


def test_missing_root_and_unknown_name_are_clear_errors(tmp_path):
    from nasframe.data.planetoid import Planetoid

    with pytest.raises(DataError, match=r"Planetoid Cora not found: no raw files in .*Cora/raw"):
        Planetoid(graph="Cora", root=str(tmp_path / "nowhere")).load()
    with pytest.raises(ConfigError, match=r"dataset\.graph: unknown Planetoid graph 'Reddit'"):
        Planetoid(graph="Reddit")
    # a config node as a registry passes it: its "name" is the registry key, "graph" the data set
    assert Planetoid.from_config({"name": "planetoid", "graph": "citeseer"}, where="dataset").name == "CiteSeer"


def test_config_file_builds_the_cora_model():
    from omegaconf import OmegaConf

    from nasframe.cli import compose_config

    node = compose_config("search", ["space=gnn_bench"]).space
    space = GNNBenchSpace.from_config(node, where="space", data=CORA)
    cora = BENCHMARK_MODELS["cora"]
    assert node.name == space.name == "gnn_bench"
    cfg = space.config
    assert (cfg.hidden, cfg.pre_layers, cfg.post_layers) == (cora.hidden, cora.pre_layers, cora.post_layers)
    assert space.choice("op_1").options == OPS
    with pytest.raises(ConfigError, match=r"space\.hiden: unknown key"):
        GNNBenchSpace.from_config({**OmegaConf.to_container(node), "hiden": 3}, where="space", data=CORA)


def test_arch_json_round_trip_keeps_the_space_settings(space):
    arch = space.parse(SPECIAL[2])
    assert Arch.from_json(arch.to_json()) == arch
    described = space.describe()
    assert described["name"] == "gnn_bench" and described["config"]["hidden"] == 256
    assert described["config"]["ops"] == list(OPS) and described["data"]["in_channels"] == 1433


def test_structure_features_of_a_hand_checked_arch(space):
    # node 1 gcn(input); node 2 skip(node 1); node 3 gat(node 1); node 4 sage(node 2): outputs 3 and 4
    features = space.structure_features(space.from_link_and_ops([0, 1, 1, 2], ["gcn", "skip", "gat", "sage"]))
    assert set(features) == set(space.structure_feature_scales)
    nonzero = {name: value for name, value in features.items() if value}
    assert nonzero == {"count_gcn": 1, "count_skip": 1, "count_gat": 1, "count_sage": 1, "first_gcn": 1,
                       "output_gat": 1, "output_sage": 1, "path_gat": 1, "path_gcn": 2, "path_sage": 1,
                       "path_skip": 1, "outputs": 2, "max_depth": 2, "min_depth": 2}


def test_a_skip_chain_from_the_input_is_no_output_and_depth_counts_layers(space):
    # node 1 fc(input); node 2 skip(input), read by no node; node 3 gin(node 1); node 4 skip(node 3)
    features = space.structure_features(space.from_link_and_ops([0, 0, 1, 3], ["fc", "skip", "gin", "skip"]))
    assert features["outputs"] == 1 and features["output_skip"] == 1  # node 2 is the input itself: no output
    assert features["max_depth"] == features["min_depth"] == 2  # fc, gin: the skip adds no layer
    assert features["path_skip"] == 1 and features["path_fc"] == features["path_gin"] == 1


def test_structure_features_ignore_which_position_holds_an_op_and_stay_within_their_scale(space):
    rng = np.random.default_rng(0)
    scales = space.structure_feature_scales
    for _ in range(300):
        features = space.structure_features(space.sample(rng))
        assert all(0 <= features[name] <= top for name, top in scales.items())
    ops = ["gat", "gcn", "cheb", "fc"]
    first = space.structure_features(space.from_link_and_ops([0, 0, 0, 0], ops))
    for _ in range(5):  # every node reads the input: any order of the ops is the same network
        assert space.structure_features(space.from_link_and_ops([0, 0, 0, 0], list(rng.permutation(ops)))) == first
    widest = space.structure_features(space.from_link_and_ops([0, 1, 1, 1], ["gcn"] * 4))
    assert widest["path_gcn"] == scales["path_gcn"] == 6  # the largest path count: three outputs two deep

"""``nasframe train`` (the evaluation phase): a found arch trained standalone through the CLI and the library,
init=inherited from a tiny search run, resume, the protocol presets, and one-line errors for bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nasframe.cli import compose_config
from nasframe.data.paths import data_root
from nasframe.errors import NasframeError, NonFiniteLossError
from nasframe.evaluation_phase.run import run_train
from nasframe.evaluation_phase.setup import setup_train

NB201_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
TINY_SPACE = ["space.channels=4", "space.cells_per_stage=1"]
TINY_TRAIN = ["trainer.epochs=2", "trainer.batch_size=128", "trainer.progress=false"]
DIGITS_ARCH = ["space=nb201", "dataset=digits", *TINY_SPACE, f"arch='{NB201_ARCH}'"]
DARTS_V2 = (  # DARTS (second order)'s published CIFAR-10 cell
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=range(2, 6), "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=range(2, 6))"
)


def nasframe(*args: str, cwd) -> subprocess.CompletedProcess:
    exe = shutil.which("nasframe")
    cmd = [exe] if exe else [sys.executable, "-m", "nasframe.cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def search_run(tmp_path_factory) -> Path:
    """A tiny finished search run (NB201 on digits) with its export."""
    from nasframe.search import run_search

    run_dir = tmp_path_factory.mktemp("search") / "run"
    cfg = compose_config("search", [*TINY_SPACE, "trainer.epochs=1", "trainer.batch_size=128", "trainer.progress=false",
                                    "selector=random", "selector.num_samples=3", "evaluator.bn_recalibration_batches=1",
                                    "baselines.enabled=false"])
    assert run_search(cfg, run_dir) is not None
    return run_dir


def test_train_nb201_digits_through_the_cli(tmp_path):
    run_dir = tmp_path / "run"
    proc = nasframe("train", *DIGITS_ARCH, "+protocol=nb201", *TINY_TRAIN, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ["config.yaml", "train.log", "checkpoint.pt", "report.md", "curves.png", "outcome.json",
                 "export/arch.json", "export/subnet_state_dict.pt", "export/subnet.pt2"]:
        assert (run_dir / name).is_file(), name
    outcome = json.loads((run_dir / "outcome.json").read_text())
    assert outcome["arch"] == NB201_ARCH and outcome["protocol"] == "nb201" and outcome["epochs"] == 2
    assert [c["epoch"] for c in outcome["curves"]] == [1, 2] and 0 <= outcome["test_accuracy"] <= 100
    assert outcome["params"] > 0 and outcome["macs"] > 0
    report = (run_dir / "report.md").read_text()
    assert "test accuracy" in report and "curves.png" in report and "nb201" in report
    config = (run_dir / "config.yaml").read_text()
    assert "lr: 0.1" in config and "batch_size: 128" in config and "nesterov: true" in config  # preset + override
    program = torch.export.load(str(run_dir / "export/subnet.pt2")).module()
    assert program(torch.randn(3, 1, 8, 8)).shape == (3, 10)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert {"epoch/train_loss", "epoch/valid_accuracy", "epoch/test_accuracy"} <= set(events.Tags()["scalars"])

    gathered = nasframe("gather", str(tmp_path), cwd=tmp_path)  # a train run is a row of `nasframe gather`
    assert gathered.returncode == 0, gathered.stderr[-2000:]
    rows = json.loads((tmp_path / "gather.json").read_text())["rows"]
    assert [r["arch"] for r in rows] == [NB201_ARCH] and rows[0]["test_accuracy"] == outcome["test_accuracy"]


def test_train_from_a_search_run_with_inherited_weights(search_run, tmp_path):
    record = json.loads((search_run / "export/arch.json").read_text())
    setup = setup_train(compose_config("train", [f"run={search_run}", "init=inherited"]))
    assert setup.space.format(setup.arch) == record["native"] and setup.space.config.channels == 4
    exported = torch.load(search_run / "export/subnet_state_dict.pt", weights_only=True)
    for key, value in setup.network.state_dict().items():
        assert torch.equal(value, exported[key]), key
    scratch = setup_train(compose_config("train", [f"run={search_run}"]))
    assert any(not torch.equal(v, exported[k]) for k, v in scratch.network.state_dict().items())

    proc = nasframe("train", f"run={search_run}", "init=inherited", "trainer.epochs=1", "trainer.lr=0.01",
                    "trainer.progress=false", f"hydra.run.dir={tmp_path / 'ft'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcome = json.loads((tmp_path / "ft/outcome.json").read_text())
    assert outcome["init"] == "inherited" and outcome["arch"] == record["native"]
    assert outcome["source_run"] == str(search_run)


def test_resume_after_stop_gives_the_same_weights(tmp_path):
    overrides = [*DIGITS_ARCH, *TINY_TRAIN, "export.torch_export=false"]
    whole = run_train(compose_config("train", overrides), tmp_path / "whole")
    assert run_train(compose_config("train", [*overrides, "trainer.stop_after_epoch=1"]), tmp_path / "cut") is None
    assert (tmp_path / "cut/checkpoint.pt").is_file() and not (tmp_path / "cut/outcome.json").exists()
    resumed = run_train(compose_config("train", overrides, resume=tmp_path / "cut"), tmp_path / "cut")
    a = torch.load(tmp_path / "whole/export/subnet_state_dict.pt", weights_only=True)
    b = torch.load(tmp_path / "cut/export/subnet_state_dict.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.summary["curves"] == whole.summary["curves"]


@pytest.mark.slow  # torchrun with 2 gloo processes on the CPU, and one process
def test_two_ranks_under_torchrun_equal_one_process(tmp_path):
    import os

    def train(run_dir: Path, ranks: int) -> dict:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks)]
        command = [*(launcher if ranks > 1 else [sys.executable]), "-m", "nasframe.cli", "train", *DIGITS_ARCH,
                   *TINY_TRAIN, "export.torch_export=false", "threads=1", "device=cpu", f"hydra.run.dir={run_dir}"]
        proc = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.returncode == 0, proc.stderr[-3000:]
        return torch.load(run_dir / "export/subnet_state_dict.pt", weights_only=True)

    one, two = train(tmp_path / "one", 1), train(tmp_path / "two", 2)
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(one[name].float(), two[name].float(), atol=1e-5, rtol=1e-4, msg=name)
    curves = [json.loads((tmp_path / d / "outcome.json").read_text())["curves"] for d in ("one", "two")]
    assert curves[0] == curves[1]


@pytest.mark.parametrize("overrides, message", [
    (["run={noexport}"], "has no export (export/arch.json)"),
    (["run={missing}"], "is not a search run directory"),
    (["space=nb201", "dataset=digits", f'arch="{DARTS_V2}"'], "invalid NAS-Bench-201 arch string"),
    (["space=darts", "dataset=digits", f"arch='{NB201_ARCH}'"], "invalid DARTS genotype"),
    (["run={run}", "+protocol=nasbench_graph"], "+protocol=nasbench_graph is for space gnn_bench, but this run's space is nb201"),
    (["run={run}", "+protocol=darts_cifar10"], "+protocol=darts_cifar10 is for space darts"),
    (["run={run}", "+protocol=ofa_finetune"], "+protocol=ofa_finetune is for space mobilenet"),
    (["run={run}", "init=inherited", "+train.space_settings.channels=8"], "init=inherited: the weights in"),
    (["run={run}", "train.network=eval"], "space 'nb201' has no evaluation network"),
    ([*DIGITS_ARCH, "init=inherited"], "init=inherited needs run="),
    (["run={run}", f"arch='{NB201_ARCH}'"], "give arch=<native string> or run=<search run dir>, not both"),
    ([], "nasframe train needs arch="),
    (["run={run}", "train.latency_table={repo}/results/latency_table_nb201_cpu.json"], "was built for another space"),
    ([*DIGITS_ARCH, "trainer.epochs=0"], "trainer.epochs must be >= 1"),
])
def test_bad_input_is_one_line_before_training(search_run, tmp_path, overrides, message):
    noexport = tmp_path / "noexport"
    noexport.mkdir()
    shutil.copy(search_run / "config.yaml", noexport / "config.yaml")
    repo = Path(__file__).resolve().parent.parent
    overrides = [o.format(run=search_run, noexport=noexport, missing=tmp_path / "missing", repo=repo) for o in overrides]
    with pytest.raises(NasframeError) as info:
        setup_train(compose_config("train", overrides))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_input_through_the_cli_is_one_line(search_run, tmp_path):
    proc = nasframe("train", f"run={search_run}", "init=inherited", "+train.space_settings.channels=8",
                    f"hydra.run.dir={tmp_path / 'x'}", cwd=tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith("nasframe train: error: init=inherited: the weights in")
    assert not (tmp_path / "x/checkpoint.pt").exists()


def test_darts_v2_eval_network_has_the_papers_size_and_trains_a_step():
    from nasframe.core.space import DataSpec
    from nasframe.data.base import InMemoryLoader, TensorSplit
    from nasframe.evaluation_phase.method import FixedNetworkMethod
    from nasframe.evaluation_phase.settings import TrainSettings
    from nasframe.evaluation_phase.setup import build_network
    from nasframe.training.trainer import SupernetTrainer, TrainerConfig
    from search_spaces.darts import DARTSSpace

    space = DARTSSpace(DataSpec(3, (32, 32), 10))
    arch = space.parse(DARTS_V2)
    paper = build_network(space, arch, TrainSettings(network="eval", auxiliary_weight=0.4, drop_path_prob=0.2))
    total = sum(p.numel() for p in paper.parameters())
    aux = sum(p.numel() for p in paper.auxiliary_head.parameters())
    assert 3.25e6 < total - aux < 3.45e6  # DARTS (2nd order): 3.3M (the DARTS code counts without the aux head)

    torch.manual_seed(0)
    settings = TrainSettings(network="eval", channels=4, layers=5, auxiliary_weight=0.4, drop_path_prob=0.2)
    network = build_network(space, arch, settings)
    data = TensorSplit(torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))
    method = FixedNetworkMethod(space, arch, epochs=2, auxiliary_weight=0.4, drop_path_prob=0.2)
    trainer = SupernetTrainer(network, method, InMemoryLoader(data, 4), TrainerConfig(epochs=2, progress=False, lr=0.025))
    history = trainer.fit()
    assert len(history) == 2 and all(torch.isfinite(torch.tensor(h["loss"])) for h in history)
    assert method.current_drop_path_prob == pytest.approx(0.2)  # raised linearly: 0, 0.1, then 0.2 after the last
    assert network.drop_path_prob == pytest.approx(0.1)  # the second epoch trained at 0.2 * 1 / 2
    network.eval()
    assert network(torch.randn(2, 3, 32, 32)).shape == (2, 10)  # no auxiliary output in eval mode


def test_protocol_presets_compose_and_can_be_overridden():
    cfg = compose_config("train", ["+protocol=darts_cifar10", "trainer.epochs=1"])
    assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.trainer.lr, cfg.trainer.weight_decay) == (1, 96, 0.025, 3e-4)
    assert (cfg.train.channels, cfg.train.layers, cfg.train.auxiliary_weight, cfg.train.drop_path_prob,
            cfg.train.cutout) == (36, 20, 0.4, 0.2, 16)
    cfg = compose_config("train", ["+protocol=nb201"])
    assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.trainer.lr, cfg.trainer.nesterov) == (200, 256, 0.1, True)
    cfg = compose_config("train", ["+protocol=nasbench_graph", "train.space_settings.dropout=0.5"])
    assert (cfg.trainer.optimizer, cfg.trainer.lr, cfg.trainer.weight_decay, cfg.trainer.epochs) == ("sgd", 0.1, 5e-4, 400)
    assert cfg.train.space_settings.dropout == 0.5 and cfg.train.select == "best_valid"
    cfg = compose_config("train", ["+protocol=ofa_finetune"])
    assert cfg.init == "inherited" and cfg.train.spaces == ["mobilenet"]


def test_cutout_zeroes_one_square_per_image():
    from nasframe.evaluation_phase.cutout import Cutout

    out = Cutout(None, 4)(torch.ones(6, 3, 16, 16), torch.Generator().manual_seed(0))
    zeros = (out[:, 0] == 0).flatten(1).sum(1)
    assert ((zeros > 0) & (zeros <= 16)).all() and torch.equal(out[:, 0] == 0, out[:, 2] == 0)


@pytest.fixture
def cora_root(tmp_path):
    pytest.importorskip("torch_geometric", reason="needs the torch-geometric package")
    raw = data_root() / "planetoid" / "Cora" / "raw"
    if not raw.is_dir():
        pytest.skip(f"no Planetoid Cora files at {raw} (set $NASFRAME_DATA)")
    shutil.copytree(raw, tmp_path / "planetoid" / "Cora" / "raw")
    return tmp_path / "planetoid"


def test_train_gnn_bench_on_cora_with_the_nasbench_graph_protocol(cora_root, tmp_path):
    arch = 'Arch([0, 1, 2, 3], ["skip", "skip", "gcn", "gcn"])'
    cfg = compose_config("train", ["space=gnn_bench", "dataset=planetoid", f"dataset.root={cora_root}",
                                   f"arch='{arch}'", "+protocol=nasbench_graph", "trainer.epochs=3",
                                   "trainer.progress=false"])
    outcome = run_train(cfg, tmp_path / "run")
    assert outcome.summary["select"] == "best_valid" and len(outcome.summary["curves"]) == 3
    assert outcome.valid_accuracy == max(c["valid_accuracy"] for c in outcome.summary["curves"])
    assert outcome.summary["space_config"]["dropout"] == 0.7  # the protocol's train.space_settings
    features = setup_train(cfg).data.graph.x  # and its train.dataset_settings: row-normalised node features
    sums = features.sum(dim=1)
    assert torch.allclose(sums[sums > 0], torch.ones(()))
    program = torch.export.load(str(tmp_path / "run/export/subnet.pt2")).module()
    x, edge_index = torch.randn(5, 1433), torch.tensor([[0, 1, 2], [1, 2, 3]])
    assert program(x, edge_index).shape == (5, 7)


def test_nasbench_graph_reproduction_script_at_toy_scale(cora_root, tmp_path, load_script):
    pytest.importorskip("nas_bench_graph", reason="needs the nas-bench-graph package")
    script = load_script("nasbench_graph_reproduction")

    from nasframe.benchmarks.nasbench_graph import NASBenchGraph

    picks = script.pick_models(NASBenchGraph(dataset="cora"), 10)
    tests = [p["table_test"] for p in picks]
    assert tests == sorted(tests) and tests[0] < tests[-1]  # one model per decile, low to high
    assert picks == script.pick_models(NASBenchGraph(dataset="cora"), 10)  # a rule: the same picks every time

    out = tmp_path / "out"
    args = ["--models", "2", "--seeds", "1", "--epochs", "2", "--out", str(out), "--runs", str(tmp_path / "runs"),
            "--data-root", str(cora_root), "--threads", "2"]
    for shard in ("0/2", "1/2"):  # one run each, nothing written; the plain call then reads both back
        assert len(script.main([*args, "--shard", shard])["rows"]) == 1
        if shard == "0/2":  # a report of what finished, naming what did not
            partial = script.main([*args, "--report-only", "--out", str(tmp_path / "partial")])
            assert len(partial["rows"]) == 1 and partial["summary"]["missing_runs"] == ["model 1 seed 0"]
            assert "--report-only" not in partial["command"]
    assert not out.exists()
    payload = script.main(args)
    saved = json.loads((out / "nasbench_graph_reproduction.json").read_text())
    assert {"mean_abs_diff", "kendall_tau"} <= set(saved["summary"]) and len(saved["rows"]) == 2
    assert saved["summary"]["mean_abs_diff"] == pytest.approx(payload["summary"]["mean_abs_diff"])
    assert "Kendall tau" in (out / "nasbench_graph_reproduction.md").read_text()
    again = script.main(args)  # finished runs are read back, not retrained
    assert again["rows"] == payload["rows"]


MOBILENET_TINY = [
    "space=mobilenet", "sampler=sandwich", "space.stem_channels=8", "space.stage_channels=[8,16]",
    "space.stage_strides=[1,2]", "space.stage_se=[false,true]", "space.stage_activation=[relu,hswish]",
    "space.head_channels=16", "dataset.valid_fraction=0.2", "dataset.test_fraction=0.7", "trainer.epochs=1",
    "trainer.batch_size=64", "trainer.progress=false", "selector=random", "selector.num_samples=2",
    "evaluator.bn_recalibration_batches=1", "baselines.enabled=false", "export.torch_export=false",
]


@pytest.mark.slow  # a sandwich search on a tiny elastic MobileNet, then one epoch of distilled fine-tuning
def test_ofa_finetune_inherits_the_subnet_and_distils_from_the_largest_path(tmp_path):
    from nasframe.search import run_search

    search = run_search(compose_config("search", MOBILENET_TINY), tmp_path / "search")
    overrides = [f"run={tmp_path / 'search'}", "+protocol=ofa_finetune", "train.distill_weight=0.5",
                 "trainer.epochs=1", "trainer.batch_size=64", "trainer.progress=false"]
    setup = setup_train(compose_config("train", overrides))
    exported = torch.load(tmp_path / "search/export/subnet_state_dict.pt", weights_only=True)
    assert all(torch.equal(v, exported[k]) for k, v in setup.network.state_dict().items())  # init=inherited
    assert setup.teacher is not None and not any(p.requires_grad for p in setup.teacher.parameters())
    assert sum(p.numel() for p in setup.teacher.parameters()) >= sum(p.numel() for p in setup.network.parameters())
    outcome = run_train(compose_config("train", overrides), tmp_path / "ft")
    assert outcome.native == search.native and outcome.summary["init"] == "inherited"
    assert outcome.summary["protocol"] == "ofa_finetune"
    assert (tmp_path / "ft/export/subnet.pt2").is_file()


@pytest.mark.slow  # CIFAR-10 (10k test images evaluated on 2 CPU cores): about two minutes
@pytest.mark.skipif(not (data_root() / "cifar10").is_dir(), reason="real CIFAR-10 not found (set NASFRAME_DATA)")
def test_darts_cifar10_protocol_trains_one_epoch_through_the_cli(tmp_path):
    run_dir = tmp_path / "run"
    proc = nasframe("train", "space=darts", "dataset=cifar10", "dataset.train_limit=96", "dataset.valid_limit=200",
                    f'arch="{DARTS_V2}"', "+protocol=darts_cifar10", "trainer.epochs=1", "train.channels=4",
                    "train.layers=5", "trainer.progress=false", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcome = json.loads((run_dir / "outcome.json").read_text())
    assert outcome["network"] == "eval" and outcome["protocol"] == "darts_cifar10"
    assert outcome["params_without_auxiliary"] < outcome["params"]  # the auxiliary head was trained
    report = (run_dir / "report.md").read_text()
    assert "auxiliary head (weight 0.4)" in report and "cutout 16" in report and "drop path up to 0.2" in report
    program = torch.export.load(str(run_dir / "export/subnet.pt2")).module()
    assert program(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_inherited_darts_search_weights_do_not_fit_the_eval_network(tmp_path):
    from nasframe.core.space import DataSpec
    from nasframe.errors import ConfigError
    from nasframe.evaluation_phase.settings import TrainSettings
    from nasframe.evaluation_phase.setup import build_network, load_inherited
    from search_spaces.darts import DARTSSpace

    space = DARTSSpace(DataSpec(3, (32, 32), 10), channels=4, layers=5)
    arch = space.parse(DARTS_V2)
    (tmp_path / "export").mkdir()
    torch.save(space.build_subnet(arch).state_dict(), tmp_path / "export/subnet_state_dict.pt")
    settings = TrainSettings(network="eval", channels=4, layers=5)
    with pytest.raises(ConfigError, match="not the search network the weights were trained in: use init=scratch"):
        load_inherited(build_network(space, arch, settings), tmp_path, settings)
    load_inherited(build_network(space, arch, TrainSettings()), tmp_path, TrainSettings())  # the search network fits


def test_a_diverging_run_stops_and_reports_the_epochs_before_it_with_on_nonfinite_stop(tmp_path):
    """lr 1e30: epoch 1 trains and is evaluated, epoch 2's loss is non-finite. ``stop`` reports from epoch 1 and
    records where training ended; the default ``error`` fails the run with the named error."""
    diverging = [*DIGITS_ARCH, "trainer.epochs=3", "trainer.batch_size=2000", "trainer.lr=1e30", "trainer.grad_clip=0",
                 "trainer.progress=false"]
    outcome = run_train(compose_config("train", [*diverging, "train.on_nonfinite=stop"]), tmp_path / "stop")
    summary = outcome.summary
    assert summary["trained_epochs"] == 1 and [c["epoch"] for c in summary["curves"]] == [1] and outcome.epoch == 1
    assert "non-finite training loss at epoch 2" in summary["diverged"]
    assert "training diverged" in (tmp_path / "stop" / "report.md").read_text()
    with pytest.raises(NonFiniteLossError, match="non-finite training loss at epoch 2"):
        run_train(compose_config("train", diverging), tmp_path / "error")
    assert not (tmp_path / "error" / "outcome.json").exists()


@pytest.mark.skipif(not (data_root() / "cifar10").is_dir() or not (data_root() / "nb201" / "accuracy.csv").is_file(),
                    reason=f"needs real CIFAR-10 and the NAS-Bench-201 table under {data_root()} (set NASFRAME_DATA)")
def test_reduced_training_script_at_toy_scale(tmp_path, load_script):
    script = load_script("reduced_training_nb201")
    args = ["--cells", "3", "--budgets", "equal", "--train-limit", "64", "--threads", "2", "--out", str(tmp_path / "out"),
            "--runs", str(tmp_path / "runs")]
    payload = script.main(args)
    budget = payload["budgets"][0]
    assert [r["cell"] for r in budget["rows"]] == [0, 1, 2] and budget["image_passes_per_cell"] == 2 * 64
    assert {"params", "flops", "random (expected)"} <= set(payload["baselines"])
    truth = [r["table_test"] for r in budget["rows"]]
    assert payload["baselines"]["params"]["true_accuracy_of_best_scored"] in truth
    outcome = json.loads((tmp_path / "runs" / "equal" / "cell_00" / "outcome.json").read_text())
    assert outcome["epochs"] == 2 and outcome["space_config"]["channels"] == 8
    assert "anchor: reduced training" in (tmp_path / "out" / "reduced_training_nb201.md").read_text()
    assert script.main(args)["budgets"][0]["rows"] == budget["rows"]  # finished runs are read back


def test_held_out_accuracies_batch_across_splits_and_equal_per_split_accuracy():
    """Batches may span splits (a graph network scores every node split in one full-graph forward); the
    accuracies equal the per-split ones at any batch size, and the network's mode is restored."""
    from nasframe.data.base import TensorSplit
    from nasframe.evaluation.evaluator import accuracy
    from nasframe.evaluation_phase.run import held_out_accuracies

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.BatchNorm1d(3)).train()
    splits = {"valid": TensorSplit(torch.randn(23, 5), torch.randint(0, 3, (23,))),
              "test": TensorSplit(torch.randn(17, 5), torch.randint(0, 3, (17,)))}
    calls = []
    net.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    for batch_size in (1, 4, 7, 23, 40, 100):
        calls.clear()
        got = held_out_accuracies(net, splits, batch_size)
        assert net.training and calls == [min(batch_size, 40 - i) for i in range(0, 40, batch_size)]
        assert got == {f"{name}_accuracy": accuracy(net, split, batch_size) for name, split in splits.items()}
        net.train()

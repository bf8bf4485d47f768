"""The ``nasframe`` CLI: a real (tiny) search end to end, and clear one-line errors for bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

TINY = [
    "space.channels=4",
    "space.cells_per_stage=1",
    "trainer.epochs=2",
    "trainer.batch_size=128",
    "selector.population_size=6",
    "selector.generations=2",
    "evaluator.bn_recalibration_batches=1",
]


def nasframe(*args: str, cwd) -> subprocess.CompletedProcess:
    exe = shutil.which("nasframe")
    cmd = [exe] if exe else [sys.executable, "-m", "nasframe.cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_search_writes_a_complete_run_directory(tmp_path):
    run_dir = tmp_path / "run"
    proc = nasframe("search", *TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ["config.yaml", "checkpoint.pt", "selection.json", "report.md", "search.log",
                 "export/arch.json", "export/subnet_state_dict.pt", "export/subnet.pt2"]:
        assert (run_dir / name).is_file(), name
    record = json.loads((run_dir / "export/arch.json").read_text())
    assert record["native"] in proc.stdout and record["space"]["config"]["channels"] == 4
    selection = json.loads((run_dir / "selection.json").read_text())
    assert selection["native"] == record["native"] and 1 <= len(selection["history"]) <= 12
    assert "space:\n  name: nb201\n  channels: 4" in (run_dir / "config.yaml").read_text()
    assert "test accuracy, exported subnet" in (run_dir / "report.md").read_text()
    assert "epoch 2/2" in (run_dir / "search.log").read_text()

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert {"train/loss", "train/lr", "epoch/train_loss", "select/best_score"} <= set(events.Tags()["scalars"])
    assert len(events.Scalars("epoch/train_loss")) == 2

    program = torch.export.load(str(run_dir / "export/subnet.pt2")).module()
    assert program(torch.randn(3, 1, 8, 8)).shape == (3, 10)

    # resume from that run, with a fixed arch instead of a selection
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    again = nasframe("search", *TINY, f"resume={run_dir}", f"arch='{arch}'",
                     f"hydra.run.dir={tmp_path / 'resumed'}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    log = (tmp_path / "resumed/search.log").read_text()
    assert "resumed from" in log and "at epoch 2" in log and "epoch 1/2" not in log  # nothing retrained
    stopped = nasframe("search", *TINY, "trainer.stop_after_epoch=1", f"hydra.run.dir={tmp_path / 'part'}", cwd=tmp_path)
    assert stopped.returncode == 0 and "stopped before selection" in stopped.stdout, stopped.stderr[-2000:]
    assert (tmp_path / "part/checkpoint.pt").is_file() and not (tmp_path / "part/export").exists()
    longer = nasframe("search", *TINY, "trainer.epochs=3", f"resume={run_dir}", f"hydra.run.dir={tmp_path / 'r3'}", cwd=tmp_path)
    assert longer.returncode != 0 and "trained for 2 epochs" in longer.stderr and "Traceback" not in longer.stderr
    assert json.loads((tmp_path / "resumed/export/arch.json").read_text())["native"] == arch

    # rank that supernet against a (synthetic, complete) NAS-Bench-201 table
    table = synthetic_nb201_table(tmp_path / "table.csv")
    ranked = nasframe("rank", f"run={run_dir}", f"benchmark.path={table}", "ranking.num_archs=12",
                      "evaluator.bn_recalibration_batches=1", f"hydra.run.dir={tmp_path / 'rank'}", cwd=tmp_path)
    assert ranked.returncode == 0, ranked.stderr[-3000:]
    ranking = json.loads((run_dir / "ranking/ranking.json").read_text())
    assert len(ranking["archs"]) == 12 and "kendall_tau" in ranking["metrics"]
    assert "12 distinct archs" in ranking["protocol"]["archs"] and ranking["protocol"]["supernet_epochs"] == 2
    assert (run_dir / "ranking/ranking.png").stat().st_size > 1000
    assert "kendall_tau" in ranked.stdout
    # the scores are kept: the same command again scores nothing and gives the same ranking
    again = nasframe("rank", f"run={run_dir}", f"benchmark.path={table}", "ranking.num_archs=12",
                     "evaluator.bn_recalibration_batches=1", f"hydra.run.dir={tmp_path / 'rank2'}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "12 scores of this ranking already there" in (tmp_path / "rank2/rank.log").read_text()
    assert json.loads((run_dir / "ranking/ranking.json").read_text())["archs"] == ranking["archs"]
    sliced = nasframe("rank", f"run={run_dir}", f"benchmark.path={table}", "ranking.num_archs=14",
                      "ranking.stop_after_s=1e-9", f"hydra.run.dir={tmp_path / 'rank3'}", cwd=tmp_path)
    assert sliced.returncode == 0 and "reached: scored 0 of 14 archs" in sliced.stdout, sliced.stderr[-2000:]


def synthetic_nb201_table(path):
    """Every NAS-Bench-201 arch with a made-up accuracy (the number of conv ops, plus noise)."""
    import numpy as np

    from search_spaces.nb201 import NB201Space

    space, rng = NB201Space(), np.random.default_rng(0)
    rows = ["index,arch,cifar10_test"]
    for i, arch in enumerate(space.enumerate()):
        accuracy = 80 + 2 * sum(op.startswith("nor_conv") for op in arch.values()) + rng.normal()
        rows.append(f"{i},{space.format(arch)},{accuracy:.3f}")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("sampler", [["sampler=pada"], ["sampler=fewshot", "sampler.warmup_fraction=0.5"]])
def test_adaptive_samplers_run_from_the_cli_and_rank(tmp_path, sampler):
    run_dir = tmp_path / "run"
    proc = nasframe("search", *TINY, *sampler, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    if sampler[0] == "sampler=pada":
        assert any(tag.startswith("pada_path/") for tag in events.Tags()["scalars"])
        assert {"pada_data/example_probability_x_N", "pada_path/option_probability_x_options"} <= set(events.Tags()["histograms"])
    else:
        assert "sampler/structure/text_summary" in events.Tags()["tensors"]
        assert "exhaustive split into 5 sub-supernets" in (run_dir / "search.log").read_text()
    table = synthetic_nb201_table(tmp_path / "table.csv")
    ranked = nasframe("rank", f"run={run_dir}", f"benchmark.path={table}", "ranking.num_archs=6",
                      "evaluator.bn_recalibration_batches=1", f"hydra.run.dir={tmp_path / 'rank'}", cwd=tmp_path)
    assert ranked.returncode == 0, ranked.stderr[-3000:]


DARTS_TINY = ["space=darts", "space.channels=4", "space.layers=3", "sampler=darts", "trainer.epochs=1",
              "trainer.batch_size=128", "evaluator.bn_recalibration_batches=1"]


def test_darts_search_from_the_cli_logs_alpha_and_exports_the_genotype(tmp_path):
    run_dir = tmp_path / "run"
    proc = nasframe("search", *DARTS_TINY, "selector=magnitude", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((run_dir / "export/arch.json").read_text())
    assert record["native"].startswith("Genotype(normal=[")
    selection = json.loads((run_dir / "selection.json").read_text())
    assert set(selection["details"]["softmax_alpha"]) >= {"normal_2_0", "reduce_5_4"}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert "sampler/alpha/normal_2_0" in events.Tags()["histograms"]
    assert "sampler/weight/normal_2_0/sep_conv_3x3" in events.Tags()["scalars"]
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert set(state["sampler"]["alpha"]) == set(selection["details"]["softmax_alpha"])
    program = torch.export.load(str(run_dir / "export/subnet.pt2")).module()
    assert program(torch.randn(2, 1, 8, 8)).shape == (2, 10)

    bad = nasframe("search", *DARTS_TINY, "arch=\"Genotype(normal=[('sep_conv_3x3', 0)])\"",
                   f"hydra.run.dir={tmp_path / 'bad'}", cwd=tmp_path)
    assert bad.returncode != 0 and "invalid DARTS genotype" in bad.stderr and "Traceback" not in bad.stderr
    pada = nasframe("search", *DARTS_TINY, "sampler=pada", f"hydra.run.dir={tmp_path / 'pada'}", cwd=tmp_path)
    assert pada.returncode != 0 and "ties choices together" in pada.stderr


def test_perturbation_selection_from_the_cli(tmp_path):
    run_dir = tmp_path / "run"
    proc = nasframe("search", *TINY[:4], "sampler=darts", "space.bn_affine=false", "trainer.epochs=1",
                    "evaluator.bn_recalibration_batches=1", "selector=perturbation", "selector.tune_steps=2", "selector.eval_examples=100",
                    f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    selection = json.loads((run_dir / "selection.json").read_text())
    assert selection["details"]["mode"] == "differentiable" and len(selection["details"]["decisions"]) == 6
    assert proc.stderr.count("fine-tuned 2 steps") == 6 or (run_dir / "search.log").read_text().count("fine-tuned 2 steps") == 6


def test_tabular_search_command(tmp_path):
    table = synthetic_nb201_table(tmp_path / "table.csv")
    proc = nasframe("tabular", f"benchmark.path={table}", "max_queries=30", "seeds=2", f"out={tmp_path / 'out'}",
                    f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "out/tabular.json").read_text())
    assert set(result["selectors"]) == {"evolutionary", "random"}
    for curve in result["selectors"].values():
        assert len(curve["mean"]) == 30 and curve["mean"] == sorted(curve["mean"])  # incumbents only improve
    assert (tmp_path / "out/tabular.png").is_file() and "| evolutionary |" in (tmp_path / "out/tabular.md").read_text()
    bad = nasframe("tabular", f"benchmark.path={table}", "search_metric=cifar10_valid", f"hydra.run.dir={tmp_path / 'r2'}", cwd=tmp_path)
    assert bad.returncode != 0 and "no metric 'cifar10_valid'" in bad.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.epoch=3", "Key 'epoch' not in 'TrainerConfig'"),
        ("space=nb999", "Could not find 'space/nb999'"),
        ("selector=genetic", "Could not find 'selector/genetic'"),
        ("+space.chanels=8", "space.chanels: unknown key for NB201Config"),
        ("space.channels=many", "space.channels"),
        ("trainer.epochs=two", "trainer.epochs"),
        ("arch='|nor_conv_3x3~0|+|bogus~0|none~1|+|none~0|none~1|none~2|'", "unknown op 'bogus'"),
        ("arch='|nor_conv_3x3~0|'", "expected 3 node groups"),
        ("resume=/nonexistent/run", "no checkpoint at /nonexistent/run"),
        ("device=cuda:0" if not torch.cuda.is_available() else "device=tpu", "device"),
        ("space.name=nb999", "unknown search space 'nb999'; known: darts, gnn_bench, graphnas, mobilenet, nb201"),
        ("selector=magnitude", "selector=magnitude reads architecture parameters"),
    ],
)
def test_bad_input_fails_fast_with_a_message_that_names_it(tmp_path, override, message):
    proc = nasframe("search", override, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "checkpoint.pt").exists()  # failed before any training


@pytest.mark.parametrize(("command", "below"), [("search", ""), ("rank", "/run"), ("tabular", "")])
def test_a_run_dir_that_is_a_file_ends_in_one_line_naming_it(tmp_path, command, below):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    proc = nasframe(command, f"hydra.run.dir={blocker}{below}", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (f"nasframe {command}: error: hydra.run.dir={blocker}{below}: {blocker} is a file, "
                                   "not a directory"), proc.stderr[-2000:]
    if command == "search":  # a multirun's sweep dir too
        sweep = nasframe(command, "-m", f"hydra.sweep.dir={blocker}", "seed=0,1", cwd=tmp_path)
        assert sweep.returncode == 1 and "Traceback" not in sweep.stderr
        assert f"hydra.sweep.dir={blocker}: {blocker} is a file" in sweep.stderr.strip().splitlines()[-1]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any directory")
def test_a_run_dir_that_is_not_writable_ends_in_one_line_naming_it(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    proc = nasframe("search", f"hydra.run.dir={locked}/run", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"nasframe search: error: hydra.run.dir={locked}/run: {locked} is not writable"


def test_usage_and_unknown_command(tmp_path):
    proc = nasframe(cwd=tmp_path)
    assert proc.returncode == 0 and "search" in proc.stdout
    proc = nasframe("serach", cwd=tmp_path)
    assert proc.returncode != 0 and "unknown command 'serach'" in proc.stderr


@pytest.mark.parametrize(
    ("experiment", "expected"),
    [
        ("nb201_cifar10_cpu", {"epochs": 10, "batch_size": 64, "lr": 0.05, "weight_decay": 2.5e-4}),
        ("nb201_cifar10_gpu", {"epochs": 250, "batch_size": 256, "lr": 0.05, "weight_decay": 2.5e-4, "momentum": 0.9}),
    ],
)
def test_experiment_presets_compose_with_the_stated_protocol(experiment, expected):
    from hydra import compose, initialize_config_dir

    from nasframe.cli import CONFIG_DIR
    from nasframe.config import register_configs
    from nasframe.core.settings import settings_from
    from nasframe.training import TrainerConfig

    register_configs()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("search", overrides=[f"+experiment={experiment}"])
    assert cfg.dataset.name == "cifar10" and cfg.dataset.split == "nb201" and cfg.space.channels == 16
    trainer = settings_from(TrainerConfig, cfg.trainer, "trainer")
    assert {k: getattr(trainer, k) for k in expected} == expected

"""Phased training (sampler=phased; Once-for-All's progressive shrinking as a preset): each phase samples its own
sub-space with its own method, gets a fresh optimiser at its own learning rate, and a run resumed mid-phase
continues exactly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import nasframe.sampling.uniform as uniform_module
from nasframe.cli import compose_config
from nasframe.errors import ConfigError
from nasframe.sampling.base import ScheduleSegment, build_sampler

LARGEST = {"edge_*": ["nor_conv_3x3"]}
PHASES = [{"name": "largest", "epochs": 1, "lr": 0.05, "restrict": LARGEST, "sampler": {"name": "uniform"}},
          {"name": "all", "epochs": 2, "lr": 0.02, "warmup_epochs": 1,
           "sampler": {"name": "uniform", "paths_per_step": 2}}]


def phased(space, phases=PHASES):
    return build_sampler({"name": "phased", "phases": phases}, space, seed=0)


def test_each_phase_samples_its_own_sub_space_and_schedule(tiny_space) -> None:
    sampler = phased(tiny_space)
    archs = {sampler.sample() for _ in range(20)}  # the first phase: the largest cell only
    assert len(archs) == 1 and all(option == "nor_conv_3x3" for option in next(iter(archs)).values())
    assert sampler.schedule_segment(0, 3) == ScheduleSegment(0, 1, 0.05, 0)
    sampler.end_epoch(0, 3)  # the first phase is over: the whole space, 2 paths a step, its own schedule
    assert sampler.schedule_segment(1, 3) == ScheduleSegment(1, 3, 0.02, 1)
    assert len({sampler.sample() for _ in range(50)}) > 1
    with pytest.raises(ConfigError, match="add up to 3 epochs, but trainer.epochs=4"):
        sampler.schedule_segment(0, 4)


def test_paths_per_step_trains_that_many_paths_on_each_batch(tiny_space, monkeypatch) -> None:
    seen = []
    monkeypatch.setattr(uniform_module, "train_group", lambda step, group, x, y: seen.append(group) or "result")
    sampler = build_sampler({"name": "uniform", "paths_per_step": 4}, tiny_space, seed=0)
    assert sampler.train_step(None, torch.zeros(1), torch.zeros(1)) == "result"
    (group,) = seen
    assert len(group.paths) == 4 and group.teacher is None  # 4 uniform archs, all on the labels, summed


@pytest.mark.parametrize("phases, message", [
    ([], "needs at least one phase"),
    ([{"epochs": 1, "restrict": {"kernel_*": ["3"]}}], "pattern 'kernel_\\*' matches no choice"),
    ([{"epochs": 1, "restrict": {"edge_*": ["conv_9x9"]}}], "cannot restrict choice"),
    ([{"epochs": 2, "warmup_epochs": 2}], "warmup_epochs < epochs"),
    ([{"epochs": 1, "sampler": {"name": "fewshot"}}], "cannot run inside a phase"),
    ([{"epochs": 1, "sampler": {"name": "uniform", "paths": 2}}], "paths: unknown key"),
])
def test_bad_phases_are_named(tiny_space, phases, message) -> None:
    with pytest.raises(ConfigError, match=message):
        phased(tiny_space, phases)


def _run(tmp_path: Path, name: str, *extra: str) -> dict:
    # (Hydra's override grammar takes plain names as dict keys; presets in YAML may use patterns such as edge_*)
    largest = ", ".join(f"edge_{a}_{b}: [nor_conv_3x3]" for a, b in ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)))
    phases = (f"sampler.phases=[{{name: largest, epochs: 1, lr: 0.05, restrict: {{{largest}}}}},"
              "{name: all, epochs: 2, lr: 0.02, warmup_epochs: 1, kd_ratio: 1.0,"
              " sampler: {name: uniform, paths_per_step: 2}}]")
    run = tmp_path / name
    args = ["space.channels=4", "space.cells_per_stage=1", "trainer.epochs=3", "trainer.batch_size=256",
            "sampler=phased", phases, "sampler.teacher=phase:largest", "trainer.keep_every=1", "selector=random", "selector.num_samples=2", "evaluator.bn_recalibration_batches=1",
            "export.torch_export=false", "threads=1", "device=cpu", "trainer.progress=false", "resume=auto",
            f"hydra.run.dir={run}", *extra]
    proc = subprocess.run([sys.executable, "-m", "nasframe.cli", "search", *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(run / "checkpoint.pt", weights_only=True)


@pytest.mark.slow
def test_phases_chain_in_one_run_and_resume_mid_phase_exactly(tmp_path: Path) -> None:
    whole = _run(tmp_path, "whole")
    assert "sgd in 2 phases: largest 1 ep, lr 0.05" in (tmp_path / "whole" / "report.md").read_text()
    _run(tmp_path, "stopped", "trainer.stop_after_epoch=2")  # in the middle of the second phase
    resumed = _run(tmp_path, "stopped")
    assert whole["epoch"] == resumed["epoch"] == 3 and whole["schedule_start"] == resumed["schedule_start"] == 1
    for name, value in whole["model"].items():
        assert torch.equal(value, resumed["model"][name]), name
    assert whole["sampler"]["phases"] == resumed["sampler"]["phases"]
    # the teacher is the largest cell as the first phase left it (epoch 1), frozen: kept in the checkpoint, it
    # survived the resume and never trained
    from nasframe.core.space import DataSpec
    from nasframe.export.extract import extract
    from search_spaces.nb201 import NB201Space

    space = NB201Space(DataSpec(1, (8, 8), 10), channels=4, cells_per_stage=1)
    supernet = space.build_supernet()
    supernet.load_state_dict(torch.load(tmp_path / "whole" / "checkpoints" / "epoch_0001.pt", weights_only=True)["model"])
    largest = space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    expected = extract(space, supernet, largest).state_dict()
    for state in (whole, resumed):
        assert state["sampler"]["teacher"].keys() == expected.keys()
        assert all(torch.equal(state["sampler"]["teacher"][k], v) for k, v in expected.items())
    lrs = [epoch["lr"] for epoch in json.loads(whole["history"])]  # the lr after each epoch's last step
    # the first phase's cosine ends at min_lr (0); the second starts afresh, warms up over its first epoch to its
    # own peak (0.02, not the first phase's 0.05), then decays to 0 over its last epoch
    assert lrs == pytest.approx([0.0, 0.02, 0.0], abs=1e-9)


def test_distillation_adds_the_soft_cross_entropy_to_the_teacher_to_the_label_loss() -> None:
    from nasframe.training.step import StepContext

    step = StepContext(torch.device("cpu"), label_smoothing=0.1)
    logits, teacher, y = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([0])
    plain = step.loss(logits, y)
    with step.distilling(teacher, 0.5):
        mixed = step.loss(logits, y)
    p = torch.softmax(teacher, dim=1)
    by_hand = -(p * torch.log_softmax(logits, dim=1)).sum()
    assert mixed.item() == pytest.approx(plain.item() + 0.5 * by_hand.item())
    assert step.loss(logits, y).item() == pytest.approx(plain.item())  # only inside the block


@pytest.mark.parametrize("teacher, phases, message", [
    (None, [{"epochs": 1, "kd_ratio": 1.0}], "needs a teacher"),
    ("phase:nope", [{"name": "a", "epochs": 1}], "one of the phases' names"),
    ("phase:a", [{"name": "a", "epochs": 1}, {"name": "b", "epochs": 1, "kd_ratio": 1.0}], "trains 15,625 archs"),
    ("phase:b", [{"name": "a", "epochs": 1, "kd_ratio": 1.0},
                 {"name": "b", "epochs": 1, "restrict": LARGEST}], "before it is trained"),
])
def test_bad_teachers_are_named(tiny_space, teacher, phases, message) -> None:
    with pytest.raises(ConfigError, match=message):
        build_sampler({"name": "phased", "phases": phases, "teacher": teacher}, tiny_space, seed=0)


def test_ofa_presets_compose_and_their_phases_add_up() -> None:
    for preset in ("ofa_progressive_shrinking", "ofa_progressive_shrinking_cpu"):
        cfg = compose_config("search", [f"+experiment={preset}"])
        phases = cfg.sampler.phases
        assert [p.name for p in phases] == ["full", "kernel", "depth_1", "depth_2", "expand_1", "expand_2"]
        assert sum(p.epochs for p in phases) == cfg.trainer.epochs
        assert [p.sampler.get("paths_per_step", 1) for p in phases] == [1, 1, 2, 2, 4, 4]
    paper = compose_config("search", ["+experiment=ofa_progressive_shrinking"]).sampler.phases
    assert [p.epochs for p in paper] == [180, 120, 25, 120, 25, 120]
    assert [p.lr for p in paper[1:]] == [0.03, 0.0025, 0.0075, 0.0025, 0.0075]


def test_channels_are_sorted_at_the_start_of_a_sorting_phase_only(monkeypatch) -> None:
    from nasframe.core.space import DataSpec
    from search_spaces.mobilenet import MobileNetSpace

    space = MobileNetSpace(DataSpec(3, (32, 32), 10), width_mult=0.25, stem_stride=2, head_channels=32)
    supernet = space.build_supernet()
    sampler = phased(space, [{"epochs": 2, "restrict": {"*_expand": ["6"]}},
                             {"epochs": 2, "sort_channels": True}])
    calls = []
    monkeypatch.setattr(type(supernet), "sort_channels", lambda self: calls.append(True))
    for epoch in range(4):
        assert sampler.restructure(supernet, epoch, 4, None) is None  # the same supernet, sorted in place
        if epoch == 2:
            assert calls == [True]
    assert calls == [True]  # once, when the sorting phase began


def test_sorting_phases_are_refused_before_training_where_the_supernet_cannot_sort(tiny_space) -> None:
    sampler = phased(tiny_space, [{"epochs": 1}, {"epochs": 1, "sort_channels": True}])
    with pytest.raises(ConfigError, match=r"phases\[1\].sort_channels: .* no elastic channels"):
        sampler.restructure(tiny_space.build_supernet(), 0, 2, None)


def test_a_teacher_from_a_file_distils_into_every_step_of_its_phases(tiny_space, digits, tmp_path) -> None:
    import torchvision

    from nasframe.export.save import save_export
    from nasframe.training.step import StepContext

    arch = tiny_space.sample(np.random.default_rng(0))
    save_export(tmp_path / "export", tiny_space, arch, tiny_space.build_subnet(arch), torch_export=False)
    resnet = torchvision.models.get_model("resnet18", weights=None, num_classes=10)
    torch.save(resnet.state_dict(), tmp_path / "resnet18.pt")
    phases = [{"epochs": 1, "kd_ratio": 0.5}]
    for source in (f"export:{tmp_path / 'export'}", f"torchvision:resnet18:{tmp_path / 'resnet18.pt'}"):
        sampler = build_sampler({"name": "phased", "phases": phases, "teacher": source}, tiny_space, seed=0)
        assert not sampler.teacher.training and not any(p.requires_grad for p in sampler.teacher.parameters())
        seen = []
        inner = sampler.samplers[0]
        inner.train_step = lambda step, x, y: seen.append((step.teacher_targets, step.distillation_weight))
        step = StepContext(torch.device("cpu"))
        step.supernet = tiny_space.build_supernet()
        x = digits.train.x[:4] if "export" in source else torch.randn(4, 3, 32, 32)
        sampler.train_step(step, x, digits.train.y[:4])
        (targets, weight), = seen
        assert weight == 0.5 and targets.shape == (4, 10) and torch.allclose(targets.sum(1), torch.ones(4))
        assert step.teacher_targets is None  # only during the step
        assert "teacher" not in sampler.state_dict()  # read from its file again on resume
    for source, message in ((f"export:{tmp_path / 'missing'}", "no export at"),
                            ("torchvision:resnet999:x.pt", "no model 'resnet999'"),
                            (f"torchvision:resnet18:{tmp_path / 'nothing.pt'}", "No such file"),
                            ("hub:x", "give phase:<name>, export:<dir>, checkpoint")):
        with pytest.raises(ConfigError, match=message):
            build_sampler({"name": "phased", "phases": phases, "teacher": source}, tiny_space, seed=0)


def test_the_report_describes_the_phases(tiny_space) -> None:
    text = phased(tiny_space).describe_schedule()
    assert text.startswith("2 phases: largest 1 ep, lr 0.05 [1 archs, uniform]")
    assert "all 2 ep, lr 0.02 (warm-up 1) [15,625 archs, uniform, 2 paths/step]" in text


def test_a_teacher_from_another_runs_checkpoint_is_that_supernets_path(tiny_space, digits, tmp_path) -> None:
    """sampler.teacher=checkpoint:<path>[@<arch>]: the arch's path of the supernet in that checkpoint (the space
    rebuilt from the checkpoint), frozen; a checkpoint of weights that do not fit is named."""
    from nasframe.data.base import InMemoryLoader, TensorSplit
    from nasframe.export import extract
    from nasframe.training import SupernetTrainer, TrainerConfig

    torch.manual_seed(0)
    data = TensorSplit(digits.train.x[:32], digits.train.y[:32])
    trainer = SupernetTrainer(tiny_space.build_supernet(), build_sampler({"name": "uniform"}, tiny_space, seed=0),
                              InMemoryLoader(data, 16, seed=0), TrainerConfig(epochs=1, progress=False),
                              run_dir=tmp_path, space_description=tiny_space.describe())
    trainer.fit()
    arch = tiny_space.sample(np.random.default_rng(1))
    native = tiny_space.format(arch)
    phases = [{"epochs": 1, "kd_ratio": 1.0}]
    sampler = build_sampler({"name": "phased", "phases": phases, "teacher": f"checkpoint:{tmp_path}@{native}"},
                            tiny_space, seed=0)
    teacher = sampler.teacher
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    expected = extract(tiny_space, trainer.supernet, arch).eval()
    x = digits.train.x[:8]
    assert torch.allclose(teacher(x), expected(x))
    with pytest.raises(ConfigError, match="largest"):  # NB201 has no largest arch: the arch must be named
        build_sampler({"name": "phased", "phases": phases, "teacher": f"checkpoint:{tmp_path}"}, tiny_space, seed=0)
    with pytest.raises(ConfigError, match="not a nasframe checkpoint|cannot read"):
        (tmp_path / "junk.pt").write_bytes(b"junk")
        build_sampler({"name": "phased", "phases": phases, "teacher": f"checkpoint:{tmp_path / 'junk.pt'}"},
                      tiny_space, seed=0)


def test_with_elastic_resolution_the_full_phases_teacher_is_its_largest_arch() -> None:
    """OFA keeps the resolution elastic while it trains the full network: that phase trains one network at several
    resolutions, and its teacher is the full network at the largest resolution."""
    from nasframe.core.space import DataSpec
    from search_spaces.mobilenet import MobileNetSpace

    space = MobileNetSpace(DataSpec(3, (32, 32), 10), width_mult=0.25, stem_stride=2, head_channels=32,
                           resolutions=[24, 32])
    full = {"*_kernel": ["7"], "*_depth": ["4"], "*_expand": ["6"]}
    sampler = build_sampler({"name": "phased", "teacher": "phase:full", "phases": [
        {"name": "full", "epochs": 1, "restrict": full}, {"name": "rest", "epochs": 1, "kd_ratio": 1.0}]},
        space, seed=0)
    assert sampler.samplers[0].space.size == 2
    supernet = space.build_supernet()
    sampler.restructure(supernet, 1, 2, None)  # the end of the full phase: the teacher is frozen
    assert sampler.teacher.resize.size == 32
    x = torch.randn(2, 3, 32, 32)
    supernet.set_arch(space.largest())
    assert torch.allclose(sampler.teacher(x), supernet.eval()(x), atol=1e-5)


@pytest.mark.slow
def test_the_ofa_preset_runs_end_to_end_from_the_cli_at_toy_scale(tmp_path: Path) -> None:
    """+experiment=ofa_progressive_shrinking_cpu on digits with a two-stage MobileNet and elastic resolution: the six
    phases (full network, kernel, depth x2, expand x2 with channel sorting, distilled from the full network), the
    active-slice step, the evolutionary search with the accuracy predictor, and the export of the pick (its arch
    names its resolution, its program resizes to it)."""
    run = tmp_path / "ofa"
    args = ["+experiment=ofa_progressive_shrinking_cpu", "dataset=digits", "dataset.train_limit=256",
            "dataset.valid_limit=64", "space.width_mult=1.0", "space.stem_channels=8", "space.stage_channels=[8,16]",
            "space.stage_strides=[1,2]", "space.stage_se=[false,true]", "space.stage_activation=[relu,hswish]",
            "space.head_channels=32", "space.stem_stride=1", "space.resolutions=[6,8]", "trainer.batch_size=64",
            "evaluator=predictor", "evaluator.num_measured=10", "evaluator.hidden=[16]", "evaluator.max_iter=200",
            "evaluator.bn_recalibration_batches=1", "evaluator.bn_batch_size=64", "selector.population_size=6",
            "selector.generations=2", "baselines.enabled=false", "threads=1", "device=cpu", "trainer.progress=false",
            f"hydra.run.dir={run}"]
    proc = subprocess.run([sys.executable, "-m", "nasframe.cli", "search", *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (run / "report.md").read_text()
    for phase in ("full 1 ep", "kernel 1 ep", "depth_1 1 ep", "depth_2 1 ep", "expand_1 1 ep", "expand_2 1 ep",
                  "channels sorted", "teacher phase:full"):
        assert phase in report, phase
    outcome = json.loads((run / "outcome.json").read_text())
    assert outcome["predictor"]["fit"]["measured"] == 10
    record = json.loads((run / "export" / "arch.json").read_text())
    resolution = record["arch"]["resolution"]
    assert resolution in ("6", "8") and outcome["arch"].startswith(f"r{resolution}|")
    program = torch.export.load(str(run / "export" / "subnet.pt2")).module()
    assert program(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["optimizer"]["state"]  # SGD state of the active-slice step (the checkpoint resumes it as SGD's)

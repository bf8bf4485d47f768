"""SupernetTrainer: exact resume, atomic checkpoints, non-finite loss, the uniform sampler's state."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from nasframe.data.base import InMemoryLoader
from nasframe.errors import CheckpointError, NonFiniteLossError
from nasframe.sampling.uniform import UniformSampler
from nasframe.training import SupernetTrainer, TrainerConfig
from nasframe.training.checkpoint import load_checkpoint, save_atomic


def make_trainer(space, digits, run_dir=None, epochs=4, seed=0, **overrides):
    torch.manual_seed(seed)
    supernet = space.build_supernet()
    config = TrainerConfig(epochs=epochs, batch_size=128, lr=0.05, progress=False, log_every=2, **overrides)
    loader = InMemoryLoader(digits.train, config.batch_size, seed=seed)
    sampler = UniformSampler(space, seed=seed)
    return SupernetTrainer(supernet, sampler, loader, config, run_dir=run_dir, space_description=space.describe())


def assert_same_state(a: SupernetTrainer, b: SupernetTrainer) -> None:
    sa, sb = a.supernet.state_dict(), b.supernet.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    moments_a = a.optimizer.state_dict()["state"]
    moments_b = b.optimizer.state_dict()["state"]
    assert moments_a.keys() == moments_b.keys()
    for key in moments_a:
        assert torch.equal(moments_a[key]["momentum_buffer"], moments_b[key]["momentum_buffer"])
    assert a.history == b.history and a.global_step == b.global_step
    assert a.sampler.sample() == b.sampler.sample()


def test_two_plus_two_epochs_with_resume_equals_four(tiny_space, digits, tmp_path):
    straight = make_trainer(tiny_space, digits)
    straight.fit()

    first = make_trainer(tiny_space, digits, run_dir=tmp_path)
    first.fit(until_epoch=2)
    assert first.epoch == 2 and (tmp_path / "checkpoint.pt").is_file()

    resumed = make_trainer(tiny_space, digits, seed=123)  # other init, other streams: all must come from the checkpoint
    resumed.loader = InMemoryLoader(digits.train, 128, seed=999)
    resumed.sampler = UniformSampler(tiny_space, seed=999)
    resumed.resume(tmp_path)
    assert resumed.epoch == 2
    resumed.fit()
    assert_same_state(straight, resumed)


def test_mid_epoch_checkpoint_resumes_the_same_batches(tiny_space, digits, tmp_path):
    straight = make_trainer(tiny_space, digits, epochs=2)
    straight.fit()
    partial = make_trainer(tiny_space, digits, epochs=2, run_dir=tmp_path)
    batches = partial.loader.epoch()
    for _ in range(3):  # three steps of epoch 1, as if the process were stopped there
        x, y, idx = next(batches)
        partial.train_step(x, y, idx)
        partial.step_in_epoch += 1
        partial.global_step += 1
    partial.save_checkpoint()
    resumed = make_trainer(tiny_space, digits, epochs=2)
    resumed.resume(tmp_path)
    assert resumed.step_in_epoch == 3
    resumed.fit()
    sa, sb = straight.supernet.state_dict(), resumed.supernet.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.filterwarnings("ignore:Detected call of")
def test_cosine_schedule_per_step(tiny_space, digits):
    trainer = make_trainer(tiny_space, digits, epochs=2, min_lr=0.001)
    steps = 2 * len(trainer.loader)
    lrs = []
    for _ in range(steps):
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.scheduler.step()
    expected = [0.001 + (0.05 - 0.001) * (1 + math.cos(math.pi * t / steps)) / 2 for t in range(steps)]
    assert lrs == pytest.approx(expected)


def test_inactive_weights_do_not_move(tiny_space, digits):
    trainer = make_trainer(tiny_space, digits, weight_decay=0.1)
    x, y = digits.train.x[:32], digits.train.y[:32]
    trainer.train_step(x, y)  # momentum buffers now exist for the first path
    before = {k: v.clone() for k, v in trainer.supernet.state_dict().items()}
    arch = trainer.supernet.active_arch
    trainer.sampler.sample = lambda: arch.replace(edge_1_0="nor_conv_1x1" if arch["edge_1_0"] != "nor_conv_1x1" else "nor_conv_3x3")
    trainer.train_step(x, y)
    after = trainer.supernet.state_dict()
    new_op = trainer.supernet.active_arch["edge_1_0"]
    for key in before:
        if ".edges.edge_1_0.candidates." in key and "running" not in key and "num_batches" not in key:
            moved = not torch.equal(before[key], after[key])
            assert moved == (f"candidates.{new_op}." in key), key


def test_checkpoint_is_atomic_and_safe(tmp_path):
    path = save_atomic({"format": "nasframe-checkpoint", "format_version": 1, "x": torch.ones(2)}, tmp_path / "c.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left behind

    class Boom:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        save_atomic({"bad": Boom()}, path)
    assert load_checkpoint(path)["x"].sum() == 2  # the old checkpoint survives a failed write
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_corrupt_foreign_and_malicious_checkpoints_are_refused(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a nasframe checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing")
    other_version = tmp_path / "v999.pt"
    torch.save({"format": "nasframe-checkpoint", "format_version": 999}, other_version)
    with pytest.raises(CheckpointError, match="format version 999, this nasframe reads"):
        load_checkpoint(other_version)

    marker = tmp_path / "payload_ran"

    class Payload:  # unpickling this would run a shell command
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    malicious = tmp_path / "malicious.pt"
    torch.save({"format": "nasframe-checkpoint", "format_version": 1, "x": Payload()}, malicious)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_checkpoint(malicious)
    assert not marker.exists()  # refused without running it


def test_resume_refuses_a_checkpoint_of_another_space(tiny_space, digits, tmp_path):
    from search_spaces.nb201 import NB201Space

    trainer = make_trainer(tiny_space, digits, epochs=1, run_dir=tmp_path)
    trainer.fit()
    other = make_trainer(NB201Space(digits.spec, channels=6, cells_per_stage=1), digits)
    with pytest.raises(CheckpointError, match="written for space"):
        other.resume(tmp_path)


def test_resume_refuses_another_schedule(tiny_space, digits, tmp_path):
    trainer = make_trainer(tiny_space, digits, epochs=2, run_dir=tmp_path)
    trainer.fit(until_epoch=1)
    longer = make_trainer(tiny_space, digits, epochs=5)
    with pytest.raises(CheckpointError, match="trained for 2 epochs .* this run has 5"):
        longer.resume(tmp_path)


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tiny_space, digits, tmp_path):
    trainer = make_trainer(tiny_space, digits, epochs=2, run_dir=tmp_path)
    trainer.fit(until_epoch=1)
    good = load_checkpoint(tmp_path)
    with torch.no_grad():
        trainer.supernet.classifier.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match="non-finite training loss .* epoch 2, step 1"):
        trainer.fit()
    kept = load_checkpoint(tmp_path)
    assert kept["epoch"] == 1 and torch.equal(kept["model"]["classifier.weight"], good["model"]["classifier.weight"])


def test_uniform_sampler_frequencies_and_state(tiny_space):
    sampler = UniformSampler(tiny_space, seed=3)
    n = 10_000
    counts = Counter(sampler.sample()["edge_3_1"] for _ in range(n))
    assert all(abs(c / n - 0.2) < 0.02 for c in counts.values()) and len(counts) == 5
    state = sampler.state_dict()
    ahead = [sampler.sample() for _ in range(5)]
    other = UniformSampler(tiny_space, seed=4)
    other.load_state_dict(state)
    assert [other.sample() for _ in range(5)] == ahead


def test_loader_visits_every_example_once_per_epoch(digits):
    loader = InMemoryLoader(digits.train, 100, seed=0, drop_last=False)
    labels = torch.cat([y for _, y, _ in loader.epoch()])
    assert len(labels) == len(digits.train)
    assert Counter(labels.tolist()) == Counter(digits.train.y.tolist())


def test_decay_norm_and_bias_switch_leaves_1d_parameters_undecayed():
    """``decay_norm_and_bias=False``: with zero gradients a step moves only the >1-d weights (decay), never the
    BatchNorm scales and shifts or the biases; with the default every parameter decays."""
    from nasframe.training.config import build_optimizer

    def step(decay_norm_and_bias: bool) -> dict[str, bool]:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
        torch.nn.init.uniform_(net[1].weight)
        torch.nn.init.uniform_(net[1].bias)
        cfg = TrainerConfig(weight_decay=0.1, momentum=0.0, decay_norm_and_bias=decay_norm_and_bias)
        optimizer = build_optimizer(cfg, list(net.parameters()), lr=0.5)
        before = {k: v.clone() for k, v in net.named_parameters()}
        for p in net.parameters():
            p.grad = torch.zeros_like(p)
        optimizer.step()
        return {k: not torch.equal(before[k], v) for k, v in net.named_parameters()}

    assert step(False) == {"0.weight": True, "0.bias": False, "1.weight": False, "1.bias": False}
    assert step(True) == {"0.weight": True, "0.bias": True, "1.weight": True, "1.bias": True}


def test_resume_with_another_decay_norm_and_bias_is_a_clear_error(tiny_space, digits, tmp_path):
    make_trainer(tiny_space, digits, run_dir=tmp_path, epochs=1).fit()
    other = make_trainer(tiny_space, digits, run_dir=tmp_path, epochs=1, decay_norm_and_bias=False)
    with pytest.raises(CheckpointError, match="trainer.decay_norm_and_bias"):
        other.resume(tmp_path / "checkpoint.pt")


def test_label_smoothing_is_the_step_loss_of_every_path(tiny_space, digits):
    """``trainer.label_smoothing``: the step's loss on labels is (1 - eps) * CE + eps * mean over classes of -log p."""
    trainer = make_trainer(tiny_space, digits, label_smoothing=0.1)
    x, y = digits.train.x[:32], digits.train.y[:32]
    logits = torch.randn(32, 10)
    log_p = torch.log_softmax(logits, dim=1)
    expected = 0.9 * torch.nn.functional.nll_loss(log_p, y) - 0.1 * log_p.mean(dim=1).mean()
    assert torch.allclose(trainer.step.loss(logits, y), expected, atol=1e-6)
    arch = trainer.sampler.sample()
    trainer.supernet.set_arch(arch)
    trainer.supernet.train()
    trainer.step.supernet = trainer.supernet  # as the trainer sets it before each step
    torch.manual_seed(0)
    result = trainer.step.train_path(arch, x, y)
    torch.manual_seed(0)
    assert torch.allclose(result.loss, trainer.step.loss(trainer.step.forward(x), y).detach())
    with pytest.raises(Exception, match="label_smoothing"):
        TrainerConfig(label_smoothing=1.0).check()

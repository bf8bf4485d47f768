"""Training-step speed options (bf16 autocast, channels_last, foreach/fused SGD, sparse finite checks) keep the
step's maths; the defaults stay exact fp32."""

from __future__ import annotations

import pytest
import torch

from nasframe.errors import ConfigError, NonFiniteLossError
from nasframe.training.checkpoint import load_checkpoint
from nasframe.training.trainer import TrainerConfig
from test_trainer import make_trainer


def two_steps(trainer) -> list[float]:
    batches = trainer.loader.epoch()
    losses = []
    for _ in range(2):
        x, y, idx = next(batches)
        loss, _ = trainer.train_step(x, y, idx)
        losses.append(loss.item())
    return losses


def max_weight_diff(a, b) -> float:
    sa, sb = a.supernet.state_dict(), b.supernet.state_dict()
    return max((sa[k].float() - sb[k].float()).abs().max().item() for k in sa)


@pytest.mark.parametrize("impl", ["foreach", "fused"])
def test_sgd_implementations_take_the_same_step(tiny_space, digits, impl):
    default, other = make_trainer(tiny_space, digits), make_trainer(tiny_space, digits, sgd_impl=impl)
    assert two_steps(default) == pytest.approx(two_steps(other), abs=1e-6)
    assert max_weight_diff(default, other) < 1e-5


def test_channels_last_computes_the_same_step(tiny_space, digits):
    default, nhwc = make_trainer(tiny_space, digits), make_trainer(tiny_space, digits, channels_last=True)
    assert next(p for p in nhwc.supernet.parameters() if p.dim() == 4).is_contiguous(memory_format=torch.channels_last)
    assert two_steps(default) == pytest.approx(two_steps(nhwc), abs=1e-5)
    assert max_weight_diff(default, nhwc) < 1e-4


def test_bf16_autocast_keeps_fp32_weights_and_a_close_loss(tiny_space, digits):
    default, bf16 = make_trainer(tiny_space, digits), make_trainer(tiny_space, digits, precision="bf16")
    exact, mixed = two_steps(default), two_steps(bf16)
    assert mixed == pytest.approx(exact, rel=3e-2)  # bf16 has 8 bits of mantissa
    assert all(p.dtype == torch.float32 for p in bf16.supernet.parameters())
    assert all(s["momentum_buffer"].dtype == torch.float32 for s in bf16.optimizer.state.values())


def test_sparse_finite_checks_still_stop_before_a_checkpoint(tiny_space, digits, tmp_path):
    trainer = make_trainer(tiny_space, digits, epochs=2, run_dir=tmp_path, finite_check_every=1000)
    trainer.fit(until_epoch=1)
    good = load_checkpoint(tmp_path)
    with torch.no_grad():
        trainer.supernet.classifier.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"non-finite training loss in epoch 2 \(\d+ steps since the last check\)"):
        trainer.fit()  # no check inside the epoch (1000 steps apart): the epoch-end check stops it
    kept = load_checkpoint(tmp_path)
    assert kept["epoch"] == 1 and torch.equal(kept["model"]["classifier.weight"], good["model"]["classifier.weight"])


@pytest.mark.parametrize(("key", "value", "message"), [
    ("precision", "fp16", "trainer.precision"), ("sgd_impl", "apex", "trainer.sgd_impl"),
    ("finite_check_every", 0, "finite_check_every"),
])
def test_bad_speed_settings_name_the_key(key, value, message):
    with pytest.raises(ConfigError, match=message):
        TrainerConfig(**{key: value}).check()

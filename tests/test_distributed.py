"""Data-parallel training under torchrun (2 CPU processes, gloo) equals one process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from nasframe.errors import ConfigError
from nasframe.training.distributed import DistributedContext

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="this torch build has no gloo backend"
)

TINY = [
    "space.channels=4", "space.cells_per_stage=1", "trainer.batch_size=64", "evaluator.bn_recalibration_batches=1",
    "export.torch_export=false", "threads=1", "device=cpu", "trainer.progress=false",
]


def nasframe_search(run_dir: Path, *overrides: str, ranks: int = 1) -> None:
    """``nasframe search`` in a fresh process, or ``torchrun --nproc-per-node ranks -m nasframe.cli search``."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks)]
    command = [*(launcher if ranks > 1 else [sys.executable]), "-m", "nasframe.cli", "search", *TINY, *overrides,
               f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=run_dir.parent, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]


def checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)


def assert_same_weights(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name].float(), b[name].float(), atol=atol, rtol=1e-4, msg=name)


def test_pada_two_ranks_then_resumed_on_one_equals_one_process(tmp_path: Path) -> None:
    """Epoch 1 on 2 ranks (gloo), epoch 2 resumed in a single process: the same weights and the same PA&DA path
    and data distributions as 2 epochs in one process. This covers gradient averaging, BatchNorm over the global
    batch, the adaptive samplers' statistics of the global batch, checkpoints from rank 0 and resuming with
    another world size."""
    args = ["sampler=pada", "trainer.epochs=2", "selector=random", "selector.num_samples=2"]
    nasframe_search(tmp_path / "single", *args)
    nasframe_search(tmp_path / "two_ranks", *args, "trainer.stop_after_epoch=1", ranks=2)
    nasframe_search(tmp_path / "resumed", *args, f"resume={tmp_path / 'two_ranks'}")
    single, resumed = checkpoint(tmp_path / "single"), checkpoint(tmp_path / "resumed")
    assert resumed["epoch"] == single["epoch"] == 2
    assert_same_weights(single["model"], resumed["model"], atol=1e-4)
    for choice, prob in single["sampler"]["prob"].items():
        torch.testing.assert_close(resumed["sampler"]["prob"][choice], prob, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(resumed["data_order"]["prob"], single["data_order"]["prob"], atol=1e-7, rtol=1e-5)
    assert [p.name for p in tmp_path.iterdir()] and not (tmp_path / "two_ranks" / "export").exists()


def test_darts_two_ranks_equals_one_process(tmp_path: Path) -> None:
    """Differentiable training: the architecture step's gradients are averaged over ranks too."""
    args = ["sampler=darts", "selector=magnitude", "trainer.epochs=1", "trainer.batch_size=128"]
    nasframe_search(tmp_path / "single", *args)
    nasframe_search(tmp_path / "two_ranks", *args, ranks=2)
    single, two = checkpoint(tmp_path / "single"), checkpoint(tmp_path / "two_ranks")
    assert_same_weights(single["model"], two["model"], atol=1e-4)
    assert_same_weights(single["sampler"]["alpha"], two["sampler"]["alpha"], atol=1e-5)
    assert (tmp_path / "two_ranks" / "export" / "arch.json").is_file()  # rank 0 selected and exported


def test_global_batch_must_split_evenly() -> None:
    with pytest.raises(ConfigError, match="global batch.*3 ranks"):
        DistributedContext(rank=0, world_size=3).check_batch(64)
    assert DistributedContext(rank=1, world_size=4).local_slice(64) == slice(16, 32)


def test_context_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert DistributedContext.from_env() == DistributedContext(rank=2, world_size=4, local_rank=0)
    monkeypatch.setenv("RANK", "two")
    with pytest.raises(ConfigError, match="RANK, WORLD_SIZE and LOCAL_RANK"):
        DistributedContext.from_env()


# -- BatchNorm statistics over ranks in fp32 under bf16 autocast ----------------------------------------------------
def alternating_bf16_batch() -> torch.Tensor:
    """``(1, 2, 17, 17)`` bf16: channel 0 all ``1 + 2**-7``, channel 1 alternating 1 and ``1 + 2**-6``. Every value
    is exact in bf16, and every sum, square and sum of squares is exact in fp32, but not in bf16 (8 significant
    bits): the count 289 is 288 in bf16, ``(1 + 2**-6)**2`` rounds, and channel 1's variance ``2**-14`` (with its
    mean ``1 + 144 * 2**-6 / 289``) vanishes in bf16 arithmetic."""
    x = torch.empty(1, 2, 17, 17)
    x[:, 0] = 1 + 2**-7
    x[:, 1] = (1 + 2**-6 * (torch.arange(17 * 17) % 2)).view(17, 17)
    return x.to(torch.bfloat16)


def test_global_batch_statistics_accumulate_in_fp32_under_bf16_autocast() -> None:
    from nasframe.training.distributed import global_batch_statistics

    x = alternating_bf16_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mean, var, n = global_batch_statistics(x)
    assert mean.dtype == var.dtype == n.dtype == torch.float32
    assert n.item() == 289  # bf16 would hold 288
    exact = x.double()
    torch.testing.assert_close(mean, exact.mean(dim=(0, 2, 3)).float(), atol=0, rtol=2**-23)
    torch.testing.assert_close(var, exact.var(dim=(0, 2, 3), unbiased=False).float(), atol=1e-6, rtol=0)
    assert abs(var[1].item() - 144 * 145 / 289**2 * 2**-12) < 1e-6 and var[0].item() < 1e-6
    # the same statistics as for the fp32 input without autocast, bit for bit
    for got, want in zip((mean, var, n), global_batch_statistics(x.float())):
        assert torch.equal(got, want)
    # and the test can tell: the same formula in bf16 arithmetic is far off
    xb = x
    bf16_n = torch.tensor(289.0, dtype=torch.bfloat16)
    bf16_mean = xb.sum(dim=(0, 2, 3)) / bf16_n
    bf16_var = (xb * xb).sum(dim=(0, 2, 3)) / bf16_n - bf16_mean * bf16_mean
    assert bf16_n.item() == 288
    assert (bf16_var.float() - var).abs().max() > 1e-3


@pytest.fixture
def one_rank_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A gloo process group of this process alone, reported as 2 ranks so that ``CrossRankBatchNorm2d`` takes its
    cross-rank path (an all-reduce over one rank is the identity)."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 2)
    try:
        yield
    finally:
        monkeypatch.undo()
        dist.destroy_process_group()


def test_cross_rank_batchnorm_under_bf16_autocast_matches_fp32_batchnorm(one_rank_group) -> None:
    from torch import nn

    from nasframe.training.distributed import CrossRankBatchNorm2d

    x = alternating_bf16_batch().requires_grad_()
    reference = nn.BatchNorm2d(2)
    layer = nn.BatchNorm2d(2)
    layer.__class__ = CrossRankBatchNorm2d
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    assert y.dtype == torch.bfloat16  # as BatchNorm2d under autocast: the input's dtype
    want = reference(x.detach().float())
    torch.testing.assert_close(y.float(), want, atol=1e-2, rtol=1e-2)  # one bf16 rounding of the output
    # the running statistics are the fp32 ones (momentum 0.1 of the fp32 mean and unbiased variance)
    torch.testing.assert_close(layer.running_mean, reference.running_mean, atol=1e-7, rtol=1e-6)
    torch.testing.assert_close(layer.running_var, reference.running_var, atol=1e-7, rtol=1e-5)
    assert layer.num_batches_tracked.item() == 1
    y.float().pow(2).sum().backward()  # the gradient flows back through the fp32 statistics and the all-reduce
    assert x.grad is not None and x.grad.dtype == torch.bfloat16 and torch.isfinite(x.grad.float()).all()

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

"""Few-shot sub-supernets trained as separate jobs (a Hydra multirun), merged, then selected from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nasframe.errors import CheckpointError
from nasframe.sampling.fewshot_jobs import merge_runs

TINY = ["space.channels=4", "space.cells_per_stage=1", "trainer.epochs=2", "trainer.batch_size=128",
        "selector=random", "selector.num_samples=3", "evaluator.bn_recalibration_batches=1",
        "export.torch_export=false", "threads=1", "device=cpu",
        "sampler=fewshot", "sampler.split=gradient", "sampler.max_subnets=2", "sampler.grad_batches=1",
        "sampler.grad_choices=[edge_1_0]"]


def nasframe(*args: str, cwd: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "nasframe.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def weights(run: Path, prefix: str) -> dict[str, torch.Tensor]:
    model = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
    return {k[len(prefix):]: v for k, v in model.items() if k.startswith(prefix)}


def test_sub_supernets_as_parallel_jobs_merge_into_one_selectable_supernet(tmp_path: Path) -> None:
    warm, parts, merged = tmp_path / "warm", tmp_path / "parts", tmp_path / "merged"
    nasframe("search", *TINY, "trainer.stop_after_epoch=1", f"hydra.run.dir={warm}", cwd=tmp_path)  # one-shot warm-up
    nasframe("search", "-m", "hydra/launcher=local", *TINY, "sampler.train_only=0,1", f"resume={warm}",
             f"hydra.sweep.dir={parts}", cwd=tmp_path)
    job0, job1 = parts / "0", parts / "1"
    assert not (job0 / "outcome.json").exists()  # a part job ends after training
    # each job trained only its own sub-supernet: the other one is still the warm-start copy in both jobs
    untouched0, untouched1 = weights(job0, "supernets.1."), weights(job1, "supernets.0.")
    assert all(torch.equal(untouched0[k], untouched1[k]) for k in untouched0)
    trained0 = weights(job0, "supernets.0.")
    assert any(not torch.equal(trained0[k], untouched1[k]) for k in trained0 if "running" not in k)

    nasframe("merge", str(parts), "--out", str(merged), cwd=tmp_path)
    for index, job in ((0, job0), (1, job1)):
        mine, merged_part = weights(job, f"supernets.{index}."), weights(merged, f"supernets.{index}.")
        assert all(torch.equal(mine[k], merged_part[k]) for k in mine)
    nasframe("search", *TINY, f"resume={merged}", f"hydra.run.dir={merged}", cwd=tmp_path)
    assert (merged / "outcome.json").is_file() and (merged / "export" / "arch.json").is_file()

    with pytest.raises(CheckpointError, match=r"no run trained sub-supernet\(s\) \[1\]"):
        merge_runs([job0], tmp_path / "incomplete")
    with pytest.raises(CheckpointError, match="trained by both"):
        merge_runs([job0, job0], tmp_path / "twice")
    with pytest.raises(CheckpointError, match="not a split few-shot run"):
        merge_runs([warm], tmp_path / "unsplit")

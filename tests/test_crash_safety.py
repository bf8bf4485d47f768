"""Crash safety: a search killed with SIGKILL in the middle of an epoch resumes from its last checkpoint and ends
with the same weights as a run that was never interrupted."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from nasframe.training.checkpoint import load_checkpoint

RUN = [
    "space.channels=4", "space.cells_per_stage=2", "trainer.epochs=3", "trainer.batch_size=16", "trainer.progress=false",
    "selector=random", "selector.num_samples=2", "evaluator.bn_recalibration_batches=1", "export.torch_export=false",
    "device=cpu", "threads=1",
]


def command(*args: str) -> list[str]:
    exe = shutil.which("nasframe")
    return [*([exe] if exe else [sys.executable, "-m", "nasframe.cli"]), "search", *RUN, *args]


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")
def test_sigkill_mid_epoch_then_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    straight = subprocess.run(command(f"hydra.run.dir={tmp_path / 'straight'}"), capture_output=True, text=True,
                              cwd=tmp_path, timeout=600)
    assert straight.returncode == 0, straight.stderr[-2000:]

    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen(command(f"hydra.run.dir={killed_dir}"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=tmp_path)
    checkpoint = killed_dir / "checkpoint.pt"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # well inside epoch 2 (an epoch takes a few seconds here)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)

    state = load_checkpoint(checkpoint)  # whole and loadable: written to a temporary file, then renamed
    assert state["epoch"] == 1 and state["step_in_epoch"] == 0
    assert not list(killed_dir.glob("*.tmp*"))

    resumed = subprocess.run(command(f"resume={killed_dir}", f"hydra.run.dir={tmp_path / 'resumed'}"),
                             capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = load_checkpoint(tmp_path / "straight/checkpoint.pt")
    b = load_checkpoint(tmp_path / "resumed/checkpoint.pt")
    assert a["epoch"] == b["epoch"] == 3
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert a["history"] == b["history"]

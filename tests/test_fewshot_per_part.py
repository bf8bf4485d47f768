"""Few-shot NAS with the paper's per-part budget (sampler.budget=per_part): one command trains the one-shot phase,
launches the sub-supernets as jobs of the configured Hydra launcher (joblib here; Slurm in test_slurm.py), merges
them and selects; a failed part is rerun alone. Also ``resume=auto``, which a rerun sweep relies on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nasframe.fewshot_parts import part_overrides
from nasframe.training.checkpoint import resolve_resume

TINY = ["space.channels=4", "space.cells_per_stage=1", "trainer.batch_size=128", "selector=random",
        "selector.num_samples=3", "evaluator.bn_recalibration_batches=1", "export.torch_export=false", "threads=1",
        "device=cpu", "trainer.progress=false"]
PER_PART = [*TINY, "trainer.epochs=4", "sampler=fewshot", "sampler.split=exhaustive", "sampler.choice=edge_1_0",
            "sampler.budget=per_part", "hydra/launcher=local"]


def nasframe(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nasframe.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def state(path: Path) -> dict:
    return torch.load(path / "checkpoint.pt", weights_only=True)


def sub_supernet(model: dict, index: int) -> dict:
    prefix = f"supernets.{index}."
    return {k[len(prefix):]: v for k, v in model.items() if k.startswith(prefix)}


@pytest.mark.slow
def test_per_part_budget_trains_every_sub_supernet_for_all_post_split_epochs_then_selects(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = nasframe("search", *PER_PART, f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    oneshot = state(run / "oneshot")
    steps_per_epoch = oneshot["schedule"]["steps_per_epoch"]
    assert oneshot["epoch"] == 2  # warmup_fraction 0.5 of 4 epochs, then split: 5 sub-supernets, one per option
    assert len(json.loads(oneshot["sampler"]["partition"])) == 5
    for k in range(5):
        part = state(run / "parts" / str(k))
        assert json.loads(part["sampler"]["train_only"]) == k
        # the paper's budget: every part trains all post-split epochs (the shared budget gives it about 1/5)
        assert part["epoch"] == 4 and part["global_step"] == 4 * steps_per_epoch
        for other in set(range(5)) - {k}:  # it trained its own sub-supernet only, from the one-shot weights
            untouched, start = sub_supernet(part["model"], other), sub_supernet(oneshot["model"], other)
            assert all(torch.equal(untouched[n], start[n]) for n in start)
        mine, start = sub_supernet(part["model"], k), sub_supernet(oneshot["model"], k)
        assert any(not torch.equal(mine[n], start[n]) for n in start if "running" not in n)
    merged = state(run)
    for k in range(5):
        theirs, ours = sub_supernet(state(run / "parts" / str(k))["model"], k), sub_supernet(merged["model"], k)
        assert all(torch.equal(theirs[n], ours[n]) for n in theirs)
    outcome = json.loads((run / "outcome.json").read_text())
    assert outcome["seed"] == 0 and (run / "export" / "arch.json").is_file()
    (launch,) = json.loads((run / "parts" / "parts.json").read_text())["launches"]
    assert launch["launched"] == [0, 1, 2, 3, 4] and launch["failed"] == []
    assert launch["launcher"] == "hydra/launcher=local" and launch["wall_seconds"] > 0
    assert "resume=auto" in launch["command"] and "sampler.train_only=0,1,2,3,4" in launch["command"]

    # a part that died mid-way: the rerun resumes (here: reruns) that part alone, then merges and selects again
    for name in ("checkpoint.pt", "outcome.json"):
        (run / name).unlink()
    (run / "parts" / "3" / "checkpoint.pt").unlink()
    finished_part = (run / "parts" / "1" / "checkpoint.pt").stat().st_mtime_ns
    proc = nasframe("search", *PER_PART, "resume=auto", f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    launches = json.loads((run / "parts" / "parts.json").read_text())["launches"]
    assert launches[1]["launched"] == [3] and (run / "outcome.json").is_file()
    assert (run / "parts" / "1" / "checkpoint.pt").stat().st_mtime_ns == finished_part
    rerun = state(run / "parts" / "3")
    assert rerun["epoch"] == 4 and json.loads(rerun["sampler"]["train_only"]) == 3


def test_part_jobs_get_the_parent_overrides_and_launcher_but_their_own_resume_and_part() -> None:
    task = ["+experiment=nb201_cifar10_cpu", "resume=auto", "sampler=fewshot", "sampler.train_only=2", "seed=3"]
    hydra = ["hydra.run.dir=/runs/x", "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.verbose=true"]
    got = part_overrides(task, hydra, [0, 2], Path("/runs/x/parts"))
    assert got == ["+experiment=nb201_cifar10_cpu", "sampler=fewshot", "seed=3", "resume=auto",
                   "sampler.train_only=0,2", "hydra.sweep.dir=/runs/x/parts", "hydra.sweep.subdir=${sampler.train_only}",
                   "hydra/launcher=slurm", "hydra.launcher.partition=gpu"]


@pytest.mark.parametrize("extra, message", [
    (["sampler.budget=everything"], "sampler.budget: unknown budget 'everything'"),
    (["sampler.budget=per_part", "trainer.stop_after_epoch=1"], "trainer.stop_after_epoch does not apply"),
])
def test_per_part_bad_settings_are_named(tmp_path: Path, extra: list[str], message: str) -> None:
    proc = nasframe("search", *TINY, "trainer.epochs=2", "sampler=fewshot", *extra, f"hydra.run.dir={tmp_path / 'r'}",
                    cwd=tmp_path)
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr


def test_resume_auto_continues_the_run_directory_and_skips_a_finished_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert resolve_resume("auto", run) is None  # nothing there yet: a fresh start
    args = ["search", *TINY, "trainer.epochs=2", "resume=auto", f"hydra.run.dir={run}"]
    proc = nasframe(*args, "trainer.stop_after_epoch=1", cwd=tmp_path)  # a job stopped after epoch 1
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run / "checkpoint.pt.x1y2.tmp").write_bytes(b"half written")  # what a job killed while saving leaves
    assert resolve_resume("auto", run) == run / "checkpoint.pt"
    assert not (run / "checkpoint.pt.x1y2.tmp").exists()
    proc = nasframe(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resumed from {run / 'checkpoint.pt'} at epoch 1" in (run / "search.log").read_text()
    assert state(run)["epoch"] == 2 and (run / "outcome.json").is_file()
    proc = nasframe(*args, cwd=tmp_path)
    assert proc.returncode == 0 and "finished earlier (resume=auto)" in proc.stdout

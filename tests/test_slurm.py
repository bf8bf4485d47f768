"""The Slurm path against a real single-node cluster (scripts/slurm_local.sh; .ci/run starts it where it is root):
sweeps as job arrays with a cancelled job named and resumed alone, few-shot parts as Slurm jobs, and torchrun
under sbatch equal to a single process. Every test skips, saying why, where no cluster answers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
TINY = ["space.channels=4", "space.cells_per_stage=1", "selector=random", "selector.num_samples=2",
        "evaluator.bn_recalibration_batches=1", "export.torch_export=false", "threads=1", "device=cpu",
        "trainer.progress=false"]


def nasframe(*args: str, env: dict[str, str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nasframe.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


def array_task(env: dict[str, str], index: int) -> str | None:
    """The Slurm id (``<array job>_<index>``) of this sweep's job ``index`` while it is queued or running."""
    ids = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, env=env, timeout=20).stdout.split()
    return next((i for i in ids if i.endswith(f"_{index}")), None)


def test_sweep_runs_as_a_job_array_a_cancelled_job_is_named_and_a_rerun_resumes_it_alone(tmp_path, slurm_env) -> None:
    sweep = tmp_path / "sweep"
    # job 0 is quick; job 1 (batch 16: 8x the steps) is cancelled with scancel after its first checkpoint
    command = [sys.executable, "-m", "nasframe.cli", "search", "-m", "hydra/launcher=slurm_local", "resume=auto",
               *TINY, "trainer.epochs=10", "trainer.checkpoint_every=1", "trainer.batch_size=128,16",
               f"hydra.sweep.dir={sweep}"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env=slurm_env)
    deadline = time.monotonic() + 240
    while not (sweep / "1" / "checkpoint.pt").is_file():
        assert time.monotonic() < deadline and proc.poll() is None, "job 1 wrote no checkpoint"
        time.sleep(0.2)
    job = array_task(slurm_env, 1)
    assert job is not None, "job 1 finished before it could be cancelled"
    subprocess.run(["scancel", job], check=True, env=slurm_env, timeout=20)
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode != 0
    assert "1 job(s) of the sweep" in stderr and "trainer.batch_size=16" in stderr, stderr[-3000:]
    assert "checkpoint at epoch" in stderr and "resume=auto" in stderr
    assert (sweep / "0" / "outcome.json").is_file() and not (sweep / "1" / "outcome.json").exists()

    gathered = nasframe("gather", str(sweep), env=slurm_env, cwd=tmp_path)
    assert gathered.returncode == 0, gathered.stderr[-2000:]
    report = json.loads((sweep / "gather.json").read_text())
    (unfinished,) = report["unfinished"]
    assert unfinished["run"] == "1" and "trainer.batch_size=16" in unfinished["overrides"]
    stopped_at = torch.load(sweep / "1" / "checkpoint.pt", weights_only=True)["epoch"]
    # scancel lands after the first checkpoint, in training or (on a loaded machine) after its last epoch, in
    # selection: either way the job has a checkpoint and no outcome, and the rerun must resume it alone
    assert 1 <= stopped_at <= 10 and f"epoch {stopped_at} of 10" in unfinished["progress"]

    finished_before = (sweep / "0" / "outcome.json").stat().st_mtime_ns
    rerun = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=slurm_env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert (sweep / "0" / "outcome.json").stat().st_mtime_ns == finished_before  # the finished job did nothing
    assert f"resumed from {sweep / '1' / 'checkpoint.pt'} at epoch {stopped_at}" in (sweep / "1" / "search.log").read_text()
    assert torch.load(sweep / "1" / "checkpoint.pt", weights_only=True)["epoch"] == 10
    nasframe("gather", str(sweep), env=slurm_env, cwd=tmp_path)
    report = json.loads((sweep / "gather.json").read_text())
    assert [r["run"] for r in report["rows"]] == ["0", "1"] and report["unfinished"] == []


def test_fewshot_parts_run_as_slurm_jobs(tmp_path, slurm_env) -> None:
    run = tmp_path / "run"
    proc = nasframe("search", *TINY, "trainer.epochs=2", "trainer.batch_size=128", "sampler=fewshot",
                    "sampler.split=gradient", "sampler.max_subnets=2", "sampler.grad_batches=1",
                    "sampler.grad_choices=[edge_1_0]", "sampler.budget=per_part", "hydra/launcher=slurm_local",
                    f"hydra.run.dir={run}", env=slurm_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (launch,) = json.loads((run / "parts" / "parts.json").read_text())["launches"]
    assert launch["launcher"] == "hydra/launcher=slurm_local" and launch["launched"] == [0, 1]
    tasks = sorted(p.name.rsplit("_", 1)[1] for p in (run / "parts" / ".submitit").glob("*_*") if p.is_dir())
    assert tasks == ["0", "1"]  # the parts ran as the two tasks of a Slurm job array
    for k in (0, 1):
        state = torch.load(run / "parts" / str(k) / "checkpoint.pt", weights_only=True)
        assert state["epoch"] == 2 and json.loads(state["sampler"]["train_only"]) == k
    assert (run / "outcome.json").is_file() and (run / "export" / "arch.json").is_file()


def test_torchrun_under_sbatch_equals_one_process(tmp_path, slurm_env) -> None:
    """scripts/slurm_torchrun.sbatch: one torchrun on the node, 2 ranks (gloo), the same weights as one process
    with the same global batch (as tests/test_distributed.py checks under plain torchrun)."""
    args = [*TINY, "sampler=pada", "trainer.epochs=2", "trainer.batch_size=64"]
    single = nasframe("search", *args, f"hydra.run.dir={tmp_path / 'single'}",
                      env={**slurm_env, "OMP_NUM_THREADS": "1"}, cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-3000:]
    submitted = subprocess.run(
        ["sbatch", "--parsable", "--wait", "--cpus-per-task", "2", "--mem", "2G", "--output", str(tmp_path / "job.out"),
         str(SCRIPTS / "slurm_torchrun.sbatch"), "2", *args, f"hydra.run.dir={tmp_path / 'two_ranks'}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
        env={**slurm_env, "NASFRAME_PYTHON": sys.executable, "NASFRAME_RDZV_PORT": "29517", "OMP_NUM_THREADS": "1"})
    log = (tmp_path / "job.out").read_text() if (tmp_path / "job.out").is_file() else ""
    assert submitted.returncode == 0, (submitted.stderr + log)[-3000:]
    assert "1 node(s) x 2 rank(s)" in log
    assert "rank 0 of 2" in (tmp_path / "two_ranks" / "search.log").read_text()
    a = torch.load(tmp_path / "single" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "two_ranks" / "checkpoint.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name].float(), a[name].float(), atol=1e-4, rtol=1e-4, msg=name)

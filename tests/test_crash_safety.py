"""Crash safety: a search killed with SIGKILL resumes from its last checkpoint and ends with the same weights as a
run that was never interrupted, wherever it was killed.

The kill is deterministic: the killed run trains with ``tests/helpers/kill_sampler.py``, a uniform sampler that draws
the same paths as ``sampler=uniform`` and SIGKILLs its own process at a chosen training step (the trainer asks the
sampler for one path per step), or halfway through the checkpoint write that follows a chosen step, and logs where
it died. Nothing depends on timing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from nasframe.errors import CheckpointError
from nasframe.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")

EPOCHS = 3
RUN = [
    "space.channels=4", "space.cells_per_stage=2", f"trainer.epochs={EPOCHS}", "trainer.batch_size=16",
    "trainer.progress=false", "selector=random", "selector.num_samples=2", "evaluator.bn_recalibration_batches=1",
    "export.torch_export=false", "device=cpu", "threads=1",
]
HELPERS = Path(__file__).parent / "helpers"  # kill_sampler.py
KILLING_SAMPLER = "sampler.name=kill_sampler:KillingSampler"


def command(*args: str) -> list[str]:
    exe = shutil.which("nasframe")
    return [*([exe] if exe else [sys.executable, "-m", "nasframe.cli"]), "search", *RUN, *args]


def environment(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(HELPERS), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **extra}


def search(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), capture_output=True, text=True, cwd=cwd, timeout=600, env=environment(**env))


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> dict:
    """The final checkpoint of an uninterrupted run (``sampler=uniform``)."""
    root = tmp_path_factory.mktemp("straight")
    done = search(root, f"hydra.run.dir={root / 'run'}")
    assert done.returncode == 0, done.stderr[-2000:]
    state = load_checkpoint(root / "run")
    assert state["epoch"] == EPOCHS
    return state


# (plan, the epoch of the checkpoint left behind, a half-written temporary file left behind), from steps per epoch
KILLS: dict[str, Callable[[int], tuple[str, int, bool]]] = {
    # in the middle of epoch 2: the checkpoint of epoch 1 is the last one, half an epoch is trained again
    "mid-epoch": lambda steps: (f"step:{steps + steps // 2}", 1, False),
    # at the first step after a checkpoint (epoch 2's, renamed and its directory fsynced): nothing is lost
    "right-after-a-checkpoint": lambda steps: (f"step:{2 * steps + 1}", 2, False),
    # halfway through writing epoch 2's checkpoint, before the rename: epoch 1's is intact, a .tmp is left over
    "during-a-checkpoint-write": lambda steps: (f"checkpoint-after-step:{2 * steps}", 1, True),
}


@pytest.mark.slow
@pytest.mark.parametrize("where", list(KILLS))
def test_sigkill_at_a_training_step_then_resume_gives_the_weights_of_an_uninterrupted_run(
        where: str, straight: dict, tmp_path: Path) -> None:
    steps = straight["schedule"]["steps_per_epoch"]
    assert steps >= 4, "the run needs a few steps per epoch to kill it mid-epoch"
    plan, checkpoint_epoch, torn = KILLS[where](steps)
    log = tmp_path / "kill.log"
    killed_dir = tmp_path / "killed"

    killed = search(tmp_path, KILLING_SAMPLER, f"hydra.run.dir={killed_dir}",
                    NASFRAME_TEST_KILL=plan, NASFRAME_TEST_KILL_LOG=str(log))
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-2000:])
    step = int(plan.rpartition(":")[2])
    logged = log.read_text().splitlines()
    assert len(logged) == 1
    if torn:
        assert logged[0].startswith(f"killed writing a checkpoint after step {step} ")
    else:
        assert logged[0] == f"killed at step {step}"

    state = load_checkpoint(killed_dir)  # whole and loadable: written to a temporary file, then renamed
    assert state["epoch"] == checkpoint_epoch and state["step_in_epoch"] == 0
    assert state["global_step"] == checkpoint_epoch * steps
    assert not (killed_dir / "export").exists()  # it died in training
    leftovers = list(killed_dir.glob("*.tmp"))
    if torn:  # the half-written file is the temporary one, never the checkpoint
        assert len(leftovers) == 1 and leftovers[0].name.startswith("checkpoint.pt.")
        with pytest.raises(CheckpointError):
            load_checkpoint(leftovers[0])
    else:
        assert not leftovers

    resumed_dir = tmp_path / "resumed"
    resumed = search(tmp_path, f"resume={killed_dir}", f"hydra.run.dir={resumed_dir}")  # sampler=uniform
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = load_checkpoint(resumed_dir)
    assert final["epoch"] == straight["epoch"] == EPOCHS
    assert final["global_step"] == straight["global_step"] == EPOCHS * steps
    assert final["model"].keys() == straight["model"].keys()
    for key, value in straight["model"].items():
        assert torch.equal(value, final["model"][key]), key
    assert final["sampler"] == straight["sampler"]
    assert final["history"] == straight["history"]


def test_the_killing_sampler_draws_the_uniform_paths_and_kills_nowhere_unless_asked(tiny_space, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(HELPERS))
    monkeypatch.delenv("NASFRAME_TEST_KILL", raising=False)
    from kill_sampler import KillingSampler, parse_plan

    from nasframe.sampling.uniform import UniformSampler

    killing, uniform = KillingSampler(tiny_space, seed=3), UniformSampler(tiny_space, seed=3)
    assert [killing.sample() for _ in range(20)] == [uniform.sample() for _ in range(20)]
    assert killing.state_dict() == uniform.state_dict() and killing.steps == 20
    assert parse_plan("step:7") == ("step", 7) and parse_plan("checkpoint-after-step:2") == ("checkpoint-after-step", 2)
    for bad in ("step:0", "step", "epoch:3"):
        with pytest.raises(ValueError):
            parse_plan(bad)

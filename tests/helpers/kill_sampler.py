"""A uniform path sampler that SIGKILLs its own process at a chosen training step, for the crash-safety tests.

Used as ``sampler.name=kill_sampler:KillingSampler`` with this folder on ``PYTHONPATH`` (a ``module:attr`` name from
the command line). It draws exactly the paths of ``sampler=uniform`` (same class, same random stream, same state),
so a run killed with it resumes with ``sampler=uniform``. The trainer calls :meth:`sample` once per training step
(single-path samplers), so the number of calls is the step; where to die is read from the environment:

``NASFRAME_TEST_KILL=step:N``
    at the start of training step ``N`` (1-based, counted from the start of this process's training), before its
    path is drawn: the steps before it are done, the checkpoints they were followed by are written.
``NASFRAME_TEST_KILL=checkpoint-after-step:N``
    during the first checkpoint write after step ``N``: ``torch.save`` writes the first half of the checkpoint's
    bytes to the temporary file, flushes and fsyncs them, and the process dies before the rename.

Before dying it appends one line to ``NASFRAME_TEST_KILL_LOG`` (flushed and fsynced), ``killed at step N`` or
``killed writing a checkpoint after step N``, so that the test knows where the process died. Without
``NASFRAME_TEST_KILL`` it never kills.
"""

from __future__ import annotations

import io
import os
import signal
from typing import Any

import torch

from nasframe.core.arch import Arch
from nasframe.sampling.uniform import UniformSampler

KILL = "NASFRAME_TEST_KILL"
KILL_LOG = "NASFRAME_TEST_KILL_LOG"


def parse_plan(text: str | None) -> tuple[str, int] | None:
    """``"step:12"`` -> ``("step", 12)``; ``None`` or ``""`` -> ``None``."""
    if not text:
        return None
    where, _, step = text.partition(":")
    if where not in ("step", "checkpoint-after-step") or not step.isdigit() or int(step) < 1:
        raise ValueError(f"{KILL}={text!r}: expected step:N or checkpoint-after-step:N with N >= 1")
    return where, int(step)


def die(message: str) -> None:
    """Log ``message`` durably, then SIGKILL this process (no cleanup, no ``finally``, no atexit)."""
    log = os.environ.get(KILL_LOG)
    if log:
        with open(log, "a") as handle:
            handle.write(message + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    os.kill(os.getpid(), signal.SIGKILL)


class KillingSampler(UniformSampler):
    """``sampler=uniform`` that dies where ``NASFRAME_TEST_KILL`` says (see the module docstring)."""

    name = "uniform"  # the same paths: a run killed with it is resumed with sampler=uniform

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plan = parse_plan(os.environ.get(KILL))
        self.steps = 0  # calls to sample(): not part of the state, a resumed run does not use this sampler

    def sample(self) -> Arch:
        self.steps += 1
        if self.plan == ("step", self.steps):
            die(f"killed at step {self.steps}")
        if self.plan == ("checkpoint-after-step", self.steps):
            kill_during_next_save(self.steps)
        return super().sample()


def kill_during_next_save(step: int) -> None:
    """Make the next ``torch.save`` to a file handle write half of its bytes, then die."""
    real_save = torch.save

    def half_save_then_die(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        os.fsync(f.fileno())
        die(f"killed writing a checkpoint after step {step} ({len(data) // 2} of {len(data)} bytes written)")

    torch.save = half_save_then_die

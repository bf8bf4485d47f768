"""Restoring a trained supernet from a checkpoint: the space check, the sampler's structure, the weights; and
where a run keeps the checkpoints of chosen epochs (``trainer.keep_every``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from nasframe.core.space import with_later_defaults

from nasframe.errors import CheckpointError
from nasframe.sampling.base import PathSampler

#: the folder of a run's kept checkpoints (``trainer.keep_every``)
KEPT_DIR = "checkpoints"


def kept_checkpoint(run_dir: Path, epoch: int) -> Path:
    """Where the checkpoint of ``epoch`` is kept (``trainer.keep_every``)."""
    return Path(run_dir) / KEPT_DIR / f"epoch_{epoch:04d}.pt"


def check_space(state: dict[str, Any], space_description: str, source: str = "checkpoint") -> None:
    """Refuse a checkpoint written for another space (settings added to the space since it was written count at
    their defaults: :func:`~nasframe.core.space.with_later_defaults`)."""
    if state.get("space") == space_description:
        return
    try:
        recorded = with_later_defaults(json.loads(state.get("space") or "null"))
    except (json.JSONDecodeError, TypeError):
        recorded = None
    if recorded != json.loads(space_description or "null"):
        raise CheckpointError(f"{source} was written for space {state.get('space')}, but this run uses {space_description}")


def restore_supernet(supernet: nn.Module, sampler: PathSampler, state: dict[str, Any], space_description: str,
                     source: str = "checkpoint") -> nn.Module:
    """The supernet of a checkpoint: check that it was written for this space, load the sampler's state, rebuild
    the structure the sampler gave the supernet (few-shot sub-supernets), then load the weights. Returns the
    supernet to use (``supernet`` itself, or the rebuilt structure on the same device)."""
    check_space(state, space_description, source)
    sampler.load_state_dict(state["sampler"])
    rebuilt = sampler.rebuild(supernet)
    if rebuilt is not None:
        supernet = rebuilt.to(next(supernet.parameters()).device)
    try:
        supernet.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{source} does not fit this supernet: {str(exc).splitlines()[0]}") from None
    return supernet

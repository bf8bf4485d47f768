"""Atomic, safe checkpoints.

A checkpoint is written to a temporary file in the same directory, flushed to disk, then renamed over the
old one (``os.replace`` is atomic on POSIX and Windows), so a crash never leaves a half-written file; the
directory is then fsynced so that the rename itself survives a power loss (on POSIX a rename lives in the
directory's entries, which a file's fsync does not flush).
Checkpoints are read with ``torch.load(weights_only=True)``: tensors, numbers, strings and containers only,
never arbitrary pickled objects.
"""

from __future__ import annotations

import os
import pickle
import struct
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from nasframe.errors import CheckpointError

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 1


def save_atomic(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return path


def fsync_directory(directory: str | Path) -> None:
    """Flush ``directory``'s entries (a rename into it) to disk. A no-op where directories cannot be opened or
    fsynced (Windows, some network file systems): there the rename is as durable as the platform makes it."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run directory holding ``checkpoint.pt``."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    return path


#: ``resume=auto``: continue the run directory's own checkpoint when it has one, start fresh otherwise
AUTO_RESUME = "auto"


def resolve_resume(resume: str | None, run_dir: str | Path | None) -> Path | None:
    """The checkpoint a run continues from: ``resume`` (a checkpoint file or run directory), or with
    ``resume=auto`` the checkpoint in ``run_dir`` itself when there is one (so that rerunning the same command, a
    sweep whose jobs were killed or a requeued Slurm job, continues each job where its last checkpoint left it)."""
    if not resume:
        return None
    if resume != AUTO_RESUME:
        return resolve_checkpoint(resume)
    if run_dir is None:
        raise CheckpointError("resume=auto continues the run directory's own checkpoint, but this run has no directory")
    own = Path(run_dir) / CHECKPOINT_NAME
    if not own.is_file():
        return None
    for stale in own.parent.glob(f"{CHECKPOINT_NAME}.*.tmp"):  # a half-written successor of a killed job
        stale.unlink(missing_ok=True)
    return own


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``), with a clear error for corrupt or foreign files.
    ``mmap=True`` maps the tensors instead of reading them: for callers that read only the epoch or sampler state."""
    path = resolve_checkpoint(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"refusing to load {path}: it holds objects other than tensors and plain data ({exc})".splitlines()[0]) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, struct.error, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: corrupt or not a torch checkpoint ({exc})".splitlines()[0]) from None
    if not isinstance(state, dict) or state.get("format") != "nasframe-checkpoint":
        raise CheckpointError(f"{path} is not a nasframe checkpoint")
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {state.get('format_version')}, this nasframe reads {FORMAT_VERSION}"
        )
    return state

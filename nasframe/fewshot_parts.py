"""Few-shot NAS with the paper's budget: every sub-supernet trained for its own epochs, as its own job.

"Few-shot Neural Architecture Search" (Zhao et al., ICML 2021) trains the one-shot supernet, splits it into K
sub-supernets, and then trains each sub-supernet from the inherited one-shot weights with its own budget. With
``sampler=fewshot sampler.budget=per_part`` one ``nasframe search`` does exactly that:

1. **one-shot phase** (``<run>/oneshot``): the supernet trains to the split epoch
   (``round(warmup_fraction * trainer.epochs)``), then splits (exhaustive or gradient matching); the checkpoint
   holds the split, so every part starts from the same weights and the same partition;
2. **parts** (``<run>/parts/<k>``): the K sub-supernets train as the jobs of one Hydra multirun
   (``sampler.train_only=0,...,K-1``) through the launcher the run was given (``hydra/launcher=local``: joblib
   processes on this machine; ``hydra/launcher=slurm`` or ``slurm_local``: a Slurm job array; none: one after the
   other), each for all the post-split epochs from the one-shot checkpoint;
3. **merge and select** (``<run>``): sub-supernet k's weights come from job k (:func:`merge_runs`), and the run
   selects over the union of the sub-spaces and exports as any search does.

Every stage continues what its directory already holds, so a part that was killed or failed is resumed or rerun
alone by running the same command again in the same directory (``hydra.run.dir=<run> resume=auto``); finished
parts are not launched again. The launch's wall time is recorded in ``<run>/parts/parts.json``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasframe.errors import CheckpointError, ConfigError, NasframeError
from nasframe.sampling.fewshot_jobs import merge_runs, part_of
from nasframe.training.checkpoint import CHECKPOINT_NAME, load_checkpoint, resolve_resume

if TYPE_CHECKING:
    from nasframe.search import SearchSetup
    from nasframe.training.trainer import SupernetTrainer

log = logging.getLogger("nasframe")

ONESHOT_DIR = "oneshot"
PARTS_DIR = "parts"
#: keys of the parent run's command line that the part jobs set themselves
_PART_KEYS = ("resume", "sampler.train_only")


class PartJobsFailed(NasframeError):
    """Some part jobs did not finish; the finished ones are kept."""


def run_parts_as_jobs(setup: SearchSetup, run_dir: Path, writer: Any = None) -> SupernetTrainer:
    """The three stages of the module docstring; returns a trainer holding the merged, fully trained few-shot
    supernet, ready for selection."""
    from nasframe.search import train_supernet

    merged = run_dir / CHECKPOINT_NAME
    if setup.resume_from is not None and setup.resume_from.resolve() != merged.resolve():
        raise ConfigError("sampler.budget=per_part continues a run in its own directory: rerun the same command with "
                          f"hydra.run.dir=<its directory> resume=auto (not resume={setup.resume_from})")
    if setup.distributed.enabled:
        raise ConfigError("sampler.budget=per_part launches its part jobs itself: run it without torchrun (a part job "
                          "can still be data parallel when launched by hand with sampler.train_only=k)")
    if setup.trainer.stop_after_epoch is not None:
        raise ConfigError("trainer.stop_after_epoch does not apply to sampler.budget=per_part (its part jobs would "
                          "stop too): stop the run any time and rerun it with hydra.run.dir=<its directory> resume=auto")
    if not merged.is_file():
        count = train_oneshot_phase(setup, run_dir / ONESHOT_DIR, writer)
        parts = run_dir / PARTS_DIR
        launch_parts(run_dir / ONESHOT_DIR, parts, count, setup.trainer.epochs)
        merge_runs([parts / str(k) for k in range(count)], run_dir)
        log.info("merged the %d sub-supernets into %s", count, merged)
    return train_supernet(replace(setup, resume_from=merged), run_dir, writer)  # finished: loads, trains nothing


def train_oneshot_phase(setup: SearchSetup, oneshot_dir: Path, writer: Any = None) -> int:
    """Train the one-shot supernet to the split epoch and split it (continuing ``oneshot_dir``'s checkpoint if any);
    returns the number of sub-supernets. The checkpoint written holds the split supernet."""
    from nasframe.search import train_supernet

    oneshot_dir.mkdir(parents=True, exist_ok=True)
    sampler = setup.sampler
    split = sampler.split_epoch(setup.trainer.epochs)
    phase = replace(setup, resume_from=resolve_resume("auto", oneshot_dir))
    trainer = train_supernet(phase, oneshot_dir, writer, until_epoch=split)
    if sampler.partition is None:
        trainer.restructure()
        trainer.save_checkpoint()
    log.info("one-shot phase done at epoch %d of %d: %s", trainer.epoch, setup.trainer.epochs,
             sampler.describe_structure())
    return len(sampler.partition)


def part_finished(part_dir: Path, index: int, epochs: int) -> bool:
    """True when ``part_dir`` holds the finished checkpoint of the job that trained sub-supernet ``index``."""
    if not (part_dir / CHECKPOINT_NAME).is_file():
        return False
    try:
        state = load_checkpoint(part_dir, mmap=True)  # the epoch and the sampler state only
        trained, _ = part_of(state, part_dir)
    except CheckpointError:  # unreadable, not split yet, or the one-shot checkpoint it was seeded with
        return False
    return trained == index and state["epoch"] == epochs


def _seed_part(oneshot_dir: Path, part_dir: Path) -> None:
    """Give a part that has no checkpoint of its own the one-shot checkpoint to start from (a hard link where the
    file system allows: checkpoints are replaced atomically, never written in place)."""
    target = part_dir / CHECKPOINT_NAME
    if target.is_file():
        return
    part_dir.mkdir(parents=True, exist_ok=True)
    try:
        os.link(oneshot_dir / CHECKPOINT_NAME, target)
    except OSError:
        shutil.copyfile(oneshot_dir / CHECKPOINT_NAME, target)


def part_overrides(task: list[str], hydra: list[str], todo: list[int], parts_dir: Path) -> list[str]:
    """The multirun command line of the part jobs: the parent run's own overrides (but ``resume`` and
    ``sampler.train_only``), its launcher settings, and one job per sub-supernet in ``todo``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    kept = [o.input_line for o in parser.parse_overrides(task) if o.key_or_group not in _PART_KEYS]
    launcher = [o.input_line for o in parser.parse_overrides(hydra)
                if o.key_or_group == "hydra/launcher" or o.key_or_group.startswith("hydra.launcher.")]
    return [*kept, "resume=auto", f"sampler.train_only={','.join(map(str, todo))}", f"hydra.sweep.dir={parts_dir}",
            "hydra.sweep.subdir=${sampler.train_only}", *launcher]


def launch_parts(oneshot_dir: Path, parts_dir: Path, count: int, epochs: int) -> None:
    """Train the sub-supernets that are not finished yet as one Hydra multirun, each resuming its own checkpoint
    (seeded with the one-shot one); raises :class:`PartJobsFailed` naming the parts that did not finish."""
    from hydra.core.hydra_config import HydraConfig

    todo = [k for k in range(count) if not part_finished(parts_dir / str(k), k, epochs)]
    if not todo:
        log.info("all %d parts finished earlier", count)
        return
    if not HydraConfig.initialized():
        raise ConfigError("sampler.budget=per_part launches its parts through the nasframe command line: run it with "
                          "`nasframe search ...` (or train the parts by hand with sampler.train_only=k)")
    hydra = HydraConfig.get()
    for k in todo:
        _seed_part(oneshot_dir, parts_dir / str(k))
    overrides = part_overrides(list(hydra.overrides.task), list(hydra.overrides.hydra), todo, parts_dir)
    log.info("launching %d part job(s) %s of %d: nasframe search -m %s", len(todo), todo, count, " ".join(overrides))
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "nasframe.cli", "search", "-m", *overrides], check=False)
    seconds = time.perf_counter() - started
    failed = [k for k in todo if not part_finished(parts_dir / str(k), k, epochs)]
    record = {"parts": count, "launched": todo, "failed": failed, "wall_seconds": round(seconds, 2),
              "launcher": next((o for o in overrides if o.startswith("hydra/launcher=")), "hydra/launcher=basic"),
              "command": ["nasframe", "search", "-m", *overrides]}
    history = parts_dir / "parts.json"
    runs = json.loads(history.read_text())["launches"] if history.is_file() else []
    history.write_text(json.dumps({"launches": [*runs, record]}, indent=1) + "\n")
    if failed:
        raise PartJobsFailed(
            f"few-shot part job(s) {failed} of {count} did not finish (exit status {proc.returncode}; their logs are "
            f"under {parts_dir}); the finished parts are kept: rerun the same command with "
            f"hydra.run.dir={parts_dir.parent} resume=auto to resume or rerun only those")
    log.info("the %d part job(s) took %.1f s of wall time", len(todo), seconds)

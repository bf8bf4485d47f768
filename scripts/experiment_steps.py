"""Steps the experiment scripts share: run a search to the end (or stop after a time slice with a resume hint)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from omegaconf import DictConfig

from nasframe.search import SearchOutcome, run_search


def search_to_the_end(cfg: DictConfig, run_dir: Path, resume_flag: str = " --resume") -> tuple[SearchOutcome, float]:
    """Run ``nasframe search`` with ``cfg`` into ``run_dir``; returns the outcome and the wall-clock seconds.
    When training stops early (``trainer.stop_after_epoch``: a time slice of a longer run), exit with the command
    that continues it: this script's command plus ``resume_flag`` ("" for a script that resumes by itself)."""
    started = time.perf_counter()
    outcome = run_search(cfg, run_dir)
    if outcome is None:
        print(f"training stopped early; continue with: python {' '.join(sys.argv)}{resume_flag}")
        sys.exit(0)
    return outcome, time.perf_counter() - started

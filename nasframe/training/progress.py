"""The training progress bar, and log lines written above it rather than through it."""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(enabled: bool, **kwargs: Any) -> Any:
    from tqdm.auto import tqdm

    return tqdm(disable=not enabled or not sys.stderr.isatty(), dynamic_ncols=True, leave=False, **kwargs)


def logging_through(progress: Any) -> Any:
    """While the bar is shown, log lines are written above it instead of through it."""
    import contextlib

    from tqdm.contrib.logging import logging_redirect_tqdm

    return contextlib.nullcontext() if progress.disable else logging_redirect_tqdm()


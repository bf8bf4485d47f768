"""Where local copies of data sets live.

``$NASFRAME_DATA`` names the data folder; without it nasframe looks at ``../shared/data`` beside the
checkout (this project's machines keep the real data sets there). Nothing from that folder is copied into the
repository; decoded caches go to ``$NASFRAME_CACHE`` (default ``~/.cache/nasframe``).
"""

from __future__ import annotations

import os
from pathlib import Path


def data_root() -> Path:
    env = os.environ.get("NASFRAME_DATA")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def cache_root() -> Path:
    return Path(os.environ.get("NASFRAME_CACHE", Path.home() / ".cache" / "nasframe")).expanduser()

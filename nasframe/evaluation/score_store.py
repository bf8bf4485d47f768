"""Scores of a ranking kept on disk as they come, so that a long ranking spans several time slices or survives a kill.

Ranking all 15,625 NAS-Bench-201 archs takes longer than a short GPU lease (or a CPU session): the scores go into a
JSON-lines file, one line per scored arch, written and flushed as each arch is scored. The first line is the
ranking's *fingerprint*: what makes a score comparable (a digest of the supernet's weights, the space, the held-out
split, the BN recalibration, the evaluator settings, the device type, a digest of the arch sample). A later ranking with the
same fingerprint takes the stored scores and scores only the rest; one with another fingerprint starts afresh.
A line cut short by a kill is ignored.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("nasframe.rank")


class ScoreStore:
    """``native arch string -> (score, seconds spent scoring it)``, appended to ``path`` as scores arrive."""

    def __init__(self, path: str | Path, fingerprint: dict[str, Any]) -> None:
        self.path = Path(path)
        self.fingerprint = json.loads(json.dumps(fingerprint, sort_keys=True, default=str))
        self.scores: dict[str, tuple[float, float]] = {}
        if self.path.is_file():
            self._load()
        if not self.scores:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({"fingerprint": self.fingerprint}, sort_keys=True) + "\n")

    def _load(self) -> None:
        text = self.path.read_text()
        lines = text.splitlines()
        try:
            stored = json.loads(lines[0])["fingerprint"] if lines else None
        except (json.JSONDecodeError, KeyError, TypeError):
            stored = None
        if stored != self.fingerprint:
            log.info("%s holds scores of another ranking (other checkpoint, sample or settings): starting afresh",
                     self.path)
            return
        dropped = not text.endswith("\n")  # a kill between a score and its line end
        for line in lines[1:]:
            try:
                entry = json.loads(line)
                self.scores[entry["arch"]] = (float(entry["score"]), float(entry["seconds"]))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                dropped = True  # the last line of a killed ranking
        if self.scores and dropped:
            # rewrite without the cut line, so that appends start on a line of their own
            self.path.write_text("".join(json.dumps(x, sort_keys=True) + "\n" for x in [
                {"fingerprint": self.fingerprint},
                *({"arch": a, "score": s, "seconds": t} for a, (s, t) in self.scores.items())]))
        if self.scores:
            log.info("%s: %d scores of this ranking already there; scoring the rest", self.path, len(self.scores))

    def __contains__(self, native: str) -> bool:
        return native in self.scores

    def __len__(self) -> int:
        return len(self.scores)

    def add(self, native: str, score: float, seconds: float) -> None:
        self.scores[native] = (score, seconds)
        with self.path.open("a") as f:
            f.write(json.dumps({"arch": native, "score": score, "seconds": seconds}) + "\n")

"""Ranking quality of a supernet: how well its scores order archs against benchmark ground truth.

Metrics, for scores ``s`` and true accuracies ``t`` of the same archs:

* Kendall tau (tau-b, ties handled) and Spearman rho between ``s`` and ``t``;
* precision@top-k: of the true top-k% archs, the share that are also in the supernet's top-k%
  (k = 5 % and 10 %, rounded up to at least one arch), as in "PA&DA: Jointly Sampling PAth and DAta for
  Consistent NAS";
* Kendall tau within the true top 10 % (does the supernet order the good archs among themselves?);
* the true accuracy of the supernet's best-scored arch, against the best true accuracy in the sample.
"""

from __future__ import annotations

import math
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from nasframe.core.arch import Arch
from nasframe.core.space import SearchSpace
from nasframe.evaluation.score_store import ScoreStore


def precision_at_top(scores: np.ndarray, truth: np.ndarray, fraction: float) -> float:
    k = max(1, math.ceil(fraction * len(truth)))
    top_scored = set(np.argsort(-scores, kind="stable")[:k].tolist())
    top_true = set(np.argsort(-truth, kind="stable")[:k].tolist())
    return len(top_scored & top_true) / k


def ranking_metrics(scores: Sequence[float], truth: Sequence[float], top_fractions: Sequence[float] = (0.05, 0.10)) -> dict[str, float]:
    s, t = np.asarray(scores, dtype=float), np.asarray(truth, dtype=float)
    if len(s) != len(t) or len(s) < 2:
        raise ValueError(f"need two equally long sequences of at least 2 values, got {len(s)} and {len(t)}")
    out: dict[str, float] = {
        "kendall_tau": float(stats.kendalltau(s, t).statistic),
        "spearman": float(stats.spearmanr(s, t).statistic),
    }
    for fraction in top_fractions:
        out[f"precision_at_top_{round(fraction * 100)}pct"] = precision_at_top(s, t, fraction)
    top = np.argsort(-t, kind="stable")[: max(2, math.ceil(0.10 * len(t)))]
    out["kendall_tau_true_top_10pct"] = float(stats.kendalltau(s[top], t[top]).statistic)
    best = int(np.argmax(s))
    out["true_accuracy_of_best_scored"] = float(t[best])
    out["best_true_accuracy_in_sample"] = float(t.max())
    return {k: (v if not math.isnan(v) else float("nan")) for k, v in out.items()}


def random_ranking_expectation(truth: Sequence[float], top_fractions: Sequence[float] = (0.05, 0.10)) -> dict[str, float]:
    """The expected metrics of a uniformly random ranking of archs with true accuracies ``truth`` (the keys of
    :func:`ranking_metrics`): Kendall tau, Spearman and tau within the true top 10 % are 0; precision@top-k is
    ``k / n`` (a random k-subset holds each of the true top k with probability k / n); the true accuracy of the
    best-scored arch is the mean true accuracy."""
    t = np.asarray(truth, dtype=float)
    n = len(t)
    out = {"kendall_tau": 0.0, "spearman": 0.0}
    for fraction in top_fractions:
        out[f"precision_at_top_{round(fraction * 100)}pct"] = max(1, math.ceil(fraction * n)) / n
    out["kendall_tau_true_top_10pct"] = 0.0
    out["true_accuracy_of_best_scored"] = float(t.mean())
    out["best_true_accuracy_in_sample"] = float(t.max())
    return out


def sample_archs(space: SearchSpace, count: int, seed: int, canonical: bool = False) -> list[Arch]:
    """``count`` distinct archs drawn uniformly without replacement (all archs, in order, if ``count`` is 0 or
    at least the size of the space). The sample depends only on the space and ``seed``.

    With ``canonical``, archs are distinct models: each is the canonical form (:meth:`SearchSpace.canonical`) of a
    uniform draw, and no two share one, so a benchmark that tabulates one entry per isomorphism class (NAS-Bench-Graph:
    26,206 keys for 59,040 encodings) is sampled without repeats; ``count`` 0 gives every class once, in order of
    first appearance. Drawing encodings uniformly weighs a class by its number of encodings, as a search would meet it.
    """
    if not canonical:
        if count <= 0 or count >= space.size:
            return list(space.enumerate())
        rng = np.random.default_rng(seed)
        chosen: dict[Arch, None] = {}
        while len(chosen) < count:
            chosen.setdefault(space.sample(rng))
        return list(chosen)
    every = list(dict.fromkeys(space.canonical(arch) for arch in space.enumerate()))
    if count <= 0 or count >= len(every):
        return every
    rng = np.random.default_rng(seed)
    picked: dict[Arch, None] = {}
    while len(picked) < count:
        picked.setdefault(space.canonical(space.sample(rng)))
    return list(picked)


@dataclass
class RankingReport:
    protocol: dict[str, Any]
    metrics: dict[str, float]
    archs: list[str]  # native strings
    scores: list[float]
    truth: list[float]
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def archs_per_second(self) -> float:
        return len(self.archs) / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "metrics": self.metrics,
            "scoring": {"archs": len(self.archs), "seconds": self.seconds, "archs_per_second": self.archs_per_second},
            **self.extra,
            "archs": [{"arch": a, "score": s, "truth": t} for a, s, t in zip(self.archs, self.scores, self.truth)],
        }


class ScoringStopped(Exception):
    """A ranking stopped at its time limit (``stop_after_s``); its scores so far are in its score store."""

    def __init__(self, scored: int, total: int, store_path: Any) -> None:
        super().__init__(f"scored {scored} of {total} archs (kept in {store_path}); the same command continues")
        self.scored, self.total, self.store_path = scored, total, store_path


def rank_archs(
    space: SearchSpace,
    score: Callable[[Arch], float],
    truth: Callable[[str], float],
    archs: Sequence[Arch],
    protocol: dict[str, Any],
    progress: bool = False,
    other_truths: dict[str, Callable[[str], float]] | None = None,
    store: ScoreStore | None = None,
    stop_after_s: float = 0.0,
) -> RankingReport:
    """Score every arch with ``score`` (e.g. a supernet evaluator), look up ``truth`` by native string, compare.

    ``other_truths`` (name -> lookup) are further ground truths the same scores are compared with (e.g. the
    benchmark's validation accuracy next to its test accuracy): their metrics go into ``extra["against"]``.
    With a ``store``, archs it already holds are not scored again and every new score is added to it as it
    comes; ``stop_after_s`` > 0 (needs a store) raises :class:`ScoringStopped` once that many seconds of scoring
    have passed, so a long ranking runs in time slices. The report's seconds are the scoring time of all its
    archs, over every slice."""
    if stop_after_s > 0 and store is None:
        raise ValueError("rank_archs: stop_after_s needs a score store to continue from")
    natives = [space.format(a) for a in archs]
    true_values = [truth(n) for n in natives]  # fail on a missing benchmark entry before any scoring
    others = {name: [lookup(n) for n in natives] for name, lookup in (other_truths or {}).items()}
    from tqdm.auto import tqdm

    start = time.perf_counter()
    scores, seconds = [], 0.0
    bar = tqdm(list(zip(archs, natives)), desc="scoring", disable=not progress or not sys.stderr.isatty(), leave=False)
    for arch, native in bar:
        if store is not None and native in store:
            value, spent = store.scores[native]
        else:
            if stop_after_s > 0 and time.perf_counter() - start >= stop_after_s:
                raise ScoringStopped(len(store), len(archs), store.path)  # type: ignore[arg-type]
            began = time.perf_counter()
            value = float(score(arch))
            spent = time.perf_counter() - began
            if store is not None:
                store.add(native, value, spent)
        scores.append(value)
        seconds += spent
    extra = {"against": {name: ranking_metrics(scores, values) for name, values in others.items()}} if others else {}
    return RankingReport(dict(protocol), ranking_metrics(scores, true_values), natives, scores, true_values, seconds,
                         extra)


def plot_ranking(report: RankingReport, path: str, title: str = "") -> str:
    """Scatter of supernet score against true accuracy, with the metrics in the title (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = report.metrics
    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=120)
    ax.scatter(report.truth, report.scores, s=10, alpha=0.6, edgecolors="none")
    best = int(np.argmax(report.scores))
    ax.scatter([report.truth[best]], [report.scores[best]], s=60, marker="*", color="crimson", label="best scored")
    ax.set_xlabel(f"true accuracy ({report.protocol.get('truth_metric', 'benchmark')})")
    ax.set_ylabel(textwrap.shorten(f"score: {report.protocol.get('score', 'accuracy %')}", 70), fontsize=8)
    ax.set_title(
        (title + "\n" if title else "")
        + f"Kendall tau {m['kendall_tau']:.3f}, Spearman {m['spearman']:.3f}, n={len(report.archs)}",
        fontsize=9,
    )
    baselines = report.extra.get("baselines") or {}
    if baselines:
        lines = [f"{name}: tau {b['kendall_tau']:.3f}, Spearman {b['spearman']:.3f}" for name, b in baselines.items()]
        ax.text(0.02, 0.98, "baselines, same archs\n" + "\n".join(lines), transform=ax.transAxes, fontsize=7,
                va="top", ha="left", bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8})
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path

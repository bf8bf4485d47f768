"""The accuracy-predictor evaluator: Once-for-All's way to search a trained supernet fast.

"Once-for-All: Train One Network and Specialize it for Efficient Deployment" (Cai et al., ICLR 2020), Sec. 3.4:
measure the accuracy of sampled subnets with their inherited weights (BatchNorm recalibrated), fit a small MLP on
the one-hot encoding of the arch (per choice, one indicator per option; OFA: three layers of 400 hidden units),
then let the evolutionary search query the predictor instead of the supernet: a query costs a forward pass of
the MLP, not of the network on the held-out set.

``evaluator=predictor``: the supernet evaluator's settings (how a subnet is measured) plus ``num_measured`` archs
drawn uniformly (seeded) and measured once, ``holdout_fraction`` of them kept out of a first fit to report the
predictor's rank correlation with measured accuracy (:meth:`PredictorEvaluator.describe`), then a fit on all of
them. Scores are predictions; :meth:`accuracy_of` still measures (the report's accuracy of the selected arch is
measured, never predicted).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, List

import numpy as np
from scipy import stats

import logging

from nasframe.errors import ConfigError
from nasframe.evaluation.evaluator import EvaluatorConfig, SupernetEvaluator
from nasframe.evaluation.surrogate import one_hot

log = logging.getLogger("nasframe.evaluation")


@dataclass
class PredictorConfig(EvaluatorConfig):
    name: str = "predictor"
    num_measured: int = 300  # archs measured with inherited weights to fit the predictor on
    holdout_fraction: float = 0.2  # of them, kept out of a first fit to report the predictor's Kendall tau
    hidden: List[int] = field(default_factory=lambda: [400, 400, 400])  # hidden layer widths (OFA's)
    max_iter: int = 2000  # Adam iterations of the MLP fit
    seed: int = 0  # the sample of measured archs and the MLP's initialisation

    def check(self) -> None:
        super().check()
        if self.num_measured < 10:
            raise ConfigError("evaluator.num_measured must be >= 10 (archs measured to fit the predictor)")
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise ConfigError("evaluator.holdout_fraction must be in [0, 1)")
        if not self.hidden or any(width < 1 for width in self.hidden) or self.max_iter < 1:
            raise ConfigError("evaluator.hidden must list widths >= 1, and max_iter be >= 1")


class PredictorEvaluator(SupernetEvaluator):
    """Scores archs by an MLP fitted on measured subnets (fitted on the first query; refitted after the supernet's
    weights change)."""

    config: PredictorConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.space is None:
            raise ConfigError("the predictor evaluator needs the space (its sample and its encoding)")
        self.model = None
        self.fit_report: dict[str, Any] = {}

    def encode(self, archs: list[Mapping[str, str]]) -> np.ndarray:
        return np.stack([one_hot(self.space, a) for a in archs])

    def fit(self) -> None:
        """Measure ``num_measured`` uniformly drawn archs, report the held-out rank correlation, fit on all."""
        from nasframe.evaluation.ranking import sample_archs

        cfg = self.config
        started = time.perf_counter()
        archs = sample_archs(self.space, min(cfg.num_measured, self.space.size), cfg.seed)
        measured = np.array([self.accuracy_of(a) for a in archs])
        measure_seconds = time.perf_counter() - started
        held = int(round(cfg.holdout_fraction * len(archs)))
        report: dict[str, Any] = {"measured": len(archs), "measure_seconds": round(measure_seconds, 2)}
        if held >= 2:
            order = np.random.default_rng(cfg.seed).permutation(len(archs))
            test, train = order[:held], order[held:]
            model = self._make_model().fit(self.encode([archs[i] for i in train]), measured[train])
            predicted = model.predict(self.encode([archs[i] for i in test]))
            report.update({"held_out": held, "kendall_tau": float(stats.kendalltau(predicted, measured[test]).statistic),
                           "rmse": float(np.sqrt(np.mean((predicted - measured[test]) ** 2)))})
        self.model = self._make_model().fit(self.encode(archs), measured)
        report["fit_seconds"] = round(time.perf_counter() - started - measure_seconds, 2)
        self.fit_report = report
        log.info("accuracy predictor: %s (measuring took %.1f s, fitting %.1f s)", self.summary(), measure_seconds,
                 report["fit_seconds"])

    def _make_model(self):
        from sklearn.neural_network import MLPRegressor

        cfg = self.config
        return MLPRegressor(hidden_layer_sizes=tuple(cfg.hidden), max_iter=cfg.max_iter, random_state=cfg.seed,
                            early_stopping=False, learning_rate_init=1e-3)

    def __call__(self, arch: Mapping[str, str]) -> float:
        if self.model is None:
            self.fit()
        return float(self.model.predict(self.encode([arch]))[0])

    def clear_cache(self) -> None:
        """The supernet's weights changed: forget measured accuracies and the predictor fitted on them."""
        super().clear_cache()
        self.model = None

    def summary(self) -> str:
        r = self.fit_report
        tau = f", Kendall tau {r['kendall_tau']:.3f} on {r['held_out']} held-out measured archs" if "kendall_tau" in r else ""
        return (f"MLP {self.config.hidden} on the one-hot arch encoding, fitted on {r.get('measured', 0)} archs measured "
                f"with inherited weights{tau}")

    def describe(self) -> dict[str, Any]:
        return {"evaluator": "predictor", "hidden": list(self.config.hidden), "num_measured": self.config.num_measured,
                "seed": self.config.seed, "fit": self.fit_report}

"""A learned combination of training-free proxies: a regressor fitted on a few labelled archs.

"NAS-Bench-Suite-Zero: Accelerating Research on Zero Cost Proxies" (Krishnakumar et al., NeurIPS 2022 Datasets
and Benchmarks) fits gradient-boosted trees on the zero-cost proxy values of N labelled archs, together with an
encoding of the arch, and ranks the rest of the space by the prediction. Here the features of an arch are

- each proxy component's value as its rank among a reference population's values, over the population's size
  (:class:`~nasframe.evaluation.zero_cost.combine.RankCombination`'s rank: ranks make the heavy-tailed proxies --
  synflow spans tens of orders of magnitude -- comparable, and fix what a value means for fitting and predicting),
- a one-hot encoding of the arch (one indicator per option of each choice of the space),

and the model is scikit-learn's gradient boosting with squared loss (:class:`GradientBoostingRegressor`), or
ridge regression on the same features (``model="ridge"``), seeded. The labels are whatever accuracy the user has
for the N archs: a benchmark table's entry in evaluation, trained archs' validation accuracy otherwise. A model
never sees the archs it is scored on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from nasframe.core.arch import Arch
from nasframe.core.space import SearchSpace
from nasframe.evaluation.zero_cost.combine import RankCombination

MODELS = ("gbt", "ridge")


def one_hot(space: SearchSpace, arch: Mapping[str, str]) -> np.ndarray:
    """One indicator per option of each choice of ``space`` (choice order, option order)."""
    return np.concatenate([[1.0 if arch[c.name] == option else 0.0 for option in c.options] for c in space.choices])


class ProxySurrogate:
    """Fits on labelled archs' proxy values (+ one-hot encoding) and predicts accuracy for others."""

    def __init__(self, space: SearchSpace, components: Sequence[str], reference: Sequence[Mapping[str, float]],
                 model: str = "gbt", encode_arch: bool = True, seed: int = 0) -> None:
        """``reference``: the proxy values of the population whose ranks are the features (the archs a user
        ranks, or a sample of the space together with the labelled archs)."""
        if model not in MODELS:
            raise ValueError(f"surrogate model {model!r} is not one of {', '.join(MODELS)}")
        self.space, self.components, self.model_name = space, list(components), model
        self.encode_arch, self.seed = encode_arch, seed
        self.ranks = RankCombination(reference, self.components)
        self.model = None

    def features(self, archs: Sequence[Arch], values: Sequence[Mapping[str, float]]) -> np.ndarray:
        ranks = np.array([[self.ranks.rank(c, v[c]) for c in self.components] for v in values], dtype=float)
        if not self.encode_arch:
            return ranks
        return np.concatenate([ranks, np.stack([one_hot(self.space, a) for a in archs])], axis=1)

    def fit(self, archs: Sequence[Arch], values: Sequence[Mapping[str, float]], labels: Sequence[float]) -> None:
        self.model = self._make_model()
        self.model.fit(self.features(archs, values), np.asarray(labels, dtype=float))

    def predict(self, archs: Sequence[Arch], values: Sequence[Mapping[str, float]]) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("fit the surrogate before predicting")
        return self.model.predict(self.features(archs, values))

    def _make_model(self):
        if self.model_name == "ridge":
            from sklearn.linear_model import RidgeCV

            return RidgeCV(alphas=np.logspace(-3, 3, 13))
        from sklearn.ensemble import GradientBoostingRegressor

        return GradientBoostingRegressor(n_estimators=300, learning_rate=0.05, max_depth=3, subsample=0.8,
                                         random_state=self.seed)

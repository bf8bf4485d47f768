"""A learned combination of training-free proxies: a regressor fitted on a few labelled archs.

"NAS-Bench-Suite-Zero: Accelerating Research on Zero Cost Proxies" (Krishnakumar et al., NeurIPS 2022 Datasets
and Benchmarks) fits gradient-boosted trees on the zero-cost proxy values of N labelled archs, together with an
encoding of the arch, and ranks the rest of the space by the prediction. Here the features of an arch are

- each proxy component's value, as its rank among the values of the archs the model sees (fitted and scored
  together: ranks make the heavy-tailed proxies -- synflow spans tens of orders of magnitude -- comparable), and
- a one-hot encoding of the arch (one indicator per option of each choice of the space),

and the model is scikit-learn's gradient boosting with squared loss (:class:`GradientBoostingRegressor`),
or ridge regression on the same features (``model="ridge"``), seeded. The labels are whatever accuracy the user
has for the N archs: a benchmark table's entry in evaluation, trained archs' validation accuracy otherwise.
A model never sees the archs it is scored on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import rankdata

from nasframe.core.arch import Arch
from nasframe.core.space import SearchSpace

MODELS = ("gbt", "ridge")


def one_hot(space: SearchSpace, arch: Mapping[str, str]) -> np.ndarray:
    """One indicator per option of each choice of ``space`` (choice order, option order)."""
    return np.concatenate([[1.0 if arch[c.name] == option else 0.0 for option in c.options] for c in space.choices])


def rank_features(values: Sequence[Mapping[str, float]], components: Sequence[str]) -> np.ndarray:
    """Each component's values as ranks in [0, 1] among ``values`` (ties share their average rank)."""
    columns = []
    for c in components:
        column = np.asarray([v[c] for v in values], dtype=float)
        column = np.where(np.isnan(column), -np.inf, column)
        columns.append((rankdata(column) - 1) / max(len(column) - 1, 1))
    return np.stack(columns, axis=1) if columns else np.zeros((len(values), 0))


class ProxySurrogate:
    """Fits on labelled archs' proxy values (+ one-hot encoding) and predicts accuracy for others."""

    def __init__(self, space: SearchSpace, components: Sequence[str], model: str = "gbt", encode_arch: bool = True,
                 seed: int = 0) -> None:
        if model not in MODELS:
            raise ValueError(f"surrogate model {model!r} is not one of {', '.join(MODELS)}")
        self.space, self.components, self.model_name = space, list(components), model
        self.encode_arch, self.seed = encode_arch, seed
        self.model = None

    def _features(self, archs: Sequence[Arch], values: Sequence[Mapping[str, float]]) -> np.ndarray:
        parts = [rank_features(values, self.components)]
        if self.encode_arch:
            parts.append(np.stack([one_hot(self.space, a) for a in archs]))
        return np.concatenate(parts, axis=1)

    def fit_predict(self, labelled: Sequence[Arch], labelled_values: Sequence[Mapping[str, float]],
                    labels: Sequence[float], unlabelled: Sequence[Arch],
                    unlabelled_values: Sequence[Mapping[str, float]]) -> np.ndarray:
        """Fit on the labelled archs and predict the unlabelled ones. Ranks are taken over both sets together
        (the population a user ranks), so a value means the same in fitting and in prediction."""
        features = self._features([*labelled, *unlabelled], [*labelled_values, *unlabelled_values])
        train, test = features[: len(labelled)], features[len(labelled):]
        self.model = self._make_model()
        self.model.fit(train, np.asarray(labels, dtype=float))
        return self.model.predict(test)

    def _make_model(self):
        if self.model_name == "ridge":
            from sklearn.linear_model import RidgeCV

            return RidgeCV(alphas=np.logspace(-3, 3, 13))
        from sklearn.ensemble import GradientBoostingRegressor

        return GradientBoostingRegressor(n_estimators=300, learning_rate=0.05, max_depth=3, subsample=0.8,
                                         random_state=self.seed)

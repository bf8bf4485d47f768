"""A learned combination of training-free proxies: a regressor fitted on a few labelled archs.

"NAS-Bench-Suite-Zero: Accelerating Research on Zero Cost Proxies" (Krishnakumar et al., NeurIPS 2022 Datasets
and Benchmarks) fits gradient-boosted trees on the zero-cost proxy values of N labelled archs, together with an
encoding of the arch, and ranks the rest of the space by the prediction. Here the features of an arch are

- each proxy component's value as its rank among a reference population's values, over the population's size
  (:class:`~nasframe.evaluation.zero_cost.combine.RankCombination`'s rank: ranks make the heavy-tailed proxies --
  synflow spans tens of orders of magnitude -- comparable, and fix what a value means for fitting and predicting),
- a one-hot encoding of the arch (one indicator per option of each choice of the space), optional,
- optionally, the cell-structure features of the arch, which need no training (as "GRAF: Graph features for
  NAS", Kadlecová et al., count ops and paths of the cell graph): the space's
  :meth:`~nasframe.core.space.SearchSpace.structure_features` (NAS-Bench-201: ``search_spaces.nb201.cell_features``;
  NAS-Bench-Graph: ops by where they act, ``search_spaces/gnn_bench.py``), each over its largest value,

and the model (``model=``, seeded) is one of

- ``"gbt"``: scikit-learn's gradient boosting with squared loss (:class:`GradientBoostingRegressor`),
- ``"ridge"``: ridge regression, the penalty chosen by leave-one-out,
- ``"pairwise"``: a linear score fitted on pairs -- logistic regression of "arch i is more accurate than arch j"
  on the difference of their features, over every pair of labelled archs with distinct labels (RankSVM-like: it
  fits the order the metrics score, and the accuracy's tail of bad archs weighs no more than any other pair),
- ``"gbt+pairwise"``: the mean of the two models' scores, each standardised by its mean and standard deviation
  over the labelled archs (so that an arch's score does not depend on which other archs are scored with it); the
  trees see every feature, the pairwise model the proxy ranks and the cell features only (a linear model over the
  one-hot encoding over-fits a hundred labels); with neither proxies nor cell features it is the trees alone.

The labels are whatever accuracy the user has for the N archs: a benchmark table's entry in evaluation, trained
archs' validation accuracy otherwise. A model never sees the archs it is scored on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from nasframe.core.arch import Arch
from nasframe.core.space import SearchSpace
from nasframe.evaluation.zero_cost.combine import RankCombination

MODELS = ("gbt", "ridge", "pairwise", "gbt+pairwise")

def one_hot(space: SearchSpace, arch: Mapping[str, str]) -> np.ndarray:
    """One indicator per option of each choice of ``space`` (choice order, option order)."""
    return np.concatenate([[1.0 if arch[c.name] == option else 0.0 for option in c.options] for c in space.choices])


def has_structure(space: SearchSpace) -> bool:
    """Whether ``space`` describes its archs by cell-structure features
    (:meth:`~nasframe.core.space.SearchSpace.structure_features`)."""
    return bool(space.structure_feature_scales)


def structure_vector(space: SearchSpace, arch: Mapping[str, str], scales: Mapping[str, float]) -> list[float]:
    """``arch``'s cell-structure features over their largest values (in ``scales`` ' order, each in [0, 1])."""
    values = space.structure_features(arch)
    return [values[name] / top for name, top in scales.items()]


class ProxySurrogate:
    """Fits on labelled archs' proxy values (+ one-hot encoding, + cell features) and predicts accuracy for others."""

    def __init__(self, space: SearchSpace, components: Sequence[str], reference: Sequence[Mapping[str, float]],
                 model: str = "gbt", encode_arch: bool = True, seed: int = 0, cell_features: bool = False) -> None:
        """``reference``: the proxy values of the population whose ranks are the features (the archs a user
        ranks, or a sample of the space together with the labelled archs)."""
        if model not in MODELS:
            raise ValueError(f"surrogate model {model!r} is not one of {', '.join(MODELS)}")
        self.space, self.components, self.model_name = space, list(components), model
        self.encode_arch, self.with_cell_features, self.seed = encode_arch, cell_features, seed
        self.ranks = RankCombination(reference, self.components)
        self.structure = space.structure_feature_scales if cell_features else {}
        if cell_features and not self.structure:
            raise ValueError(f"space {space.name} has no cell-structure features")
        self.models: list = []

    def features(self, archs: Sequence[Arch], values: Sequence[Mapping[str, float]]) -> np.ndarray:
        """Columns: proxy ranks, then the cell-structure features over their largest values (if asked), then the
        one-hot encoding (if asked)."""
        blocks = [np.array([[self.ranks.rank(c, v[c]) for c in self.components] for v in values], dtype=float)]
        if self.with_cell_features:
            cells = np.array([structure_vector(self.space, a, self.structure) for a in archs], dtype=float)
            blocks.append(cells.reshape(-1, len(self.structure)))
        if self.encode_arch:
            blocks.append(np.stack([one_hot(self.space, a) for a in archs]))
        return np.concatenate(blocks, axis=1)

    def fit(self, archs: Sequence[Arch], values: Sequence[Mapping[str, float]], labels: Sequence[float]) -> None:
        features, labels = self.features(archs, values), np.asarray(labels, dtype=float)
        self.models = []
        for name, columns in self._members(features.shape[1]):
            model = _PairwiseLinear(seed=self.seed) if name == "pairwise" else self._make_model(name)
            model.fit(features[:, columns], labels)
            fitted = model.predict(features[:, columns])
            self.models.append((model, columns, float(fitted.mean()), float(fitted.std()) or 1.0))

    def predict(self, archs: Sequence[Arch], values: Sequence[Mapping[str, float]]) -> np.ndarray:
        """The predicted accuracy (``gbt``, ``ridge``), a score in the accuracy's order (``pairwise``), or the mean
        of the members' standardised scores (``gbt+pairwise``): higher is better in every case, and an arch's score
        does not depend on the other archs predicted with it."""
        if not self.models:
            raise RuntimeError("fit the surrogate before predicting")
        features = self.features(archs, values)
        if len(self.models) == 1:
            model, columns, _, _ = self.models[0]
            return model.predict(features[:, columns])
        return np.mean([(model.predict(features[:, columns]) - mean) / std
                        for model, columns, mean, std in self.models], axis=0)

    def _members(self, width: int) -> list[tuple[str, slice]]:
        if self.model_name != "gbt+pairwise":
            return [(self.model_name, slice(0, width))]
        no_encoding = len(self.components) + len(self.structure)
        if no_encoding == 0:  # no proxy and no cell feature: the pairwise member has nothing to weigh
            return [("gbt", slice(0, width))]
        return [("gbt", slice(0, width)), ("pairwise", slice(0, no_encoding))]

    def _make_model(self, name: str):
        if name == "ridge":
            from sklearn.linear_model import RidgeCV

            return RidgeCV(alphas=np.logspace(-3, 3, 13))
        from sklearn.ensemble import GradientBoostingRegressor

        return GradientBoostingRegressor(n_estimators=300, learning_rate=0.05, max_depth=3, subsample=0.8,
                                         random_state=self.seed)


class _PairwiseLinear:
    """A linear score ``w . x`` whose ``w`` is L2-penalised (C=1) logistic regression, without intercept, of
    ``[y_i > y_j]`` on ``x_i - x_j`` over both orders of every pair with ``y_i != y_j`` -- or, where there are
    more than ``max_pairs`` such pairs (above about 630 labelled archs), over ``max_pairs`` of them drawn
    uniformly without replacement (seeded), which keeps memory and time bounded as the labels grow."""

    def __init__(self, max_pairs: int = 200_000, seed: int = 0) -> None:
        self.max_pairs, self.seed = max_pairs, seed

    def fit(self, features: np.ndarray, labels: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression

        i, j = np.triu_indices(len(labels), 1)
        distinct = labels[i] != labels[j]
        i, j = i[distinct], j[distinct]
        if len(i) > self.max_pairs:
            kept = np.sort(np.random.default_rng(self.seed).choice(len(i), self.max_pairs, replace=False))
            i, j = i[kept], j[kept]
        if len(i) == 0:
            raise ValueError("a pairwise model needs two labelled archs with different labels")
        differences = np.concatenate([features[i] - features[j], features[j] - features[i]])
        better = np.concatenate([labels[i] > labels[j], labels[j] > labels[i]]).astype(int)
        model = LogisticRegression(C=1.0, fit_intercept=False, max_iter=2000).fit(differences, better)
        self.weights = model.coef_[0]

    def predict(self, features: np.ndarray) -> np.ndarray:
        return features @ self.weights

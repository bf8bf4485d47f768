"""A learned combination of training-free proxies: a regressor fitted on a few labelled archs.

"NAS-Bench-Suite-Zero: Accelerating Research on Zero Cost Proxies" (Krishnakumar et al., NeurIPS 2022 Datasets
and Benchmarks) fits gradient-boosted trees on the zero-cost proxy values of N labelled archs, together with an
encoding of the arch, and ranks the rest of the space by the prediction. Here the features of an arch are

- each proxy component's value as its rank among a reference population's values, over the population's size
  (:class:`~nasframe.evaluation.zero_cost.combine.RankCombination`'s rank: ranks make the heavy-tailed proxies --
  synflow spans tens of orders of magnitude -- comparable, and fix what a value means for fitting and predicting),
- a one-hot encoding of the arch (one indicator per option of each choice of the space), optional,
- optionally, the cell-structure features of the arch, which need no training (as "GRAF: Graph features for
  NAS", Kadlecová et al., count ops and paths of the cell graph): :func:`cell_features` for a NAS-Bench-201-style
  cell (choices ``edge_<to>_<from>``), else the space's own :meth:`~nasframe.core.space.SearchSpace.structure_features`
  (NAS-Bench-Graph: ops by where they act, see ``search_spaces/gnn_bench.py``), each over its largest value,

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

#: The cell-structure features, in order, and the largest value each takes in a 4-node cell (a feature is given
#: over it, in [0, 1] as the ranks). A *path* goes from the input node to the output node along edges whose op is
#: not ``none``; an edge *on a path* is one such a path uses (the others compute nothing that reaches the output).
#: They describe the cell as given: isomorphic twins that differ by where a skip_connect sits can differ in skip
#: count and depth (measured: features of the class's canonical cell instead rank no better).
CELL_FEATURES: dict[str, float] = {
    "skip_connect": 6,  # number of skip_connect edges on a path
    "nor_conv_1x1": 6,  # number of nor_conv_1x1 edges on a path
    "nor_conv_3x3": 6,  # number of nor_conv_3x3 edges on a path
    "avg_pool_3x3": 6,  # number of avg_pool_3x3 edges on a path
    "connected": 1,  # 1 if there is a path at all
    "parametric_path": 1,  # 1 if some path has a convolution (the output can be reached through a parametric op)
    "max_convs": 3,  # the most convolutions on one path (the longest parametric path)
    "min_convs": 3,  # the fewest convolutions on one path (0: a shortcut without parameters)
    "paths": 4,  # the number of paths
    "conv_free_paths": 4,  # the number of paths with no convolution
    "depth": 3,  # the most edges on one path (the effective depth of the cell)
    "width": 3,  # the number of edges into the output node that lie on a path (its effective width)
    # GRAF's degree features, per op: the edges on a path that leave the input node / enter the output node
    **{f"from_input_{op}": 3 for op in ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")},
    **{f"into_output_{op}": 3 for op in ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")},
}


def one_hot(space: SearchSpace, arch: Mapping[str, str]) -> np.ndarray:
    """One indicator per option of each choice of ``space`` (choice order, option order)."""
    return np.concatenate([[1.0 if arch[c.name] == option else 0.0 for option in c.options] for c in space.choices])


def has_cells(space: SearchSpace) -> bool:
    """Whether ``space``'s choices are the edges of a cell (``edge_<to>_<from>``), which :func:`cell_features`
    describes."""
    return any(choice.name.startswith("edge_") for choice in space.choices)


def has_structure(space: SearchSpace) -> bool:
    """Whether the surrogate can describe ``space``'s archs by cell-structure features: an edge cell
    (:func:`has_cells`) or a space that defines :meth:`~nasframe.core.space.SearchSpace.structure_features`."""
    return has_cells(space) or bool(space.structure_feature_scales)


def structure_scales(space: SearchSpace) -> dict[str, float]:
    """The cell-structure features of ``space``'s archs and the largest value of each (empty: none)."""
    return dict(CELL_FEATURES) if has_cells(space) else space.structure_feature_scales


def structure_vector(space: SearchSpace, arch: Mapping[str, str], scales: Mapping[str, float]) -> list[float]:
    """``arch``'s cell-structure features over their largest values (in ``scales`` ' order, each in [0, 1])."""
    values = cell_features(arch) if has_cells(space) else space.structure_features(arch)
    return [values[name] / top for name, top in scales.items()]


def cell_paths(arch: Mapping[str, str]) -> list[list[str]]:
    """Each path of a cell whose choices are ``edge_<to>_<from>`` (node 0 the input, the highest node the output),
    as the names of its edges, skipping ``none`` edges."""
    edges = sorted((int(name.split("_")[1]), int(name.split("_")[2]), name)
                   for name in arch if name.startswith("edge_"))
    if not edges:
        raise ValueError("cell features need choices named edge_<to>_<from>")
    output, found = max(to for to, _, _ in edges), []

    def walk(node: int, path: list[str]) -> None:
        if node == output:
            found.append(path)
        for to, source, name in edges:
            if source == node and arch[name] != "none":
                walk(to, [*path, name])

    walk(0, [])
    return found


def cell_features(arch: Mapping[str, str]) -> dict[str, float]:
    """The features of :data:`CELL_FEATURES` of a cell, unscaled (a convolution: an op whose name has ``conv``)."""
    paths = cell_paths(arch)
    on_path = {name for path in paths for name in path}
    convs = [sum("conv" in arch[name] for name in path) for path in paths]
    output = max(int(name.split("_")[1]) for name in arch if name.startswith("edge_"))
    ops = list(CELL_FEATURES)[:4]
    counts = {op: float(sum(arch[name] == op for name in on_path)) for op in ops}
    degrees = {f"{where}_{op}": float(sum(arch[name] == op and test(name) for name in on_path))
               for where, test in (("from_input", lambda name: name.endswith("_0")),
                                   ("into_output", lambda name: name.startswith(f"edge_{output}_")))
               for op in ops}
    return {**counts, "connected": float(bool(paths)), "parametric_path": float(any(convs)),
            "max_convs": float(max(convs, default=0)), "min_convs": float(min(convs, default=0)),
            "paths": float(len(paths)), "conv_free_paths": float(sum(c == 0 for c in convs)),
            "depth": float(max((len(path) for path in paths), default=0)),
            "width": float(sum(name.startswith(f"edge_{output}_") for name in on_path)), **degrees}


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
        self.structure = structure_scales(space) if cell_features else {}
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

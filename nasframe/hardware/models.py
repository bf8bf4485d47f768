"""Latency models beyond the additive table: one that models interactions between choices, one that transfers
from other devices; and the registry that names every model (``additive`` is the default).

All models share the interface of :class:`~nasframe.hardware.predictor.LatencyPredictor` (:class:`LatencyModel`):
a :class:`~nasframe.hardware.encoding.TermEncoder` turns a population of archs into one 0/1 term matrix,
``predict_matrix`` maps that matrix to milliseconds in a few array operations, ``to_dict``/``save`` write the
JSON latency-table format (the ``model`` field names the model) and
:func:`~nasframe.hardware.predictor.load_predictor` reads any of them back, so a fitted model is a
``constraints.latency_table`` file of the search like the additive table.

``interaction`` (:class:`InteractionPredictor`): the additive model plus gradient-boosted regression trees on its
residual. The trees see the 0/1 terms, the additive model's term (ms) of the option each choice takes (the
measured per-op table entries when the table was measured op by op) and the additive sum, so a split can express
"this op is cheaper when that edge is empty". The number of trees (0 included: the additive model itself) is
chosen by 5-fold cross-validation on the measured archs only. Trees are fitted with scikit-learn's
``GradientBoostingRegressor`` and stored as plain arrays (never pickled); prediction walks all trees at once.
Gradient boosting: Friedman, "Greedy Function Approximation: A Gradient Boosting Machine" (Ann. Stat. 2001);
nn-Meter (Zhang et al., MobiSys 2021) uses tree ensembles (random forests) per kernel for the same reason.

``transfer`` (:class:`TransferPredictor`): HELP's setting ("HELP: Hardware-Adaptive Efficient Latency Prediction
for NAS via Meta-Learning", Lee et al., NeurIPS 2021): a predictor learnt on other devices that adapts to a new
device from a few measured archs. Here the learning on other devices is multi-task pre-training
(:class:`TransferBackbone`): a two-layer MLP on the 0/1 terms predicts the standardised log-latency of every
*source* device at once, on every arch their tables hold. Adapting to the target device is a ridge regression
(penalty chosen by exact leave-one-out on the measured archs) of the target's milliseconds on the backbone's
predicted milliseconds of each source device plus the 0/1 terms (so the additive model is a special case).
HELP meta-learns the initialisation with MAML and conditions on reference-arch latencies; this is the simpler
"pre-train, then fit a linear head" route (Tian et al., "Rethinking Few-Shot Image Classification: a Good
Embedding Is All You Need?", ECCV 2020). At prediction time the model needs nothing but the arch: the source
devices enter only through the backbone's weights. The target device's latencies are never used in
pre-training (:func:`source_columns` drops its column; the pre-training refuses a source named like the target).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from nasframe.core.choice import Choice
from nasframe.errors import ConfigError
from nasframe.hardware.encoding import ArchMap, TermEncoder
from nasframe.hardware.predictor import (
    FORMAT, FORMAT_VERSION, LatencyPredictor, LatencyTableError, PredictorKey, _plain, fit_additive, fit_affine,
    reference_options, write_json_atomic,
)

#: the ridge penalties among which leave-one-out picks (ridge heads of the transfer model)
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-4, 3, 15))


@runtime_checkable
class LatencyModel(Protocol):
    """What the search, the CLI and the scripts need from a latency model (every class of :data:`MODELS`)."""

    encoder: TermEncoder
    key: PredictorKey
    method: str
    details: dict[str, Any]

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray: ...

    def predict(self, archs: Iterable[Mapping[str, str]]) -> np.ndarray: ...

    def predict_one(self, arch: Mapping[str, str]) -> float: ...

    def with_arch_map(self, arch_map: ArchMap | None) -> LatencyModel: ...

    def to_dict(self) -> dict[str, Any]: ...

    def save(self, path: str | Path) -> Path: ...


# -- shared helpers --------------------------------------------------------------------------------------
def _choices_to_dict(choices: Sequence[Choice]) -> list[dict[str, Any]]:
    return [{"name": c.name, "options": list(c.options)} for c in choices]


def _choices_from_dict(items: Any) -> list[Choice]:
    return [Choice(str(c["name"]), tuple(str(o) for o in c["options"])) for c in items]


def _key_from_dict(data: Mapping[str, Any]) -> PredictorKey:
    return PredictorKey(
        device=str(data["device"]), batch_size=None if data["batch_size"] is None else int(data["batch_size"]),
        torch_version=str(data["torch_version"]), space=dict(data["space"]),
    )


def _array(value: Any, shape: tuple[int, ...] | None = None, dtype: Any = np.float64) -> np.ndarray:
    out = np.asarray(value, dtype=dtype)
    if shape is not None and out.shape != shape:
        raise LatencyTableError(f"expected an array of shape {shape}, got {out.shape}")
    if not np.isfinite(out).all():
        raise LatencyTableError("a latency table holds a non-finite number")
    return out


def _check_measurements(name: str, matrix: np.ndarray, measured_ms: np.ndarray, encoder: TermEncoder,
                        minimum: int) -> tuple[np.ndarray, np.ndarray]:
    matrix = np.asarray(matrix, dtype=np.float64)
    y = np.asarray(measured_ms, dtype=np.float64).ravel()
    if matrix.ndim != 2 or matrix.shape != (y.size, encoder.num_terms):
        raise ConfigError(f"latency model '{name}' needs a ({y.size}, {encoder.num_terms}) term matrix, got {matrix.shape}")
    if y.size < minimum:
        raise ConfigError(f"latency model '{name}' needs at least {minimum} measured archs, got {y.size}")
    if not np.isfinite(y).all() or (y <= 0).any():
        raise ConfigError(f"latency model '{name}' needs positive, finite measured latencies")
    return matrix, y


def ridge_loo(features: np.ndarray, y: np.ndarray, alphas: Sequence[float] = RIDGE_ALPHAS
              ) -> tuple[np.ndarray, float, float]:
    """Ridge regression with an unpenalised intercept, its penalty chosen among ``alphas`` by exact
    leave-one-out error (closed form from one SVD of the centred features). Returns ``(weights, intercept, alpha)``."""
    x_mean, y_mean = features.mean(axis=0), y.mean()
    xc, yc = features - x_mean, y - y_mean
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    uty = u.T @ yc
    best = (np.inf, 0.0, np.zeros(features.shape[1]))
    for alpha in alphas:
        shrink = s**2 / (s**2 + alpha)
        fitted = u @ (shrink * uty)
        leverage = (u**2) @ shrink + 1.0 / y.size  # the intercept's share of the hat matrix
        loo = (yc - fitted) / np.maximum(1.0 - leverage, 1e-12)
        error = float(np.mean(loo**2))
        if error < best[0]:  # the first (smallest) penalty wins ties
            best = (error, float(alpha), vt.T @ (s / (s**2 + alpha) * uty))
    _, alpha, weights = best
    return weights, float(y_mean - x_mean @ weights), alpha


class _ModelBase:
    """Prediction from archs and the JSON file, on top of ``predict_matrix`` and ``to_dict``."""

    encoder: TermEncoder
    name: str = ""

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:  # pragma: no cover - every model defines it
        raise NotImplementedError

    def predict(self, archs: Iterable[Mapping[str, str]]) -> np.ndarray:
        """Predicted ms of each arch of a population (encoded as one matrix)."""
        return self.predict_matrix(self.encoder.encode(archs))

    def predict_one(self, arch: Mapping[str, str]) -> float:
        return float(self.predict_matrix(self.encoder.encode_one(arch)[None, :])[0])

    def save(self, path: str | Path) -> Path:
        """Write the JSON file atomically (temporary file, then rename)."""
        return write_json_atomic(path, self.to_dict())  # type: ignore[attr-defined]

    def _header(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "model": self.name,
                "key": asdict(self.key), "method": self.method,  # type: ignore[attr-defined]
                "choices": _choices_to_dict(self.encoder.choices)}

    @classmethod
    def _check_header(cls, data: Any, where: str) -> None:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise LatencyTableError(f"{where} is not a nasframe latency table")
        if data.get("format_version") != FORMAT_VERSION:
            raise LatencyTableError(
                f"{where} has format version {data.get('format_version')!r}, this nasframe reads {FORMAT_VERSION}")
        if data.get("model") != cls.name:
            raise LatencyTableError(f"{where} holds a {data.get('model')!r} model, not the {cls.name!r} one")


# -- interaction: additive + boosted trees on the residual -------------------------------------------------
@dataclass(frozen=True)
class TreeEnsemble:
    """Regression trees as flat arrays (one row per tree, padded to the largest tree): node ``k`` of tree ``t``
    splits on ``feature[t, k] <= threshold[t, k]`` into ``left``/``right`` (-1 at a leaf) and a leaf adds
    ``value[t, k]`` (the learning rate already applied) to the prediction."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    depth: int

    @property
    def num_trees(self) -> int:
        return int(self.feature.shape[0])

    @classmethod
    def empty(cls) -> TreeEnsemble:
        zeros = np.zeros((0, 1))
        return cls(zeros.astype(np.int64), zeros, zeros.astype(np.int64) - 1, zeros.astype(np.int64) - 1, zeros, 0)

    @classmethod
    def from_sklearn(cls, model: Any, count: int) -> TreeEnsemble:
        """The first ``count`` trees of a fitted ``GradientBoostingRegressor`` (``init="zero"``), from the public
        ``tree_`` arrays of its estimators."""
        if count == 0:
            return cls.empty()
        trees = [est.tree_ for est in model.estimators_[:count, 0]]
        width = max(t.node_count for t in trees)
        shape = (count, width)
        feature, left, right = np.zeros(shape, np.int64), np.full(shape, -1, np.int64), np.full(shape, -1, np.int64)
        threshold, value = np.zeros(shape), np.zeros(shape)
        for k, tree in enumerate(trees):
            n = tree.node_count
            leaf = tree.children_left[:n] == -1
            feature[k, :n] = np.where(leaf, 0, tree.feature[:n])
            threshold[k, :n] = np.where(leaf, 0.0, tree.threshold[:n])
            left[k, :n], right[k, :n] = tree.children_left[:n], tree.children_right[:n]
            value[k, :n] = model.learning_rate * tree.value[:n, 0, 0]
        return cls(feature, threshold, left, right, value, max(int(t.max_depth) for t in trees))

    def predict(self, features: np.ndarray, chunk: int = 512) -> np.ndarray:
        """Sum of the trees' leaf values for each row: all trees walked together ``depth`` steps, on flat
        indices (``tree * width + node``), ``chunk`` rows at a time to bound the memory."""
        features = np.ascontiguousarray(features, dtype=np.float64)
        n, width = features.shape[0], self.value.shape[1]
        out = np.zeros(n)
        if self.num_trees == 0:
            return out
        feature, threshold, value = self.feature.ravel(), self.threshold.ravel(), self.value.ravel()
        own = np.arange(feature.size)
        offset = (own // width) * width
        # children[2k] / children[2k + 1]: where node k goes when its test holds / fails; a leaf stays put
        children = np.stack([np.where(self.left.ravel() >= 0, self.left.ravel() + offset, own),
                             np.where(self.right.ravel() >= 0, self.right.ravel() + offset, own)], axis=1).ravel()
        roots = np.arange(self.num_trees) * width
        for start in range(0, n, chunk):
            block = features[start:start + chunk]
            flat = block.ravel()
            base = (np.arange(block.shape[0]) * block.shape[1])[:, None]
            node = np.broadcast_to(roots, (block.shape[0], self.num_trees))
            for _ in range(self.depth):
                node = children[2 * node + (flat[base + feature[node]] > threshold[node])]
            out[start:start + chunk] = value[node].sum(axis=1)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"depth": self.depth, **{name: getattr(self, name).tolist()
                                        for name in ("feature", "threshold", "left", "right", "value")}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TreeEnsemble:
        arrays = {name: _array(data[name], dtype=np.int64 if name in ("feature", "left", "right") else np.float64)
                  for name in ("feature", "threshold", "left", "right", "value")}
        if all(a.size == 0 for a in arrays.values()):  # no trees: JSON keeps no trace of the padded width
            return cls.empty()
        shape = arrays["value"].shape
        if any(a.shape != shape for a in arrays.values()) or len(shape) != 2:
            raise LatencyTableError("the trees' arrays have different shapes")
        return cls(**arrays, depth=int(data["depth"]))


@dataclass(frozen=True)
class BoostingSettings:
    """Gradient boosting of the residual; the number of trees is chosen by cross-validation among ``0..max_trees``."""

    max_trees: int = 100
    learning_rate: float = 0.1
    max_depth: int = 3
    subsample: float = 0.8
    min_samples_leaf: int = 3
    folds: int = 5
    ridge: float = 1e-2  # of the additive part (ms^2 per ms^2)


def interaction_features(base: LatencyPredictor, matrix: np.ndarray) -> np.ndarray:
    """What the trees see: the 0/1 terms, the additive model's term (ms) of the option each choice takes, the
    additive sum."""
    per_choice = np.add.reduceat(matrix * base.terms_ms, base.encoder.offsets, axis=1)
    return np.hstack([matrix, per_choice, base.predict_matrix(matrix)[:, None]])


class InteractionPredictor(_ModelBase):
    """``additive(x) + sum of trees(features(x))`` (module docstring)."""

    name = "interaction"
    min_measured = 10

    def __init__(self, base: LatencyPredictor, trees: TreeEnsemble, method: str = "",
                 details: Mapping[str, Any] | None = None) -> None:
        self.base, self.trees = base, trees
        self.encoder, self.key = base.encoder, base.key
        self.method = method or "additive model plus gradient-boosted trees on its residual"
        self.details: dict[str, Any] = _plain(dict(details or {}))

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        base = self.base.predict_matrix(matrix)
        if self.trees.num_trees == 0:
            return base
        return base + self.trees.predict(interaction_features(self.base, matrix))

    def with_arch_map(self, arch_map: ArchMap | None) -> InteractionPredictor:
        return InteractionPredictor(self.base.with_arch_map(arch_map), self.trees, self.method, self.details)

    @classmethod
    def fit(cls, choices: Sequence[Choice], matrix: np.ndarray, measured_ms: np.ndarray, key: PredictorKey,
            seed: int = 0, reference: Mapping[str, str] | None = None, arch_map: ArchMap | None = None,
            settings: BoostingSettings = BoostingSettings(), table: LatencyPredictor | None = None,
            **_: Any) -> InteractionPredictor:
        """``table``: a lookup table measured op by op on the device (:func:`~nasframe.hardware.lut.build_lut`);
        the additive part is then the table with its affine correction (refitted on each training fold) and the
        trees see its measured terms. Without it the additive part is the ridge fit of the terms."""
        from sklearn.ensemble import GradientBoostingRegressor

        encoder = TermEncoder(choices, arch_map)
        matrix, y = _check_measurements(cls.name, matrix, measured_ms, encoder, cls.min_measured)
        reference = dict(reference) if reference is not None else reference_options(choices)
        if table is not None and table.encoder.columns != encoder.columns:
            raise ConfigError("the latency table has other choices than the interaction model")

        def additive(rows: np.ndarray) -> LatencyPredictor:
            if table is not None:
                return table.with_correction(*fit_affine(table.raw(matrix[rows]), y[rows])).with_arch_map(arch_map)
            terms, intercept = fit_additive(encoder, matrix[rows], y[rows], settings.ridge, reference)
            return LatencyPredictor(choices, terms, intercept, key, arch_map=arch_map)

        def boosting(rows: np.ndarray, base: LatencyPredictor, trees: int) -> Any:
            model = GradientBoostingRegressor(
                n_estimators=trees, learning_rate=settings.learning_rate, max_depth=settings.max_depth,
                subsample=settings.subsample, min_samples_leaf=settings.min_samples_leaf, init="zero",
                random_state=seed)
            return model.fit(interaction_features(base, matrix[rows]), y[rows] - base.predict_matrix(matrix[rows]))

        # cross-validated number of trees: squared error of each stage on each held-out fold
        order = np.random.default_rng(seed).permutation(y.size)
        errors = np.zeros(settings.max_trees + 1)
        for fold in np.array_split(order, min(settings.folds, y.size)):
            train = np.setdiff1d(order, fold)
            base = additive(train)
            residual = y[fold] - base.predict_matrix(matrix[fold])
            errors[0] += float(np.sum(residual**2))
            model = boosting(train, base, settings.max_trees)
            features = interaction_features(base, matrix[fold])
            for k, staged in enumerate(model.staged_predict(features), start=1):
                errors[k] += float(np.sum((residual - staged) ** 2))
        count = int(np.argmin(errors))
        base = additive(np.arange(y.size))
        trees = TreeEnsemble.from_sklearn(boosting(np.arange(y.size), base, count), count) if count else TreeEnsemble.empty()
        details = {"fit_archs": int(y.size), "seed": seed, "trees": count, "settings": asdict(settings),
                   "additive_part": "measured lookup table + affine correction" if table is not None else "ridge fit",
                   "cv_rmse_ms": {"additive": float(np.sqrt(errors[0] / y.size)),
                                  "chosen": float(np.sqrt(errors[count] / y.size))},
                   "reference_options": reference}
        return cls(base, trees, details=details)

    def to_dict(self) -> dict[str, Any]:
        return {**self._header(), "additive": self.base.to_dict(), "trees": self.trees.to_dict(),
                "details": self.details}

    @classmethod
    def from_dict(cls, data: Any, where: str = "latency table") -> InteractionPredictor:
        cls._check_header(data, where)
        try:
            base = LatencyPredictor.from_dict(data["additive"], where=f"{where} (additive part)")
            trees = TreeEnsemble.from_dict(data["trees"])
            width = base.encoder.num_terms + len(base.encoder.choices) + 1
            if trees.num_trees and (trees.feature.max() >= width or trees.feature.min() < 0
                                    or trees.left.max() >= trees.value.shape[1]
                                    or trees.right.max() >= trees.value.shape[1]):
                raise LatencyTableError(f"{where}: a tree refers to a feature or node that does not exist")
            return cls(base, trees, str(data.get("method", "")), data.get("details") or {})
        except LatencyTableError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise LatencyTableError(f"{where} is corrupt: {type(exc).__name__}: {exc}") from None


# -- transfer: multi-task backbone on source devices + ridge head on the target -----------------------------
def source_columns(columns: Mapping[str, np.ndarray], target: str) -> dict[str, np.ndarray]:
    """The latency columns of every device but ``target``: what the transfer model may pre-train on."""
    if target not in columns:
        raise ConfigError(f"no device column '{target}' (have {', '.join(columns)})")
    return {name: values for name, values in columns.items() if name != target}


@dataclass(frozen=True)
class BackboneSettings:
    hidden: int = 64
    epochs: int = 150
    batch_size: int = 512
    learning_rate: float = 1e-3


def _train_mlp(x_np: np.ndarray, y_np: np.ndarray, seed: int, settings: BackboneSettings) -> tuple[list[Any], float]:
    """Adam on the mean squared error of a ``terms -> hidden -> hidden -> outputs`` ReLU MLP (float64), seeded
    without touching the global torch RNG. Returns the three linear layers and the final training MSE."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        dims = [x_np.shape[1], settings.hidden, settings.hidden, y_np.shape[1]]
        layers = [torch.nn.Linear(a, b, dtype=torch.float64) for a, b in zip(dims, dims[1:])]
        net = torch.nn.Sequential(layers[0], torch.nn.ReLU(), layers[1], torch.nn.ReLU(), layers[2])
        optimiser = torch.optim.Adam(net.parameters(), lr=settings.learning_rate)
        x, y = torch.as_tensor(x_np), torch.as_tensor(y_np)
        shuffle = torch.Generator().manual_seed(seed)
        for _ in range(settings.epochs):
            order = torch.randperm(x.shape[0], generator=shuffle)
            for start in range(0, x.shape[0], settings.batch_size):
                batch = order[start:start + settings.batch_size]
                loss = torch.mean((net(x[batch]) - y[batch]) ** 2)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        with torch.no_grad():
            return layers, float(torch.mean((net(x) - y) ** 2))


class TransferBackbone:
    """A two-layer ReLU MLP from the 0/1 terms to the standardised log-latency of each source device."""

    def __init__(self, choices: Sequence[Choice], sources: Sequence[str], weights: Mapping[str, np.ndarray],
                 log_mean: np.ndarray, log_std: np.ndarray, details: Mapping[str, Any] | None = None) -> None:
        self.encoder = TermEncoder(choices)
        self.sources = tuple(str(s) for s in sources)
        terms, hidden, outputs = self.encoder.num_terms, np.asarray(weights["w1"]).shape[-1], len(self.sources)
        shapes = {"w1": (terms, hidden), "b1": (hidden,), "w2": (hidden, hidden), "b2": (hidden,),
                  "w3": (hidden, outputs), "b3": (outputs,)}
        self.weights = {name: _array(weights[name], shape) for name, shape in shapes.items()}
        self.log_mean, self.log_std = _array(log_mean, (outputs,)), _array(log_std, (outputs,))
        self.details: dict[str, Any] = _plain(dict(details or {}))

    def source_ms(self, matrix: np.ndarray) -> np.ndarray:
        """``(archs, sources)``: the predicted latency (ms) of each arch on each source device."""
        w = self.weights
        hidden = np.maximum(matrix @ w["w1"] + w["b1"], 0.0)
        hidden = np.maximum(hidden @ w["w2"] + w["b2"], 0.0)
        return np.exp((hidden @ w["w3"] + w["b3"]) * self.log_std + self.log_mean)

    def features(self, matrix: np.ndarray) -> np.ndarray:
        """What the target head regresses on: the source devices' predicted ms and the 0/1 terms."""
        return np.hstack([self.source_ms(matrix), matrix])

    @classmethod
    def pretrain(cls, choices: Sequence[Choice], matrix: np.ndarray, sources: Mapping[str, np.ndarray],
                 seed: int = 0, target: str | None = None, settings: BackboneSettings = BackboneSettings()
                 ) -> TransferBackbone:
        """Fit the backbone on every arch of ``matrix`` and the latency of each source device (ms, one array per
        device, aligned with the rows). ``target`` (the device that will be adapted to) must not be a source."""
        import torch

        if target is not None and target in sources:
            raise ConfigError(f"the transfer model's target device '{target}' is among its source devices")
        if not sources:
            raise ConfigError("the transfer model needs at least one source device to pre-train on")
        matrix = np.asarray(matrix, dtype=np.float64)
        encoder = TermEncoder(choices)
        if matrix.ndim != 2 or matrix.shape[1] != encoder.num_terms:
            raise ConfigError(f"pre-training needs an (archs, {encoder.num_terms}) term matrix, got {matrix.shape}")
        table = np.stack([np.asarray(sources[name], dtype=np.float64) for name in sources], axis=1)
        if table.shape[0] != matrix.shape[0] or not np.isfinite(table).all() or (table <= 0).any():
            raise ConfigError("every source device needs a positive, finite latency for every pre-training arch")
        logs = np.log(table)
        mean, std = logs.mean(axis=0), np.maximum(logs.std(axis=0), 1e-8)
        threads = torch.get_num_threads()
        # one thread: a network this small gains nothing from more, and the result does not depend on the count
        torch.set_num_threads(1)
        try:
            layers, final = _train_mlp(matrix, (logs - mean) / std, seed, settings)
        finally:
            torch.set_num_threads(threads)
        weights = {}
        for k, layer in enumerate(layers, start=1):
            weights[f"w{k}"] = layer.weight.detach().numpy().T.copy()
            weights[f"b{k}"] = layer.bias.detach().numpy().copy()
        details = {"pretrain_archs": int(matrix.shape[0]), "seed": seed, "settings": asdict(settings),
                   "final_mse_standardised_log": final}
        return cls(choices, list(sources), weights, mean, std, details)

    def to_dict(self) -> dict[str, Any]:
        return {"sources": list(self.sources), "weights": {k: v.tolist() for k, v in self.weights.items()},
                "log_mean": self.log_mean.tolist(), "log_std": self.log_std.tolist(), "details": self.details}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], choices: Sequence[Choice]) -> TransferBackbone:
        return cls(choices, data["sources"], {k: np.asarray(v, dtype=np.float64) for k, v in data["weights"].items()},
                   np.asarray(data["log_mean"]), np.asarray(data["log_std"]), data.get("details") or {})


class TransferPredictor(_ModelBase):
    """``head · [backbone.source_ms(x), x] + intercept`` (module docstring)."""

    name = "transfer"
    min_measured = 3

    def __init__(self, backbone: TransferBackbone, head: np.ndarray, intercept: float, key: PredictorKey,
                 method: str = "", details: Mapping[str, Any] | None = None, arch_map: ArchMap | None = None) -> None:
        self.backbone, self.key = backbone, key
        self.encoder = TermEncoder(backbone.encoder.choices, arch_map)
        self.head = _array(head, (len(backbone.sources) + self.encoder.num_terms,))
        self.intercept = float(_array(intercept))
        self.method = method or "MLP pre-trained on other devices, ridge head fitted on the target device"
        self.details: dict[str, Any] = _plain(dict(details or {}))

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        return self.backbone.features(matrix) @ self.head + self.intercept

    def with_arch_map(self, arch_map: ArchMap | None) -> TransferPredictor:
        return TransferPredictor(self.backbone, self.head, self.intercept, self.key, self.method, self.details, arch_map)

    @classmethod
    def fit(cls, choices: Sequence[Choice], matrix: np.ndarray, measured_ms: np.ndarray, key: PredictorKey,
            backbone: TransferBackbone | None = None, arch_map: ArchMap | None = None, **_: Any) -> TransferPredictor:
        if backbone is None:
            raise ConfigError("latency model 'transfer' needs a backbone pre-trained on other devices "
                              "(TransferBackbone.pretrain on their latency tables)")
        if [c.name for c in backbone.encoder.choices] != [c.name for c in choices] or \
                backbone.encoder.columns != TermEncoder(choices).columns:
            raise ConfigError("the transfer backbone was pre-trained on other choices than the model's")
        if key.device in backbone.sources:
            raise ConfigError(f"the transfer backbone was pre-trained on the target device '{key.device}' itself")
        encoder = TermEncoder(choices, arch_map)
        matrix, y = _check_measurements(cls.name, matrix, measured_ms, encoder, cls.min_measured)
        head, intercept, alpha = ridge_loo(backbone.features(matrix), y)
        details = {"fit_archs": int(y.size), "ridge_alpha": alpha, "alphas": "logspace(-4, 3, 15), leave-one-out",
                   "sources": list(backbone.sources)}
        return cls(backbone, head, intercept, key, details=details, arch_map=arch_map)

    def to_dict(self) -> dict[str, Any]:
        return {**self._header(), "backbone": self.backbone.to_dict(), "head": self.head.tolist(),
                "intercept": self.intercept, "details": self.details}

    @classmethod
    def from_dict(cls, data: Any, where: str = "latency table") -> TransferPredictor:
        cls._check_header(data, where)
        try:
            choices = _choices_from_dict(data["choices"])
            backbone = TransferBackbone.from_dict(data["backbone"], choices)
            return cls(backbone, np.asarray(data["head"], dtype=np.float64), float(data["intercept"]),
                       _key_from_dict(data["key"]), str(data.get("method", "")), data.get("details") or {})
        except LatencyTableError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise LatencyTableError(f"{where} is corrupt: {type(exc).__name__}: {exc}") from None


# -- the registry ------------------------------------------------------------------------------------------
def _fit_additive(choices: Sequence[Choice], matrix: np.ndarray, measured_ms: np.ndarray, key: PredictorKey,
                  reference: Mapping[str, str] | None = None, arch_map: ArchMap | None = None, ridge: float = 1e-2,
                  table: LatencyPredictor | None = None, **_: Any) -> LatencyPredictor:
    """With a measured lookup ``table``: the table with its affine correction fitted on the measured archs
    (:meth:`LatencyPredictor.calibrate`); without: the ridge fit of the terms (:func:`fit_additive`)."""
    encoder = TermEncoder(choices, arch_map)
    matrix, y = _check_measurements("additive", matrix, measured_ms, encoder, 2)
    if table is not None:
        return table.with_correction(*fit_affine(table.raw(matrix), y))
    reference = dict(reference) if reference is not None else reference_options(choices)
    terms, intercept = fit_additive(encoder, matrix, y, ridge, reference)
    return LatencyPredictor(choices, terms, intercept, key, method="ridge fit of the additive model on measured archs",
                            details={"ridge": ridge, "fit_archs": int(y.size), "reference_options": reference},
                            arch_map=arch_map)


@dataclass(frozen=True)
class ModelSpec:
    """A latency model: its class (``from_dict`` reads its files), how it is fitted from measured archs, the
    fewest measured archs it accepts, and whether it needs a pre-trained backbone."""

    cls: type
    fit: Callable[..., Any]
    min_measured: int
    needs_backbone: bool = False


MODELS: dict[str, ModelSpec] = {
    "additive": ModelSpec(LatencyPredictor, _fit_additive, 2),
    "interaction": ModelSpec(InteractionPredictor, InteractionPredictor.fit, InteractionPredictor.min_measured),
    "transfer": ModelSpec(TransferPredictor, TransferPredictor.fit, TransferPredictor.min_measured, needs_backbone=True),
}

#: the model used where none is named
DEFAULT_MODEL = "additive"


def model_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown latency model '{name}': choose from {', '.join(MODELS)}") from None


def model_class(name: Any, where: str = "latency table") -> type:
    """The class that reads a file whose ``model`` field is ``name``."""
    if not isinstance(name, str) or name not in MODELS:
        raise LatencyTableError(f"{where} holds an unknown latency model {name!r} (known: {', '.join(MODELS)})")
    return MODELS[name].cls


def fit_model(name: str, choices: Sequence[Choice], matrix: np.ndarray, measured_ms: np.ndarray, key: PredictorKey,
              **options: Any) -> LatencyModel:
    """Fit the model ``name`` of :data:`MODELS` on measured archs (their 0/1 term matrix and latencies in ms).

    ``options``: ``seed`` (interaction), ``reference`` (the pinned options of the additive part), ``arch_map``,
    ``table`` (a lookup table measured op by op: the additive part of additive and interaction), ``backbone``
    (transfer: a :class:`TransferBackbone` pre-trained on other devices); options a model does not use are ignored."""
    return model_spec(name).fit(choices, matrix, measured_ms, key, **options)

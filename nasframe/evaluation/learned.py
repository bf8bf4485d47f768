"""The learned evaluator: proxies of the untrained networks, combined by a model fitted on N labelled archs.

``evaluator=learned`` draws ``num_labelled`` distinct models of the space (one arch per isomorphism class,
seeded), takes their accuracy from a label source (a tabular benchmark in evaluation: ``benchmark=...``; or, for a
user without one, the archs trained by ``nasframe train`` runs under ``labels_from``, labelled by their validation
accuracy, in place of the draw), computes
the zero-cost proxies of those archs and of a reference sample, and fits :class:`~nasframe.evaluation.surrogate.
ProxySurrogate` (gradient-boosted trees over the proxies' ranks and a one-hot encoding, as "NAS-Bench-Suite-Zero:
Accelerating Research on Zero Cost Proxies" fits XGBoost). Any arch is then scored by the prediction. The labelled
archs are known to the caller (:attr:`LearnedEvaluator.labelled`): a ranking leaves them and their isomorphs out.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from nasframe.core.arch import Arch
from nasframe.core.space import SearchSpace
from nasframe.errors import ConfigError, DataError, InvalidArchError
from nasframe.evaluation.surrogate import MODELS, ProxySurrogate, has_structure
from nasframe.evaluation.zero_cost.evaluator import ZeroCostConfig, ZeroCostEvaluator


def _default_proxies() -> List[str]:
    return ["az_nas", "jacov", "synflow", "params"]


@dataclass
class LearnedConfig:
    name: str = "learned"
    proxy: Any = field(default_factory=_default_proxies)  # the features: proxies (components), paper settings each
    num_labelled: int = 100  # archs drawn (distinct models, seeded) and labelled by the label source
    label_metric: Optional[str] = None  # the benchmark metric used as label (default: its first *_valid, else *_test)
    model: str = "gbt"  # gbt | ridge | pairwise | gbt+pairwise (mean rank of both; best measured with cell_features)
    encode_arch: bool = True  # add a one-hot encoding of the arch to the features
    cell_features: bool = False  # cell-structure features (NB201: ops on input-output paths; gnn_bench: ops by role)
    reference_archs: int = 256  # further archs (seeded) whose proxy values define the features' ranks
    seed: int = 0  # the draw, the model and (unless proxy_seed is set) the proxies' weights and batches
    proxy_seed: Optional[int] = None  # the proxies' weights and batches (null: seed); fixed, a cache serves every draw
    batch_size: Optional[int] = None  # the proxies' batch (null: each proxy's paper default), as evaluator=zero_cost
    per_proxy: Dict[str, Any] = field(default_factory=dict)  # one proxy's settings, as evaluator=zero_cost
    cache_file: Optional[str] = None  # JSON lines of computed proxy values, reused when the settings match
    labels_from: Optional[str] = None  # a folder of `nasframe train` runs: their archs and valid accuracy (no draw)

    def proxy_config(self) -> ZeroCostConfig:
        """The settings of the zero-cost evaluator that computes the features."""
        return ZeroCostConfig(proxy=self.proxy, seed=self.seed if self.proxy_seed is None else self.proxy_seed,
                              batch_size=self.batch_size, per_proxy=dict(self.per_proxy or {}),
                              cache_file=self.cache_file)

    def check(self) -> None:
        if self.num_labelled < 2 or self.reference_archs < 0:
            raise ConfigError("evaluator: num_labelled must be >= 2 and reference_archs >= 0")
        if self.model not in MODELS:
            raise ConfigError(f"evaluator.model: {self.model!r} is not one of {', '.join(MODELS)}")


class LearnedEvaluator:
    """Scores archs by a surrogate fitted on labelled archs' proxy values (see the module docstring)."""

    def __init__(self, space: SearchSpace, proxies: ZeroCostEvaluator, label: Callable[[Arch], float] | None,
                 config: LearnedConfig, population: Iterable[Mapping[str, str]] = (),
                 given: Mapping[Arch, float] | None = None) -> None:
        """``label(arch)`` gives a drawn arch's accuracy; ``given`` (arch -> accuracy, e.g. from
        :func:`labels_from_train_runs`) are labelled archs used instead of the draw; ``population`` (e.g. the archs
        a ranking scores) joins the reference sample that defines the features' ranks."""
        config.check()
        if config.cell_features and not has_structure(space):
            raise ConfigError(f"evaluator.cell_features: space {space.name} has no cell-structure features (an edge "
                              "cell with choices edge_<to>_<from>, or a space defining structure_features)")
        self.space, self.proxies, self.config = space, proxies, config
        rng = np.random.default_rng(config.seed)
        if given is not None:
            self.labelled = [space.canonical(a) for a in given]
            self.labels = [float(v) for v in given.values()]
        else:
            count = min(config.num_labelled, space.size)
            drawn: dict[Arch, None] = {}
            while len(drawn) < count:
                drawn.setdefault(space.canonical(space.sample(rng)))
            self.labelled = list(drawn)
            self.labels = [float(label(arch)) for arch in self.labelled]
        reference: dict[Arch, None] = dict.fromkeys(self.labelled)
        for arch in population:
            reference.setdefault(space.validate(arch))
        for _ in range(config.reference_archs):
            reference.setdefault(space.sample(rng))
        values = {arch: proxies.component_values(arch) for arch in reference}
        self.surrogate = ProxySurrogate(space, proxies.components, list(values.values()), config.model,
                                        config.encode_arch, config.seed, cell_features=config.cell_features)
        self.surrogate.fit(self.labelled, [values[a] for a in self.labelled], self.labels)
        self.cache: dict[Arch, float] = {}

    @property
    def components(self) -> list[str]:
        return self.proxies.components

    @property
    def settings(self) -> dict[str, Any]:
        return self.proxies.settings

    def __call__(self, arch: Mapping[str, str]) -> float:
        arch = self.space.validate(arch)
        score = self.cache.get(arch)
        if score is None:
            score = self.cache[arch] = float(self.surrogate.predict([arch], [self.proxies.component_values(arch)])[0])
        return score

    def baseline_archs(self) -> dict[str, Arch]:
        """Archs a search through this evaluator has to beat, by report label: the labelled arch with the highest
        label (labelling N archs is itself a random search with N true evaluations)."""
        best = max(range(len(self.labelled)), key=self.labels.__getitem__)
        return {f"best of the {len(self.labelled)} labelled archs ({self.config.label_metric})": self.labelled[best]}

    def summary(self) -> str:
        cfg = self.config
        return (f"{cfg.model} ({'with' if cfg.encode_arch else 'without'} the arch encoding) over the zero-cost "
                f"proxies {', '.join(self.components)}, fitted on {len(self.labelled)} labelled archs (seed {cfg.seed})")

    def describe(self) -> dict[str, Any]:
        return {"evaluator": "learned", "model": self.config.model, "encode_arch": self.config.encode_arch,
                "cell_features": self.config.cell_features,
                "labelled": [self.space.format(a) for a in self.labelled], "labels": self.labels,
                "proxies": self.proxies.describe()}


def labels_from_train_runs(root: str | Path, space: SearchSpace) -> dict[Arch, float]:
    """The archs trained by the ``nasframe train`` runs under ``root`` (every ``outcome.json`` of such a run) and
    their validation accuracy (at the epoch the run selected), one label per isomorphism class (the mean over runs
    of the same model, e.g. several seeds). Refuses a missing folder, a run of another space, and fewer than two
    models."""
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise DataError(f"evaluator.labels_from: {folder} is not a folder (of `nasframe train` runs)")
    labels: dict[Arch, list[float]] = {}
    for path in sorted(folder.rglob("outcome.json")):
        try:
            outcome = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"evaluator.labels_from: {path} is not valid JSON ({exc})") from None
        if outcome.get("command") != "train":
            continue  # a search run's outcome, say: not a trained arch
        if outcome.get("space") != space.name:
            raise ConfigError(f"evaluator.labels_from: {path.parent} trained a {outcome.get('space')} arch, this run "
                              f"searches {space.name}")
        try:
            arch = space.canonical(space.parse(outcome["arch"]))
        except InvalidArchError as exc:
            raise ConfigError(f"evaluator.labels_from: {path.parent}: {exc}") from None
        labels.setdefault(arch, []).append(float(outcome["valid_accuracy"]))
    if len(labels) < 2:
        raise ConfigError(f"evaluator.labels_from: {folder} holds {len(labels)} trained model(s) of {space.name}; "
                          "a learned evaluator needs at least 2 (train them with `nasframe train arch=...`)")
    return {arch: float(np.mean(values)) for arch, values in labels.items()}

"""Structured configs: the schema of a search run, registered in Hydra's ConfigStore.

The top level and the framework-owned groups (``trainer``, ``evaluator``, ``constraints``, ``export``) are
typed here, so Hydra rejects a wrong key or type before any work starts. The pluggable groups (``space``,
``dataset``, ``sampler``, ``selector``) name a registered class in ``name``; the rest of the node is checked
against that class's own ``Config`` dataclass when the run starts (:func:`nasframe.core.settings.settings_from`),
still before any data is loaded or any weight trained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

from nasframe.training.trainer import TrainerConfig


@dataclass
class ConstraintsConfig:
    max_params: Optional[int] = None  # reject archs whose standalone subnet has more parameters
    latency_table: Optional[str] = None  # a latency table JSON (`nasframe latency` writes one) for this space
    max_latency_ms: Optional[float] = None  # reject archs predicted slower (needs latency_table)


@dataclass
class ExportConfig:
    torch_export: bool = True  # also write subnet.pt2 (torch.export), loadable without nasframe


@dataclass
class BaselinesConfig:
    enabled: bool = True  # report the largest arch meeting the constraints and random search beside the pick
    truth_metric: Optional[str] = None  # with benchmark=...: the metric shown as true accuracy (default: its first *_test)


@dataclass
class SearchConfig:
    """One search: train a supernet, select an arch, export it."""

    space: Any = MISSING
    dataset: Any = MISSING
    sampler: Any = MISSING
    selector: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    evaluator: Any = None  # a config group (configs/evaluator/): supernet (also when null), zero_cost, learned, hybrid
    constraints: ConstraintsConfig = field(default_factory=ConstraintsConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)
    benchmark: Any = None  # optional: a tabular benchmark (benchmark=nb201) that gives the true accuracy of each reported arch
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch intra-op threads; 0 keeps torch's default
    arch: Optional[str] = None  # skip selection: evaluate and export this arch (native string or JSON)
    resume: Optional[str] = None  # a checkpoint file or run directory to continue training from


@dataclass
class RankingConfig:
    num_archs: int = 200  # distinct archs drawn uniformly with sample_seed; 0 = every arch of the space
    sample_seed: int = 0
    held_out: str = "valid"  # the split the supernet scores archs on: valid | test
    truth_metric: str = "cifar10_test"  # the benchmark metric that is ground truth
    also_against: List[str] = field(default_factory=list)  # further benchmark metrics to compare the scores with
    canonical: bool = False  # rank distinct models: one arch per isomorphism class (space.canonical)
    stop_after_s: float = 0.0  # > 0: stop scoring after this many seconds; scores.jsonl keeps them, rerun continues
    checkpoints: str = "last"  # last | kept: rank at every checkpoint the run kept (trainer.keep_every), a curve


@dataclass
class RankConfig:
    """Rank archs with a trained supernet against a tabular benchmark."""

    run: Optional[str] = None  # a search run directory: its config.yaml and checkpoint.pt are used
    space: Any = None  # without run (training-free evaluators only): the space to rank ...
    dataset: Any = None  # ... and the data set whose training images the proxies see
    benchmark: Any = MISSING
    ranking: RankingConfig = field(default_factory=RankingConfig)
    evaluator: Any = None  # a config group (configs/evaluator/): supernet (also when null), zero_cost, learned, hybrid
    device: str = "auto"
    threads: int = 0
    out: Optional[str] = None  # default: <run>/ranking


def _default_tabular_selectors() -> dict[str, Any]:
    return {
        "evolutionary": {"name": "evolutionary", "population_size": 20, "generations": 1000, "parents": 10},
        "random": {"name": "random", "num_samples": 1_000_000},
    }


@dataclass
class TabularConfig:
    """Compare selectors on a tabular benchmark (no supernet): best true accuracy vs number of queries."""

    space: Any = MISSING
    benchmark: Any = MISSING
    selectors: Dict[str, Any] = field(default_factory=_default_tabular_selectors)  # label -> selector node
    search_metric: str = "cifar10_test"
    report_metric: str = "cifar10_test"
    max_queries: int = 300
    seeds: int = 10
    out: Optional[str] = None  # default: the run directory


def register_configs() -> None:
    """Store the schemas named first in the defaults of the command configs (``configs/<command>.yaml``)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="search_schema", node=SearchConfig)
    store.store(name="rank_schema", node=RankConfig)
    store.store(name="tabular_schema", node=TabularConfig)

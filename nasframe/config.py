"""Structured configs: the schema of a search run, registered in Hydra's ConfigStore.

The top level and the framework-owned groups (``trainer``, ``constraints``, ``export``) are typed here, so Hydra
rejects a wrong key or type before any work starts. The pluggable groups (``space``, ``dataset``, ``sampler``,
``selector``, ``benchmark``, ``evaluator``) are typed by their options: each option's settings dataclass (a
registered class's ``Config``, or the evaluator's settings) is stored in the ConfigStore as
``<group>_<name>_schema``, with a first field ``name`` that defaults to the option's name (:func:`register_configs`).
The option's YAML file extends it and holds no default of its own::

    # configs/sampler/sandwich.yaml
    defaults:
      - /sampler_sandwich_schema
      - _self_

so each default lives once, in the dataclass, and Hydra refuses a misspelt key (``sampler.num_rndom=3``, or one in
a YAML file) when it composes the config. A new option is its module (the registered class and its ``Config``) plus
that YAML file. An option without a dataclass (a third-party plugin, or ``space.name=package.module:Class``) stays an
open node: its keys are checked against the class when the run starts (:func:`nasframe.core.settings.settings_from`),
still before any data is loaded or any weight trained.
"""

from __future__ import annotations

import dataclasses
import logging
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

from nasframe.evaluation_phase.settings import TrainSettings
from nasframe.training.trainer import TrainerConfig

log = logging.getLogger("nasframe.config")


def schema_name(group: str, name: str) -> str:
    """The ConfigStore name of the schema of option ``name`` of ``group``, which its YAML file names first in its
    defaults (``/<group>_<name>_schema``). A config without a group: Hydra's help does not list it as an option."""
    return f"{group}_{name}_schema"


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

    space: Any = MISSING  # the pluggable groups: each option's node is typed by its own schema (see above)
    dataset: Any = MISSING
    sampler: Any = MISSING
    selector: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    evaluator: Any = None  # a config group (configs/evaluator/): supernet (also when null), zero_cost, learned, hybrid, benchmark
    constraints: ConstraintsConfig = field(default_factory=ConstraintsConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)
    benchmark: Any = None  # optional: a tabular benchmark (benchmark=nb201) that gives the true accuracy of each reported arch
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch intra-op threads; 0 keeps torch's default
    arch: Optional[str] = None  # skip selection: evaluate and export this arch (native string or JSON)
    resume: Optional[str] = None  # a checkpoint file or run directory to continue training from; auto: this run directory's own checkpoint if any (reruns of a sweep)


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
    selectors: Dict[str, Any] = field(default_factory=_default_tabular_selectors)  # label -> selector node (checked at the run)
    search_metric: str = "cifar10_test"
    report_metric: str = "cifar10_test"
    also_report: List[str] = field(default_factory=list)  # further metrics of each seed's final pick (held-out checks)
    dataset: Any = None  # the data set of the proxies a selector reads (selector=predictor_guided), e.g. cifar10
    threads: int = 0  # torch threads for those proxies (0: torch's default)
    max_queries: int = 300
    seeds: int = 10
    out: Optional[str] = None  # default: the run directory


@dataclass
class TrainConfig:
    """Train a found arch standalone: from scratch or from its inherited weights (``nasframe train``)."""

    space: Any = None  # with arch=: the arch's space (run= takes the run's)
    dataset: Any = None  # with arch=: the data set; with run=: default the run's
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    train: TrainSettings = field(default_factory=TrainSettings)  # set by +protocol=... (configs/protocol/)
    export: ExportConfig = field(default_factory=ExportConfig)
    arch: Optional[str] = None  # a native arch string (or JSON) of the space
    run: Optional[str] = None  # a search run directory: its export/arch.json, space settings, data set
    init: str = "scratch"  # scratch | inherited (the run's exported subnet weights, fine-tuned)
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    resume: Optional[str] = None  # a checkpoint file or train run directory to continue from; auto: this run directory's own checkpoint if any


def option_schemas() -> dict[str, dict[str, type]]:
    """group -> option name -> settings dataclass, for every option of the pluggable groups nasframe can resolve by
    name (registered in code or declared as an entry point) whose class has a dataclass ``Config``; the evaluators'
    settings. A class that fails to import, or has no dataclass, is left out: its node stays unchecked by Hydra."""
    from nasframe.benchmarks.base import BENCHMARKS
    from nasframe.core.registry import DATASETS, SAMPLERS, SELECTORS, SPACES
    from nasframe.core.settings import Configurable
    from nasframe.search import EVALUATORS

    schemas: dict[str, dict[str, type]] = {}
    for group, registry in (("space", SPACES), ("dataset", DATASETS), ("sampler", SAMPLERS), ("selector", SELECTORS),
                            ("benchmark", BENCHMARKS)):
        schemas[group] = {}
        for name in registry.names():
            try:
                cls = registry.get(name)
            except Exception as exc:  # a broken plugin fails when a run builds it, with the registry's message
                log.debug("%s '%s' not loaded for its config schema: %s", registry.kind, name, exc)
                continue
            schema = getattr(cls, "Config", None)
            if schema is Configurable.Config:  # no settings of its own: Hydra's messages name the class
                schema = dataclasses.make_dataclass(f"{getattr(cls, '__name__', name)}.Config", [])
            if isinstance(schema, type) and dataclasses.is_dataclass(schema):
                schemas[group][name] = schema
    schemas["evaluator"] = dict(EVALUATORS)
    return schemas


def option_node(name: str, schema: type) -> type:
    """The structured config of option ``name``: a dataclass with ``name`` (defaulting to ``name``) first, then the
    fields of ``schema`` with their defaults; Hydra's messages name it as ``schema``."""
    hints = typing.get_type_hints(schema)
    fields: list[tuple[str, Any, Any]] = [("name", str, field(default=name))]
    for f in dataclasses.fields(schema):
        if f.name == "name":
            continue
        if f.default is not dataclasses.MISSING:
            default = field(default=f.default, metadata=f.metadata)
        elif f.default_factory is not dataclasses.MISSING:
            default = field(default_factory=f.default_factory, metadata=f.metadata)
        else:
            default = field(default=MISSING, metadata=f.metadata)  # required: Hydra reports it when missing
        fields.append((f.name, hints.get(f.name, Any), default))
    node = dataclasses.make_dataclass(schema.__name__, fields)
    node.__module__, node.__doc__ = schema.__module__, schema.__doc__
    return node


def register_configs() -> None:
    """Store the schemas named first in the defaults of the command configs (``configs/<command>.yaml``), and
    each group option's schema (:func:`schema_name`) that its YAML file extends."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="search_schema", node=SearchConfig)
    store.store(name="rank_schema", node=RankConfig)
    store.store(name="tabular_schema", node=TabularConfig)
    store.store(name="train_schema", node=TrainConfig)
    for group, options in option_schemas().items():
        for name, schema in options.items():
            try:
                node = option_node(name, schema)
            except Exception as exc:  # e.g. an annotation that does not resolve: the node stays unchecked
                log.debug("%s '%s': no config schema: %s", group, name, exc)
                continue
            store.store(name=schema_name(group, name), node=node)

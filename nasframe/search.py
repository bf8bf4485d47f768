"""The search pipeline as a library call: train a supernet, select an arch, export it, write a report.

``run_search(cfg, run_dir)`` is what ``nasframe search`` runs; ``cfg`` is a :class:`~nasframe.config.SearchConfig`
(or the DictConfig Hydra composed from it). Every component is built and every setting checked before the
first training step, so a typo fails in seconds, not after training.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from nasframe.config import SearchConfig
from nasframe.core.arch import Arch
from nasframe.core.arch_weights import ArchitectureWeights
from nasframe.core.graph import bind_graph
from nasframe.core.registry import SPACES
from nasframe.core.settings import settings_from
from nasframe.core.space import DataSpec, SearchSpace
from nasframe.core.modules import Supernet
from nasframe.data.base import DatasetSplits, InMemoryLoader, build_dataset
from nasframe.errors import ConfigError
from nasframe.evaluation.evaluator import EvaluatorConfig, SupernetEvaluator, accuracy
from nasframe.benchmarks.base import build_benchmark
from nasframe.evaluation.hybrid import HybridConfig, HybridEvaluator
from nasframe.evaluation.predictor import PredictorConfig, PredictorEvaluator
from nasframe.evaluation.benchmark_evaluator import BenchmarkEvaluator, BenchmarkEvaluatorConfig, default_metric
from nasframe.evaluation.learned import LearnedConfig, LearnedEvaluator, labels_from_train_runs
from nasframe.evaluation.zero_cost.evaluator import ZeroCostConfig, ZeroCostEvaluator
from nasframe.export.extract import extract
from nasframe.export.save import save_export
from nasframe.markdown import markdown_table
from nasframe.sampling.base import PathSampler, build_sampler
from nasframe.sampling.uniform import UniformSampler
from nasframe.search_baselines import SearchBaselines, baseline_section, measure_baselines
from nasframe.selection.base import (Evaluation, SelectionResult, Selector, SelectorInputs, Tune, build_selector,
                                     check_architecture_weights)
from nasframe.selection.constraints import Constraint, ParamBudget, latency_source, load_latency_budget
from nasframe.training.checkpoint import resolve_resume
from nasframe.training.distributed import DistributedContext
from nasframe.training.finetune import finetune
from nasframe.training.trainer import SupernetTrainer, TrainerConfig

log = logging.getLogger("nasframe.search")


@dataclass
class SearchOutcome:
    run_dir: Path
    arch: Arch
    native: str
    valid_accuracy: float | None  # inherited supernet weights, after BN recalibration (None: nothing trained)
    test_accuracy: float | None  # the exported subnet on the test split (None: nothing trained)
    params: int
    export_max_abs_diff: float
    files: dict[str, Path]
    score: float | None = None  # the selector's score of the arch (a training-free search's proxy score)
    trained: bool = True  # False for a training-free search: the arch has no trained weights
    baselines: list[Any] = field(default_factory=list)  # nasframe.search_baselines.BaselineRow: pick, largest, random
    score_meaning: str = "training-free proxy"  # what a training-free search's score is


def build_space(node: Any, data: DataSpec) -> SearchSpace:
    return SPACES.build(node, "space", data=data)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name} but CUDA is not available on this machine; use device=cpu or device=auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device: unknown device {name!r} (auto, cpu, cuda, cuda:N)") from None


@dataclass
class SearchSetup:
    """Every component of a search, built and checked from a config before any work starts."""

    cfg: DictConfig
    device: torch.device
    data: DatasetSplits
    space: SearchSpace
    sampler: PathSampler
    selector: Selector
    trainer: TrainerConfig
    evaluator: EvaluatorConfig | ZeroCostConfig | HybridConfig | LearnedConfig
    constraints: list[Constraint]
    fixed_arch: Arch | None
    resume_from: Path | None
    distributed: DistributedContext


def training_context(cfg: DictConfig) -> tuple[DistributedContext, torch.device, TrainerConfig]:
    """This process's place in a (data-parallel) run, its device and the checked trainer settings of ``cfg``
    (torch's thread count set from ``cfg.threads``): what every command that trains starts with."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    distributed = DistributedContext.from_env()
    device = distributed.device_for(resolve_device(cfg.device))
    trainer_cfg = settings_from(TrainerConfig, cfg.trainer, "trainer")
    trainer_cfg.check()
    distributed.check_batch(trainer_cfg.batch_size)
    return distributed, device, trainer_cfg


def setup_search(cfg: SearchConfig | DictConfig, run_dir: Path | None = None) -> SearchSetup:
    """Build and check all components of ``cfg``; raises a :class:`~nasframe.errors.NasframeError` on bad input.
    ``run_dir`` is where the run writes (``resume=auto`` continues its checkpoint)."""
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.structured(cfg)
    distributed, device, trainer_cfg = training_context(cfg)
    evaluator_cfg = evaluator_settings(cfg.evaluator)
    data = build_dataset(cfg.dataset)
    space = build_space(cfg.space, data.spec)
    check_data_fits_space(data, space, evaluator_cfg)
    sampler = build_sampler(cfg.sampler, space, seed=cfg.seed)
    selector = build_selector(cfg.selector)
    if is_training_free(evaluator_cfg) and selector.needs_supernet:
        raise ConfigError(f"selector={selector.name} reads the trained supernet; evaluator=zero_cost trains none: use "
                          "selector=evolutionary or selector=random")
    check_architecture_weights(selector, sampler)
    fixed_arch = space.parse(cfg.arch) if cfg.arch else None
    resume_from = resolve_resume(cfg.resume, run_dir)
    constraints = build_constraints(cfg.constraints, space)
    selector.check_constraints(constraints)
    setup = SearchSetup(cfg, device, data, space, sampler, selector, trainer_cfg, evaluator_cfg, constraints,
                        fixed_arch, resume_from, distributed)
    proxy_settings = selector.proxy_config()  # the proxies a selector reads are checked now, not after training
    if proxy_settings is not None:
        make_zero_cost_evaluator(setup, proxy_settings, config_key="selector")
    return setup


#: the evaluator config group's options: name -> settings dataclass
EVALUATORS: dict[str, type] = {"supernet": EvaluatorConfig, "zero_cost": ZeroCostConfig, "hybrid": HybridConfig,
                               "predictor": PredictorConfig,
                               "learned": LearnedConfig, "benchmark": BenchmarkEvaluatorConfig}


def evaluator_settings(node: Any) -> EvaluatorConfig | ZeroCostConfig | HybridConfig | LearnedConfig:
    """The checked settings of an ``evaluator`` config node (a run config written before the evaluator was a
    config group has no ``name``: it is the supernet evaluator)."""
    name = (node.get("name") if node is not None else None) or "supernet"
    schema = EVALUATORS.get(name)
    if schema is None:
        raise ConfigError(f"evaluator={name}: unknown evaluator; known: {', '.join(EVALUATORS)}")
    settings = settings_from(schema, node, "evaluator")
    if isinstance(settings, (EvaluatorConfig, LearnedConfig)):
        settings.check()
    return settings


def is_training_free(evaluator: Any) -> bool:
    """True for evaluators that train no supernet: they score untrained networks, or look up a benchmark's table."""
    return isinstance(evaluator, (ZeroCostConfig, LearnedConfig, BenchmarkEvaluatorConfig))


def check_data_fits_space(data: DatasetSplits, space: SearchSpace, evaluator: Any) -> None:
    """Graph spaces need a graph data set (node classification), image spaces image data."""
    if space.takes_graphs and not data.is_graph:
        raise ConfigError(f"space '{space.name}' holds graph networks (node classification), but dataset "
                          f"'{data.name}' is not a graph: use a graph data set such as dataset=planetoid")
    if data.is_graph and not space.takes_graphs:
        raise ConfigError(f"dataset '{data.name}' is a graph (node classification), but space '{space.name}' "
                          "holds image networks: use a graph space such as space=gnn_bench")
    if data.is_graph and isinstance(evaluator, EvaluatorConfig) and evaluator.fast:
        raise ConfigError("evaluator.fold_bn, precision=bf16 and channels_last are image-network options; "
                          f"leave them at their defaults for the graph data set '{data.name}'")


def build_supernet(setup: SearchSetup) -> nn.Module:
    """The space's supernet, seeded with ``seed``, on the device; a graph data set's graph bound to it."""
    torch.manual_seed(setup.cfg.seed)
    return attach_data(setup.space.build_supernet().to(setup.device), setup)


def attach_data(model: nn.Module, setup: SearchSetup) -> nn.Module:
    """Bind the data set's graph (on the device) to a graph network; image networks are returned unchanged."""
    return bind_data(model, setup.data, setup.device)


def bind_data(model: nn.Module, data: DatasetSplits, device: torch.device) -> nn.Module:
    """:func:`attach_data` for a data set and device given directly (the graph is moved to ``device`` once)."""
    graph = data.graph
    if graph is None:
        return model
    if graph.x.device != device:
        data.graph = graph = graph.to(device)
    return bind_graph(model, graph.x, graph.edge_index)


def build_constraints(node: Any, space: SearchSpace) -> list[Constraint]:
    """The selection constraints of a ``constraints`` config node: parameter and latency budgets."""
    constraints: list[Constraint] = []
    if node.max_params:
        constraints.append(ParamBudget(space, node.max_params))
    if node.max_latency_ms is not None and not node.latency_table:
        raise ConfigError("constraints.max_latency_ms needs constraints.latency_table: a latency table of this space "
                          "(build one with `nasframe latency`)")
    if node.latency_table:
        constraints.append(load_latency_budget(space, node.latency_table, node.max_latency_ms))
    return constraints


def train_supernet(setup: SearchSetup, run_dir: Path, writer: Any = None, until_epoch: int | None = None) -> SupernetTrainer:
    """Build the supernet (seeded), resume if asked, and train it; checkpoints go to ``run_dir`` (from rank 0 when
    data parallel: the caller joins the process group first, see :func:`run_search`)."""
    supernet = build_supernet(setup)
    if setup.data.is_graph and setup.trainer.batch_size < len(setup.data.train):
        log.warning("trainer.batch_size %d < %d training nodes: each step still runs the whole graph and trains on "
                    "a part of its nodes; full-batch training sets trainer.batch_size >= %d",
                    setup.trainer.batch_size, len(setup.data.train), len(setup.data.train))
    loader = InMemoryLoader(
        setup.data.train.to(setup.device), setup.trainer.batch_size, seed=setup.cfg.seed,
        transform=setup.data.train_transform, data_order=setup.sampler.data_order(len(setup.data.train)),
    )
    arch_loader = None
    if setup.sampler.needs_arch_batches:  # DARTS: architecture steps on the valid split
        arch_loader = InMemoryLoader(
            setup.data.valid.to(setup.device), setup.trainer.batch_size, seed=setup.cfg.seed + 1,
            transform=setup.data.train_transform,
        )
    trainer = SupernetTrainer(
        supernet, setup.sampler, loader, setup.trainer, run_dir=run_dir, writer=writer,
        space_description=setup.space.describe(), arch_loader=arch_loader, distributed=setup.distributed,
    )
    if setup.resume_from is not None:
        trainer.resume(setup.resume_from)
    trainer.fit(until_epoch=until_epoch)
    if setup.distributed.is_main and not (run_dir / "checkpoint.pt").exists():
        trainer.save_checkpoint()
    return trainer


def make_evaluator(setup: SearchSetup, supernet: Supernet | None,
                   held_out: str = "valid") -> SupernetEvaluator | ZeroCostEvaluator | LearnedEvaluator:
    """The run's evaluator: the supernet evaluator on the ``held_out`` split (valid or test), BN recalibrated on
    training images (``evaluator=hybrid``: with proxies added by rank); or, with ``evaluator=zero_cost`` or
    ``learned``, the training-free evaluator (no supernet, no held-out data)."""
    if is_training_free(setup.evaluator):
        return make_training_free_evaluator(setup)
    if supernet is None:
        raise ConfigError("the supernet evaluator needs a trained supernet")
    if held_out not in ("valid", "test"):
        raise ConfigError(f"held-out split must be valid or test, got {held_out!r}")
    data = setup.data
    if isinstance(setup.evaluator, HybridConfig):
        cfg = setup.evaluator
        proxies = make_zero_cost_evaluator(setup, ZeroCostConfig(proxy=cfg.proxy, seed=cfg.proxy_seed))
        return HybridEvaluator(supernet, getattr(data, held_out), data.train, cfg, prepare=data.prepare,
                               space=setup.space, proxies=proxies)
    if isinstance(setup.evaluator, PredictorConfig):  # Once-for-All's accuracy predictor over measured subnets
        return PredictorEvaluator(supernet, getattr(data, held_out), data.train, setup.evaluator, prepare=data.prepare,
                                  space=setup.space)
    return SupernetEvaluator(supernet, getattr(data, held_out), data.train, setup.evaluator, prepare=data.prepare,
                             space=setup.space)


def make_training_free_evaluator(setup: SearchSetup, population: Sequence[Arch] = ()
                                 ) -> ZeroCostEvaluator | LearnedEvaluator | BenchmarkEvaluator:
    """The run's training-free evaluator: zero-cost proxies; (``evaluator=learned``) proxies combined by a model
    fitted on labelled archs from the run's benchmark (``population``: archs that join its reference sample); or
    (``evaluator=benchmark``) the benchmark's recorded accuracy."""
    cfg = setup.evaluator
    if not isinstance(cfg, (LearnedConfig, BenchmarkEvaluatorConfig)):
        return make_zero_cost_evaluator(setup)
    if isinstance(cfg, LearnedConfig) and cfg.labels_from:  # a user's own trained archs: no benchmark needed
        given = labels_from_train_runs(cfg.labels_from, setup.space)
        cfg.label_metric = f"valid_accuracy of the nasframe train runs under {cfg.labels_from}"
        proxies = make_zero_cost_evaluator(setup, cfg.proxy_config())
        log.info("evaluator=learned: %d archs trained by nasframe train runs under %s", len(given), cfg.labels_from)
        return LearnedEvaluator(setup.space, proxies, None, cfg, population, given=given)
    benchmark_node = setup.cfg.get("benchmark")
    if benchmark_node is None:
        what = "fits on labelled archs: give their source" if isinstance(cfg, LearnedConfig) else "looks archs up in"
        raise ConfigError(f"evaluator={cfg.name} {what}, a tabular benchmark "
                          "(benchmark=nb201 or benchmark=nasbench_graph)"
                          + (", or evaluator.labels_from=<a folder of nasframe train runs>"
                             if isinstance(cfg, LearnedConfig) else ""))
    benchmark = build_benchmark(benchmark_node)
    if isinstance(cfg, BenchmarkEvaluatorConfig):
        return BenchmarkEvaluator(setup.space, benchmark, cfg)
    metric = cfg.label_metric = default_metric(benchmark, cfg.label_metric, "evaluator.label_metric")
    proxies = make_zero_cost_evaluator(setup, cfg.proxy_config())
    log.info("evaluator=learned: scoring and labelling %d archs (%s of %s) and %d reference archs", cfg.num_labelled,
             metric, benchmark.name, cfg.reference_archs)
    return LearnedEvaluator(setup.space, proxies, lambda arch: benchmark.metric(setup.space.format(arch), metric), cfg,
                            population)


def make_zero_cost_evaluator(setup: SearchSetup, config: ZeroCostConfig | None = None,
                             config_key: str = "evaluator") -> ZeroCostEvaluator:
    """Training-free scoring of the run's space with ``config`` (default: the run's evaluator settings): each arch's
    standalone network on the device, a graph data set's graph bound to it, real input batches from the training
    split. ``config_key``: where ``config`` sits in the run's config, which errors about it name."""
    return zero_cost_evaluator(setup.space, setup.data, config or setup.evaluator, setup.device, config_key)


def zero_cost_evaluator(space: SearchSpace, data: DatasetSplits, config: ZeroCostConfig, device: torch.device,
                        config_key: str = "evaluator") -> ZeroCostEvaluator:
    """:func:`make_zero_cost_evaluator` for a space, data set and device given directly (``nasframe tabular``)."""

    def build_network(arch: Arch) -> nn.Module:
        return bind_data(space.build_subnet(arch).to(device), data, device)

    return ZeroCostEvaluator(space, build_network, config, train=data.train, prepare=data.prepare, device=device,
                             config_key=config_key)


def make_tuner(trainer: SupernetTrainer, evaluator: SupernetEvaluator, seed: int) -> Tune:
    """``tune(steps, space)`` for selectors that fine-tune between decisions: train ``steps`` more steps at a
    tenth of the training learning rate (as DARTS-PT) -- with the trained sampler (a differentiable one keeps
    training its undecided alpha), or with uniform paths from ``space`` when given -- then forget the
    evaluator's cached scores (the weights changed)."""
    calls = [0]

    def tune(steps: int, space: SearchSpace | None = None) -> None:
        calls[0] += 1
        sampler = trainer.sampler if space is None else UniformSampler(space, seed=seed * 1000 + calls[0])
        loss = finetune(trainer, sampler, steps, trainer.config.lr / 10, seed=seed * 1000 + calls[0])
        evaluator.clear_cache()
        log.info("fine-tuned %d steps (mean loss %.4f)", steps, loss)

    return tune


def selector_inputs(trainer: SupernetTrainer, evaluator: Any, seed: int) -> SelectorInputs:
    """What selectors that work on the trained supernet may use: the architecture weights of a differentiable
    method, fine-tuning, and (with a supernet evaluator) the accuracy of a mixture."""
    supernet_evaluator = isinstance(evaluator, SupernetEvaluator)
    return SelectorInputs(
        architecture=trainer.sampler if isinstance(trainer.sampler, ArchitectureWeights) else None,
        tune=make_tuner(trainer, evaluator, seed) if supernet_evaluator else None,
        mixture_accuracy=evaluator.mixture_accuracy if supernet_evaluator else None,
    )


def run_search(cfg: SearchConfig | DictConfig, run_dir: str | Path) -> SearchOutcome | None:
    """Train, select, export; everything the run writes goes under ``run_dir``. Returns ``None`` when training
    stopped early (``trainer.stop_after_epoch``): the checkpoint is written and the run can be resumed.

    Under ``torchrun`` the supernet is trained data parallel on all ranks; rank 0 alone writes the run directory
    (its own ``run_dir``, sent to all ranks), then selects and exports while the other ranks return ``None``."""
    started = time.perf_counter()
    setup = setup_search(cfg, Path(run_dir))
    cfg, space, data, ranks = setup.cfg, setup.space, setup.data, setup.distributed
    if is_training_free(setup.evaluator):
        from nasframe.training_free import run_training_free_search

        return run_training_free_search(setup, Path(run_dir), started)
    if ranks.enabled and not setup.sampler.trains_parts_as_jobs:  # per-part few-shot refuses torchrun below
        return _run_data_parallel(setup, Path(run_dir), started)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    log.info("data    %s", data.summary())
    log.info("space   %s (%s archs), sampler %s, selector %s", space.name, f"{space.size:,}", cfg.sampler.name, cfg.selector.name)
    log.info("device  %s, %d threads", setup.device, torch.get_num_threads())

    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run_dir / "tensorboard"))
    train_started = time.perf_counter()
    if setup.sampler.trains_parts_as_jobs:  # few-shot with the per-part budget: one-shot phase, part jobs, merge
        from nasframe.fewshot_parts import run_parts_as_jobs

        trainer = run_parts_as_jobs(setup, run_dir, writer)
    else:
        trainer = train_supernet(setup, run_dir, writer, until_epoch=setup.trainer.stop_after_epoch)
    return _select_and_export(setup, trainer, run_dir, writer, started, time.perf_counter() - train_started)


def _run_data_parallel(setup: SearchSetup, run_dir: Path, started: float) -> SearchOutcome | None:
    """Join the process group, train on every rank into rank 0's run directory, leave the group; rank 0 goes
    on to select and export in a single process."""
    import torch.distributed as dist

    ranks = setup.distributed
    ranks.init(setup.device)
    if not ranks.is_main:
        logging.getLogger("nasframe").setLevel(logging.WARNING)
    try:
        shared = [str(run_dir)]
        dist.broadcast_object_list(shared, src=0)  # Hydra's timestamped directories may differ between ranks
        run_dir = Path(shared[0])
        writer = None
        if ranks.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(setup.cfg, resolve=True))
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(run_dir / "tensorboard"))
        log.info("data parallel: rank %d of %d on %s", ranks.rank, ranks.world_size, setup.device)
        train_started = time.perf_counter()
        trainer = train_supernet(setup, run_dir, writer, until_epoch=setup.trainer.stop_after_epoch)
        train_seconds = time.perf_counter() - train_started
        ranks.barrier()  # the last checkpoint is on disk before any rank leaves
    finally:
        dist.destroy_process_group()
    if not ranks.is_main:
        return None
    trainer.distributed = DistributedContext()  # selection's fine-tuning steps run in this process alone
    return _select_and_export(setup, trainer, run_dir, writer, started, train_seconds)


def _select_and_export(
    setup: SearchSetup, trainer: SupernetTrainer, run_dir: Path, writer: Any, started: float, train_seconds: float
) -> SearchOutcome | None:
    cfg, space, data = setup.cfg, setup.space, setup.data
    supernet, history = trainer.supernet, trainer.history
    if trainer.sampler.trains_one_part:
        if writer is not None:
            writer.close()
        log.info("this job trained one part of the supernet (%s); when every part's job has finished, merge them "
                 "with: nasframe merge <their run dirs> --out <dir>", trainer.sampler.describe_structure())
        return None
    if trainer.epoch < setup.trainer.epochs:
        writer.close()
        log.info("stopped after epoch %d of %d (trainer.stop_after_epoch); continue with resume=%s",
                 trainer.epoch, setup.trainer.epochs, run_dir)
        return None

    # -- select -----------------------------------------------------------------------------------------
    select_started = time.perf_counter()
    evaluator = make_evaluator(setup, supernet)
    result = select_or_evaluate_given(setup, evaluator, selector_inputs(trainer, evaluator, cfg.seed))
    select_seconds = time.perf_counter() - select_started
    write_selection(result, space, run_dir, writer)
    valid_accuracy = evaluator.accuracy_of(result.arch)  # a hybrid's score is a rank sum, not the accuracy
    log.info("selected %s  (valid acc %.2f%% with inherited weights, %d archs evaluated in %.1fs)",
             space.format(result.arch), valid_accuracy, len(result.history), select_seconds)

    # -- export ------------------------------------------------------------------------------------------
    evaluator.prepare(result.arch)  # BN statistics of the chosen path go into the export
    subnet = attach_data(extract(space, supernet, result.arch).eval(), setup)
    with torch.no_grad():
        probe = evaluator.held_out.x[: setup.evaluator.batch_size]
        max_diff = (supernet(probe) - subnet(probe)).abs().max().item()
    test_acc = accuracy(subnet, data.prepared(data.test, setup.device), setup.evaluator.batch_size)
    params = sum(p.numel() for p in subnet.parameters())
    paths = save_export(
        run_dir / "export", space, result.arch, subnet, torch_export=cfg.export.torch_export,
        extra={"valid_accuracy": valid_accuracy, "test_accuracy": test_acc, "params": params},
    )
    writer.add_text("select/arch", space.format(result.arch))
    writer.add_scalar("final/test_accuracy", test_acc)
    writer.close()
    baselines, baselines_started = None, time.perf_counter()
    if cfg.baselines.enabled:
        def test_accuracy(arch: Arch) -> float:
            evaluator.prepare(arch)
            path = attach_data(extract(space, supernet, arch).eval(), setup)
            return accuracy(path, data.prepared(data.test, setup.device), setup.evaluator.batch_size)

        baselines = measure_baselines(setup, result, evaluator, trained=True, test_accuracy=test_accuracy)

    files = {
        "config": run_dir / "config.yaml",
        "checkpoint": run_dir / "checkpoint.pt",
        "tensorboard": run_dir / "tensorboard",
        "selection": run_dir / "selection.json",
        "arch": paths.arch_json,
        "state_dict": paths.state_dict,
        "report": run_dir / "report.md",
        "outcome": run_dir / "outcome.json",
    }
    if paths.program is not None:
        files["program"] = paths.program
    outcome = SearchOutcome(run_dir, result.arch, space.format(result.arch), valid_accuracy, test_acc, params, max_diff,
                            files, score=result.score, baselines=baselines.rows if baselines else [])
    timings = {"train": train_seconds, "select": select_seconds, "baselines": time.perf_counter() - baselines_started,
               "total": time.perf_counter() - started}
    (run_dir / "report.md").write_text(
        render_report(cfg, space, data.summary(), history, result, outcome, timings, setup.constraints, baselines,
                      trainer.sampler.describe_schedule())
    )
    summary = {
        "space": cfg.space.name, "dataset": cfg.dataset.name, "sampler": cfg.sampler.name, "selector": cfg.selector.name,
        "seed": cfg.seed, "arch": outcome.native, "valid_accuracy": outcome.valid_accuracy,
        "test_accuracy": outcome.test_accuracy, "params": outcome.params, "archs_evaluated": len(result.history),
        "seconds": timings,
        **({"baselines": baselines.to_dict()} if baselines else {}),
        **({"predictor": evaluator.describe()} if isinstance(evaluator, PredictorEvaluator) else {}),
    }
    latency = latency_source(setup.constraints)
    if latency is not None:
        summary["predicted_latency_ms"] = latency.latency(result.arch)
    (run_dir / "outcome.json").write_text(json.dumps(summary, indent=1) + "\n")  # read by `nasframe gather`
    return outcome


def select_or_evaluate_given(setup: SearchSetup, evaluator: Any,
                             inputs: SelectorInputs = SelectorInputs()) -> SelectionResult:
    """The selector's result with ``evaluator``; or, when the run names an arch (``arch=...``), that arch scored alone.
    ``inputs`` are what a selector may read besides the evaluator (:class:`SelectorInputs`)."""
    if setup.fixed_arch is None:
        proxy_settings = setup.selector.proxy_config()
        if proxy_settings is not None:  # a selector that reads zero-cost proxies (predictor_guided): computed here
            proxies = make_zero_cost_evaluator(setup, proxy_settings, config_key="selector")
            inputs = dataclasses.replace(inputs, proxies=proxies)
        return setup.selector.select(setup.space, evaluator, constraints=setup.constraints, seed=setup.cfg.seed,
                                     inputs=inputs)
    score = evaluator(setup.fixed_arch)
    log.info("arch given: %s", setup.space.format(setup.fixed_arch))
    return SelectionResult(setup.fixed_arch, score, [Evaluation(setup.fixed_arch, score, 1)])


def write_selection(result: SelectionResult, space: SearchSpace, run_dir: Path, writer: Any) -> None:
    """``selection.json`` and the selection's TensorBoard scalars (each query's score, the best so far)."""
    for record, best in zip(result.history, result.best_so_far()):
        writer.add_scalar("select/score", record.score, record.query)
        writer.add_scalar("select/best_score", best, record.query)
    (run_dir / "selection.json").write_text(result.to_json(space) + "\n")


def _pareto_section(result: SelectionResult) -> list[str]:
    front = result.details.get("pareto_front")
    if not front:
        return []
    table = markdown_table(["predicted latency (ms)", "valid accuracy", "arch"],
                           [[f"{p['latency_ms']:.3f}", f"{p['score']:.2f}%", f"`{p['arch']}`"] for p in front], "rrl")
    return ["## Accuracy / predicted latency Pareto front of the evaluated archs", "", table, ""]


def _recalibration(cfg: DictConfig, space: SearchSpace) -> str:
    batches = cfg.evaluator.bn_recalibration_batches
    if not batches:
        return "BN running statistics from training, no recalibration"
    if space.takes_graphs:
        return "BN recalibrated per arch on the full graph, in training mode"
    return f"BN recalibrated on {batches} x {cfg.evaluator.bn_batch_size} training images"


def render_report(
    cfg: DictConfig,
    space: SearchSpace,
    data_summary: str,
    history: list[dict[str, float]],
    result: SelectionResult,
    outcome: SearchOutcome,
    timings: dict[str, float],
    constraints: Sequence[Constraint] = (),
    baselines: SearchBaselines | None = None,
    schedule: str = "",
) -> str:
    """The run's report.md; ``schedule`` is the sampler's own training schedule (phases), if any."""
    last = history[-1] if history else None
    latency = latency_source(constraints)
    lines = [
        "# nasframe search report",
        "",
        f"- data: {data_summary}",
        f"- space: `{json.dumps(space.describe()['config'])}` ({cfg.space.name}, {space.size:,} archs)",
        f"- sampler: {cfg.sampler.name}; selector: {cfg.selector.name}; seed {cfg.seed}; torch {torch.__version__}",
        f"- supernet training: {cfg.trainer.epochs} epochs, batch {cfg.trainer.batch_size}, {cfg.trainer.optimizer} "
        + (f"in {schedule}" if schedule else f"lr {cfg.trainer.lr} cosine")
        + (f"; last epoch loss {last['loss']:.4f}, train accuracy {last['accuracy']:.2f}%" if last else ""),
        f"- selection: {len(result.history)} archs evaluated with inherited weights on the valid split"
        f" ({_recalibration(cfg, space)})",
        *([f"- constraints: {'; '.join(c.describe() for c in constraints)}"] if constraints else []),
        "",
        "## Selected architecture",
        "",
        f"    {outcome.native}",
        "",
        markdown_table(["metric", "value"], [
            ["valid accuracy, supernet weights", f"{outcome.valid_accuracy:.2f}%"],
            *([[f"predicted latency ({latency.predictor.key.device})", f"{latency.latency(result.arch):.3f} ms"]]
              if latency is not None else []),
            ["test accuracy, exported subnet (inherited weights, no retraining)", f"{outcome.test_accuracy:.2f}%"],
            ["parameters", f"{outcome.params:,}"],
            ["max abs difference, exported subnet vs supernet path", f"{outcome.export_max_abs_diff:.3g}"],
            ["time: training / selection / baselines / total", f"{timings['train']:.1f} s / {timings['select']:.1f} s / "
             f"{timings.get('baselines', 0.0):.1f} s / {timings['total']:.1f} s"],
        ]),
        "",
        *(baseline_section(baselines, constraints) if baselines else []),
        *_pareto_section(result),
        "## Files",
        "",
        *[f"- {name}: `{path.relative_to(outcome.run_dir)}`" for name, path in outcome.files.items()],
        "",
        "Load the exported network without nasframe:",
        "",
        "    import torch",
        "    model = torch.export.load('export/subnet.pt2').module()",
        "",
    ]
    return "\n".join(lines)

"""``nasframe rank``: score archs with a trained supernet (or a training-free evaluator) and compare with a tabular
benchmark, beside the trivial baselines on the same archs (#params, FLOPs, a random ranking's expected values).

The protocol is recorded in the output: which archs (a uniform sample without replacement, fixed by
``ranking.sample_seed``, or all), which split the supernet scores on, how BatchNorm is recalibrated (how many
training images, the same ones for every arch), and which benchmark metric is the ground truth.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from nasframe.benchmarks.base import build_benchmark
from nasframe.config import RankConfig, RankingConfig, SearchConfig
from nasframe.core.registry import DATASETS, SAMPLERS, SELECTORS, SPACES
from nasframe.core.settings import settings_from
from nasframe.errors import ConfigError, DataError
from nasframe.evaluation.hybrid import HybridEvaluator
from nasframe.evaluation.learned import LearnedEvaluator
from nasframe.evaluation.ranking import (RankingReport, plot_ranking, random_ranking_expectation, rank_archs,
                                         ranking_metrics, sample_archs)
from nasframe.evaluation.score_store import ScoreStore
from nasframe.evaluation.zero_cost.evaluator import ZeroCostConfig, ZeroCostEvaluator
from nasframe.search import (SearchSetup, build_supernet, evaluator_settings, is_training_free, make_evaluator,
                             make_training_free_evaluator, make_zero_cost_evaluator, setup_search)
from nasframe.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from nasframe.training.restore import restore_supernet

log = logging.getLogger("nasframe.rank")


#: the components a run's config names through a registry: config group -> registry
RUN_COMPONENTS = {"space": SPACES, "dataset": DATASETS, "sampler": SAMPLERS, "selector": SELECTORS}


def load_run_config(run: str | Path, *, allow_import: bool = False) -> DictConfig:
    """The resolved config of a search run directory, checked against the search schema.

    The names of its components (space, data set, sampler, selector) are read from a file, so they must be registered
    or entry-point names: a ``module:attr`` path is refused without importing it, unless ``allow_import=True`` (a run
    you trust)."""
    path = Path(run).expanduser() / "config.yaml"
    if not path.is_file():
        raise DataError(f"{run} is not a search run directory (no config.yaml)")
    cfg = OmegaConf.merge(OmegaConf.structured(SearchConfig), OmegaConf.load(path))
    for group, registry in RUN_COMPONENTS.items():
        name = OmegaConf.select(cfg, f"{group}.name", default=None)
        if isinstance(name, str):
            registry.get(name, allow_import=allow_import, source=f"{path} ({group}.name)")
    return cfg


def rank_setup(cfg: DictConfig) -> tuple[SearchSetup, Path | None]:
    """The search setup a ranking scores with: a search run's (its config; ``run=``), or for a training-free
    evaluator a space and a data set given directly (``space=... dataset=...``)."""
    if (cfg.evaluator or {}).get("name") == "benchmark":
        raise ConfigError("nasframe rank: evaluator=benchmark scores archs by the benchmark's own accuracy, which "
                          "the ranking is measured against; rank with a supernet (run=...) or a training-free "
                          "evaluator (zero_cost, learned)")
    if cfg.run and (cfg.space is not None or cfg.dataset is not None):
        raise ConfigError("nasframe rank: give run=<search run dir> or space=... dataset=..., not both (a run "
                          "names its own space and data set)")
    if cfg.run:
        run_dir = Path(cfg.run).expanduser()
        search_cfg = load_run_config(run_dir)
    else:
        if cfg.space is None or cfg.dataset is None or not is_training_free(evaluator_settings(cfg.evaluator)):
            raise ConfigError("nasframe rank needs run=<search run dir> (the trained supernet to rank with), or a "
                              "training-free evaluator (zero_cost, learned) with a space and data set: "
                              "evaluator=zero_cost space=nb201 dataset=cifar10")
        run_dir = None
        search_cfg = OmegaConf.merge(OmegaConf.structured(SearchConfig), {
            "space": cfg.space, "dataset": cfg.dataset, "sampler": {"name": "uniform"}, "selector": {"name": "random"},
            "evaluator": cfg.evaluator})
    search_cfg.device, search_cfg.threads, search_cfg.resume, search_cfg.arch = cfg.device, cfg.threads, None, None
    search_cfg.evaluator = cfg.evaluator
    search_cfg.benchmark = cfg.benchmark  # the label source of evaluator=learned
    return setup_search(search_cfg), run_dir


def run_rank(cfg: RankConfig | DictConfig) -> tuple[RankingReport, Path]:
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.structured(cfg)
    ranking = settings_from(RankingConfig, cfg.ranking, "ranking")
    setup, run_dir = rank_setup(cfg)
    benchmark = build_benchmark(cfg.benchmark)
    for metric in [ranking.truth_metric, *ranking.also_against]:
        benchmark.check_metric(metric)
    if benchmark.space_name != setup.space.name:
        raise ConfigError(f"benchmark {benchmark.name} holds {benchmark.space_name} archs, the run searched {setup.space.name}")
    mismatch = data_mismatch(setup.data.name, ranking.truth_metric)
    if mismatch:
        log.warning("%s", mismatch)
    archs = sample_archs(setup.space, ranking.num_archs, ranking.sample_seed, canonical=ranking.canonical)
    kind = "distinct models (canonical forms)" if ranking.canonical else "distinct archs"
    drawn = ("canonical forms of uniformly drawn encodings, no repeats (a model weighs as its number of encodings)"
             if ranking.canonical else "uniform without replacement")
    protocol = {
        "run": str(run_dir) if run_dir else None,
        "space": setup.space.describe(),
        "archs": f"{len(archs)} {kind}, {drawn} (sample_seed={ranking.sample_seed})"
        if ranking.num_archs > 0 and len(archs) < setup.space.size else f"all {len(archs)} {kind}",
        "truth_metric": ranking.truth_metric,
        "also_against": list(ranking.also_against),
        "benchmark": OmegaConf.to_container(cfg.benchmark, resolve=True),
        "device": str(setup.device),
        "torch": torch.__version__,
        **({"note": mismatch} if mismatch else {}),
    }
    out = Path(cfg.out).expanduser() if cfg.out else (run_dir / "ranking" if run_dir else Path.cwd())
    if ranking.checkpoints not in ("last", "kept"):
        raise ConfigError(f"ranking.checkpoints: {ranking.checkpoints!r} is not one of last, kept")
    if ranking.checkpoints == "kept":
        if run_dir is None or is_training_free(setup.evaluator):
            raise ConfigError("ranking.checkpoints=kept ranks a run's supernet at each kept checkpoint: give run= and "
                              "the supernet evaluator")
        from nasframe.rank_curve import rank_over_training

        return rank_over_training(setup, run_dir, archs, protocol, out, ranking, benchmark)
    if is_training_free(setup.evaluator):
        score, store, archs = training_free_scorer(setup, archs, protocol, out, ranking)
    else:
        score, store = supernet_scorer(setup, run_dir / CHECKPOINT_NAME, archs, protocol, out, ranking)
    log.info("scoring %d archs on %s", len(archs) - (len(store) if store else 0), setup.device)
    report = rank_archs(
        setup.space, score, lambda native: benchmark.metric(native, ranking.truth_metric), archs, protocol,
        progress=True,
        other_truths={m: (lambda native, m=m: benchmark.metric(native, m)) for m in ranking.also_against},
        store=store, stop_after_s=ranking.stop_after_s,
    )
    report.extra["baselines"] = rank_baselines(setup, report, out)
    title = f"{setup.space.name} {'zero-cost' if is_training_free(setup.evaluator) else 'supernet'} vs {benchmark.name} {ranking.truth_metric}"
    write_ranking(report, out, title=title)
    return report, out


def data_mismatch(data_name: str, truth_metric: str) -> str | None:
    """One line saying why a ranking does not measure the benchmark, when the archs are scored on another data set
    than the one the truth metric was measured on (e.g. a digits run against NAS-Bench-201's ``cifar10_test``)."""
    dataset = truth_metric.rsplit("_", 1)[0].lower()
    if data_name.lower().replace("-", "").startswith(dataset.replace("-", "")):
        return None
    return (f"the archs are scored on {data_name}, the truth is {truth_metric}: this ranking measures how the "
            f"{data_name} scores transfer to {dataset}, not the benchmark's own ranking quality")


def supernet_scorer(setup: SearchSetup, checkpoint: Path, archs: list, protocol: dict[str, Any], out: Path,
                    ranking: RankingConfig) -> tuple[Any, ScoreStore]:
    """The evaluator of the supernet in ``checkpoint``, with a score store in ``out`` that keeps its scores as they
    come."""
    state = load_checkpoint(checkpoint, map_location=setup.device)
    supernet = restore_supernet(build_supernet(setup), setup.sampler, state,
                                json.dumps(setup.space.describe(), sort_keys=True), source=str(checkpoint))
    evaluator = make_evaluator(setup, supernet, ranking.held_out)
    if isinstance(evaluator, HybridEvaluator):
        evaluator.set_reference(archs)  # AZ-NAS's protocol: ranks among the ranked archs
    protocol.update({
        "supernet_epochs": int(state["epoch"]),
        "score": f"top-1 accuracy (%) on the {ranking.held_out} split ({len(evaluator.held_out)} "
                 f"{'nodes' if setup.data.is_graph else 'images'}) with inherited weights",
        "bn": ("recalibrated per arch on the full graph (one forward in training mode)" if setup.data.is_graph else
               f"recalibrated per arch on {sum(len(b) for b in evaluator.bn_batches)} training images (the same for every arch)")
        if evaluator.bn_batches else "running statistics from training (no recalibration)",
        "evaluator": asdict(setup.evaluator),
        **({"hybrid": evaluator.describe()} if isinstance(evaluator, HybridEvaluator) else {}),
    })
    store = ScoreStore(out / SCORES_NAME, score_fingerprint(protocol, state, setup.space, archs))
    return evaluator, store


def training_free_scorer(setup: SearchSetup, archs: list, protocol: dict[str, Any], out: Path,
                         ranking: RankingConfig) -> tuple[Any, None, list]:
    """The training-free evaluator and the archs it ranks. Proxy values are kept in ``proxy_values.jsonl`` (unless
    the config names another file), so a stopped ranking reruns from where it was. A combination is ranked among
    the ranked archs themselves (AZ-NAS's protocol); a learned evaluator's labelled archs and their isomorphs are
    left out of the ranking (it never scores what it was fitted on)."""
    if ranking.stop_after_s > 0:
        raise ConfigError("ranking.stop_after_s slices supernet scoring; a training-free ranking keeps every proxy "
                          "value in proxy_values.jsonl as it comes: stop it at any time and rerun the same command")
    if setup.evaluator.cache_file is None:
        setup.evaluator.cache_file = str(out / "proxy_values.jsonl")
    evaluator = make_training_free_evaluator(setup, population=archs)
    if isinstance(evaluator, LearnedEvaluator):
        seen = set(evaluator.labelled)
        kept = [a for a in archs if setup.space.canonical(a) not in seen]
        protocol["archs"] += (f"; {len(archs) - len(kept)} of them left out: the {len(seen)} labelled archs "
                              f"({setup.evaluator.label_metric}) and their isomorphs")
        archs = kept
    elif evaluator.combined:
        evaluator.set_reference(archs)
    protocol.update({"score": evaluator.summary() + " of the untrained networks", "evaluator": evaluator.describe()})
    return evaluator, None, archs


def rank_baselines(setup: SearchSetup, report: RankingReport, out: Path) -> dict[str, dict[str, float]]:
    """The trivial rankings of the ranked archs (``report``): see :func:`trivial_baselines`; the counts are kept in
    ``baseline_values.jsonl``."""
    counter = make_zero_cost_evaluator(setup, ZeroCostConfig(proxy=["params", "flops"],
                                                             cache_file=str(out / "baseline_values.jsonl")))
    return trivial_baselines(counter, report.archs, report.truth)


def trivial_baselines(counter: ZeroCostEvaluator, natives: list[str], truth: list[float]) -> dict[str, dict[str, float]]:
    """The trivial rankings of archs (native strings) with true accuracies ``truth``, with the metrics of
    :func:`ranking_metrics`: each structural proxy of ``counter`` (#params, FLOPs: multiply-accumulates of one
    forward pass) and a random ranking's expected values."""
    values = [counter.component_values(counter.space.parse(native)) for native in natives]
    baselines = {name: ranking_metrics([v[name] for v in values], truth) for name in counter.components}
    baselines["random (expected)"] = random_ranking_expectation(truth)
    return baselines


#: the scores of a ranking as they come (one JSON line per arch), in the ranking's output folder
SCORES_NAME = "scores.jsonl"


def score_fingerprint(protocol: dict[str, Any], state: dict[str, Any], space: Any, archs: list) -> dict[str, Any]:
    """What makes stored scores comparable with new ones: the supernet's weights (a digest), how archs are scored
    (split, BN recalibration, evaluator settings, device type) and which archs (a digest of the sample)."""
    weights = hashlib.sha256()
    for key in sorted(state["model"]):
        tensor = state["model"][key]
        weights.update(key.encode())
        weights.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    sample = hashlib.sha256("\n".join(space.format(a) for a in archs).encode())
    return {"weights": weights.hexdigest(), "sample": sample.hexdigest(), "device": protocol["device"].split(":")[0],
            **{k: protocol[k] for k in ("space", "supernet_epochs", "score", "bn", "evaluator")}}


def write_ranking(report: RankingReport, out: Path, title: str = "") -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "ranking.json").write_text(json.dumps(report.to_dict(), indent=1) + "\n")
    plot_ranking(report, str(out / "ranking.png"), title=title)

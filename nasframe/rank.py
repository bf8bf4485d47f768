"""``nasframe rank``: score archs with a trained supernet and compare with a tabular benchmark.

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
from nasframe.core.settings import settings_from
from nasframe.errors import ConfigError, DataError
from nasframe.evaluation.ranking import RankingReport, plot_ranking, rank_archs, sample_archs
from nasframe.evaluation.score_store import ScoreStore
from nasframe.search import build_supernet, make_evaluator, setup_search
from nasframe.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from nasframe.training.trainer import restore_supernet

log = logging.getLogger("nasframe.rank")


def load_run_config(run: str | Path) -> DictConfig:
    """The resolved config of a search run directory, checked against the search schema."""
    path = Path(run).expanduser() / "config.yaml"
    if not path.is_file():
        raise DataError(f"{run} is not a search run directory (no config.yaml)")
    return OmegaConf.merge(OmegaConf.structured(SearchConfig), OmegaConf.load(path))


def run_rank(cfg: RankConfig | DictConfig) -> tuple[RankingReport, Path]:
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.structured(cfg)
    ranking = settings_from(RankingConfig, cfg.ranking, "ranking")
    run_dir = Path(cfg.run).expanduser()
    search_cfg = load_run_config(run_dir)
    search_cfg.device, search_cfg.threads, search_cfg.resume, search_cfg.arch = cfg.device, cfg.threads, None, None
    search_cfg.evaluator = cfg.evaluator
    setup = setup_search(search_cfg)
    benchmark = build_benchmark(cfg.benchmark)
    for metric in [ranking.truth_metric, *ranking.also_against]:
        benchmark.check_metric(metric)
    if benchmark.space_name != setup.space.name:
        raise ConfigError(f"benchmark {benchmark.name} holds {benchmark.space_name} archs, the run searched {setup.space.name}")
    state = load_checkpoint(run_dir / CHECKPOINT_NAME, map_location=setup.device)
    supernet = restore_supernet(build_supernet(setup), setup.sampler, state,
                                json.dumps(setup.space.describe(), sort_keys=True), source=str(run_dir))
    evaluator = make_evaluator(setup, supernet, ranking.held_out)
    archs = sample_archs(setup.space, ranking.num_archs, ranking.sample_seed, canonical=ranking.canonical)
    kind = "distinct models (canonical forms)" if ranking.canonical else "distinct archs"
    drawn = ("canonical forms of uniformly drawn encodings, no repeats (a model weighs as its number of encodings)"
             if ranking.canonical else "uniform without replacement")
    protocol = {
        "run": str(run_dir),
        "space": setup.space.describe(),
        "supernet_epochs": int(state["epoch"]),
        "archs": f"{len(archs)} {kind}, {drawn} (sample_seed={ranking.sample_seed})"
        if ranking.num_archs > 0 and len(archs) < setup.space.size else f"all {len(archs)} {kind}",
        "score": f"top-1 accuracy (%) on the {ranking.held_out} split ({len(evaluator.held_out)} "
                 f"{'nodes' if setup.data.is_graph else 'images'}) with inherited weights",
        "bn": ("recalibrated per arch on the full graph (one forward in training mode)" if setup.data.is_graph else
               f"recalibrated per arch on {sum(len(b) for b in evaluator.bn_batches)} training images (the same for every arch)")
        if evaluator.bn_batches else "running statistics from training (no recalibration)",
        "evaluator": asdict(setup.evaluator),
        "truth_metric": ranking.truth_metric,
        "also_against": list(ranking.also_against),
        "benchmark": OmegaConf.to_container(cfg.benchmark, resolve=True),
        "device": str(setup.device),
        "torch": torch.__version__,
    }
    out = Path(cfg.out).expanduser() if cfg.out else run_dir / "ranking"
    store = ScoreStore(out / SCORES_NAME, score_fingerprint(protocol, state, setup.space, archs))
    log.info("scoring %d archs on %s", len(archs) - len(store), setup.device)  # the store holds only this sample
    report = rank_archs(
        setup.space, evaluator, lambda native: benchmark.metric(native, ranking.truth_metric), archs, protocol,
        progress=True,
        other_truths={m: (lambda native, m=m: benchmark.metric(native, m)) for m in ranking.also_against},
        store=store, stop_after_s=ranking.stop_after_s,
    )
    write_ranking(report, out, title=f"{setup.space.name} supernet vs {benchmark.name} {ranking.truth_metric}")
    return report, out


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

"""A search without training: select an arch with a training-free evaluator (``evaluator=zero_cost``,
``evaluator=learned``: proxies fitted on labelled archs, or ``evaluator=benchmark``: a table's recorded accuracy).

No supernet is built or trained. The selector (evolutionary or random) scores archs with zero-cost proxies of
their untrained networks; the run writes the selection, the arch (``export/arch.json``: no weights, since
none were trained -- train the arch from scratch before use), a report and ``outcome.json``. With
``benchmark=...`` the report gives the true accuracy of the pick and of its baselines.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from nasframe.evaluation.benchmark_evaluator import BenchmarkEvaluator
from nasframe.export.save import arch_record
from nasframe.markdown import markdown_table
from nasframe.search import (SearchOutcome, SearchSetup, make_training_free_evaluator, select_or_evaluate_given,
                             write_selection)
from nasframe.search_baselines import baseline_section, measure_baselines

log = logging.getLogger("nasframe.search")


def run_training_free_search(setup: SearchSetup, run_dir: Path, started: float) -> SearchOutcome:
    cfg, space, data = setup.cfg, setup.space, setup.data
    if setup.distributed.enabled:
        log.warning("evaluator=zero_cost trains nothing: the search runs in this process alone")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    log.info("data    %s", data.summary())
    log.info("space   %s (%s archs), training-free evaluator %s, selector %s", space.name, f"{space.size:,}",
             cfg.evaluator.name, cfg.selector.name)
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run_dir / "tensorboard"))
    evaluator = make_training_free_evaluator(setup)
    select_started = time.perf_counter()
    result = select_or_evaluate_given(setup, evaluator)
    select_seconds = time.perf_counter() - select_started
    result.details["evaluator"] = evaluator.describe()
    write_selection(result, space, run_dir, writer)
    native = space.format(result.arch)
    log.info("selected %s  (score %.4g, %d archs evaluated in %.1fs)", native, result.score, len(result.history),
             select_seconds)

    # a benchmark's scores are accuracies of trained archs (the table's); the proxies' are not
    trained = isinstance(evaluator, BenchmarkEvaluator)
    baselines = measure_baselines(setup, result, evaluator, trained=trained) if cfg.baselines.enabled else None
    params = space.count_params(result.arch)
    export_dir = run_dir / "export"
    export_dir.mkdir(parents=True, exist_ok=True)
    arch_json = export_dir / "arch.json"
    arch_json.write_text(json.dumps(arch_record(space, result.arch, score=result.score, params=params, trained=False,
                                                evaluator=evaluator.describe()), indent=2) + "\n")
    writer.add_text("select/arch", native)
    writer.close()
    files = {"config": run_dir / "config.yaml", "tensorboard": run_dir / "tensorboard",
             "selection": run_dir / "selection.json", "arch": arch_json, "report": run_dir / "report.md",
             "outcome": run_dir / "outcome.json"}
    outcome = SearchOutcome(run_dir, result.arch, native, None, None, params, 0.0, files, score=result.score,
                            trained=False, baselines=baselines.rows if baselines else [],
                            score_meaning=(f"{evaluator.metric} recorded by {evaluator.benchmark.name}" if trained
                                           else "training-free proxy"))
    timings = {"train": 0.0, "select": select_seconds, "total": time.perf_counter() - started}
    lines = [
        "# nasframe search report (training-free)",
        "",
        f"- data: {data.summary()}" + (f" (proxies read {_inputs(evaluator)})" if evaluator.components else ""),
        f"- space: `{json.dumps(space.describe()['config'])}` ({cfg.space.name}, {space.size:,} archs)",
        f"- evaluator: {evaluator.summary()}; torch {torch.__version__}",
        f"- selector: {cfg.selector.name}; seed {cfg.seed}; {len(result.history)} archs evaluated"
        + (f"; it chose what to evaluate with a surrogate over the proxies {', '.join(result.details['features'])}"
           if result.details.get("features") else ""),
        *([f"- constraints: {'; '.join(c.describe() for c in setup.constraints)}"] if setup.constraints else []),
        "- no network was trained: train the selected arch from scratch before using it",
        "",
        "## Selected architecture",
        "",
        f"    {native}",
        "",
        markdown_table(["metric", "value"], [
            ["score" if trained else "proxy score", f"{result.score:.6g}"],
            ["parameters", f"{params:,}"],
            ["time: selection / total", f"{select_seconds:.1f} s / {timings['total']:.1f} s"],
        ]),
        "",
        *(baseline_section(baselines, setup.constraints) if baselines else []),
        "## Evaluator settings",
        "",
        "```json",
        json.dumps(evaluator.describe(), indent=1),
        "```",
        "",
    ]
    (run_dir / "report.md").write_text("\n".join(lines))
    summary = {"space": cfg.space.name, "dataset": cfg.dataset.name, "evaluator": cfg.evaluator.name,
               "proxy": evaluator.components, "selector": cfg.selector.name, "seed": cfg.seed, "arch": native,
               "score": result.score, "params": params, "archs_evaluated": len(result.history), "seconds": timings,
               **({"baselines": baselines.to_dict()} if baselines else {})}
    (run_dir / "outcome.json").write_text(json.dumps(summary, indent=1) + "\n")
    return outcome


def _inputs(evaluator) -> str:
    """What data each proxy reads, e.g. ``synflow: no data; snip: 64 real training examples``."""
    described = []
    for name, s in evaluator.settings.items():
        what = "no data" if s.input == "none" else f"{s.batches} x {s.batch_size} {s.input} examples"
        described.append(f"{name}: {what}")
    return "; ".join(described)

"""Plot the accuracy / predicted-latency trade-off of a search run made with ``selector.objective=pareto``.

Reads ``<run>/selection.json`` (every evaluated arch and the Pareto front) and the latency table the run used
(``constraints.latency_table`` in ``<run>/config.yaml``) to put each evaluated arch at its predicted latency, and
writes ``<out>.png`` (all evaluated archs, the front as a step line, the selected arch, the budget if any) and
``<out>.md`` (the front as a table, with the run's settings).

    python scripts/plot_pareto.py runs/mobilenet_pareto --out results/pareto_mobilenet_cifar10_cpu
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from nasframe.core.registry import SPACES
from nasframe.data.base import build_dataset
from nasframe.errors import NasframeError
from nasframe.markdown import markdown_table
from nasframe.rank import load_run_config
from nasframe.selection.constraints import load_latency_budget


def load_run(run: Path) -> tuple[dict, object, object, object]:
    selection_path, config_path = run / "selection.json", run / "config.yaml"
    for path in (selection_path, config_path):
        if not path.is_file():
            raise NasframeError(f"{path} not found: is {run} a finished search run?")
    selection = json.loads(selection_path.read_text())
    if "pareto_front" not in selection.get("details", {}):
        raise NasframeError(f"{selection_path} has no Pareto front: run the search with selector.objective=pareto")
    cfg = load_run_config(run)  # names read from the run's file: registered ones only
    data = build_dataset(cfg.dataset)
    space = SPACES.build(cfg.space, "space", data=data.spec)
    budget = load_latency_budget(space, cfg.constraints.latency_table, cfg.constraints.max_latency_ms)
    return selection, space, budget, cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a search run directory (selector.objective=pareto)")
    parser.add_argument("--out", type=Path, required=True, help="output path without suffix")
    args = parser.parse_args()
    selection, space, budget, cfg = load_run(args.run)
    archs = [space.parse(r["arch"]) for r in selection["history"]]
    scores = np.array([r["score"] for r in selection["history"]])
    latency = budget.latencies(archs)
    front = selection["details"]["pareto_front"]
    chosen = space.parse(selection["native"])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.scatter(latency, scores, s=12, color="0.6", label=f"evaluated archs ({len(archs)})")
    fx, fy = [p["latency_ms"] for p in front], [p["score"] for p in front]
    ax.step(fx, fy, where="post", color="C0")
    ax.scatter(fx, fy, s=24, color="C0", label=f"Pareto front ({len(front)})", zorder=3)
    ax.scatter([budget.latency(chosen)], [selection["score"]], marker="*", s=160, color="C3", zorder=4,
               label="selected (most accurate)")
    if budget.max_ms is not None:
        ax.axvline(budget.max_ms, color="C3", linestyle="--", linewidth=1, label=f"budget {budget.max_ms:g} ms")
    ax.set_xlabel(f"predicted latency (ms) at batch {budget.predictor.key.batch_size}")
    ax.set_ylabel("valid accuracy with supernet weights (%)")
    ax.set_title(f"{cfg.space.name} on {cfg.dataset.name}: accuracy vs predicted latency\n"
                 f"{budget.predictor.key.device}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(f"{args.out}.png", dpi=130)

    lines = [
        f"# Accuracy / predicted latency Pareto front: {cfg.space.name} on {cfg.dataset.name}",
        "",
        f"- run: `{args.run}` (sampler {cfg.sampler.name}, {cfg.trainer.epochs} epochs, selector evolutionary "
        f"objective=pareto, population {cfg.selector.population_size} x {cfg.selector.generations} generations)",
        f"- latency: {budget.describe()}; table `{cfg.constraints.latency_table}`",
        f"- plot: `{args.out.name}.png`; command: `python scripts/plot_pareto.py {args.run} --out {args.out}`",
        "",
        markdown_table(["predicted latency (ms)", "valid accuracy (%)", "arch"],
                       [[f"{p['latency_ms']:.3f}", f"{p['score']:.2f}", f"`{p['arch']}`"] for p in front], "rrl"),
        "",
    ]
    Path(f"{args.out}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

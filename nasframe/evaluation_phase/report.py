"""The report of a ``nasframe train`` run: ``report.md`` and ``curves.png`` (train / valid / test accuracy)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from nasframe.markdown import markdown_table

if TYPE_CHECKING:
    from nasframe.evaluation_phase.run import TrainOutcome
    from nasframe.evaluation_phase.setup import TrainSetup


def plot_curves(history: list[dict[str, Any]], curves: list[dict[str, Any]], path: Path) -> Path:
    """Training loss, and train / valid / test accuracy per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=120)
    loss_ax.plot([h["epoch"] for h in history], [h["loss"] for h in history], label="train loss")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    acc_ax.plot([h["epoch"] for h in history], [h["accuracy"] for h in history], label="train (running)")
    for split in ("valid", "test"):
        acc_ax.plot([c["epoch"] for c in curves], [c[f"{split}_accuracy"] for c in curves], marker=".", label=split)
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("accuracy (%)")
    acc_ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def render_report(setup: TrainSetup, outcome: TrainOutcome) -> str:
    cfg, trainer, settings, s = setup.cfg, setup.trainer, setup.settings, outcome.summary
    network = ("the space's standalone network" if settings.network == "subnet" else
               f"evaluation network, {settings.layers} cells, C={settings.channels}"
               + (f", auxiliary head (weight {settings.auxiliary_weight})" if settings.auxiliary_weight else "")
               + (f", drop path up to {settings.drop_path_prob}" if settings.drop_path_prob else ""))
    macs = f"{outcome.macs:,}" if outcome.macs is not None else "not counted"
    lines = [
        "# nasframe train report",
        "",
        f"- data: {setup.data.summary()}" + (f"; cutout {settings.cutout}" if settings.cutout else ""),
        f"- space: `{json.dumps(setup.space.describe()['config'])}` ({setup.space.name})",
        f"- network: {network}; init={cfg.init}" + (f" (weights exported by `{setup.source_run}`)"
                                                      if cfg.init == "inherited" else ""),
        f"- protocol: {settings.protocol or 'none (trainer.* as given)'}; seed {cfg.seed}; torch {torch.__version__}",
        f"- training: {trainer.epochs} epochs, batch {trainer.batch_size}, {trainer.optimizer} lr {trainer.lr} "
        + ("constant, " if trainer.min_lr == trainer.lr else f"cosine to {trainer.min_lr}, ")
        + f"weight decay {trainer.weight_decay}, momentum {trainer.momentum}"
        + (" nesterov" if trainer.nesterov and trainer.optimizer == "sgd" else "")
        + (f"; distillation weight {settings.distill_weight} from the supernet's largest path"
           if settings.distill_weight else ""),
        "",
        "## Architecture",
        "",
        f"    {outcome.native}",
        "",
        markdown_table(["metric", "value"], [
            [f"valid accuracy (epoch {outcome.epoch}, {settings.select})", f"{outcome.valid_accuracy:.2f}%"],
            [f"test accuracy (epoch {outcome.epoch}, {settings.select})", f"{outcome.test_accuracy:.2f}%"],
            *([["training diverged (train.on_nonfinite=stop)", f"after epoch {s['trained_epochs']}: {s['diverged']}"]]
              if s.get("diverged") else []),
            ["valid / test accuracy after the last epoch",
             f"{s['final_valid_accuracy']:.2f}% / {s['final_test_accuracy']:.2f}%"],
            ["parameters", f"{outcome.params:,}" + (f" ({s['params_without_auxiliary']:,} without the auxiliary head)"
                                                   if s["params_without_auxiliary"] != outcome.params else "")],
            ["multiply-accumulates per forward (one image, or the whole graph)", macs],
            *([[f"predicted latency (table {settings.latency_table})", f"{setup.predicted_latency_ms:.3f} ms"]]
              if setup.predicted_latency_ms is not None else []),
            ["time: training / total", f"{s['seconds']['train']:.1f} s / {s['seconds']['total']:.1f} s"],
        ]),
        "",
        "![train, valid and test curves](curves.png)",
        "",
        "## Files",
        "",
        *[f"- {name}: `{path.relative_to(outcome.run_dir)}`" for name, path in outcome.files.items()],
        "",
        "Load the trained network without nasframe:",
        "",
        "    import torch",
        "    model = torch.export.load('export/subnet.pt2').module()",
        "",
    ]
    return "\n".join(lines)

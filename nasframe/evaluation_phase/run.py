"""``nasframe train`` as a library call: ``run_train(cfg, run_dir)`` trains a found arch standalone.

The loop is the supernet trainer's (:class:`~nasframe.training.trainer.SupernetTrainer`: optimiser, cosine
schedule, atomic resumable checkpoints, TensorBoard, progress bar, bf16 / channels_last / fused SGD / compile,
``torchrun`` data parallel) with the fixed-network method (:mod:`nasframe.evaluation_phase.method`). The run
directory is laid out like a search's: ``config.yaml``, ``train.log``, ``tensorboard/``, ``checkpoint.pt``,
``report.md`` with ``curves.png``, ``outcome.json`` (read by ``nasframe gather``) and ``export/`` (the trained
network's state dict, ``arch.json`` and a ``subnet.pt2`` that runs with plain torch).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from nasframe.core.eval_network import EvaluationNetwork
from nasframe.data.base import InMemoryLoader, TensorSplit
from nasframe.errors import NonFiniteLossError
from nasframe.evaluation.evaluator import ensure_eval
from nasframe.evaluation_phase.cutout import Cutout
from nasframe.evaluation_phase.method import FixedNetworkMethod
from nasframe.evaluation_phase.setup import TrainSetup, setup_train
from nasframe.export.save import save_export
from nasframe.training.trainer import SupernetTrainer

log = logging.getLogger("nasframe.train")


@dataclass
class TrainOutcome:
    run_dir: Path
    native: str
    valid_accuracy: float
    test_accuracy: float
    epoch: int  # the epoch whose accuracies are reported (train.select)
    params: int
    macs: int | None
    files: dict[str, Path] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def held_out_accuracies(network: torch.nn.Module, splits: dict[str, TensorSplit], batch_size: int) -> dict[str, float]:
    """Accuracy (%) on each split in eval mode; the network's mode is restored after.

    The splits are walked as one sequence in batches of ``batch_size`` that may span two splits, so a graph network
    (whose every call is one full-graph forward, :mod:`nasframe.core.graph`) scores all its node splits in one
    forward when they fit one batch, instead of one forward per split."""
    was_training = network.training
    ensure_eval(network)
    correct = {name: 0 for name in splits}
    batch: list[tuple[str, int, int]] = []
    filled = 0
    with torch.no_grad():
        for name, split in splits.items():
            start = 0
            while start < len(split):
                take = min(batch_size - filled, len(split) - start)
                batch.append((name, start, start + take))
                filled, start = filled + take, start + take
                if filled == batch_size:
                    _score_batch(network, splits, batch, correct)
                    batch, filled = [], 0
        if batch:
            _score_batch(network, splits, batch, correct)
    network.train(was_training)
    return {f"{name}_accuracy": 100.0 * correct[name] / max(len(split), 1) for name, split in splits.items()}


def _score_batch(network: torch.nn.Module, splits: dict[str, TensorSplit], batch: list[tuple[str, int, int]],
                 correct: dict[str, int]) -> None:
    """One forward over the batch's pieces ``(split, start, stop)``; each piece's hits added to its split."""
    predictions = network(torch.cat([splits[name].x[start:stop] for name, start, stop in batch])).argmax(dim=1)
    offset = 0
    for name, start, stop in batch:
        correct[name] += int((predictions[offset:offset + stop - start] == splits[name].y[start:stop]).sum())
        offset += stop - start


def count_network_macs(setup: TrainSetup, network: torch.nn.Module) -> int | None:
    """Multiply-accumulates of one forward: one image, or the whole graph (nasframe's FLOP counter)."""
    from nasframe.core.graph import bound_graph
    from nasframe.evaluation.zero_cost.flops import count_macs

    was_training = network.training
    network.eval()
    try:
        graph = bound_graph(network)
        if graph is not None:
            return count_macs(network, *graph)
        example = torch.zeros(1, *setup.space.data.input_shape, device=next(network.parameters()).device)
        return count_macs(network, example)
    except Exception as exc:  # a FLOP count is a report line, never a reason to fail a trained run
        log.warning("FLOPs not counted: %s", exc)
        return None
    finally:
        network.train(was_training)


def make_trainer(setup: TrainSetup, run_dir: Path, writer: Any) -> SupernetTrainer:
    """The supernet trainer over the fixed network, with held-out accuracies after each ``train.eval_every``."""
    data, settings, device = setup.data, setup.settings, setup.device
    transform = data.train_transform
    if settings.cutout:
        transform = Cutout(transform, settings.cutout)
    loader = InMemoryLoader(data.train.to(device), setup.trainer.batch_size, seed=setup.cfg.seed, transform=transform)
    splits = {"valid": data.prepared(data.valid, device), "test": data.prepared(data.test, device)}
    holder: dict[str, SupernetTrainer] = {}
    method = FixedNetworkMethod(
        setup.space, setup.arch, seed=setup.cfg.seed, epochs=setup.trainer.epochs,
        evaluate=lambda: held_out_accuracies(holder["trainer"].supernet, splits, settings.eval_batch_size),
        teacher=setup.teacher, auxiliary_weight=settings.auxiliary_weight, drop_path_prob=settings.drop_path_prob,
        distill_weight=settings.distill_weight, distill_temperature=settings.distill_temperature,
        eval_every=settings.eval_every,
    )
    trainer = SupernetTrainer(setup.network, method, loader, setup.trainer, run_dir=run_dir, writer=writer,
                              space_description=setup.description, distributed=setup.distributed)
    holder["trainer"] = trainer
    return trainer


def run_train(cfg: Any, run_dir: str | Path) -> TrainOutcome | None:
    """Train the arch of ``cfg`` (a :class:`~nasframe.config.TrainConfig`) into ``run_dir``. Returns ``None``
    when training stopped early (``trainer.stop_after_epoch``; resume with ``resume=<run_dir>``) and on the
    helper ranks of a ``torchrun`` job (rank 0 reports)."""
    started = time.perf_counter()
    run_dir = Path(run_dir)
    setup = setup_train(cfg, run_dir)
    ranks = setup.distributed
    if ranks.enabled:
        import torch.distributed as dist

        ranks.init(setup.device)
        if not ranks.is_main:
            logging.getLogger("nasframe").setLevel(logging.WARNING)
        shared = [str(run_dir)]
        dist.broadcast_object_list(shared, src=0)
        run_dir = Path(shared[0])
    try:
        writer = None
        if ranks.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(setup.cfg, resolve=True))
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(run_dir / "tensorboard"))
        log.info("data    %s", setup.data.summary())
        log.info("arch    %s (%s network, init=%s, protocol %s)", setup.space.format(setup.arch), setup.settings.network,
                 setup.cfg.init, setup.settings.protocol or "none")
        trainer = make_trainer(setup, run_dir, writer)
        if setup.resume_from is not None:
            trainer.resume(setup.resume_from)
        train_started = time.perf_counter()
        diverged = fit_or_stop_on_nonfinite(setup, trainer)
        train_seconds = time.perf_counter() - train_started
        if ranks.enabled:
            ranks.barrier()
    finally:
        if ranks.enabled:
            import torch.distributed as dist

            dist.destroy_process_group()
    if not ranks.is_main:
        return None
    if ranks.is_main and not (run_dir / "checkpoint.pt").exists() and diverged is None:
        trainer.save_checkpoint()
    if trainer.epoch < setup.trainer.epochs and diverged is None:
        writer.close()
        log.info("stopped after epoch %d of %d (trainer.stop_after_epoch); continue with resume=%s",
                 trainer.epoch, setup.trainer.epochs, run_dir)
        return None
    return finish(setup, trainer, run_dir, writer, started, train_seconds, diverged)


def fit_or_stop_on_nonfinite(setup: TrainSetup, trainer: SupernetTrainer) -> str | None:
    """Train; with ``train.on_nonfinite=stop`` a non-finite training loss ends training instead of failing the run,
    once at least one epoch was evaluated. Returns the error's message then (None when training ran through)."""
    try:
        trainer.fit(until_epoch=setup.trainer.stop_after_epoch)
    except NonFiniteLossError as exc:
        method: FixedNetworkMethod = trainer.sampler
        if setup.settings.on_nonfinite != "stop" or not method.curves or setup.distributed.enabled:
            raise
        log.warning("training diverged (%s); train.on_nonfinite=stop: reporting from the %d evaluated epochs before it",
                    exc, len(method.curves))
        return str(exc)
    return None


def finish(setup: TrainSetup, trainer: SupernetTrainer, run_dir: Path, writer: Any, started: float,
           train_seconds: float, diverged: str | None = None) -> TrainOutcome:
    """Export the trained network, count its size, write report.md, curves.png and outcome.json."""
    from nasframe.evaluation_phase.report import plot_curves, render_report

    space, settings, cfg = setup.space, setup.settings, setup.cfg
    network = trainer.supernet
    method: FixedNetworkMethod = trainer.sampler
    curves = method.curves
    last = curves[-1]
    chosen = max(curves, key=lambda r: r["valid_accuracy"]) if settings.select == "best_valid" else last
    params = sum(p.numel() for p in network.parameters())
    auxiliary = network.auxiliary_head if isinstance(network, EvaluationNetwork) else None
    aux_params = sum(p.numel() for p in auxiliary.parameters()) if auxiliary is not None else 0
    macs = count_network_macs(setup, network)
    native = space.format(setup.arch)
    extra = {"network": settings.network, "valid_accuracy": last["valid_accuracy"],
             "test_accuracy": last["test_accuracy"], "params": params, "trained_by": "nasframe train"}
    if settings.network == "eval":
        extra.update(channels=settings.channels, layers=settings.layers)
    paths = save_export(run_dir / "export", space, setup.arch, network.eval(), torch_export=cfg.export.torch_export,
                        extra=extra)
    network.train()
    writer.add_text("train/arch", native)
    writer.add_scalar("final/test_accuracy", chosen["test_accuracy"])
    writer.close()
    plot_curves(trainer.history, curves, run_dir / "curves.png")
    files = {"config": run_dir / "config.yaml", "checkpoint": run_dir / "checkpoint.pt",
             "tensorboard": run_dir / "tensorboard", "curves": run_dir / "curves.png",
             "arch": paths.arch_json, "state_dict": paths.state_dict,
             "report": run_dir / "report.md", "outcome": run_dir / "outcome.json"}
    if paths.program is not None:
        files["program"] = paths.program
    if not files["checkpoint"].exists():  # a run that diverged before its first checkpoint
        del files["checkpoint"]
    seconds = {"train": train_seconds, "total": time.perf_counter() - started}
    summary = {
        "command": "train", "space": space.name, "dataset": cfg.dataset.name if cfg.dataset is not None
        else setup.data.name, "protocol": settings.protocol, "init": cfg.init, "network": settings.network,
        "space_config": space.describe()["config"], "seed": cfg.seed, "arch": native, "source_run": str(setup.source_run) if setup.source_run else None,
        "epochs": setup.trainer.epochs, "select": settings.select, "selected_epoch": chosen["epoch"],
        "valid_accuracy": chosen["valid_accuracy"], "test_accuracy": chosen["test_accuracy"],
        "final_valid_accuracy": last["valid_accuracy"], "final_test_accuracy": last["test_accuracy"],
        "best_valid_accuracy": max(r["valid_accuracy"] for r in curves),
        "params": params, "params_without_auxiliary": params - aux_params, "macs": macs,
        "predicted_latency_ms": setup.predicted_latency_ms,
        "diverged": diverged, "trained_epochs": curves[-1]["epoch"] if diverged else setup.trainer.epochs,
        "curves": curves, "history": trainer.history, "seconds": seconds,
    }
    (run_dir / "outcome.json").write_text(json.dumps(summary, indent=1) + "\n")  # read by `nasframe gather`
    outcome = TrainOutcome(run_dir, native, chosen["valid_accuracy"], chosen["test_accuracy"], chosen["epoch"], params,
                           macs, files, summary)
    (run_dir / "report.md").write_text(render_report(setup, outcome))
    return outcome

"""SupernetTrainer: the loop, the optimiser, checkpoints, logging and data parallelism; it knows no method.

Each step the sampler computes the gradients (:meth:`~nasframe.sampling.base.PathSampler.train_step`: one path
by default; several, an architecture step or distillation where the method says so) and the trainer takes one
optimiser step (:meth:`SupernetTrainer.apply_step`). Gradients are set to ``None`` (not zero) before each step, so
SGD (or Adam) leaves the weights of inactive ops untouched: no momentum or weight decay moves a weight that was
not on the path, as in single-path one-shot training. In an elastic supernet a path runs slices of shared
tensors; there SGD steps only the slices that ran (:mod:`nasframe.training.active_step`, ``trainer.active_slices``).
The learning rate follows a cosine schedule per step. A checkpoint holds the model, optimiser, scheduler,
sampler and loader states and the torch RNG states, so that training resumed from it follows the same
trajectory as uninterrupted training.

Under ``torchrun`` the trainer is data parallel (:mod:`nasframe.training.distributed`): each rank trains on its
slice of the same global batch, gradients are averaged, BatchNorm normalises over the global batch, and the
result equals a single-process run with that global batch; only rank 0 writes checkpoints.
"""

from __future__ import annotations

import json
import logging
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasframe.core.modules import Supernet
from nasframe.data.base import CyclingBatches, InMemoryLoader
from nasframe.errors import CheckpointError, ConfigError
from nasframe.sampling.base import PathSampler
from nasframe.training.active_step import ActiveRegions
from nasframe.training.checkpoint import CHECKPOINT_NAME, FORMAT_VERSION, load_checkpoint, save_atomic
from nasframe.training.compile import compile_fixed_parts
from nasframe.training.config import TrainerConfig, build_optimizer, warmup_cosine
from nasframe.training.distributed import SINGLE_PROCESS, DistributedContext, set_cross_rank_batchnorm
from nasframe.training.progress import logging_through, progress_bar
from nasframe.training.restore import check_space, kept_checkpoint, restore_supernet
from nasframe.training.step import StepContext, StepResult

__all__ = ["SupernetTrainer", "TrainerConfig"]

log = logging.getLogger("nasframe.training")


class SupernetTrainer:
    """Trains a :class:`~nasframe.core.modules.Supernet` with paths from a :class:`PathSampler`."""

    def __init__(
        self,
        supernet: Supernet,
        sampler: PathSampler,
        loader: InMemoryLoader,
        config: TrainerConfig,
        *,
        run_dir: str | Path | None = None,
        writer: Any = None,
        space_description: dict[str, Any] | None = None,
        arch_loader: InMemoryLoader | None = None,
        distributed: DistributedContext = SINGLE_PROCESS,
    ) -> None:
        """``arch_loader`` gives the batches of samplers with architecture steps (``needs_arch_batches``, DARTS:
        the valid split); ``distributed`` is this process's place in a data-parallel run (``trainer.batch_size`` is
        the global batch)."""
        config.check()
        distributed.check_batch(loader.batch_size)
        if config.compile != "off" and distributed.enabled:
            raise ConfigError("trainer.compile is not supported in data-parallel training (torchrun): BatchNorm "
                              "there normalises across ranks; set trainer.compile=off")
        if sampler.needs_arch_batches and arch_loader is None:
            raise ConfigError(f"sampler '{sampler.name}' trains architecture parameters: the trainer needs an arch_loader")
        self.supernet = supernet
        self.sampler = sampler
        self.loader = loader
        self.config = config
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.writer = writer if distributed.is_main else None
        self.distributed = distributed
        self.space_description = json.dumps(space_description or {}, sort_keys=True)
        self.device = next(supernet.parameters()).device
        if config.channels_last:
            self.supernet = supernet.to(memory_format=torch.channels_last)
        if config.cudnn_benchmark and self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.compiled_parts = compile_fixed_parts(self.supernet, config.compile)
        sampler.to(self.device)
        self._make_optimizer(from_epoch=0)
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.history: list[dict[str, float]] = []
        self._epoch_start_loader_state = loader.state_dict()
        self.arch_batches = CyclingBatches(arch_loader) if arch_loader is not None else None
        self.step = StepContext(self.device, precision=config.precision, channels_last=config.channels_last,
                                check_every=config.finite_check_every, distributed=distributed,
                                arch_batches=self.arch_batches, label_smoothing=config.label_smoothing,
                                where=lambda: f"at epoch {self.epoch + 1}, step {self.step_in_epoch + 1}",
                                hint="; the last good checkpoint is kept" + (f" in {self.run_dir}" if self.run_dir else "")
                                + " (lower trainer.lr or raise trainer.grad_clip)")

    def _make_optimizer(self, from_epoch: int) -> None:
        """The optimiser over the supernet's parameters and a cosine schedule from ``from_epoch`` to the last epoch,
        or, when the sampler schedules phases, to the end of the phase holding ``from_epoch``, at the phase's
        learning rate and after its warm-up."""
        cfg = self.config
        segment = self.sampler.schedule_segment(from_epoch, cfg.epochs)
        end = cfg.epochs if segment is None else segment.end
        lr = cfg.lr if segment is None or segment.lr is None else segment.lr
        warmup = 0 if segment is None else segment.warmup_epochs
        self.optimizer = self.build_optimizer(lr)
        steps = max(1, (end - from_epoch) * len(self.loader))
        if warmup:
            self.scheduler = warmup_cosine(self.optimizer, steps, warmup * len(self.loader), cfg.min_lr)
        else:
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=steps, eta_min=cfg.min_lr)
        self._schedule_start = from_epoch

    def _start_segment_if_due(self) -> None:
        """At an epoch where the sampler's next schedule segment (phase) starts: a fresh optimiser and schedule."""
        segment = self.sampler.schedule_segment(self.epoch, self.config.epochs)
        if segment is None or segment.start != self.epoch or self._schedule_start == self.epoch:
            return
        self._make_optimizer(from_epoch=self.epoch)
        self._log_structure()

    def _log_structure(self) -> None:
        """The sampler's new structure or phase, to the log and TensorBoard."""
        text = self.sampler.describe_structure()
        log.info("epoch %d: %s", self.epoch, text)
        if self.writer is not None:
            self.writer.add_text("sampler/structure", text, self.epoch)

    def build_optimizer(self, lr: float) -> torch.optim.Optimizer:
        """A fresh optimiser over the supernet's parameters with the configured settings at learning rate ``lr``."""
        return build_optimizer(self.config, list(self.supernet.parameters()), lr, ActiveRegions(self.supernet))

    def restructure(self) -> None:
        """Let the sampler change the supernet's structure at an epoch boundary (few-shot splits)."""
        probe = lambda count: self.loader.probe_batches(count, seed=self.global_step, device=self.device)  # noqa: E731
        new = self.sampler.restructure(self.supernet, self.epoch, self.config.epochs, probe)
        if new is None:
            return
        self.supernet = new.to(self.device).train()
        # the split deep-copied the one-shot supernet, and a deep copy drops compilation: compile the copies (the
        # graphs are reused, not rebuilt: the sub-supernets' parts have the same shapes)
        self.compiled_parts = compile_fixed_parts(self.supernet, self.config.compile)
        self._make_optimizer(from_epoch=self.epoch)  # fresh optimiser and cosine schedule, as few-shot NAS does
        self._log_structure()

    # -- the step ------------------------------------------------------------------------------------
    def train_step(
        self, x: torch.Tensor, y: torch.Tensor, indices: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One training step on the global batch ``(x, y)``; returns the detached loss and the number of correct
        predictions (a multi-path step: the sum of its paths' losses and the first trained path's hits). The data
        sampler sees the step's logits of the batch's ``indices``."""
        result = self.apply_step(self.sampler, self.optimizer, x, y)
        self.scheduler.step()
        if indices is not None:
            gather = lambda local: self.distributed.gather_slices(local, len(y))  # noqa: E731
            self.loader.data_order.observe_batch(indices, result.logits, result.targets, gather)
        return result.loss, result.hits

    def apply_step(self, sampler: PathSampler, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                   y: torch.Tensor) -> StepResult:
        """``sampler``'s gradients on this rank's slice of ``(x, y)``, averaged over ranks and clipped, then one
        step of ``optimizer`` (the schedule is the caller's)."""
        optimizer.zero_grad(set_to_none=True)
        self.step.supernet = self.supernet
        regions = getattr(optimizer, "regions", None)  # an active-slice step records which slices run
        with regions.recording() if regions is not None else nullcontext():
            result = sampler.train_step(self.step, *self.step.local_input(x, y))
        self.distributed.average_gradients(self.supernet.parameters())
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.supernet.parameters(), self.config.grad_clip)
        sampler.before_update(self.supernet)
        optimizer.step()
        sampler.observe(result.trained, {"loss": result.loss})
        return result

    # -- the loop ------------------------------------------------------------------------------------
    def fit(self, until_epoch: int | None = None) -> list[dict[str, float]]:
        """Train to ``config.epochs`` (or stop after ``until_epoch``, e.g. to fit a time slot, and resume later).

        The cosine schedule runs to ``config.epochs`` (restarted when the sampler restructures the supernet, as
        a few-shot split does). Returns per-epoch ``{"epoch", "loss", "accuracy", "lr"}``.
        """
        cfg = self.config
        stop = cfg.epochs if until_epoch is None else min(until_epoch, cfg.epochs)
        progress = progress_bar(
            cfg.progress, total=cfg.epochs * len(self.loader), initial=self.global_step, desc="supernet"
        )
        self.supernet.train()
        set_cross_rank_batchnorm(self.supernet, self.distributed.enabled)
        try:
            with logging_through(progress):
                while self.epoch < stop:
                    if self.step_in_epoch == 0:
                        self.restructure()
                        self._start_segment_if_due()
                    self._train_epoch(progress)
                    self._end_epoch(save=stop == self.epoch + 1)
        finally:
            set_cross_rank_batchnorm(self.supernet, False)
            progress.close()
            if self.writer is not None:
                self.writer.flush()
        return self.history

    def _train_epoch(self, progress: Any) -> None:
        """The rest of the current epoch (all of it unless resuming mid-epoch)."""
        cfg = self.config
        self.loader.load_state_dict(self._epoch_start_loader_state)
        self._loss_sum = torch.zeros((), device=self.device)
        self._correct = torch.zeros((), dtype=torch.long, device=self.device)
        self._seen = 0
        window_loss = torch.zeros((), device=self.device)
        window_steps = 0
        for x, y, indices in self.loader.epoch(skip=self.step_in_epoch):
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            loss, hits = self.train_step(x, y, indices)
            self._loss_sum += loss * len(y)
            self._correct += hits
            self._seen += len(y)
            window_loss += loss
            window_steps += 1
            self.step_in_epoch += 1
            self.global_step += 1
            progress.update(1)
            if cfg.finite_check_every > 1 and self.global_step % cfg.finite_check_every == 0:
                self.step.raise_if_nonfinite(f"in epoch {self.epoch + 1}, by step {self.step_in_epoch}")
            if self.global_step % cfg.log_every == 0:
                mean_loss = (window_loss / window_steps).item()  # the only host sync, every log_every steps
                self._scalar("train/loss", mean_loss)
                self._scalar("train/lr", self.optimizer.param_groups[0]["lr"])
                progress.set_postfix(epoch=self.epoch + 1, loss=f"{mean_loss:.3f}")
                window_loss.zero_()
                window_steps = 0

    def _end_epoch(self, save: bool) -> None:
        cfg = self.config
        self.step.raise_if_nonfinite(f"in epoch {self.epoch + 1}")  # before anything of this epoch is saved
        self.sampler.end_epoch(self.epoch, cfg.epochs)
        self.loader.data_order.end_epoch(self.epoch, cfg.epochs)
        if self.writer is not None:
            self.sampler.log_to(self.writer, self.epoch + 1)
            self.loader.data_order.log_to(self.writer, self.epoch + 1)
        self.epoch += 1
        self.step_in_epoch = 0
        self._epoch_start_loader_state = self.loader.state_dict()
        record = {
            "epoch": self.epoch,
            "loss": (self._loss_sum / max(self._seen, 1)).item(),
            "accuracy": 100.0 * self._correct.item() / max(self._seen, 1),
            "lr": self.optimizer.param_groups[0]["lr"],
        }
        self.history.append(record)
        self._scalar("epoch/train_loss", record["loss"], self.epoch)
        self._scalar("epoch/train_accuracy", record["accuracy"], self.epoch)
        log.info(
            "epoch %d/%d  loss %.4f  train acc %.2f%%  lr %.4g",
            self.epoch, cfg.epochs, record["loss"], record["accuracy"], record["lr"],
        )
        if self.run_dir is None or not self.distributed.is_main:
            return
        periodic = save or (cfg.checkpoint_every and self.epoch % cfg.checkpoint_every == 0)
        kept = bool(cfg.keep_every) and self.epoch % cfg.keep_every == 0
        state = self.state_dict() if periodic or kept else None
        if periodic:
            save_atomic(state, self.run_dir / CHECKPOINT_NAME)
        if kept:
            save_atomic(state, kept_checkpoint(self.run_dir, self.epoch))

    def _scalar(self, tag: str, value: float, step: int | None = None) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag, value, self.global_step if step is None else step)

    # -- checkpoints ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "format": "nasframe-checkpoint",
            "format_version": FORMAT_VERSION,
            "space": self.space_description,
            "model": self.supernet.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "loader": self._epoch_start_loader_state,
            "data_order": self.loader.data_order.state_dict(),
            "arch_batches": self.arch_batches.state_dict() if self.arch_batches is not None else None,
            "schedule_start": self._schedule_start,
            "schedule": {"epochs": self.config.epochs, "steps_per_epoch": len(self.loader)},
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "history": json.dumps(self.history),
            "rng": rng,
        }

    def load_state_dict(self, state: dict[str, Any], source: str = "checkpoint") -> None:
        check_space(state, self.space_description, source)  # the most basic mismatch is reported first
        schedule = {"epochs": self.config.epochs, "steps_per_epoch": len(self.loader)}
        if state.get("schedule", schedule) != schedule:
            raise CheckpointError(
                f"{source} was trained for {state['schedule']['epochs']} epochs of {state['schedule']['steps_per_epoch']} "
                f"steps, this run has {schedule['epochs']} of {schedule['steps_per_epoch']}: resume with the same "
                "trainer.epochs, trainer.batch_size and data (the cosine schedule depends on them)"
            )
        self.supernet = restore_supernet(self.supernet, self.sampler, state, self.space_description, source)
        self.compiled_parts = compile_fixed_parts(self.supernet, self.config.compile)  # a rebuilt few-shot structure
        self._make_optimizer(from_epoch=int(state.get("schedule_start", 0)))
        if len(state["optimizer"]["param_groups"]) != len(self.optimizer.param_groups):
            raise CheckpointError(f"{source} has {len(state['optimizer']['param_groups'])} optimiser parameter groups, "
                                  f"this run {len(self.optimizer.param_groups)}: resume with the same "
                                  "trainer.decay_norm_and_bias")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.loader.data_order.load_state_dict(state.get("data_order", {}))
        if self.arch_batches is not None:
            if state.get("arch_batches") is None:
                raise CheckpointError(f"{source} has no architecture-step data state (trained with another sampler?)")
            self.arch_batches.load_state_dict(state["arch_batches"])
        self._epoch_start_loader_state = state["loader"]
        self.loader.load_state_dict(state["loader"])
        self.epoch = int(state["epoch"])
        self.step_in_epoch = int(state["step_in_epoch"])
        self.global_step = int(state["global_step"])
        self.history = json.loads(state["history"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])

    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        if path is None:
            if self.run_dir is None:
                raise CheckpointError("no checkpoint path: the trainer has no run directory")
            path = self.run_dir / CHECKPOINT_NAME
        return save_atomic(self.state_dict(), path)

    def resume(self, path: str | Path) -> None:
        """Continue from a checkpoint file or a run directory holding one."""
        state = load_checkpoint(path, map_location=self.device)
        self.load_state_dict(state, source=str(path))
        log.info("resumed from %s at epoch %d (step %d)", path, self.epoch, self.global_step)

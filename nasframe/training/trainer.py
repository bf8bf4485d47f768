"""SupernetTrainer: single-path supernet training with exact resume.

Each step draws a path from the sampler, activates it, and takes one optimiser step on the batch (a multi-path
sampler, such as the sandwich rule, gives several paths whose gradients are summed before the step). Gradients are
set to ``None`` (not zero) before each step, so SGD (or Adam) leaves the weights of inactive ops untouched: no
momentum or weight decay moves a weight that was not on the path, as in single-path one-shot training.
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
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from nasframe.core.modules import Supernet
from nasframe.data.base import CyclingBatches, InMemoryLoader
from nasframe.errors import CheckpointError, ConfigError, NonFiniteLossError
from nasframe.sampling.base import PathGroup, PathSampler
from nasframe.sampling.sandwich import soft_cross_entropy, soft_targets
from nasframe.training.checkpoint import CHECKPOINT_NAME, FORMAT_VERSION, load_checkpoint, save_atomic
from nasframe.training.compile import check_compile_mode, compile_fixed_parts
from nasframe.training.distributed import SINGLE_PROCESS, DistributedContext, set_cross_rank_batchnorm

log = logging.getLogger("nasframe.training")


@dataclass
class TrainerConfig:
    """Supernet training settings (SGD with Nesterov momentum, or Adam; cosine learning rate per step)."""

    epochs: int = 60
    optimizer: str = "sgd"  # sgd | adam (Adam with L2 weight decay, as GNNs are usually trained; momentum unused)
    batch_size: int = 64
    lr: float = 0.1
    min_lr: float = 0.0
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    grad_clip: float = 5.0  # max global grad norm; 0 disables clipping
    log_every: int = 10  # steps between TensorBoard scalars
    checkpoint_every: int = 1  # epochs between checkpoints; the last epoch is always saved
    keep_every: int = 0  # > 0: also keep every this many epochs' checkpoint as checkpoints/epoch_NNNN.pt
    # (`nasframe rank ... ranking.checkpoints=kept` ranks at each: ranking quality over training time)
    stop_after_epoch: Optional[int] = None  # stop (with a checkpoint) after this epoch; resume later
    progress: bool = True  # show a progress bar
    # -- speed options (GPU); the defaults are exact fp32 eager training --------------------------------------
    precision: str = "fp32"  # fp32 | bf16: forward and loss under bf16 autocast (weights, grads, SGD stay fp32)
    channels_last: bool = False  # NHWC memory layout for the supernet and its inputs (faster convs on tensor cores)
    sgd_impl: str = "default"  # default | foreach | fused: the optimiser's implementation (SGD or Adam)
    cudnn_benchmark: bool = False  # let cuDNN autotune convolution algorithms (CUDA only)
    finite_check_every: int = 1  # steps between host-side checks for a non-finite loss (1 = every step, exact step
    # reported; larger avoids a host sync per step on a GPU; never a checkpoint with a non-finite loss behind it)
    compile: str = "off"  # off | a torch.compile mode: compile the parts that do not change with the arch (compile.py)

    def check(self) -> None:
        if (self.epochs < 0 or self.batch_size < 1 or self.lr <= 0 or self.log_every < 1 or self.checkpoint_every < 0
                or self.keep_every < 0):
            raise ConfigError("trainer: need epochs >= 0, batch_size >= 1, lr > 0, log_every >= 1, "
                              "checkpoint_every >= 0, keep_every >= 0")
        if self.stop_after_epoch is not None and self.stop_after_epoch < 1:
            raise ConfigError("trainer.stop_after_epoch must be >= 1 (or null)")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"trainer.precision: {self.precision!r} is not one of fp32, bf16")
        if self.optimizer not in ("sgd", "adam"):
            raise ConfigError(f"trainer.optimizer: {self.optimizer!r} is not one of sgd, adam")
        if self.sgd_impl not in ("default", "foreach", "fused"):
            raise ConfigError(f"trainer.sgd_impl: {self.sgd_impl!r} is not one of default, foreach, fused")
        if self.finite_check_every < 1:
            raise ConfigError("trainer.finite_check_every must be >= 1")
        check_compile_mode(self.compile)


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
        """``arch_loader`` gives the batches of samplers with architecture steps (DARTS: the valid split);
        ``distributed`` is this process's place in a data-parallel run (``trainer.batch_size`` is the global batch)."""
        config.check()
        distributed.check_batch(loader.batch_size)
        if config.compile != "off" and distributed.enabled:
            raise ConfigError("trainer.compile is not supported in data-parallel training (torchrun): BatchNorm "
                              "there normalises across ranks; set trainer.compile=off")
        if getattr(sampler, "wants_arch_batches", False) and arch_loader is None:
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
        self._nonfinite_steps = torch.zeros((), dtype=torch.long, device=self.device)
        self._make_optimizer(from_epoch=0)
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.history: list[dict[str, float]] = []
        self._epoch_start_loader_state = loader.state_dict()
        self.arch_batches = CyclingBatches(arch_loader) if arch_loader is not None else None

    def _make_optimizer(self, from_epoch: int) -> None:
        """The optimiser over the supernet's parameters and a cosine schedule from ``from_epoch`` to the last epoch."""
        cfg = self.config
        self.optimizer = self._optimizer(cfg.lr)
        steps = max(1, (cfg.epochs - from_epoch) * len(self.loader))
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=steps, eta_min=cfg.min_lr)
        self._schedule_start = from_epoch

    def _optimizer(self, lr: float) -> torch.optim.Optimizer:
        cfg = self.config
        impl = {"foreach": {"foreach": True}, "fused": {"fused": True}}.get(cfg.sgd_impl, {})
        try:
            if cfg.optimizer == "adam":
                return torch.optim.Adam(self.supernet.parameters(), lr=lr, weight_decay=cfg.weight_decay, **impl)
            optimizer = torch.optim.SGD(self.supernet.parameters(), lr=lr, momentum=cfg.momentum,
                                        nesterov=cfg.nesterov and cfg.momentum > 0, weight_decay=cfg.weight_decay, **impl)
        except RuntimeError as exc:
            raise ConfigError(f"trainer.sgd_impl={cfg.sgd_impl} is not available here: {exc}") from None
        if cfg.sgd_impl == "fused" and cfg.momentum > 0:
            # the fused kernel needs every buffer of a step to exist, but a single-path step meets params that
            # had no step yet; a zero buffer gives the same first step (buf = momentum * 0 + grad) as none
            for p in self.supernet.parameters():
                optimizer.state[p]["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return optimizer

    def _restructure(self) -> None:
        """Let the sampler change the supernet's structure at an epoch boundary (few-shot splits)."""
        new = self.sampler.restructure(self.supernet, self.epoch, self.config.epochs, self._probe_batches)
        if new is None:
            return
        self.supernet = new.to(self.device).train()
        # the split deep-copied the one-shot supernet, and a deep copy drops compilation: compile the copies (the
        # graphs are reused, not rebuilt: the sub-supernets' parts have the same shapes)
        self.compiled_parts = compile_fixed_parts(self.supernet, self.config.compile)
        self._make_optimizer(from_epoch=self.epoch)  # fresh optimiser and cosine schedule, as few-shot NAS does
        text = self.sampler.describe_structure()
        log.info("epoch %d: %s", self.epoch, text)
        if self.writer is not None:
            self.writer.add_text("sampler/structure", text, self.epoch)

    def _probe_batches(self, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``count`` training batches (augmented like training data), fixed by the current step."""
        split, size = self.loader.split, self.loader.batch_size
        generator = torch.Generator().manual_seed(self.global_step)
        batches = []
        for b in range(count):
            idx = torch.randperm(len(split), generator=generator)[:size].to(split.x.device)
            x = split.x[idx]
            if self.loader.transform is not None:
                x = self.loader.transform(x, generator)
            batches.append((x.to(self.device), split.y[idx].to(self.device)))
        return batches

    # -- the step ------------------------------------------------------------------------------------
    def train_step(
        self, x: torch.Tensor, y: torch.Tensor, indices: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One training step; returns the detached loss and the number of correct predictions.

        A single-path sampler gives one path, trained on the batch. A multi-path sampler (``multi_path``, e.g. the
        sandwich rule) gives a :class:`~nasframe.sampling.base.PathGroup`: every path of it is trained on the batch
        in turn, the gradients summed over the paths before one optimiser step (see :meth:`_group_backward`); the
        returned loss is then the sum of the paths' losses and the hit count is the first trained path's.

        Adaptive samplers get the step's statistics: the path sampler the loss (and, if it asks, the gradient
        norm of each choice's active option), the data sampler the per-example norm of the loss gradient with
        respect to the logits, ``||softmax(z) - onehot(y)||``, for the batch's ``indices``.
        """
        ranks = self.distributed
        if self.arch_batches is not None:  # differentiable NAS: the architecture step first (DARTS)
            self.sampler.arch_step(self.supernet, *self._local(*next(self.arch_batches)),
                                   reduce_gradients=ranks.average_gradients if ranks.enabled else None)
        batch_size = len(y)
        if getattr(self.sampler, "multi_path", False):
            group = self.sampler.sample_group()
            self.optimizer.zero_grad(set_to_none=True)
            x, y = self._local_input(x, y)
            loss, logits = self._group_backward(group, x, y)
            global_loss, hits = self._global_loss(loss, (logits.argmax(dim=1) == y).sum())
            self._check_step(global_loss, f"in a group of {len(group.paths)} paths (sampler {self.sampler.name})")
            observed: Any = group
        else:
            arch = self.sampler.sample()
            self.supernet.set_path(arch)
            self.optimizer.zero_grad(set_to_none=True)
            x, y = self._local_input(x, y)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16"):
                logits = self.supernet(x)
                loss = F.cross_entropy(logits.float(), y)  # this rank's slice; the global loss is the mean over ranks
            global_loss, hits = self._global_loss(loss.detach(), (logits.detach().argmax(dim=1) == y).sum())
            self._check_step(global_loss, f"path {arch.describe() if hasattr(arch, 'describe') else dict(arch)}")
            loss.backward()
            logits, observed = logits.detach(), arch
        ranks.average_gradients(self.supernet.parameters())
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.supernet.parameters(), self.config.grad_clip)
        stats: dict[str, Any] = {"loss": global_loss}
        if self.sampler.wants_path_grad_norms:
            stats["path_grad_norms"] = self.supernet.path_grad_norms()
        self.optimizer.step()
        self.scheduler.step()
        self.sampler.observe(observed, stats)
        data_order = self.loader.data_order
        if indices is not None and data_order.wants_logit_grad_norms:
            norms = ranks.gather_slices(logit_gradient_norms(logits, y), batch_size)
            data_order.observe(indices, {"logit_grad_norm": norms})
        return global_loss, hits

    def _local_input(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's slice of the batch, in the configured memory format."""
        x, y = self._local(x, y)
        if self.config.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def _group_backward(self, group: PathGroup, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward and backward every path of ``group`` on ``(x, y)``, gradients accumulating in ``.grad``.

        Paths run in :meth:`PathGroup.order` (the teacher first). Without a teacher each path's loss is the
        cross-entropy to the labels; with one, the teacher's is, and every other path's is the soft cross-entropy
        to the teacher's detached softened predictions (in-place distillation). Each backward runs right after its
        forward, so one path's graph is alive at a time. Returns the detached sum of the losses and the first
        trained path's detached logits.
        """
        targets: torch.Tensor | None = None
        losses, first_logits = [], None
        for k in group.order():
            self.supernet.set_path(group.paths[k])
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16"):
                logits = self.supernet(x).float()
                if targets is None or k == group.teacher:
                    loss = F.cross_entropy(logits, y)
                else:
                    loss = soft_cross_entropy(logits, targets, group.temperature)
            if k == group.teacher:
                targets = soft_targets(logits, group.temperature)
            if first_logits is None:
                first_logits = logits.detach()
            loss.backward()
            losses.append(loss.detach())
        return torch.stack(losses).sum(), first_logits  # type: ignore[return-value]

    def _global_loss(self, loss: torch.Tensor, hits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss averaged and the hits summed over data-parallel ranks (one all-reduce)."""
        ranks = self.distributed
        if not ranks.enabled:
            return loss, hits
        totals = ranks.sum(torch.stack([loss, hits.to(loss.dtype)]))
        return totals[0] / ranks.world_size, totals[1].round().long()

    def _check_step(self, global_loss: torch.Tensor, path: str) -> None:
        """Count a non-finite loss; stop now if checking every step (before the optimiser step)."""
        self._nonfinite_steps += ~torch.isfinite(global_loss)
        if self.config.finite_check_every == 1:
            self._raise_if_nonfinite(f"at epoch {self.epoch + 1}, step {self.step_in_epoch + 1}, {path}")

    def _raise_if_nonfinite(self, where: str) -> None:
        """Stop the run if a step since the last check had a non-finite loss (one host sync)."""
        if int(self._nonfinite_steps):
            count = int(self._nonfinite_steps)
            self._nonfinite_steps.zero_()
            raise NonFiniteLossError(
                f"non-finite training loss {where}" + (f" ({count} steps since the last check)" if count > 1 else "")
                + "; the last good checkpoint is kept" + (f" in {self.run_dir}" if self.run_dir else "")
                + " (lower trainer.lr or raise trainer.grad_clip)"
            )

    def _local(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's slice of a global batch (the whole batch in a single process)."""
        if not self.distributed.enabled:
            return x, y
        self.distributed.check_batch(len(y))
        part = self.distributed.local_slice(len(y))
        return x[part], y[part]

    def finetune(self, steps: int, lr: float, seed: int = 0) -> float:
        """``steps`` more training steps at a constant ``lr`` with a fresh optimiser, on training batches
        drawn with ``seed`` (perturbation selection fine-tunes between decisions). Checkpoints, the schedule
        and the data sampler are left alone; returns the mean loss."""
        saved = self.optimizer, self.scheduler
        self.optimizer = self._optimizer(lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: 1.0)
        batches = CyclingBatches(InMemoryLoader(self.loader.split, self.loader.batch_size, seed=seed,
                                                transform=self.loader.transform))
        self.supernet.train()
        total = torch.zeros((), device=self.device)
        try:
            for _ in range(steps):
                x, y = next(batches)
                loss, _ = self.train_step(x.to(self.device), y.to(self.device))
                total += loss
        finally:
            self.optimizer, self.scheduler = saved
        self._raise_if_nonfinite("while fine-tuning")
        return total.item() / max(steps, 1)

    # -- the loop ------------------------------------------------------------------------------------
    def fit(self, until_epoch: int | None = None) -> list[dict[str, float]]:
        """Train to ``config.epochs`` (or stop after ``until_epoch``, e.g. to fit a time slot, and resume later).

        The cosine schedule runs to ``config.epochs`` (restarted when the sampler restructures the supernet, as
        a few-shot split does). Returns per-epoch ``{"epoch", "loss", "accuracy", "lr"}``.
        """
        cfg = self.config
        stop = cfg.epochs if until_epoch is None else min(until_epoch, cfg.epochs)
        progress = _progress_bar(
            cfg.progress, total=cfg.epochs * len(self.loader), initial=self.global_step, desc="supernet"
        )
        self.supernet.train()
        set_cross_rank_batchnorm(self.supernet, self.distributed.enabled)
        try:
            with _logging_through(progress):
                while self.epoch < stop:
                    if self.step_in_epoch == 0:
                        self._restructure()
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
                self._raise_if_nonfinite(f"in epoch {self.epoch + 1}, by step {self.step_in_epoch}")
            if self.global_step % cfg.log_every == 0:
                mean_loss = (window_loss / window_steps).item()  # the only host sync, every log_every steps
                self._scalar("train/loss", mean_loss)
                self._scalar("train/lr", self.optimizer.param_groups[0]["lr"])
                progress.set_postfix(epoch=self.epoch + 1, loss=f"{mean_loss:.3f}")
                window_loss.zero_()
                window_steps = 0

    def _end_epoch(self, save: bool) -> None:
        cfg = self.config
        self._raise_if_nonfinite(f"in epoch {self.epoch + 1}")  # before anything of this epoch is saved
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


#: the folder of a run's kept checkpoints (``trainer.keep_every``)
KEPT_DIR = "checkpoints"


def kept_checkpoint(run_dir: Path, epoch: int) -> Path:
    """Where the checkpoint of ``epoch`` is kept (``trainer.keep_every``)."""
    return Path(run_dir) / KEPT_DIR / f"epoch_{epoch:04d}.pt"


def check_space(state: dict[str, Any], space_description: str, source: str = "checkpoint") -> None:
    if state.get("space") != space_description:
        raise CheckpointError(f"{source} was written for space {state.get('space')}, but this run uses {space_description}")


def restore_supernet(supernet: nn.Module, sampler: PathSampler, state: dict[str, Any], space_description: str,
                     source: str = "checkpoint") -> nn.Module:
    """The supernet of a checkpoint: check that it was written for this space, load the sampler's state, rebuild
    the structure the sampler gave the supernet (few-shot sub-supernets), then load the weights. Returns the
    supernet to use (``supernet`` itself, or the rebuilt structure on the same device)."""
    check_space(state, space_description, source)
    sampler.load_state_dict(state["sampler"])
    rebuilt = sampler.rebuild(supernet)
    if rebuilt is not None:
        supernet = rebuilt.to(next(supernet.parameters()).device)
    try:
        supernet.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{source} does not fit this supernet: {str(exc).splitlines()[0]}") from None
    return supernet


def logit_gradient_norms(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-example ``||d CE(z_i, y_i) / d z_i|| = ||softmax(z_i) - onehot(y_i)||`` (no backward pass needed)."""
    residual = torch.softmax(logits.float(), dim=1)
    residual[torch.arange(len(targets), device=targets.device), targets] -= 1.0
    return torch.linalg.vector_norm(residual, dim=1)


def _progress_bar(enabled: bool, **kwargs: Any) -> Any:
    from tqdm.auto import tqdm

    return tqdm(disable=not enabled or not sys.stderr.isatty(), dynamic_ncols=True, leave=False, **kwargs)


def _logging_through(progress: Any) -> Any:
    """While the bar is shown, log lines are written above it instead of through it."""
    import contextlib

    from tqdm.contrib.logging import logging_redirect_tqdm

    return contextlib.nullcontext() if progress.disable else logging_redirect_tqdm()


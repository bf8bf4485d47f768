"""TrainerConfig: the supernet trainer's settings (the ``trainer`` config group)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from nasframe.errors import ConfigError
from nasframe.training.active_step import ActiveRegions, ActiveSliceSGD
from nasframe.training.compile import check_compile_mode


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
    decay_norm_and_bias: bool = True  # false: no weight decay on 1-d parameters (normalisation scales/shifts and
    # biases), as Once-for-All and most ImageNet recipes train; true: every parameter decays
    active_slices: bool = True  # elastic supernets with SGD: the step updates only the slices of each weight that
    # ran (gradient, weight decay and momentum), so weights off the path stay unchanged (active_step.py); false:
    # whole tensors, as a plain optimiser does. The step runs multi-tensor operations over the slices, so
    # sgd_impl does not apply to it
    label_smoothing: float = 0.0  # > 0: label-smoothed cross-entropy on labels (OFA: 0.1); distillation targets unchanged
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
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"trainer.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.finite_check_every < 1:
            raise ConfigError("trainer.finite_check_every must be >= 1")
        check_compile_mode(self.compile)


def weight_decay_groups(parameters: list[nn.Parameter], weight_decay: float, decay_norm_and_bias: bool) -> list[dict]:
    """Optimiser parameter groups: one group of every parameter, or (``decay_norm_and_bias=False``) the
    parameters with more than one dimension (weights of convolutions and linear layers) at ``weight_decay`` and the
    1-d ones (BatchNorm / LayerNorm scales and shifts, biases) at 0."""
    if decay_norm_and_bias:
        return [{"params": parameters}]
    decayed = [p for p in parameters if p.ndim > 1]
    undecayed = [p for p in parameters if p.ndim <= 1]
    return [group for group in ({"params": decayed}, {"params": undecayed, "weight_decay": 0.0}) if group["params"]]


def build_optimizer(cfg: TrainerConfig, parameters: list[nn.Parameter], lr: float,
                    regions: ActiveRegions | None = None) -> torch.optim.Optimizer:
    """The configured optimiser (SGD with momentum, or Adam with L2 weight decay) over ``parameters`` at ``lr``;
    with ``regions`` (the model's elastic layers) and ``cfg.active_slices``, SGD steps only the active slices."""
    impl = {"foreach": {"foreach": True}, "fused": {"fused": True}}.get(cfg.sgd_impl, {})
    groups = weight_decay_groups(parameters, cfg.weight_decay, cfg.decay_norm_and_bias)
    sgd = dict(lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd" and cfg.active_slices and regions:
        return ActiveSliceSGD(groups, regions, **sgd)
    try:
        if cfg.optimizer == "adam":
            return torch.optim.Adam(groups, lr=lr, weight_decay=cfg.weight_decay, **impl)
        optimizer = torch.optim.SGD(groups, **sgd, **impl)
    except RuntimeError as exc:
        raise ConfigError(f"trainer.sgd_impl={cfg.sgd_impl} is not available here: {exc}") from None
    if cfg.sgd_impl == "fused" and cfg.momentum > 0:
        # the fused kernel needs every buffer of a step to exist, but a single-path step meets params that
        # had no step yet; a zero buffer gives the same first step (buf = momentum * 0 + grad) as none
        for p in parameters:
            optimizer.state[p]["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return optimizer


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int,
                  min_lr: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from ``lr / warmup_steps`` to the optimiser's ``lr`` over ``warmup_steps`` steps, then cosine
    from ``lr`` to ``min_lr`` over the remaining ``total_steps - warmup_steps`` (the schedule of each
    Once-for-All phase with warm-up epochs)."""
    import math

    peak = optimizer.param_groups[0]["lr"]
    floor = min_lr / peak if peak > 0 else 0.0
    decay_steps = max(1, total_steps - warmup_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / decay_steps)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

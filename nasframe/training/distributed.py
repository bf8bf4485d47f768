"""Data-parallel supernet training across processes (``torchrun``), equal to one process with the global batch.

Every rank holds the whole supernet and draws the same global batch (the loaders and samplers are seeded
identically), trains on its own slice of it, and all ranks then average their gradients, so that each rank
takes the same SGD step a single process would take on the global batch:

* **Same path on every rank.** Samplers are seeded with the run's seed and see the same statistics on every
  rank (the loss and per-example logit-gradient norms of the *global* batch, path gradient norms of the
  averaged gradients), so their random streams stay in step without communication.
* **Gradients** are averaged with one all-reduce of a flat buffer per step. We do not wrap the supernet in
  ``DistributedDataParallel``: a single-path step leaves most parameters without a gradient, which DDP only
  allows with ``find_unused_parameters=True`` (a graph traversal per step) and then all-reduces zeros for every
  inactive op. Reducing exactly the gradients that exist is cheaper and, because every rank trains the same
  path, the set of gradients is the same on every rank.
* **BatchNorm** normalises with the statistics of the global batch (:class:`CrossRankBatchNorm2d`: per-channel
  sums, sums of squares and counts are accumulated in fp32, also under bf16 autocast, and all-reduced, with
  gradients flowing back through the all-reduce), as ``SyncBatchNorm`` does on GPUs; PyTorch's
  ``SyncBatchNorm`` refuses CPU tensors, this one works with gloo.
* **Checkpoints** are written by rank 0 only; the state they hold is global (the same on every rank), so a run
  can resume with any number of ranks, as long as the global batch size stays the same.

Augmentation is drawn for the whole global batch on every rank, then sliced: it keeps the random draws of a
single-process run and costs a few milliseconds against a training step of tens (see results/loader_*.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from nasframe.errors import ConfigError


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in a data-parallel run: ``rank`` of ``world_size`` (1 = not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> DistributedContext:
        """The context ``torchrun`` describes in ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (none: one process)."""
        try:
            world = int(os.environ.get("WORLD_SIZE", "1"))
            rank = int(os.environ.get("RANK", "0"))
            local = int(os.environ.get("LOCAL_RANK", "0"))
        except ValueError:
            raise ConfigError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (set by torchrun)") from None
        return cls(rank, world, local)

    def init(self, device: torch.device) -> None:
        """Join the process group (NCCL on CUDA, gloo on CPU) unless already joined or not distributed."""
        if not self.enabled or dist.is_initialized():
            return
        if not dist.is_available():
            raise ConfigError("this torch build has no torch.distributed: run without torchrun")
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, rank=self.rank, world_size=self.world_size)

    def device_for(self, device: torch.device) -> torch.device:
        """On CUDA, each rank of a node uses GPU ``LOCAL_RANK``."""
        if self.enabled and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def check_batch(self, batch_size: int) -> None:
        if batch_size % self.world_size:
            raise ConfigError(
                f"trainer.batch_size={batch_size} is the global batch and must divide evenly among "
                f"{self.world_size} ranks"
            )

    def local_slice(self, batch_size: int) -> slice:
        """This rank's share of a global batch of ``batch_size`` examples."""
        per_rank = batch_size // self.world_size
        return slice(self.rank * per_rank, (self.rank + 1) * per_rank)

    # -- collectives ---------------------------------------------------------------------------------
    def average_gradients(self, params: Iterable[torch.Tensor]) -> None:
        """Replace each existing ``.grad`` by its mean over ranks (one all-reduce of a flat buffer)."""
        grads = [p.grad for p in params if p.grad is not None]
        if not self.enabled or not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of ``tensor`` over ranks (a new tensor; ``tensor`` itself when not distributed)."""
        if not self.enabled:
            return tensor
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    def gather_slices(self, local: torch.Tensor, batch_size: int) -> torch.Tensor:
        """The global-batch tensor whose :meth:`local_slice` on each rank is that rank's ``local``."""
        if not self.enabled:
            return local
        full = local.new_zeros((batch_size, *local.shape[1:]))
        full[self.local_slice(batch_size)] = local
        dist.all_reduce(full)
        return full

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


SINGLE_PROCESS = DistributedContext()


class _SumOverRanks(torch.autograd.Function):
    """``y = sum over ranks of x``; each rank's gradient is the sum of all ranks' output gradients."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:
        total = x.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        total = grad.clone()
        dist.all_reduce(total)
        return total


def global_batch_statistics(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance of ``x`` (``N, C, H, W``) over the global batch (all ranks' ``x``), and
    the number of values per channel ``n``, all fp32 (fp64 for an fp64 ``x``).

    The per-rank sums, sums of squares and count are accumulated in fp32 at least, whatever ``x``'s dtype (bf16 under
    autocast: a bf16 sum keeps 8 significant bits, so the sum of a few hundred values, the count of a 17x17 map
    or a square of a value near 1 would all be rounded), then all-reduced in fp32 with gradients flowing back
    through the all-reduce. Without a process group of more than one rank the statistics are this rank's."""
    with torch.autocast(x.device.type, enabled=False):
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        count = torch.full((1,), x.numel() / x.shape[1], dtype=xf.dtype, device=x.device)
        local = torch.cat([xf.sum(dim=(0, 2, 3)), (xf * xf).sum(dim=(0, 2, 3)), count])
        stats = _SumOverRanks.apply(local) if dist.is_initialized() and dist.get_world_size() > 1 else local
        channels = x.shape[1]
        n = stats[-1]
        mean = stats[:channels] / n
        var = (stats[channels : 2 * channels] / n - mean * mean).clamp_min(0.0)
    return mean, var, n


class CrossRankBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that, in training mode, normalises with the mean and (biased) variance of the batch over all
    ranks, and updates its running statistics with them (unbiased variance, as ``BatchNorm2d``). Same parameters
    and buffers as ``BatchNorm2d``: :func:`set_cross_rank_batchnorm` switches a model's layers to it for training."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        mean, var, n = global_batch_statistics(x)
        if self.track_running_stats and self.running_mean is not None:
            self._update_running_stats(mean.detach(), var.detach() * n / (n - 1).clamp_min(1.0))
        shape = (1, x.shape[1], 1, 1)
        y = (x.to(mean.dtype) - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.to(mean.dtype).view(shape) + self.bias.to(mean.dtype).view(shape)
        return y.to(x.dtype)  # as BatchNorm2d: the input's dtype (bf16 under autocast), computed in fp32

    def _update_running_stats(self, mean: torch.Tensor, unbiased_var: torch.Tensor) -> None:
        self.num_batches_tracked.add_(1)
        momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        with torch.no_grad():
            self.running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
            self.running_var.mul_(1 - momentum).add_(unbiased_var, alpha=momentum)


def set_cross_rank_batchnorm(model: nn.Module, enabled: bool) -> None:
    """Switch every ``BatchNorm2d`` of ``model`` to :class:`CrossRankBatchNorm2d` (``enabled``) or back. The
    layers keep their parameters and buffers; only their class changes, so the trainer switches them on for
    training and off after it, and selection and export see plain ``BatchNorm2d``."""
    source, target = (nn.BatchNorm2d, CrossRankBatchNorm2d) if enabled else (CrossRankBatchNorm2d, nn.BatchNorm2d)
    if enabled:
        others = sorted({type(m).__name__ for m in model.modules()
                         if isinstance(m, nn.modules.batchnorm._BatchNorm) and type(m) not in (source, target)})
        if others:  # they would normalise per rank: a silent change of the method under data parallelism
            raise ConfigError(f"data-parallel training normalises BatchNorm over the global batch, but this model has "
                              f"{', '.join(others)} layers with no cross-rank version: train it in one process")
    for layer in model.modules():
        if type(layer) is source:
            layer.__class__ = target

"""What a sampler's training step may use: :class:`StepContext`, and what it returns: :class:`StepResult`.

The trainer knows no method. Each step it clears the gradients, hands this rank's slice of the batch to the
sampler's :meth:`~nasframe.sampling.base.PathSampler.train_step`, and then, whatever the sampler did, averages
the gradients over data-parallel ranks, clips them, lets the sampler read them (``before_update``) and takes one
optimiser step. The sampler's step does the method's work through this context: run the supernet under the
run's precision (:meth:`StepContext.forward`), train one path on the batch (:meth:`StepContext.train_path`),
draw an architecture batch (DARTS, :meth:`StepContext.next_arch_batch`) and report each loss for the run-wide
non-finite check (:meth:`StepContext.report`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from nasframe.core.modules import Mixture
from nasframe.data.base import CyclingBatches
from nasframe.errors import ConfigError, NonFiniteLossError
from nasframe.training.distributed import DistributedContext


@dataclass
class StepResult:
    """One step's outcome: the loss (averaged over ranks, detached), the number of correct predictions (summed
    over ranks), the logits and targets of this rank's slice (detached; data samplers read them), and what was
    trained (an arch, a mixture or a group of paths), handed back to the sampler's ``observe``."""

    loss: torch.Tensor
    hits: torch.Tensor
    logits: torch.Tensor
    targets: torch.Tensor
    trained: Any


class StepContext:
    """The supernet of the current step and the run's step machinery (precision, ranks, non-finite checks).

    ``supernet`` is set by the trainer before every step (a few-shot split replaces it). Non-finite losses are
    counted on the device and raised by :meth:`raise_if_nonfinite` (every step with ``check_every == 1``, else
    when the trainer asks), so a run never keeps a checkpoint with a non-finite loss behind it.
    """

    def __init__(self, device: torch.device, *, precision: str = "fp32", channels_last: bool = False,
                 check_every: int = 1, distributed: DistributedContext | None = None,
                 arch_batches: CyclingBatches | None = None, where: Callable[[], str] = lambda: "",
                 hint: str = "", label_smoothing: float = 0.0) -> None:
        self.device = device
        self.precision = precision
        self.channels_last = channels_last
        self.check_every = check_every
        self.distributed = distributed or DistributedContext()
        self.arch_batches = arch_batches
        self.where = where  # "at epoch e, step s": where the run is, for error messages
        self.hint = hint  # what the user can do about a non-finite loss
        self.label_smoothing = label_smoothing
        self.supernet: Any = None
        # distillation from a fixed teacher for the current step (set by the sampler that owns the teacher):
        # its softened predictions on this rank's batch, and the weight of the distillation term in :meth:`loss`
        self.teacher_targets: torch.Tensor | None = None
        self.distillation_weight = 0.0
        self._nonfinite_steps = torch.zeros((), dtype=torch.long, device=device)

    # -- the batch -----------------------------------------------------------------------------------
    def local(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's slice of a global batch (the whole batch in a single process)."""
        if not self.distributed.enabled:
            return x, y
        self.distributed.check_batch(len(y))
        part = self.distributed.local_slice(len(y))
        return x[part], y[part]

    def local_input(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's slice of the batch, in the configured memory format."""
        x, y = self.local(x, y)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def next_arch_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's slice of the next architecture batch (the valid split; samplers that declare
        ``needs_arch_batches``)."""
        if self.arch_batches is None:
            raise ConfigError("this sampler's step needs architecture batches, but the trainer has no arch_loader")
        return self.local(*next(self.arch_batches))

    @property
    def reduce_gradients(self) -> Callable[[Iterable[torch.Tensor]], None] | None:
        """Averages gradients over data-parallel ranks (``None`` in a single process)."""
        return self.distributed.average_gradients if self.distributed.enabled else None

    # -- forward, loss, backward ---------------------------------------------------------------------
    def autocast(self) -> torch.autocast:
        """The run's forward precision: bf16 autocast when ``precision=bf16``, else a no-op."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The supernet's logits on ``x`` in fp32 (the forward under :meth:`autocast`)."""
        with self.autocast():
            return self.supernet(x).float()

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training loss on labels: cross-entropy, label-smoothed by ``trainer.label_smoothing`` ("Rethinking
        the Inception Architecture for Computer Vision", Szegedy et al., CVPR 2016: the target puts ``1 - eps`` on
        the label and spreads ``eps`` uniformly over all classes). While a fixed teacher's targets are set
        (:meth:`distilling`), plus ``weight`` times the soft cross-entropy to them (Once-for-All's
        ``kd_ratio * KD + label-smoothed CE``)."""
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        if self.teacher_targets is not None:
            loss = loss + self.distillation_weight * -(self.teacher_targets * F.log_softmax(logits, dim=1)).sum(1).mean()
        return loss

    @contextmanager
    def distilling(self, teacher_logits: torch.Tensor, weight: float) -> Iterator[None]:
        """Within the block, :meth:`loss` adds ``weight`` times the soft cross-entropy to
        ``softmax(teacher_logits)`` ("Distilling the Knowledge in a Neural Network", Hinton et al., at T = 1)."""
        self.teacher_targets, self.distillation_weight = torch.softmax(teacher_logits.detach().float(), dim=1), weight
        try:
            yield
        finally:
            self.teacher_targets, self.distillation_weight = None, 0.0

    def train_path(self, trained: Any, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        """The loss of the active path on ``(x, y)``, checked and back-propagated (gradients accumulate)."""
        logits = self.forward(x)
        loss = self.loss(logits, y)  # this rank's slice; the global loss is the mean over ranks
        result = self.report(loss.detach(), logits.detach(), y, trained)
        loss.backward()
        return result

    def report(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, trained: Any) -> StepResult:
        """The step's result from this rank's detached ``loss`` and ``logits``: the loss averaged and the hits
        summed over ranks (one all-reduce), the loss counted if non-finite (raised now when checking every step,
        before any optimiser step)."""
        hits = (logits.argmax(dim=1) == y).sum()
        if self.distributed.enabled:
            totals = self.distributed.sum(torch.stack([loss, hits.to(loss.dtype)]))
            loss, hits = totals[0] / self.distributed.world_size, totals[1].round().long()
        self._nonfinite_steps += ~torch.isfinite(loss)
        if self.check_every == 1:
            self.raise_if_nonfinite(f"{self.where()}, {describe(trained)}")
        return StepResult(loss, hits, logits, y, trained)

    def raise_if_nonfinite(self, where: str) -> None:
        """Stop the run if a step since the last check had a non-finite loss (one host sync)."""
        count = int(self._nonfinite_steps)
        if count:
            self._nonfinite_steps.zero_()
            raise NonFiniteLossError(f"non-finite training loss {where}"
                                     + (f" ({count} steps since the last check)" if count > 1 else "") + self.hint)


def describe(trained: Any) -> str:
    """A path, mixture or group of paths for an error message."""
    if isinstance(trained, Mixture):
        return f"path {trained.describe()}"
    return f"path {dict(trained)}" if isinstance(trained, Mapping) else str(trained)

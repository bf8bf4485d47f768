"""Several paths in one optimiser step: :class:`PathGroup` and :func:`train_group`.

Multi-path methods (the sandwich rule, FairNAS) train several archs on the same batch per step: each path's
forward and backward run in turn, so one path's graph is alive at a time, and the gradients accumulate in
``.grad`` until the trainer's single optimiser step. With a teacher (in-place distillation, "Universally
Slimmable Networks and Improved Training Techniques", Yu & Huang) the teacher path trains on the labels first and
every other path on the soft cross-entropy to the teacher's detached softened predictions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from nasframe.core.arch import Arch
from nasframe.errors import ConfigError

if TYPE_CHECKING:  # the training package imports the samplers
    from nasframe.training.step import StepContext, StepResult


@dataclass(frozen=True)
class PathGroup:
    """The archs of one multi-path training step, trained in turn (see :meth:`order`), with their gradients summed
    before one optimiser step.

    With a ``teacher`` (an index into ``paths``), that path is trained first, on the labels, and every other path
    on the soft cross-entropy to the teacher's detached softened predictions ``softmax(z_teacher / temperature)``
    (in-place distillation); without one, every path is trained on the labels.
    """

    paths: tuple[Arch, ...]
    teacher: int | None = None
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if not self.paths:
            raise ConfigError("a path group needs at least one path")
        if self.teacher is not None and not 0 <= self.teacher < len(self.paths):
            raise ConfigError(f"path group: teacher index {self.teacher} is not one of its {len(self.paths)} paths")
        if self.temperature <= 0:
            raise ConfigError(f"path group: the distillation temperature must be > 0, got {self.temperature}")

    def order(self) -> list[int]:
        """The indices of the paths in training order: the teacher first (its predictions are the targets)."""
        rest = [k for k in range(len(self.paths)) if k != self.teacher]
        return rest if self.teacher is None else [self.teacher, *rest]

    def __str__(self) -> str:
        return f"a group of {len(self.paths)} paths"


def soft_cross_entropy(logits: torch.Tensor, soft_targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``T^2 * mean_i sum_c -soft_targets[i, c] * log_softmax(logits[i] / T)_c`` (targets already softened)."""
    log_probs = F.log_softmax(logits / temperature, dim=1)
    return -(soft_targets * log_probs).sum(dim=1).mean() * temperature**2


def soft_targets(teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The distillation targets: ``softmax(teacher_logits / T)``, detached from the teacher's graph."""
    return torch.softmax(teacher_logits.detach() / temperature, dim=1)


def group_backward(step: StepContext, group: PathGroup, x: torch.Tensor,
                   y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and backward every path of ``group`` on ``(x, y)`` in :meth:`PathGroup.order`, gradients
    accumulating in ``.grad``. Returns the detached sum of the paths' losses and the first trained path's detached
    logits."""
    targets: torch.Tensor | None = None
    losses, first_logits = [], None
    for k in group.order():
        step.supernet.set_path(group.paths[k])
        logits = step.forward(x)
        if targets is None or k == group.teacher:
            loss = step.loss(logits, y)
        else:
            loss = soft_cross_entropy(logits, targets, group.temperature)
        if k == group.teacher:
            targets = soft_targets(logits, group.temperature)
        if first_logits is None:
            first_logits = logits.detach()
        loss.backward()
        losses.append(loss.detach())
    return torch.stack(losses).sum(), first_logits  # type: ignore[return-value]


def train_group(step: StepContext, group: PathGroup, x: torch.Tensor, y: torch.Tensor) -> StepResult:
    """One multi-path step: :func:`group_backward`, reported as the sum of the paths' losses and the first
    trained path's hits."""
    loss, logits = group_backward(step, group, x, y)
    return step.report(loss, logits, y, group)

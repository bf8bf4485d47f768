"""Training one fixed network with the supernet trainer: a "training method" whose path never changes.

:class:`~nasframe.training.trainer.SupernetTrainer` knows no method: each step it hands the batch to the sampler's
``train_step``. :class:`FixedNetworkMethod` trains the standalone network the trainer holds (no ``set_path``):

* cross-entropy, plus DARTS's auxiliary loss when the network returns auxiliary logits in training mode
  (``loss = CE(logits) + w * CE(aux)``, w = 0.4 in "DARTS: Differentiable Architecture Search", Liu et al.,
  ICLR 2019, following NASNet);
* drop path raised linearly over the epochs, as the DARTS code does (``drop_path_prob * epoch / epochs`` at the
  start of each epoch);
* optionally knowledge distillation from a teacher (OFA's fine-tuning of a subnet from the largest network,
  "Once-for-All", Cai et al., ICLR 2020): ``(1 - w) * CE + w * T^2 * H(teacher, student)`` (soft cross-entropy: the gradient of KL);
* after each ``eval_every`` epochs, the held-out accuracies (valid, test) through a callback: the curves.

Its state (epochs done, the curves) is in ``state_dict``, so a resumed run continues with the same drop-path
probability and keeps the curves; the network's weights are the trainer's ``model``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nasframe.core.arch import Arch
from nasframe.core.eval_network import EvaluationNetwork
from nasframe.core.space import SearchSpace
from nasframe.sampling.base import PathSampler
from nasframe.sampling.group import soft_cross_entropy, soft_targets
from nasframe.training.step import StepContext, StepResult


@dataclass
class FixedNetworkConfig:
    auxiliary_weight: float = 0.0
    drop_path_prob: float = 0.0
    distill_weight: float = 0.0
    distill_temperature: float = 1.0
    eval_every: int = 1


class FixedNetworkMethod(PathSampler):
    """Trains the trainer's network as it is; ``arch`` is what it reports as trained."""

    name = "fixed_network"
    Config = FixedNetworkConfig

    def __init__(self, space: SearchSpace, arch: Arch, seed: int = 0, *, epochs: int,
                 evaluate: Callable[[], dict[str, float]] | None = None, teacher: nn.Module | None = None,
                 **settings: Any) -> None:
        super().__init__(space, seed=seed, **settings)
        self.arch = arch
        self.epochs = epochs
        self.evaluate = evaluate
        self.teacher = teacher.eval() if teacher is not None else None
        self.epochs_done = 0
        self.curves: list[dict[str, float]] = []

    def sample(self) -> Arch:
        return self.arch

    @property
    def current_drop_path_prob(self) -> float:
        """DARTS's schedule: ``p * epoch / epochs`` during epoch ``epoch`` (0-based)."""
        return self.config.drop_path_prob * self.epochs_done / max(self.epochs, 1)

    def to(self, device: torch.device | str) -> FixedNetworkMethod:
        if self.teacher is not None:
            self.teacher.to(device)
        return self

    def train_step(self, step: StepContext, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        network = step.supernet
        if isinstance(network, EvaluationNetwork):
            network.drop_path_prob = self.current_drop_path_prob
        cfg = self.config
        with step.autocast():
            out = network(x)
            teacher_logits = None
            if self.teacher is not None and cfg.distill_weight > 0:
                with torch.no_grad():
                    teacher_logits = self.teacher(x).float()
        logits, aux = (out[0], out[1]) if isinstance(out, tuple) else (out, None)
        logits = logits.float()
        loss = step.loss(logits, y)
        if teacher_logits is not None:
            t = cfg.distill_temperature  # soft cross-entropy: KL's gradient (they differ by the teacher's entropy)
            kd = soft_cross_entropy(logits, soft_targets(teacher_logits, t), t)
            loss = (1 - cfg.distill_weight) * loss + cfg.distill_weight * kd
        if aux is not None and cfg.auxiliary_weight > 0:
            loss = loss + cfg.auxiliary_weight * step.loss(aux.float(), y)
        result = step.report(loss.detach(), logits.detach(), y, self.arch)
        loss.backward()
        return result

    def end_epoch(self, epoch: int, epochs: int) -> None:
        self.epochs_done = epoch + 1
        every = self.config.eval_every
        if self.evaluate is not None and ((every and self.epochs_done % every == 0) or self.epochs_done == epochs):
            self.curves.append({"epoch": self.epochs_done, **self.evaluate()})

    def log_to(self, writer: Any, epoch: int) -> None:
        if self.curves and self.curves[-1]["epoch"] == epoch:
            for key, value in self.curves[-1].items():
                if key != "epoch":
                    writer.add_scalar(f"epoch/{key}", value, epoch)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "epochs_done": self.epochs_done, "curves": json.dumps(self.curves)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.epochs_done = int(state.get("epochs_done", 0))
        self.curves = json.loads(state.get("curves", "[]"))

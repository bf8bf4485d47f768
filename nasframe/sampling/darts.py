"""Differentiable architecture search, first order (DARTS).

"DARTS: Differentiable Architecture Search" (Liu, Simonyan & Yang, ICLR 2019). Every choice ``c`` has
architecture parameters ``alpha_c`` (one per option); the supernet runs the mixed op
``o_c(x) = sum_o softmax(alpha_c)_o * op_o(x)`` on every edge. Training alternates, at every step:

1. an architecture step: the loss of the mixed supernet on a batch of the *valid* split, differentiated with
   respect to ``alpha`` only, one Adam step on ``alpha`` (first-order approximation: the weights are taken as
   fixed, no unrolled step);
2. a weight step: the trainer's usual SGD step on a *train* batch with the mixture ``softmax(alpha)`` held fixed.

Choices can be fixed to one option (:meth:`DARTSSampler.fix`, used by perturbation-based selection while it
fine-tunes); a fixed choice runs its single op and its ``alpha`` is no longer trained. ``alpha``, the Adam state
and the fixed choices are in the sampler's state, so they are checkpointed and resumed with the trainer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from nasframe.core.arch import Arch
from nasframe.core.arch_weights import ArchitectureWeights
from nasframe.core.modules import Mixture, Supernet
from nasframe.core.registry import SAMPLERS
from nasframe.core.space import SearchSpace
from nasframe.errors import ConfigError, InvalidArchError
from nasframe.markdown import markdown_table
from nasframe.sampling.base import PathSampler

if TYPE_CHECKING:
    from nasframe.training.step import StepContext, StepResult


@dataclass
class DARTSConfig:
    arch_lr: float = 3e-4  # Adam on alpha, as DARTS
    arch_beta1: float = 0.5
    arch_beta2: float = 0.999
    arch_weight_decay: float = 1e-3
    init_scale: float = 1e-3  # alpha starts as init_scale * N(0, 1)
    warmup_epochs: int = 0  # epochs of weight training before alpha is updated (0 in DARTS)


@SAMPLERS.register("darts")
class DARTSSampler(PathSampler, ArchitectureWeights):
    """DARTS (first order): softmax-weighted mixed ops, alpha trained with Adam on the valid split."""

    name = "darts"
    Config = DARTSConfig
    #: each step starts with an architecture step on a valid-split batch (:meth:`arch_step`)
    needs_arch_batches = True

    def __init__(self, space: SearchSpace, seed: int = 0, **settings: Any) -> None:
        super().__init__(space, seed, **settings)
        cfg = self.config
        if cfg.arch_lr <= 0 or cfg.init_scale < 0 or cfg.warmup_epochs < 0:
            raise ConfigError("sampler (darts): need arch_lr > 0, init_scale >= 0, warmup_epochs >= 0")
        self.choice_options = {c.name: c.options for c in space.choices}
        generator = torch.Generator().manual_seed(seed)
        self.alpha: dict[str, torch.Tensor] = {
            c.name: (cfg.init_scale * torch.randn(len(c), generator=generator)).requires_grad_()
            for c in space.choices
        }
        self._fixed: dict[str, str] = {}
        self.epoch = 0
        self._make_optimizer()

    def _make_optimizer(self) -> None:
        cfg = self.config
        self.optimizer = torch.optim.Adam(
            list(self.alpha.values()), lr=cfg.arch_lr, betas=(cfg.arch_beta1, cfg.arch_beta2),
            weight_decay=cfg.arch_weight_decay,
        )

    def to(self, device: torch.device | str) -> "DARTSSampler":
        """Keep alpha (and its Adam state) on the supernet's device."""
        state = self.optimizer.state_dict()
        for name, value in self.alpha.items():
            self.alpha[name] = value.detach().to(device).requires_grad_()
        self._make_optimizer()
        self.optimizer.load_state_dict(state)  # Adam moves its state to the parameters' device
        return self

    # -- the mixture -----------------------------------------------------------------------------------
    def weights(self) -> dict[str, torch.Tensor]:
        """``softmax(alpha_c)`` per choice (detached)."""
        return {name: torch.softmax(a.detach(), dim=0) for name, a in self.alpha.items()}

    def mixture(self, differentiable: bool = False) -> Mixture:
        """The current mixture: fixed choices by name, the others ``softmax(alpha)`` (with the graph to alpha
        if ``differentiable``)."""
        return Mixture({
            name: self._fixed[name] if name in self._fixed else torch.softmax(a if differentiable else a.detach(), dim=0)
            for name, a in self.alpha.items()
        })

    @property
    def fixed(self) -> Mapping[str, str]:
        return self._fixed

    def sample(self) -> Mixture:  # type: ignore[override]
        return self.mixture()

    def train_step(self, step: StepContext, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        """The architecture step on the next valid batch, then the weight step on ``(x, y)`` with the mixture
        ``softmax(alpha)`` held fixed."""
        self.arch_step(step.supernet, *step.next_arch_batch(), reduce_gradients=step.reduce_gradients)
        return super().train_step(step, x, y)

    def arch_step(
        self, supernet: Supernet, x: torch.Tensor, y: torch.Tensor,
        reduce_gradients: Callable[[list[torch.Tensor]], None] | None = None,
    ) -> torch.Tensor | None:
        """One first-order architecture step on a valid batch; returns its loss (``None`` during warm-up).
        ``reduce_gradients`` averages alpha's gradients over data-parallel ranks before the Adam step."""
        free = [a for name, a in self.alpha.items() if name not in self._fixed]
        if self.epoch < self.config.warmup_epochs or not free:
            return None
        if next(iter(self.alpha.values())).device != x.device:
            self.to(x.device)
            free = [a for name, a in self.alpha.items() if name not in self._fixed]
        supernet.set_mixture(self.mixture(differentiable=True))
        loss = F.cross_entropy(supernet(x), y)
        # alpha only: no weight gradients are computed. An alpha whose edge cannot reach the output (every
        # path from it runs through edges fixed to 'none') gets no gradient and is left alone.
        grads = torch.autograd.grad(loss, free, allow_unused=True)
        self.optimizer.zero_grad(set_to_none=True)
        for a, g in zip(free, grads):
            a.grad = g
        if reduce_gradients is not None:
            reduce_gradients(free)
        self.optimizer.step()
        return loss.detach()

    def end_epoch(self, epoch: int, epochs: int) -> None:
        self.epoch = epoch + 1

    # -- decisions -------------------------------------------------------------------------------------
    def fix(self, decisions: Mapping[str, str]) -> None:
        """Run these choices as their single given option from now on (their alpha is no longer trained)."""
        for name, option in decisions.items():
            if name not in self.alpha:
                raise InvalidArchError(f"sampler (darts): no choice named '{name}'")
            if option not in self.choice_options[name]:
                raise InvalidArchError(f"sampler (darts): choice '{name}' has no option '{option}'")
            self._fixed[name] = option

    def argmax_arch(self) -> Arch:
        """Each choice's option with the largest alpha (fixed choices keep their option)."""
        return Arch({
            name: self._fixed.get(name) or self.choice_options[name][int(torch.argmax(a.detach()))]
            for name, a in self.alpha.items()
        })

    # -- logging and state -------------------------------------------------------------------------------
    def log_to(self, writer: Any, epoch: int) -> None:
        width = max(map(len, self.choice_options.values()))
        rows = []
        for name, w in self.weights().items():
            options = self.choice_options[name]
            writer.add_histogram(f"sampler/alpha/{name}", self.alpha[name].detach().cpu(), epoch)
            for option, value in zip(options, w.tolist()):
                writer.add_scalar(f"sampler/weight/{name}/{option}", value, epoch)
            cells = [f"{o} {v:.3f}" for o, v in zip(options, w.tolist())]
            rows.append([name, *cells, *[None] * (width - len(cells))])
        table = markdown_table(["choice", *(f"option {k}" for k in range(width))], rows, missing="")
        writer.add_text("sampler/softmax_alpha", table, epoch)
        writer.add_text("sampler/argmax_arch", self.space.format(self.argmax_arch()) if self._argmax_valid() else
                        str(dict(self.argmax_arch())), epoch)

    def _argmax_valid(self) -> bool:
        return self.space.contains(self.argmax_arch())

    def describe_structure(self) -> str:
        return "alpha: " + ", ".join(
            f"{name}={np.round(w.cpu().numpy(), 3).tolist()}" for name, w in self.weights().items()
        )

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["alpha"] = {name: a.detach().clone() for name, a in self.alpha.items()}
        state["arch_optimizer"] = self.optimizer.state_dict()
        state["fixed"] = dict(self._fixed)
        state["epoch"] = self.epoch
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if set(state.get("alpha", {})) != set(self.alpha):
            raise ConfigError("sampler (darts): the checkpoint's architecture parameters are for other choices")
        device = next(iter(self.alpha.values())).device
        for name, value in state["alpha"].items():
            self.alpha[name] = value.detach().to(device).clone().requires_grad_()
        self._make_optimizer()
        self.optimizer.load_state_dict(state["arch_optimizer"])
        self._fixed = dict(state["fixed"])
        self.epoch = int(state["epoch"])

"""PA&DA: importance sampling of paths and of training data.

"PA&DA: Jointly Sampling PAth and DAta for Consistent NAS" (Lu et al., CVPR 2023) samples each training path
and each training example with probability proportional to its normalised gradient norm, to lower the variance
of supernet training. As in the official implementation (github.com/ShunLu91/PA-DA, ``train_panda_201.py``):

* path: after each step, the gradient norm of the active option's parameters (clipped loss gradient) is
  recorded for each choice; at the end of epoch ``e`` (0-based) of ``E`` the importance of option ``o`` of
  choice ``c`` is its mean recorded norm ``g[c, o]``, normalised ``p_imp[c, o] = g[c, o] / sum_o' g[c, o']``, and
  the next epoch samples ``p[c] = tau_e * p_imp[c] + (1 - tau_e) * uniform`` with ``tau_e = tau_max * e / E``.
  Options without parameters (none, skip, pooling) have no gradient, so they keep only the uniform share. An
  elastic choice (MobileNet kernel, expand ratio, depth) records the gradient norm of the weight slices its
  active option runs (:meth:`~nasframe.core.elastic.ElasticChoice.option_parameters`).
  A path's probability is the product over choices. ``share_across_choices`` pools the statistics of all
  choices into one distribution, as the official NAS-Bench-201 code does (it needs equal option sets).
  Where a space's rule excludes a few option combinations (NAS-Bench-Graph: not every op ``skip``), a path is
  drawn from that product conditioned on being an arch of the space (draws outside it are redrawn); spaces
  whose rule excludes most combinations (DARTS: 2 inputs per node) are refused.
* data: the per-example proxy is the norm of the loss gradient with respect to the logits,
  ``||softmax(z_i) - onehot(y_i)||``, taken from the normal training forward pass; at the end of each epoch
  ``q_i = tau_e * s_i / sum_j s_j + (1 - tau_e) / N`` with ``s_i`` the mean proxy of example ``i`` in that epoch
  (0 if it was not drawn), and the next epoch draws N examples with replacement from ``q``. The loss is not
  reweighted (no ``1 / (N q_i)`` factor), as in the official code.

Differences from the official code: statistics are averaged over the epoch (the official code keeps a running
mean with factor 1/2 per step), and path distributions are per choice unless ``share_across_choices``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from nasframe.core.arch import Arch
from nasframe.core.registry import SAMPLERS
from nasframe.core.space import SearchSpace
from nasframe.data.base import DataOrder
from nasframe.errors import ConfigError
from nasframe.sampling.base import PathSampler


def mix_with_uniform(importance: np.ndarray | torch.Tensor, tau: float) -> Any:
    """``tau * importance / sum(importance) + (1 - tau) * uniform`` (uniform where all importance is zero)."""
    n = importance.shape[-1]
    total = importance.sum()
    normalised = importance / total if float(total) > 0 else importance * 0 + 1.0 / n
    return tau * normalised + (1.0 - tau) / n


def schedule(epoch: int, epochs: int, tau_max: float) -> float:
    """The weight on importance after epoch ``epoch`` (0-based): ``tau_max * epoch / epochs``."""
    return tau_max * epoch / max(epochs, 1)


#: Path sampling with a space rule: at least this share of uniform option combinations must be archs.
MIN_VALID_SHARE = 0.5
MAX_REDRAWS = 10_000


@dataclass
class PADAConfig:
    path: bool = True  # importance-sample paths
    data: bool = True  # importance-sample training examples
    tau_max: float = 1.0  # weight on importance grows linearly to tau_max over training
    share_across_choices: bool = False  # one option distribution for all choices (official NB201 code)


def logit_gradient_norms(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-example ``||d CE(z_i, y_i) / d z_i|| = ||softmax(z_i) - onehot(y_i)||`` (no backward pass needed)."""
    residual = torch.softmax(logits.float(), dim=1)
    residual[torch.arange(len(targets), device=targets.device), targets] -= 1.0
    return torch.linalg.vector_norm(residual, dim=1)


class PADAData(DataOrder):
    """PA&DA's data sampler: examples drawn with replacement in proportion to their mixed importance."""

    def __init__(self, num_examples: int, tau_max: float) -> None:
        self.n = num_examples
        self.tau_max = tau_max
        self.prob: torch.Tensor | None = None  # None until the first epoch ends: that epoch visits each example once
        self._sum = torch.zeros(num_examples)
        self._count = torch.zeros(num_examples)

    def order(self, n: int, generator: torch.Generator) -> torch.Tensor:
        if self.prob is None:
            return torch.randperm(n, generator=generator)
        return torch.multinomial(self.prob, n, replacement=True, generator=generator)

    def observe_batch(self, indices: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor,
                      gather: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Record each example's logit-gradient norm (gathered over data-parallel ranks)."""
        self.observe(indices, gather(logit_gradient_norms(logits, targets)))

    def observe(self, indices: torch.Tensor, norms: torch.Tensor) -> None:
        """Add the logit-gradient ``norms`` of the examples ``indices`` to the epoch's sums."""
        norms = norms.float()
        if self._sum.device != norms.device:
            self._sum, self._count = self._sum.to(norms.device), self._count.to(norms.device)
        self._sum.index_add_(0, indices.to(norms.device), norms)
        self._count.index_add_(0, indices.to(norms.device), torch.ones_like(norms))

    def mean_norms(self) -> torch.Tensor:
        return torch.where(self._count > 0, self._sum / self._count.clamp(min=1), torch.zeros_like(self._sum)).cpu()

    def end_epoch(self, epoch: int, epochs: int) -> None:
        self.prob = mix_with_uniform(self.mean_norms().double(), schedule(epoch, epochs, self.tau_max)).float()
        self._sum.zero_()
        self._count.zero_()

    def log_to(self, writer: Any, epoch: int) -> None:
        if self.prob is not None:
            writer.add_histogram("pada_data/example_probability_x_N", self.prob * self.n, epoch)

    def state_dict(self) -> dict[str, Any]:
        return {"prob": self.prob, "sum": self._sum.cpu(), "count": self._count.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.prob = state["prob"]
            self._sum, self._count = state["sum"].clone(), state["count"].clone()


@SAMPLERS.register("pada")
class PADASampler(PathSampler):
    """PA&DA path sampling (and, through :meth:`data_order`, data sampling)."""

    name = "pada"
    Config = PADAConfig

    def __init__(self, space: SearchSpace, seed: int = 0, **settings: Any) -> None:
        super().__init__(space, seed, **settings)
        cfg = self.config
        if not 0.0 <= cfg.tau_max <= 1.0:
            raise ConfigError("sampler.tau_max must be in [0, 1]")
        self.choices = space.choices
        if cfg.path and not space.independent_choices and self._valid_share() < MIN_VALID_SHARE:
            raise ConfigError(
                f"sampler (pada): path importance sampling draws each choice independently, but space "
                f"'{space.name}' ties choices together (e.g. 2 edges per node); use sampler.path=false there"
            )
        if cfg.share_across_choices and len({c.options for c in self.choices}) > 1:
            raise ConfigError("sampler.share_across_choices needs every choice to have the same options")
        self._step_norms: dict[str, torch.Tensor | None] = {}
        self.prob = {c.name: np.full(len(c), 1.0 / len(c)) for c in self.choices}
        self._sum = {c.name: [0.0] * len(c) for c in self.choices}  # host floats, filled at epoch end
        self._pending: list[tuple[Arch, dict[str, torch.Tensor | None]]] = []  # device tensors of this epoch
        self._count = {c.name: [0] * len(c) for c in self.choices}

    def _valid_share(self, draws: int = 2000) -> float:
        """The share of uniformly drawn option combinations that are archs of the space (seeded, so the
        decision does not depend on the run's seed, and the run's generator is not touched)."""
        rng = np.random.default_rng(0)
        return sum(self.space.contains({c.name: c.options[int(rng.integers(len(c)))] for c in self.choices})
                   for _ in range(draws)) / draws

    def _draw(self) -> Arch:
        return Arch({c.name: c.options[int(self.rng.choice(len(c), p=self.prob[c.name]))] for c in self.choices})

    def sample(self) -> Arch:
        if self.space.independent_choices:
            return self._draw()
        if not self.config.path:  # uniform valid archs
            return self.space.sample(self.rng)
        for _ in range(MAX_REDRAWS):  # the product distribution conditioned on the space's rule
            arch = self._draw()
            if self.space.contains(arch):
                return arch
        raise ConfigError(f"sampler (pada): {MAX_REDRAWS} path draws in a row fell outside space "
                          f"'{self.space.name}'; its rule excludes most draws of the learned distribution")

    def before_update(self, supernet: nn.Module) -> None:
        """The gradient norm of each choice's active option, from the step's final (clipped) gradients."""
        if self.config.path:
            self._step_norms = supernet.path_grad_norms()

    def observe(self, trained: Arch, stats: dict[str, Any]) -> None:
        if self.config.path:
            self.record(trained, self._step_norms)

    def record(self, arch: Arch, norms: dict[str, torch.Tensor | None]) -> None:
        """Keep the gradient norms of ``arch``'s options (device tensors, read at epoch end: no per-step sync)."""
        self._pending.append((arch, norms))

    def _flush(self) -> None:
        """Add the pending per-step norms to the epoch's sums, with one device-to-host transfer in all."""
        slots, values = [], []
        for arch, norms in self._pending:
            for c in self.choices:
                norm = norms.get(c.name)
                if norm is not None:
                    slots.append((c.name, c.index(arch[c.name])))
                    values.append(norm)
        self._pending.clear()
        if not values:
            return
        for (name, o), value in zip(slots, torch.stack(values).tolist()):
            self._sum[name][o] += value
            self._count[name][o] += 1

    def importance(self) -> dict[str, np.ndarray]:
        """Mean recorded gradient norm of each option of each choice in the current epoch (0 if never recorded)."""
        self._flush()
        mean = {c.name: np.array([s / n if n else 0.0 for s, n in zip(self._sum[c.name], self._count[c.name])])
                for c in self.choices}
        if self.config.share_across_choices:
            total = np.sum([self._sum[c.name] for c in self.choices], axis=0)
            count = np.sum([self._count[c.name] for c in self.choices], axis=0)
            shared = np.where(count > 0, total / np.maximum(count, 1), 0.0)
            mean = {c.name: shared for c in self.choices}
        return mean

    def end_epoch(self, epoch: int, epochs: int) -> None:
        if not self.config.path:
            return
        tau = schedule(epoch, epochs, self.config.tau_max)
        self.prob = {name: mix_with_uniform(values, tau) for name, values in self.importance().items()}
        self._sum = {c.name: [0.0] * len(c) for c in self.choices}
        self._count = {c.name: [0] * len(c) for c in self.choices}

    def data_order(self, num_examples: int) -> DataOrder | None:
        return PADAData(num_examples, self.config.tau_max) if self.config.data else None

    def log_to(self, writer: Any, epoch: int) -> None:
        """Each option's probability as a scalar, and all of them as one histogram of ``p * len(choice)`` (1 is
        uniform), which shows at a glance how far the path distribution has moved from uniform."""
        for c in self.choices:
            for option, p in zip(c.options, self.prob[c.name]):
                writer.add_scalar(f"pada_path/{c.name}/{option}", float(p), epoch)
        relative = np.concatenate([self.prob[c.name] * len(c) for c in self.choices])
        writer.add_histogram("pada_path/option_probability_x_options", relative, epoch)

    def state_dict(self) -> dict[str, Any]:
        self._flush()
        return {
            **super().state_dict(),
            "prob": {k: torch.from_numpy(v) for k, v in self.prob.items()},
            "sum": {k: torch.tensor(v, dtype=torch.float64) for k, v in self._sum.items()},
            "count": {k: torch.tensor(v) for k, v in self._count.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._pending.clear()
        self.prob = {k: v.numpy().copy() for k, v in state["prob"].items()}
        self._sum = {k: v.tolist() for k, v in state["sum"].items()}
        self._count = {k: [int(n) for n in v.tolist()] for k, v in state["count"].items()}

"""Few-shot supernets: the one-shot supernet split into sub-supernets, each with its own weights and sub-space.

* Exhaustive split ("Few-shot Neural Architecture Search", Zhao et al., ICML 2021): one sub-supernet per option
  of a chosen choice (on NAS-Bench-201, edge 1<-0: 5 sub-supernets).
* Gradient-matching split ("Generalizing Few-Shot NAS with Gradient Matching", Hu et al., ICLR 2022): for a
  choice, the gradient of the shared weights (every parameter except the choice's own candidates) is computed
  under each option, on the same batch and the same random path elsewhere; options whose gradients disagree
  should not share weights. The distance of options ``i, j`` is ``1 - cos(g_i, g_j)``, averaged over batches.
  Options are cut into two balanced groups (sizes ``floor(n/2)`` and ``ceil(n/2)``, all such bipartitions
  enumerated, as the official code does) minimising the distance within groups, i.e. maximising the cut; the
  choice with the largest cut is split. Splitting recurses on the sub-spaces within a budget of sub-supernets.
  Unlike GM-NAS, which trains between split levels, :func:`gradient_matching_split` decides all levels from the
  same weights.

Sub-supernets are warm-started as copies of the one-shot supernet. An arch is routed to the one sub-supernet
whose sub-space holds it, for training, evaluation, selection and export (:class:`FewShotSupernet` is a
:class:`~nasframe.core.modules.Supernet`).
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasframe.core.arch import Arch
from nasframe.core.modules import ChoiceModule, Supernet
from nasframe.core.registry import SAMPLERS
from nasframe.core.space import SearchSpace
from nasframe.errors import ConfigError, InvalidArchError
from nasframe.sampling.base import PathSampler


class FewShotSupernet(Supernet, ChoiceModule):
    """Sub-supernets over a partition of the space; the active one is that of the last ``set_arch``."""

    choice_name = "sub_supernet"

    def __init__(self, subspaces: Sequence[SearchSpace], supernets: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(subspaces) != len(supernets) or not subspaces:
            raise ValueError("need one sub-supernet per sub-space")
        self.subspaces = list(subspaces)
        self.supernets = nn.ModuleList(supernets)
        self.active_index = 0
        self._routes: dict[Arch, int] = {}

    def route(self, arch: Mapping[str, str]) -> int:
        """Index of the sub-supernet whose sub-space holds ``arch``."""
        arch = arch if isinstance(arch, Arch) else Arch(arch)
        index = self._routes.get(arch)
        if index is None:
            holders = [i for i, sub in enumerate(self.subspaces) if sub.contains(arch)]
            if len(holders) != 1:
                raise InvalidArchError(f"arch {dict(arch)} lies in {len(holders)} sub-spaces of the few-shot split")
            index = self._routes[arch] = holders[0]
        return index

    def set_arch(self, arch: Mapping[str, str]) -> None:
        index = self.route(arch)
        self.supernets[index].set_arch(arch)
        self.active_index = index

    def set_option(self, option: str) -> None:
        raise InvalidArchError("a few-shot supernet is routed by set_arch, not by one option")

    @property
    def active_arch(self) -> Arch | None:
        return self.supernets[self.active_index].active_arch

    @property
    def choice_names(self) -> list[str]:
        return self.supernets[0].choice_names

    def active_module(self) -> nn.Module:
        return self.supernets[self.active_index]

    def path_grad_norms(self) -> dict[str, torch.Tensor | None]:
        return self.supernets[self.active_index].path_grad_norms()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.supernets[self.active_index](x)


def check_partition(space: SearchSpace, subspaces: Sequence[SearchSpace]) -> None:
    """Raise unless the sub-spaces are pairwise disjoint and together hold every arch of ``space``."""
    for a, b in itertools.combinations(subspaces, 2):
        if all(set(ca.options) & set(cb.options) for ca, cb in zip(a.choices, b.choices)):
            raise ValueError("two sub-spaces overlap")
    if sum(sub.size for sub in subspaces) != space.size:
        raise ValueError("the sub-spaces leave some archs of the space out")


def build_fewshot(one_shot: Supernet, subspaces: Sequence[SearchSpace]) -> FewShotSupernet:
    """Sub-supernets warm-started as copies of the one-shot supernet's weights."""
    return FewShotSupernet(subspaces, [copy.deepcopy(one_shot) for _ in subspaces])


def split_exhaustive(space: SearchSpace, choice: str) -> list[SearchSpace]:
    """One sub-space per option of ``choice``."""
    return [space.restrict({choice: [option]}) for option in space.choice(choice).options]


@dataclass
class SplitDecision:
    choice: str
    groups: tuple[tuple[str, ...], tuple[str, ...]]
    cut: float  # sum of distances across the two groups
    distances: list[list[float]]


def option_gradient_distances(
    supernet: Supernet,
    space: SearchSpace,
    choice: str,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    rng: np.random.Generator,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> np.ndarray:
    """``D[i, j] = mean over batches of 1 - cos(g_i, g_j)``, ``g_o`` the gradient of the shared weights with
    option ``o`` on ``choice`` and one random path of ``space`` elsewhere (the same for every option)."""
    options = space.choice(choice).options
    own = {id(p) for module in supernet._choice_index()[choice] for p in module.parameters()}
    shared = [p for p in supernet.parameters() if id(p) not in own]
    was_training = supernet.training
    supernet.train()
    total = np.zeros((len(options), len(options)))
    try:
        for x, y in batches:
            rest = space.sample(rng)
            grads = []
            for option in options:
                supernet.set_arch(rest.replace(**{choice: option}))
                supernet.zero_grad(set_to_none=True)
                loss_fn(supernet(x), y).backward()
                grads.append(torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in shared]))
            g = torch.stack(grads).double()
            unit = g / (g.norm(dim=1, keepdim=True) + 1e-12)
            total += (1.0 - unit @ unit.T).cpu().numpy()
    finally:
        supernet.zero_grad(set_to_none=True)
        supernet.train(was_training)
    return total / max(len(batches), 1)


def best_bipartition(distances: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...], float]:
    """The balanced bipartition (sizes floor(n/2), ceil(n/2)) with the least distance within groups.

    Returns the two groups (as index tuples, each in increasing order) and the cut: the summed distance of the
    pairs that it separates."""
    n = len(distances)
    if n < 2:
        raise ValueError("cannot split a choice with fewer than 2 options")
    best = None
    for small in itertools.combinations(range(n), n // 2):
        large = tuple(i for i in range(n) if i not in small)
        within = sum(distances[i][j] for group in (small, large) for i, j in itertools.combinations(group, 2))
        if best is None or within < best[0] - 1e-12:
            best = (within, small, large)
    within, small, large = best
    total = sum(distances[i][j] for i, j in itertools.combinations(range(n), 2))
    return small, large, float(total - within)


def gradient_matching_split(
    supernet: Supernet,
    space: SearchSpace,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    max_subnets: int,
    seed: int = 0,
    choices: Sequence[str] | None = None,
) -> tuple[list[SearchSpace], list[SplitDecision]]:
    """Split ``space`` recursively, each time cutting the choice with the largest gradient-matching cut of the
    sub-space that holds the most archs, until there are ``max_subnets`` sub-spaces or nothing can be split."""
    rng = np.random.default_rng(seed)
    parts, decisions = [space], []
    while len(parts) < max_subnets:
        parts.sort(key=lambda s: -s.size)
        target = parts[0]
        candidates = [c.name for c in target.choices if len(c) > 1 and (choices is None or c.name in choices)]
        if not candidates:
            break
        best = None
        for name in candidates:
            distances = option_gradient_distances(supernet, target, name, batches, rng)
            small, large, cut = best_bipartition(distances)
            if best is None or cut > best.cut:
                options = target.choice(name).options
                best = SplitDecision(name, (tuple(options[i] for i in small), tuple(options[i] for i in large)), cut,
                                     distances.tolist())
        decisions.append(best)
        parts = parts[1:] + [target.restrict({best.choice: list(group)}) for group in best.groups]
    return parts, decisions


# -- the sampler that splits during training ------------------------------------------------------------------
@dataclass
class FewShotConfig:
    split: str = "exhaustive"  # exhaustive (one sub-supernet per option of `choice`) | gradient (GM-NAS)
    choice: Optional[str] = None  # exhaustive: the choice to split (default: the space's first choice)
    warmup_fraction: float = 0.5  # share of the epochs trained one-shot before the split
    max_subnets: int = 4  # gradient: budget of sub-supernets
    grad_batches: int = 4  # gradient: training batches whose option gradients are compared
    grad_choices: Optional[List[str]] = None  # gradient: choices that may be split (default: all)
    train_only: Optional[int] = None  # after the split, train only this sub-supernet (one job per sub-supernet)
    budget: str = "shared"  # shared: the sub-supernets share the post-split epochs in this run | per_part: each one
    # gets all of them, as its own job through the Hydra launcher (Zhao et al.; nasframe.fewshot_parts)


@SAMPLERS.register("fewshot")
class FewShotSampler(PathSampler):
    """Uniform single-path training of a one-shot supernet that splits into sub-supernets after a warm-up.

    After ``round(warmup_fraction * epochs)`` epochs the supernet is split (exhaustively or by gradient
    matching), each sub-supernet warm-started from the one-shot weights, and training goes on with a fresh
    optimiser and cosine schedule; each step trains the sub-supernet that holds the uniformly sampled arch.

    ``budget=shared`` trains every sub-supernet in this run, so each gets about ``1/K`` of the post-split steps.
    ``budget=per_part`` is the paper's budget: the run trains the one-shot phase, splits, then trains each of the
    K sub-supernets from the inherited weights for all the post-split epochs, as K jobs of the configured Hydra
    launcher (joblib locally, Slurm on a cluster), merges them and selects over the union of the sub-spaces
    (:mod:`nasframe.fewshot_parts`).

    With ``train_only=k`` the steps after the split sample archs of sub-space ``k`` only, so one job trains one
    sub-supernet (for its full post-split budget, as few-shot NAS trains each sub-supernet); jobs resumed from
    the same warm-up checkpoint split identically, and :func:`nasframe.sampling.fewshot_jobs.merge_runs` puts
    their sub-supernets into one few-shot supernet for selection.
    """

    name = "fewshot"
    Config = FewShotConfig

    def __init__(self, space: SearchSpace, seed: int = 0, **settings: Any) -> None:
        super().__init__(space, seed, **settings)
        cfg = self.config
        if cfg.split not in ("exhaustive", "gradient"):
            raise ConfigError(f"sampler.split: unknown split {cfg.split!r}; use exhaustive or gradient")
        if not 0.0 <= cfg.warmup_fraction < 1.0:
            raise ConfigError("sampler.warmup_fraction must be in [0, 1)")
        if cfg.max_subnets < 2 or cfg.grad_batches < 1:
            raise ConfigError("sampler.max_subnets must be >= 2 and sampler.grad_batches >= 1")
        if cfg.budget not in ("shared", "per_part"):
            raise ConfigError(f"sampler.budget: unknown budget {cfg.budget!r}; use shared (the sub-supernets share the "
                              "post-split epochs) or per_part (each trains for all of them, as its own job)")
        if cfg.train_only is not None and cfg.train_only < 0:
            raise ConfigError("sampler.train_only must be a sub-supernet index >= 0 (or null: train all)")
        names = [c.name for c in space.choices]
        for name in [cfg.choice] if cfg.choice and cfg.split == "exhaustive" else []:  # gradient ignores it
            if name not in names:
                raise ConfigError(f"sampler.choice: no choice {name!r} in {space.name}; choices: {', '.join(names)}")
        for name in cfg.grad_choices or []:
            if name not in names:
                raise ConfigError(f"sampler.grad_choices: no choice {name!r} in {space.name}")
        self.seed = seed
        self.partition: list[dict[str, list[str]]] | None = None  # restrictions of each sub-space, once split
        self.decisions: list[dict[str, Any]] = []

    def sample(self) -> Arch:
        if self.partition is not None and self.config.train_only is not None:
            return self._only_space.sample(self.rng)
        return self.space.sample(self.rng)

    @property
    def trains_one_part(self) -> bool:
        """True for a job that trains one sub-supernet: its run ends with training (merge, then select)."""
        return self.config.train_only is not None

    @property
    def trains_parts_as_jobs(self) -> bool:
        return self.config.budget == "per_part" and self.config.train_only is None

    def _check_train_only(self) -> None:
        index = self.config.train_only
        if index is None or self.partition is None:
            return
        if index >= len(self.partition):
            raise ConfigError(f"sampler.train_only={index}, but the split made {len(self.partition)} sub-supernets "
                              f"(0..{len(self.partition) - 1})")
        self._only_space = self.space.restrict(self.partition[index]) if self.partition[index] else self.space

    def split_epoch(self, epochs: int) -> int:
        return round(self.config.warmup_fraction * epochs)

    def restructure(self, supernet: nn.Module, epoch: int, epochs: int, probe_batches: Any) -> nn.Module | None:
        if self.partition is not None or epoch != self.split_epoch(epochs):
            return None
        cfg = self.config
        if cfg.split == "exhaustive":
            choice = cfg.choice or self.space.choices[0].name
            subspaces = split_exhaustive(self.space, choice)
            self.decisions = [{"choice": choice, "groups": [[o] for o in self.space.choice(choice).options]}]
        else:
            subspaces, decisions = gradient_matching_split(
                supernet, self.space, probe_batches(cfg.grad_batches), cfg.max_subnets, seed=self.seed + epoch,
                choices=cfg.grad_choices,
            )
            self.decisions = [{"choice": d.choice, "groups": [list(g) for g in d.groups], "cut": d.cut,
                               "distances": d.distances} for d in decisions]
        self.partition = [self._restrictions(sub) for sub in subspaces]
        self._check_train_only()
        return build_fewshot(supernet, subspaces)

    def _restrictions(self, sub: SearchSpace) -> dict[str, list[str]]:
        return {c.name: list(c.options) for c, full in zip(sub.choices, self.space.choices) if c.options != full.options}

    def subspaces(self) -> list[SearchSpace]:
        return [self.space.restrict(r) for r in self.partition or [{}]]

    def rebuild(self, supernet: nn.Module) -> nn.Module | None:
        if self.partition is None or isinstance(supernet, FewShotSupernet):
            return None
        return build_fewshot(supernet, self.subspaces())

    def describe_structure(self) -> str:
        if self.partition is None:
            return "one-shot supernet (not split yet)"
        parts = "; ".join(", ".join(f"{k} in {v}" for k, v in r.items()) for r in self.partition)
        return f"{self.config.split} split into {len(self.partition)} sub-supernets: {parts}; decisions: {json.dumps(self.decisions)}"

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "partition": json.dumps(self.partition), "decisions": json.dumps(self.decisions),
                "train_only": json.dumps(self.config.train_only)}  # read by merge_runs; the config decides on resume

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.partition = json.loads(state["partition"])
        self.decisions = json.loads(state["decisions"])
        self._check_train_only()

"""The supernet evaluator: accuracy of an arch with inherited weights, the hot loop of every selector.

For each arch it activates the path, recalibrates BatchNorm on a fixed set of training batches (the same
images for every arch, so scores are comparable), and measures top-1 accuracy on held-out data that stays
on the device. Results are cached per arch (not per isomorphism class: isomorphic archs use different
supernet weights).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Optional
from dataclasses import dataclass

import torch

from nasframe.core.arch import Arch
from nasframe.core.modules import Supernet
from nasframe.data.base import TensorSplit, Transform
from nasframe.errors import ConfigError
from nasframe.core.modules import Mixture
from nasframe.core.space import SearchSpace
from nasframe.evaluation.bn import batch_statistics, ensure_eval, recalibrate_batchnorm


@dataclass
class EvaluatorConfig:
    name: str = "supernet"  # this config group option (others: zero_cost, learned, hybrid; see configs/evaluator/)
    batch_size: int = 512  # evaluation batch size
    bn_recalibration_batches: int = 2  # training batches for BN recalibration; 0 keeps the trained statistics
    bn_batch_size: int = 128
    bn_seed: int = 0  # which training images recalibrate BN (fixed for all archs)
    # -- the fast scoring pass (nasframe/evaluation/scoring.py); the defaults score the supernet path in fp32 ----
    fold_bn: bool = False  # score the extracted path with BatchNorm folded into its convolutions
    precision: str = "fp32"  # fp32 | bf16: the scoring pass's dtype (BN recalibration stays fp32)
    channels_last: bool = False  # NHWC layout for the scoring pass

    def check(self) -> None:
        if self.batch_size < 1 or self.bn_batch_size < 1 or self.bn_recalibration_batches < 0:
            raise ConfigError("evaluator: need batch_size >= 1, bn_batch_size >= 1, bn_recalibration_batches >= 0")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"evaluator.precision: {self.precision!r} is not one of fp32, bf16")

    @property
    def fast(self) -> bool:
        return self.fold_bn or self.precision != "fp32" or self.channels_last


@torch.no_grad()
def accuracy(model: torch.nn.Module, data: TensorSplit, batch_size: int = 512) -> float:
    """Top-1 accuracy (%) of ``model`` in eval mode on ``data``."""
    ensure_eval(model)
    correct = torch.zeros((), dtype=torch.long, device=data.y.device)
    for start in range(0, len(data), batch_size):
        logits = model(data.x[start : start + batch_size])
        correct += (logits.argmax(dim=1) == data.y[start : start + batch_size]).sum()
    return 100.0 * correct.item() / max(len(data), 1)


class SupernetEvaluator:
    """Scores archs by held-out accuracy (%) of the supernet path, after BN recalibration."""

    def __init__(
        self,
        supernet: Supernet,
        held_out: TensorSplit,
        train: TensorSplit | None,
        config: EvaluatorConfig | None = None,
        prepare: Transform | None = None,
        space: SearchSpace | None = None,
    ) -> None:
        """``held_out`` and ``train`` hold stored inputs; ``prepare`` (if any) makes them model inputs, once.
        ``space`` builds the standalone path for the fast scoring pass (``fold_bn``, bf16, channels-last)."""
        self.config = config or EvaluatorConfig()
        self.config.check()
        if self.config.fast and space is None:
            raise ConfigError("evaluator: fold_bn, bf16 and channels_last score the extracted path: pass the space")
        self.space = space
        self.supernet = supernet
        device = next(supernet.parameters()).device
        held_out = held_out.to(device)
        self.held_out = TensorSplit(prepare(held_out.x, None), held_out.y) if prepare else held_out
        self.bn_batches: list[torch.Tensor] = []
        cfg = self.config
        if cfg.bn_recalibration_batches > 0:
            if train is None:
                raise ConfigError("evaluator: BN recalibration needs training data")
            generator = torch.Generator().manual_seed(cfg.bn_seed)
            order = torch.randperm(len(train), generator=generator)
            for b in range(cfg.bn_recalibration_batches):
                idx = order[b * cfg.bn_batch_size : (b + 1) * cfg.bn_batch_size]
                if len(idx) == 0:
                    break
                batch = train.x[idx].to(device)
                self.bn_batches.append(prepare(batch, None) if prepare else batch)
        self.cache: dict[Arch, float] = {}
        self._fast_inputs: torch.Tensor | None = None

    def prepare(self, arch: Mapping[str, str]) -> None:
        """Activate ``arch`` and recalibrate BN for it; leaves the supernet in eval mode."""
        self.supernet.set_arch(arch)
        if self.bn_batches:
            recalibrate_batchnorm(self.supernet, self.bn_batches)  # leaves the supernet in eval mode
        else:
            ensure_eval(self.supernet)

    def __call__(self, arch: Mapping[str, str]) -> float:
        return self.accuracy_of(arch)

    def accuracy_of(self, arch: Mapping[str, str]) -> float:
        """Held-out accuracy (%) of ``arch`` 's path with inherited weights, BN recalibrated (cached per arch)."""
        arch = arch if isinstance(arch, Arch) else Arch(arch)
        score = self.cache.get(arch)
        if score is None:
            self.prepare(arch)
            score = self._fast_score(arch) if self.config.fast else accuracy(self.supernet, self.held_out,
                                                                             self.config.batch_size)
            self.cache[arch] = score
        return score

    def _fast_score(self, arch: Arch) -> float:
        """Accuracy of the extracted path, BN folded / bf16 / channels-last as configured."""
        from nasframe.evaluation.scoring import scoring_network
        from nasframe.export.extract import extract

        cfg = self.config
        dtype = torch.bfloat16 if cfg.precision == "bf16" else torch.float32
        if self._fast_inputs is None:  # the held-out inputs, cast and laid out once
            x = self.held_out.x.to(dtype)
            self._fast_inputs = x.contiguous(memory_format=torch.channels_last) if cfg.channels_last and x.dim() == 4 else x
        net = scoring_network(extract(self.space, self.supernet, arch), cfg.fold_bn, dtype, cfg.channels_last)
        return accuracy(net, TensorSplit(self._fast_inputs, self.held_out.y), cfg.batch_size)

    def clear_cache(self) -> None:
        """Forget cached scores (after the supernet's weights changed, e.g. fine-tuning between decisions)."""
        self.cache.clear()

    @torch.no_grad()
    def mixture_accuracy(
        self, mixture: Mixture, include: Optional[Mapping[str, torch.Tensor]] = None, limit: Optional[int] = None
    ) -> float:
        """Held-out accuracy (%) of the supernet in differentiable mode with ``mixture`` (options masked out
        by ``include``), on the first ``limit`` held-out examples. BatchNorm uses batch statistics, as
        DARTS-PT scores perturbed supernets (no recalibration, running statistics untouched)."""
        self.supernet.set_mixture(mixture, include)
        self.supernet.eval()
        n = len(self.held_out) if limit is None else min(limit, len(self.held_out))
        correct = torch.zeros((), dtype=torch.long, device=self.held_out.y.device)
        with batch_statistics(self.supernet):
            for start in range(0, n, self.config.batch_size):
                stop = min(start + self.config.batch_size, n)
                logits = self.supernet(self.held_out.x[start:stop])
                correct += (logits.argmax(dim=1) == self.held_out.y[start:stop]).sum()
        return 100.0 * correct.item() / max(n, 1)

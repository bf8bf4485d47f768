"""An optimiser step that touches only the active slices of elastic weights.

An elastic supernet ("Once-for-All: Train One Network and Specialize it for Efficient Deployment", Cai et al.,
ICLR 2020) runs a slice of each shared tensor: the first channels of a convolution, the centre crop of a
depthwise kernel. Autograd gives the whole tensor a gradient (zero outside the slice), and a plain optimiser
then moves the whole tensor: weight decay shrinks, and stale momentum keeps moving, weights that did not run.
Single-path training promises the opposite: a weight off the path never moves.

:class:`ActiveRegions` records, through forward pre-hooks on the elastic layers, which region of each parameter
ran in the current step (every path of a multi-path step: their union). :class:`ActiveSliceSGD` is SGD
(momentum, Nesterov, weight decay; no dampening: ``torch.optim.SGD``'s update, element for element) applied to
those regions only: the parameter, its gradient and its momentum buffer are sliced with the same views, so a
step costs what the active weights cost and every weight outside the regions stays bit for bit unchanged.
Momentum buffers are whole-size and start at zero, which gives exactly ``torch.optim.SGD``'s first step
(``buf = grad``) for every element the first time it runs; the state dict is ``torch.optim.SGD``'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from nasframe.core.elastic import ElasticLayer

Region = tuple[slice, ...]


class ActiveRegions:
    """The region of each elastic parameter that ran inside :meth:`recording` (forwards with gradients enabled
    only: a teacher's or an evaluation's forward does not count)."""

    def __init__(self, model: nn.Module) -> None:
        self._regions: dict[int, list[Region]] = {}
        self._whole: set[int] = set()  # parameters that some forward ran whole
        self.layers = [module for module in model.modules()
                       if isinstance(module, ElasticLayer) and any(True for _ in module.parameters(recurse=False))]

    def __bool__(self) -> bool:
        return bool(self.layers)

    @contextmanager
    def recording(self) -> Iterator[ActiveRegions]:
        """Forget the last step's regions, then record those of the forwards run inside the block."""
        self._regions.clear()
        self._whole.clear()
        handles = [layer.register_forward_pre_hook(self._record) for layer in self.layers]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()

    def _record(self, module: ElasticLayer, _inputs: object) -> None:
        if not torch.is_grad_enabled():
            return
        for name, region in module.active_regions().items():
            param = getattr(module, name)
            if param is None or not param.requires_grad:
                continue
            if is_whole(region, param.shape):  # updated as a whole tensor, without views
                self._whole.add(id(param))
            else:
                self._regions.setdefault(id(param), []).append(region)

    def of(self, param: torch.Tensor) -> list[Region] | None:
        """The regions of ``param`` that ran (``None``: it is not elastic, or some forward ran it whole)."""
        return None if id(param) in self._whole else self._regions.get(id(param))


def is_whole(region: Region, shape: Sequence[int]) -> bool:
    """Whether ``region`` covers a tensor of ``shape`` whole."""
    return all(dim.indices(size) == (0, size, 1) for dim, size in zip(region, shape))


def _bounds(region: Region, shape: Sequence[int]) -> list[range]:
    return [range(*dim.indices(size)) for dim, size in zip(region, shape)]


def covering_region(regions: list[Region], shape: Sequence[int]) -> Region | None:
    """The region among ``regions`` that contains all the others, or ``None`` when none does (prefix slices and
    centre crops are nested along each dimension, so the union is usually the largest path's region)."""
    if len(regions) == 1 or all(region == regions[0] for region in regions[1:]):
        return regions[0]
    bounds = [_bounds(region, shape) for region in regions]
    for candidate, cand_bounds in zip(regions, bounds):
        if all(all(b.start >= c.start and b.stop <= c.stop for b, c in zip(other, cand_bounds)) for other in bounds):
            return candidate
    return None


def region_mask(regions: list[Region], like: torch.Tensor) -> torch.Tensor:
    """A boolean mask of ``like``'s shape, true on the union of ``regions``."""
    mask = torch.zeros_like(like, dtype=torch.bool)
    for region in regions:
        mask[region] = True
    return mask


class ActiveSliceSGD(torch.optim.SGD):
    """``torch.optim.SGD`` whose step updates, of each parameter with a gradient, only the region that ran
    (:class:`ActiveRegions`); a parameter with no recorded region (not elastic) is updated whole, one with no
    gradient not at all. With every parameter whole it is ``torch.optim.SGD``."""

    def __init__(self, params: Iterable, regions: ActiveRegions, **kwargs: object) -> None:
        kwargs = {key: value for key, value in kwargs.items() if key not in ("foreach", "fused")}
        if kwargs.get("dampening", 0):
            raise ValueError("ActiveSliceSGD: dampening must be 0 (zero-started buffers equal SGD's first step only then)")
        super().__init__(params, **kwargs)
        self.regions = regions

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 - torch's signature
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, buffers = [], [], []
            for param in group["params"]:
                if param.grad is None:
                    continue
                buffer = None
                if group["momentum"] != 0:
                    state = self.state[param]
                    if state.get("momentum_buffer") is None:
                        state["momentum_buffer"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    buffer = state["momentum_buffer"]
                regions = self.regions.of(param)
                if regions is None:  # not elastic, or some path ran it whole: torch's update on the tensor
                    params.append(param)
                    grads.append(param.grad)
                    buffers.append(buffer)
                    continue
                region = covering_region(regions, param.shape)
                if region is None:  # paths whose regions do not nest: update copies whole, keep the union
                    self._update_union(param, buffer, regions, group)
                    continue
                params.append(param[region])
                grads.append(param.grad[region])
                buffers.append(None if buffer is None else buffer[region])
            if params:
                self._update(params, grads, buffers, group)
        return loss

    def _update_union(self, param: torch.Tensor, buffer: torch.Tensor | None, regions: list[Region],
                      group: dict) -> None:
        mask = region_mask(regions, param)
        new_param = param.clone()
        new_buffer = None if buffer is None else buffer.clone()
        self._update([new_param], [param.grad], [new_buffer], group)
        param.copy_(torch.where(mask, new_param, param))
        if buffer is not None:
            buffer.copy_(torch.where(mask, new_buffer, buffer))

    @staticmethod
    def _update(params: list[torch.Tensor], grads: list[torch.Tensor], buffers: list[torch.Tensor | None],
                group: dict) -> None:
        """``torch.optim.SGD``'s update, elementwise, in place on (views of) ``params`` and ``buffers`` (one
        multi-tensor operation per term)."""
        lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
        if group["maximize"]:
            grads = torch._foreach_neg(grads)
        if weight_decay != 0:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
        if momentum != 0:
            torch._foreach_mul_(buffers, momentum)
            torch._foreach_add_(buffers, grads, alpha=1 - group["dampening"])
            grads = torch._foreach_add(grads, buffers, alpha=momentum) if group["nesterov"] else buffers
        torch._foreach_add_(params, grads, alpha=-lr)

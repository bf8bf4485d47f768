"""Elastic layers: one set of shared weights, an active sub-shape chosen per step, computed by slicing.

From "Once-for-All: Train One Network and Specialize it for Efficient Deployment" (Cai et al., ICLR 2020) and
"BigNAS: Scaling Up Neural Architecture Search with Big Single-Stage Models" (Yu et al., ECCV 2020). Each layer
holds the weights of its largest configuration; the active configuration uses a slice of them:

* width (:class:`ElasticConv2d`, :class:`ElasticBatchNorm2d`, :class:`ElasticSqueezeExcite`): the first
  ``active`` channels of the widest layer;
* kernel (:class:`ElasticDepthwiseConv2d`): the centre ``k x k`` crop of the largest kernel, optionally passed
  through OFA's kernel transformation matrices (off by default);
* depth (:class:`ElasticSequential`): the first ``active_depth`` blocks; the rest are skipped;
* resolution (:class:`ElasticInputResize`): the input images resized to the active resolution.

Slices are views (no copies per option, no masks, no multiplications by zero), so the active path costs about
what the standalone layer costs. The active sizes are plain integer attributes (``active_*``) that an
:class:`ElasticChoice` sets when the supernet routes an arch; a layer never infers them from its input.

Every elastic layer gives :meth:`ElasticLayer.active_state_dict`: the sliced tensors keyed as its standalone
counterpart (``nn.Conv2d``, ``nn.BatchNorm2d``, :class:`SqueezeExcite`, ``nn.Sequential``), so
:func:`~nasframe.core.modules.path_state_dict` and :func:`~nasframe.export.extract.extract` turn an elastic
supernet path into a plain torch module like any other supernet.
"""

from __future__ import annotations

from collections.abc import Container, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nasframe.core.modules import ChoiceModule, path_state_dict
from nasframe.errors import ConfigError, InvalidArchError


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """``value`` rounded to a multiple of ``divisor`` (at least ``min_value``, never below 90% of ``value``),
    the channel rounding of MobileNetV2/V3 and OFA."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def center_slice(big: int, small: int) -> slice:
    """The centre ``small`` positions of ``big`` (both odd, or both even)."""
    start = (big - small) // 2
    return slice(start, start + small)


class ElasticLayer(nn.Module):
    """Base class: a layer whose active sizes are the integer attributes named by :meth:`elastic_dims`."""

    def elastic_dims(self) -> dict[str, Container[int]]:
        """Attribute name -> the values it may take."""
        raise NotImplementedError

    def active_state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """The active slice of the parameters and persistent buffers, keyed as the standalone layer's."""
        raise NotImplementedError

    def active_regions(self) -> dict[str, tuple[slice, ...]]:
        """Name of each parameter held directly by this layer that the active configuration runs -> the region of
        it that runs (one slice per dimension). A parameter left out runs whole, or not at all when it has no
        gradient; layers that hold no parameters of their own (depth, squeeze-excite) give none."""
        return {}

    def check_dim(self, attribute: str, value: int) -> None:
        dims = self.elastic_dims()
        if attribute not in dims:
            raise ConfigError(f"{type(self).__name__} has no elastic size '{attribute}'; it has {sorted(dims)}")
        if value not in dims[attribute]:
            raise ConfigError(f"{type(self).__name__}.{attribute} cannot be {value}; allowed: {_show(dims[attribute])}")


def _show(values: Container[int]) -> str:
    if isinstance(values, range):
        return f"{values.start}..{values.stop - 1}"
    return str(sorted(values))  # type: ignore[call-overload]


class ElasticConv2d(ElasticLayer):
    """A (pointwise, by default) convolution with elastic input and output width: the active layer is
    ``weight[:active_out, :active_in]`` (and ``bias[:active_out]``), the first channels of the widest layer."""

    def __init__(self, max_in: int, max_out: int, kernel_size: int = 1, stride: int = 1, bias: bool = False) -> None:
        super().__init__()
        self.max_in, self.max_out, self.kernel_size, self.stride = max_in, max_out, kernel_size, stride
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.empty(max_out, max_in, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(max_out)) if bias else None
        self.active_in, self.active_out = max_in, max_out
        reference = nn.Conv2d(max_in, max_out, kernel_size, bias=bias)  # torch's default initialisation
        with torch.no_grad():
            self.weight.copy_(reference.weight)
            if self.bias is not None:
                self.bias.copy_(reference.bias)

    def elastic_dims(self) -> dict[str, Container[int]]:
        return {"active_in": range(1, self.max_in + 1), "active_out": range(1, self.max_out + 1)}

    def active_weight(self) -> torch.Tensor:
        if self.active_in == self.max_in and self.active_out == self.max_out:
            return self.weight
        return self.weight[: self.active_out, : self.active_in]

    def active_bias(self) -> torch.Tensor | None:
        return None if self.bias is None else self.bias[: self.active_out]

    def active_regions(self) -> dict[str, tuple[slice, ...]]:
        regions = {"weight": (slice(0, self.active_out), slice(0, self.active_in))}
        if self.bias is not None:
            regions["bias"] = (slice(0, self.active_out),)
        return regions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.active_weight(), self.active_bias(), self.stride, self.padding)

    def active_state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        state = {prefix + "weight": self.active_weight()}
        if self.bias is not None:
            state[prefix + "bias"] = self.active_bias()  # type: ignore[assignment]
        return state

    def standalone(self) -> nn.Conv2d:
        """An empty ``nn.Conv2d`` of the active shape (the layer :meth:`active_state_dict` fits)."""
        return nn.Conv2d(self.active_in, self.active_out, self.kernel_size, self.stride, self.padding,
                         bias=self.bias is not None)

    def extra_repr(self) -> str:
        return (f"max {self.max_in}->{self.max_out}, active {self.active_in}->{self.active_out}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}")


class ElasticDepthwiseConv2d(ElasticLayer):
    """A depthwise convolution with an elastic kernel size and channel count ("same" padding, odd kernels).

    The active kernel is the centre ``active_kernel x active_kernel`` crop of the largest kernel, on the first
    ``active_channels`` channels. With ``kernel_transform`` (OFA's elastic kernel, off by default), a smaller
    kernel is instead obtained step by step from the next larger one: its centre crop, flattened per channel,
    times a learned ``k^2 x k^2`` matrix shared by all channels (initialised to the identity, so the crop at
    first); the matrices are the parameters ``transforms.<big>to<small>`` and exist only in the supernet.
    """

    def __init__(self, max_channels: int, kernel_sizes: Sequence[int], stride: int = 1,
                 kernel_transform: bool = False) -> None:
        super().__init__()
        sizes = sorted(set(int(k) for k in kernel_sizes))
        if not sizes or any(k < 1 or k % 2 == 0 for k in sizes):
            raise ConfigError(f"elastic depthwise kernels must be odd and positive (centre crops), got {list(kernel_sizes)}")
        self.kernel_sizes, self.max_channels, self.stride = tuple(sizes), max_channels, stride
        self.max_kernel = sizes[-1]
        reference = nn.Conv2d(max_channels, max_channels, self.max_kernel, groups=max_channels, bias=False)
        self.weight = nn.Parameter(reference.weight.detach().clone())
        self.kernel_transform = kernel_transform
        self.transforms = nn.ParameterDict({
            f"{big}to{small}": nn.Parameter(torch.eye(small * small))
            for big, small in zip(sizes[:0:-1], sizes[-2::-1])
        }) if kernel_transform else None
        self.active_channels, self.active_kernel = max_channels, self.max_kernel

    def elastic_dims(self) -> dict[str, Container[int]]:
        return {"active_channels": range(1, self.max_channels + 1), "active_kernel": frozenset(self.kernel_sizes)}

    def active_weight(self) -> torch.Tensor:
        weight = self.weight if self.active_channels == self.max_channels else self.weight[: self.active_channels]
        if self.active_kernel == self.max_kernel:
            return weight
        if self.transforms is None:
            crop = center_slice(self.max_kernel, self.active_kernel)
            return weight[:, :, crop, crop]
        big = self.max_kernel
        for small in reversed([k for k in self.kernel_sizes if k >= self.active_kernel and k < big]):
            crop = center_slice(big, small)
            flat = weight[:, :, crop, crop].reshape(-1, small * small)
            weight = F.linear(flat, self.transforms[f"{big}to{small}"]).view(-1, 1, small, small)
            big = small
        return weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.active_weight(), None, self.stride, self.active_kernel // 2, 1, self.active_channels)

    def active_regions(self) -> dict[str, tuple[slice, ...]]:
        """The first channels, and the centre crop of the largest kernel that the active kernel is taken from
        (itself, or with the kernel transformation the next smaller size in its chain, whose matrices run whole)."""
        cropped = self.active_kernel
        if self.transforms is not None and self.active_kernel != self.max_kernel:
            cropped = max(k for k in self.kernel_sizes if k < self.max_kernel)
        crop = center_slice(self.max_kernel, cropped)
        return {"weight": (slice(0, self.active_channels), slice(None), crop, crop)}

    def active_state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        return {prefix + "weight": self.active_weight()}

    def standalone(self) -> nn.Conv2d:
        c, k = self.active_channels, self.active_kernel
        return nn.Conv2d(c, c, k, self.stride, k // 2, groups=c, bias=False)

    def extra_repr(self) -> str:
        return (f"max_channels={self.max_channels}, kernel_sizes={self.kernel_sizes}, stride={self.stride}, "
                f"active {self.active_channels} ch k{self.active_kernel}, kernel_transform={self.kernel_transform}")


class ElasticBatchNorm2d(nn.BatchNorm2d, ElasticLayer):
    """BatchNorm over the first ``active_features`` channels of the widest layer (OFA's DynamicBatchNorm2d).

    In training mode it updates the running statistics of those channels in place (the slices are views),
    with ``nn.BatchNorm2d``'s rules (``momentum=None`` keeps the cumulative mean, as BN recalibration uses).
    It is an ``nn.BatchNorm2d``, so code that finds BatchNorm layers (recalibration) handles it.
    """

    def __init__(self, max_features: int, eps: float = 1e-5, momentum: float | None = 0.1) -> None:
        super().__init__(max_features, eps=eps, momentum=momentum)
        self.active_features = max_features

    def elastic_dims(self) -> dict[str, Container[int]]:
        return {"active_features": range(1, self.num_features + 1)}

    def _slice(self, tensor: torch.Tensor | None) -> torch.Tensor | None:
        if tensor is None or self.active_features == self.num_features:
            return tensor
        return tensor[: self.active_features]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.active_features == self.num_features:
            return super().forward(x)
        # nn.BatchNorm2d.forward (torch 2.x) on the sliced weights and statistics
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        pass_buffers = not self.training or self.track_running_stats
        return F.batch_norm(
            x,
            self._slice(self.running_mean) if pass_buffers else None,
            self._slice(self.running_var) if pass_buffers else None,
            self._slice(self.weight), self._slice(self.bias), use_batch_stats, factor, self.eps,
        )

    def active_regions(self) -> dict[str, tuple[slice, ...]]:
        if not self.affine:
            return {}
        return {"weight": (slice(0, self.active_features),), "bias": (slice(0, self.active_features),)}

    def active_state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        state: dict[str, torch.Tensor] = {}
        for name in ("weight", "bias", "running_mean", "running_var"):
            value = self._slice(getattr(self, name))
            if value is not None:
                state[prefix + name] = value
        if self.num_batches_tracked is not None:
            state[prefix + "num_batches_tracked"] = self.num_batches_tracked
        return state

    def standalone(self) -> nn.BatchNorm2d:
        return nn.BatchNorm2d(self.active_features, eps=self.eps, momentum=self.momentum, affine=self.affine,
                              track_running_stats=self.track_running_stats)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation as in MobileNetV3 ("Searching for MobileNetV3"; "Squeeze-and-Excitation
    Networks"): ``x * hard_sigmoid(expand(relu(reduce(mean_hw(x)))))`` with 1x1 convolutions with bias."""

    def __init__(self, channels: int, reduction: int = 4, divisor: int = 8) -> None:
        super().__init__()
        mid = make_divisible(channels // reduction, divisor)
        self.reduce = nn.Conv2d(channels, mid, 1, bias=True)
        self.expand = nn.Conv2d(mid, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.expand(F.relu(self.reduce(x.mean((2, 3), keepdim=True))))
        return x * F.hardsigmoid(gate)


class ElasticSqueezeExcite(ElasticLayer):
    """:class:`SqueezeExcite` on the first ``active_channels`` channels; its hidden width follows the active
    width, ``make_divisible(active_channels // reduction, divisor)``, and uses the first hidden units (OFA's
    DynamicSE)."""

    def __init__(self, max_channels: int, reduction: int = 4, divisor: int = 8) -> None:
        super().__init__()
        self.max_channels, self.reduction, self.divisor = max_channels, reduction, divisor
        mid = self.hidden_width(max_channels)
        self.reduce = ElasticConv2d(max_channels, mid, bias=True)
        self.expand = ElasticConv2d(mid, max_channels, bias=True)
        self.active_channels = max_channels

    def hidden_width(self, channels: int) -> int:
        return make_divisible(channels // self.reduction, self.divisor)

    def elastic_dims(self) -> dict[str, Container[int]]:
        return {"active_channels": range(1, self.max_channels + 1)}

    @property
    def active_channels(self) -> int:
        return self.reduce.active_in

    @active_channels.setter
    def active_channels(self, channels: int) -> None:
        """Set the active width and, from it, the active hidden width of both convolutions."""
        mid = self.hidden_width(channels)
        if mid > self.reduce.max_out:
            raise ConfigError(f"squeeze-excite: hidden width {mid} of {channels} channels exceeds the widest {self.reduce.max_out}")
        self.reduce.active_in, self.reduce.active_out = channels, mid
        self.expand.active_in, self.expand.active_out = mid, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.expand(F.relu(self.reduce(x.mean((2, 3), keepdim=True))))
        return x * F.hardsigmoid(gate)

    def active_state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        return {**self.reduce.active_state_dict(prefix + "reduce."), **self.expand.active_state_dict(prefix + "expand.")}

    def standalone(self) -> SqueezeExcite:
        return SqueezeExcite(self.active_channels, self.reduction, self.divisor)


def resize_images(x: torch.Tensor, size: int) -> torch.Tensor:
    """``x`` (N, C, H, W) resized to ``size x size`` (bilinear, antialiased when shrinking, as torchvision's
    ``Resize``); unchanged when it already has that size."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=size < min(x.shape[-2:]))


class InputResize(nn.Module):
    """The first layer of a network searched with elastic resolution: its input resized to ``size x size``."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize_images(x, self.size)

    def extra_repr(self) -> str:
        return f"size={self.size}"


class ElasticInputResize(ElasticLayer):
    """Elastic resolution (Once-for-All; BigNAS): the network runs on its input resized to
    ``active_resolution x active_resolution``, one of ``resolutions``. A choice of the arch like any other, so a
    sampler draws it per path and step (per batch), and BN recalibration, latency and export see the resolution
    the arch runs at. It holds no weights; its standalone counterpart is :class:`InputResize`."""

    def __init__(self, resolutions: Sequence[int]) -> None:
        super().__init__()
        self.resolutions = tuple(sorted(int(r) for r in resolutions))
        self.active_resolution = self.resolutions[-1]

    def elastic_dims(self) -> dict[str, Container[int]]:
        return {"active_resolution": frozenset(self.resolutions)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize_images(x, self.active_resolution)

    def active_state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        return {}

    def standalone(self) -> InputResize:
        return InputResize(self.active_resolution)

    def extra_repr(self) -> str:
        return f"resolutions={self.resolutions}, active {self.active_resolution}"


class ElasticSequential(nn.Sequential, ElasticLayer):
    """Elastic depth: runs only its first ``active_depth`` modules; the others are skipped (not run, not in the
    active state dict), so the standalone counterpart is an ``nn.Sequential`` of those first modules."""

    def __init__(self, *modules: nn.Module) -> None:
        super().__init__(*modules)
        self.active_depth = len(self)

    def elastic_dims(self) -> dict[str, Container[int]]:
        return {"active_depth": range(1, len(self) + 1)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in list(self._modules.values())[: self.active_depth]:
            x = module(x)
        return x

    def active_state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        state: dict[str, torch.Tensor] = {}
        for name, module in list(self._modules.items())[: self.active_depth]:
            state.update(path_state_dict(module, f"{prefix}{name}."))
        return state


class ElasticChoice(ChoiceModule):
    """One choice of the space driving elastic sizes: option ``o`` sets every ``(layer, attribute)`` target to
    ``values[o]`` (e.g. an expand-ratio choice sets the width of a block's expand conv, its BatchNorms, its
    depthwise conv, its squeeze-excite and its projection's input).

    It holds no weights: the targets are referenced, not registered as its submodules, so in
    :func:`~nasframe.core.modules.path_state_dict` it contributes nothing and the targets appear where they sit.
    """

    def __init__(self, choice_name: str, values: Mapping[str, int], targets: Sequence[tuple[ElasticLayer, str]]) -> None:
        super().__init__()
        if not values or not targets:
            raise ConfigError(f"elastic choice '{choice_name}' needs option values and at least one target")
        for layer, attribute in targets:
            if not isinstance(layer, ElasticLayer):
                raise ConfigError(f"elastic choice '{choice_name}': target {type(layer).__name__} is not an ElasticLayer")
            for value in values.values():
                layer.check_dim(attribute, value)
        self.choice_name = choice_name
        self.values = dict(values)
        self.__dict__["targets"] = tuple(targets)
        self.__dict__["no_weights"] = nn.Module()
        self.active = ""

    def set_option(self, option: str) -> None:
        value = self.values.get(option)
        if value is None:
            raise InvalidArchError(f"choice '{self.choice_name}' has no option '{option}'; options: {list(self.values)}")
        for layer, attribute in self.__dict__["targets"]:
            setattr(layer, attribute, value)
        self.active = option

    def active_module(self) -> nn.Module:
        """An empty module: the weights of the targets belong to the modules that hold them."""
        return self.__dict__["no_weights"]

    def option_parameters(self) -> Iterator[nn.Parameter]:
        """The weights of the layers this choice sizes. Only the slices the active option runs get a gradient
        (the depth choice: only the blocks that run), so a gradient norm over them is the norm over the active
        option's weights. Larger options run more weights and so get larger norms, as a 3x3 convolution does
        against a 1x1 on NAS-Bench-201; layers sized by several choices (a depthwise conv: kernel and expand
        ratio) count for each of them."""
        seen: set[int] = set()
        for layer, _ in self.__dict__["targets"]:
            for param in layer.parameters():
                if id(param) not in seen:
                    seen.add(id(param))
                    yield param

    def extra_repr(self) -> str:
        return f"choice={self.choice_name!r}, values={self.values}, active={self.active!r}"

"""Measuring the inference latency of a module on a device.

Method: the module is put in eval mode and run under :func:`torch.inference_mode` (restored afterwards) on inputs
on the target device. ``warmup`` untimed calls come first (allocator, cuDNN algorithm choice, caches), then
``repeats`` timed calls. Each timed call starts from an idle device, so a figure is the latency of one call, not a
throughput:

* on CUDA the device is synchronised before each call and the call is bracketed by two CUDA events
  (``torch.cuda.Event(enable_timing=True)``); the event times are read after a final synchronisation;
* on the CPU each call is bracketed by :func:`time.perf_counter`.

The result reports the median (the figure to use: robust to the outliers of a shared machine), the
interquartile range, the minimum and the maximum over the repeats, and the number of repeats.

Inputs are given as tensors, or built from a per-sample shape and a batch size (:func:`make_inputs`), so one
module is measured at several batch sizes without the caller building tensors.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Union

import numpy as np
import torch
from torch import nn

from nasframe.errors import ConfigError

#: tensors (one or several positional inputs), or the shape of one sample (batch dimension excluded)
ExampleInputs = Union[torch.Tensor, Sequence[torch.Tensor], Sequence[int]]


@dataclass(frozen=True)
class LatencyResult:
    """Summary of ``repeats`` timed calls, in milliseconds."""

    median_ms: float
    iqr_ms: float  # 75th minus 25th percentile
    min_ms: float
    max_ms: float
    repeats: int
    warmup: int
    batch_size: int
    device: str  # the torch device string (``cpu``, ``cuda:0``)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float], warmup: int, batch_size: int, device: str) -> LatencyResult:
        values = np.asarray(samples_ms, dtype=np.float64)
        if values.size == 0:
            raise ConfigError("a latency result needs at least one timed call")
        q25, q50, q75 = np.percentile(values, [25, 50, 75])
        return cls(
            median_ms=float(q50), iqr_ms=float(q75 - q25), min_ms=float(values.min()), max_ms=float(values.max()),
            repeats=int(values.size), warmup=warmup, batch_size=batch_size, device=device,
        )


def _check_count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"latency: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def resolve_device(device: torch.device | str) -> torch.device:
    """``device`` as a :class:`torch.device`, with a clear error for a CUDA device on a machine without one."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"latency: unknown device {device!r} ({exc})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"latency: device {device} requested but CUDA is not available on this machine")
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
    elif device.type != "cpu":
        raise ConfigError(f"latency: only cpu and cuda devices are measured, got {device}")
    return device


def make_inputs(shape: Sequence[int], batch_size: int, device: torch.device | str = "cpu",
                dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    """A random input batch of ``batch_size`` samples of ``shape`` (per sample, e.g. ``(3, 32, 32)``)."""
    batch_size = _check_count("batch_size", batch_size, 1)
    if not shape or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in shape):
        raise ConfigError(f"latency: an input shape is a sequence of positive integers, got {tuple(shape)!r}")
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((batch_size, *(int(s) for s in shape)), generator=generator, dtype=dtype).to(device)


def _as_inputs(example_inputs: ExampleInputs, batch_size: int | None, device: torch.device) -> tuple[tuple[torch.Tensor, ...], int]:
    if isinstance(example_inputs, torch.Tensor):
        tensors: tuple[torch.Tensor, ...] = (example_inputs,)
    elif isinstance(example_inputs, Sequence) and example_inputs and all(isinstance(t, torch.Tensor) for t in example_inputs):
        tensors = tuple(example_inputs)
    elif isinstance(example_inputs, Sequence) and example_inputs and all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in example_inputs
    ):
        size = 1 if batch_size is None else batch_size
        return (make_inputs(example_inputs, size, device),), size
    else:
        raise ConfigError(
            "latency: example_inputs must be a tensor, a sequence of tensors, or a per-sample shape of positive "
            f"integers, got {type(example_inputs).__name__} {example_inputs!r}"[:200]
        )
    size = tensors[0].shape[0] if tensors[0].dim() > 0 else 1
    if batch_size is not None and size != batch_size:
        raise ConfigError(f"latency: batch_size={batch_size} but the example input has batch dimension {size}")
    return tuple(t.to(device) for t in tensors), int(size)


def measure_latency(
    module: nn.Module,
    example_inputs: ExampleInputs,
    device: torch.device | str = "cpu",
    warmup: int = 10,
    repeats: int = 50,
    batch_size: int | None = None,
) -> LatencyResult:
    """Median inference latency of ``module(*inputs)`` on ``device`` (method in the module docstring).

    ``example_inputs``: a tensor or tensors (their first dimension is the batch), or a per-sample shape such as
    ``(3, 32, 32)``, from which a random batch of ``batch_size`` (default 1) is built. The module is moved to
    ``device`` (in place, as :meth:`nn.Module.to` does) and its training flag is restored afterwards.
    """
    warmup = _check_count("warmup", warmup, 0)
    repeats = _check_count("repeats", repeats, 1)
    if batch_size is not None:
        batch_size = _check_count("batch_size", batch_size, 1)
    if not isinstance(module, nn.Module):
        raise ConfigError(f"latency: expected a torch.nn.Module, got {type(module).__name__}")
    device = resolve_device(device)
    inputs, size = _as_inputs(example_inputs, batch_size, device)
    was_training = module.training
    module.to(device).eval()
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                module(*inputs)
            samples = _time_cuda(module, inputs, device, repeats) if device.type == "cuda" else _time_cpu(module, inputs, repeats)
    finally:
        module.train(was_training)
    return LatencyResult.from_samples(samples, warmup=warmup, batch_size=size, device=str(device))


def _time_cpu(module: nn.Module, inputs: tuple[torch.Tensor, ...], repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        module(*inputs)
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples


def _time_cuda(module: nn.Module, inputs: tuple[torch.Tensor, ...], device: torch.device, repeats: int) -> list[float]:
    pairs = []
    with torch.cuda.device(device):
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(device)  # each call starts from an idle device: latency, not throughput
            start.record()
            module(*inputs)
            end.record()
            pairs.append((start, end))
        torch.cuda.synchronize(device)
    return [start.elapsed_time(end) for start, end in pairs]

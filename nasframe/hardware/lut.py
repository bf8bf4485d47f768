"""Building a latency lookup table on a device, for any search space with a latency adapter.

The table has one term per ``(choice, option)``: the sum of the measured latencies of every place in the network
where that choice puts that option (NAS-Bench-201: the op on one edge, in every cell of every stage), each
measured alone in the input shape it sees there; plus a fixed part (the modules no choice controls). This is the
lookup-table method of "ProxylessNAS: Direct Neural Architecture Search on Target Task and Hardware" and
"Once-for-All: Train One Network and Specialize it for Efficient Deployment". Places that compute the same
thing (same op, same input shape, same settings) share an :attr:`OpInstance.key` and are measured once.

A space reaches the table through a small adapter (:class:`LatencyAdapter`), so the table code knows no space.
:func:`find_adapter` looks for one, in order: the space's own ``latency_adapter()`` method; an entry point named
after the space in the ``nasframe.latency_adapters`` group; a module beside the space's module named
``<space module>_latency`` (``search_spaces.nb201`` -> ``search_spaces.nb201_latency``) with a function
``latency_adapter(space)``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from nasframe.core.choice import Choice
from nasframe.core.space import SearchSpace
from nasframe.errors import ConfigError
from nasframe.hardware.device import describe_device
from nasframe.hardware.latency import LatencyResult, measure_latency, resolve_device
from nasframe.hardware.predictor import LatencyPredictor, PredictorKey

ADAPTER_GROUP = "nasframe.latency_adapters"


@dataclass(frozen=True)
class OpInstance:
    """One place in the network: what to build and the per-sample input shape it sees there."""

    label: str  # where it is, e.g. "stage1/cell0/edge_2_1"
    key: str  # places with equal keys compute the same thing and are measured once
    build: Callable[[], nn.Module]
    input_shape: tuple[int, ...]


class LatencyAdapter(Protocol):
    """What the table builder needs from a space."""

    def option_instances(self, choice: str, option: str) -> list[OpInstance]:
        """Every place where ``choice`` runs ``option`` (an empty list: the option costs nothing)."""

    def fixed_instances(self) -> list[OpInstance]:
        """The modules that every arch runs (stem, reductions, head)."""

    def input_shape(self) -> tuple[int, ...]:
        """Per-sample input shape of the whole network."""

    def build_network(self, arch: Mapping[str, str]) -> nn.Module:
        """The standalone network of ``arch`` (whole-arch measurements)."""

    # Optional, for spaces whose latency is not additive in their own choices (see TermEncoder):
    #   table_choices() -> Sequence[Choice]: the choices the table has terms for (option_instances is then
    #       asked about these);
    #   table_arch(arch) -> Mapping[str, str]: an arch of the space as an arch over the table choices.


def table_choices(space: SearchSpace, adapter: LatencyAdapter) -> Sequence[Choice]:
    """The choices the latency table has terms for: the adapter's table choices, else the space's."""
    own = getattr(adapter, "table_choices", None)
    return tuple(own()) if callable(own) else space.choices


def table_arch_map(adapter: LatencyAdapter) -> Callable[[Mapping[str, str]], Mapping[str, str]] | None:
    """The adapter's map from space archs to table archs, if it declares table choices."""
    return getattr(adapter, "table_arch", None) if callable(getattr(adapter, "table_choices", None)) else None


def find_adapter(space: SearchSpace) -> LatencyAdapter:
    """The latency adapter of ``space`` (lookup order in the module docstring)."""
    own = getattr(space, "latency_adapter", None)
    if callable(own):
        return own()
    for entry in entry_points(group=ADAPTER_GROUP):
        if entry.name == space.name:
            return entry.load()(space)
    module_name = type(space).__module__ + "_latency"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise ConfigError(
            f"no latency adapter for space '{space.name}': give the space a latency_adapter() method, an entry point "
            f"'{space.name}' in group {ADAPTER_GROUP}, or a module {module_name} with latency_adapter(space)"
        ) from None
    return module.latency_adapter(space)


@dataclass(frozen=True)
class MeasureSettings:
    """How each table entry and each whole arch is measured."""

    device: str = "cpu"
    batch_size: int = 1
    warmup: int = 10
    repeats: int = 50


def build_lut(
    space: SearchSpace, adapter: LatencyAdapter, settings: MeasureSettings,
    progress: Callable[[str], None] | None = None,
) -> LatencyPredictor:
    """Measure every table entry on ``settings.device`` and return the uncorrected table predictor.

    ``details["entries"]`` lists every place with its key and measured median/IQR, so the file shows where each
    term comes from.
    """
    device = resolve_device(settings.device)
    measured: dict[str, LatencyResult] = {}

    def measure(instance: OpInstance) -> LatencyResult:
        if instance.key not in measured:
            module = instance.build()
            measured[instance.key] = measure_latency(
                module, instance.input_shape, device, settings.warmup, settings.repeats, settings.batch_size
            )
            if progress is not None:
                progress(f"{instance.key}: {measured[instance.key].median_ms:.4f} ms")
        return measured[instance.key]

    entries: list[dict[str, Any]] = []

    def record(instance: OpInstance, choice: str | None, option: str | None) -> float:
        result = measure(instance)
        entries.append({
            "label": instance.label, "key": instance.key, "choice": choice, "option": option,
            "input_shape": list(instance.input_shape), "median_ms": result.median_ms, "iqr_ms": result.iqr_ms,
        })
        return result.median_ms

    fixed_ms = sum(record(instance, None, None) for instance in adapter.fixed_instances())
    terms = []
    choices = table_choices(space, adapter)
    for choice in choices:
        for option in choice.options:
            terms.append(sum(record(inst, choice.name, option) for inst in adapter.option_instances(choice.name, option)))
    key = PredictorKey(describe_device(device), settings.batch_size, torch.__version__, space.describe())
    details = {
        "measurement": {"warmup": settings.warmup, "repeats": settings.repeats, "statistic": "median"},
        "distinct_measurements": len(measured),
        "entries": entries,
    }
    return LatencyPredictor(choices, np.array(terms), fixed_ms, key, method="lookup table", details=details,
                            arch_map=table_arch_map(adapter))


def measure_archs(
    adapter: LatencyAdapter, archs: Sequence[Mapping[str, str]], settings: MeasureSettings,
    progress: Callable[[int, float], None] | None = None,
) -> np.ndarray:
    """Median latency (ms) of each whole arch's standalone network, measured as the table entries are."""
    device = resolve_device(settings.device)
    out = np.empty(len(archs))
    for k, arch in enumerate(archs):
        network = adapter.build_network(arch)
        out[k] = measure_latency(
            network, adapter.input_shape(), device, settings.warmup, settings.repeats, settings.batch_size
        ).median_ms
        if progress is not None:
            progress(k, float(out[k]))
        del network
    return out

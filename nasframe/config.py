"""Structured configs: the schema of a search run, registered in Hydra's ConfigStore.

The top level and the framework-owned groups (``trainer``, ``evaluator``, ``constraints``, ``export``) are
typed here, so Hydra rejects a wrong key or type before any work starts. The pluggable groups (``space``,
``dataset``, ``sampler``, ``selector``) name a registered class in ``name``; the rest of the node is checked
against that class's own ``Config`` dataclass when the run starts (:func:`nasframe.core.settings.settings_from`),
still before any data is loaded or any weight trained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

from nasframe.evaluation.evaluator import EvaluatorConfig
from nasframe.training.trainer import TrainerConfig


@dataclass
class ConstraintsConfig:
    max_params: Optional[int] = None  # reject archs whose standalone subnet has more parameters


@dataclass
class ExportConfig:
    torch_export: bool = True  # also write subnet.pt2 (torch.export), loadable without nasframe


@dataclass
class SearchConfig:
    """One search: train a supernet, select an arch, export it."""

    space: Any = MISSING
    dataset: Any = MISSING
    sampler: Any = MISSING
    selector: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)
    constraints: ConstraintsConfig = field(default_factory=ConstraintsConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch intra-op threads; 0 keeps torch's default
    arch: Optional[str] = None  # skip selection: evaluate and export this arch (native string or JSON)
    resume: Optional[str] = None  # a checkpoint file or run directory to continue training from


def register_configs() -> None:
    """Store the schema as ``search_schema`` (the first entry of ``configs/search.yaml``'s defaults)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="search_schema", node=SearchConfig)

"""``train.*``: the evaluation phase's own settings, beside ``trainer.*`` (the loop, optimiser, schedule).

A protocol preset (``+protocol=nb201``, ``configs/protocol/``) sets them; each can be overridden.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from nasframe.errors import ConfigError

NETWORKS = ("subnet", "eval")
SELECT = ("last", "best_valid")
ON_NONFINITE = ("error", "stop")


@dataclass
class TrainSettings:
    """How a found arch is trained standalone (the network, its regularisers, what is reported)."""

    protocol: Optional[str] = None  # the preset's name (set by +protocol=...), shown in the report
    spaces: List[str] = field(default_factory=list)  # the spaces the protocol fits (empty: any space)
    datasets: List[str] = field(default_factory=list)  # the data sets the protocol fits (empty: any)
    space_settings: Dict[str, Any] = field(default_factory=dict)  # merged into the space's settings (e.g. dropout)
    dataset_settings: Dict[str, Any] = field(default_factory=dict)  # merged into the data set's (e.g. split: full)
    network: str = "subnet"  # subnet: the space's standalone network | eval: its evaluation network (DARTS)
    channels: int = 36  # eval network: initial channels (DARTS CIFAR-10: 36)
    layers: int = 20  # eval network: cells (DARTS CIFAR-10: 20)
    auxiliary_weight: float = 0.0  # > 0: the eval network's auxiliary head, its loss weighted by this (DARTS: 0.4)
    drop_path_prob: float = 0.0  # drop-path probability reached at the last epoch, raised linearly (DARTS: 0.2)
    cutout: int = 0  # > 0: cutout of this side length on training images (DeVries & Taylor 2017; DARTS: 16)
    eval_every: int = 1  # epochs between valid/test accuracy measurements (0: only after the last epoch)
    eval_batch_size: int = 1000
    select: str = "last"  # the reported accuracies: of the last epoch, or of the epoch with the best valid accuracy
    on_nonfinite: str = "error"  # a non-finite training loss: error (the run fails, its last good checkpoint kept) |
    # stop (training ends there and the run reports from the epochs before it, as a benchmark table does for a
    # run that diverged; the outcome records where; no checkpoint of the diverged weights is written)
    distill_weight: float = 0.0  # > 0 (needs run= with its supernet checkpoint): distil from the supernet's
    # largest path (OFA's knowledge distillation), loss = (1 - w) * CE + w * KL(teacher || student)
    distill_temperature: float = 1.0
    latency_table: Optional[str] = None  # a latency table of the space (`nasframe latency`): predicted latency in the report

    def check(self) -> None:
        if self.network not in NETWORKS:
            raise ConfigError(f"train.network: {self.network!r} is not one of {', '.join(NETWORKS)}")
        if self.select not in SELECT:
            raise ConfigError(f"train.select: {self.select!r} is not one of {', '.join(SELECT)}")
        if self.on_nonfinite not in ON_NONFINITE:
            raise ConfigError(f"train.on_nonfinite: {self.on_nonfinite!r} is not one of {', '.join(ON_NONFINITE)}")
        if self.channels < 2 or self.layers < 3 or self.eval_every < 0 or self.eval_batch_size < 1 or self.cutout < 0:
            raise ConfigError("train: need channels >= 2, layers >= 3, eval_every >= 0, eval_batch_size >= 1, cutout >= 0")
        if not 0.0 <= self.drop_path_prob < 1.0:
            raise ConfigError(f"train.drop_path_prob must be in [0, 1), got {self.drop_path_prob}")
        if self.auxiliary_weight < 0 or not 0.0 <= self.distill_weight <= 1.0 or self.distill_temperature <= 0:
            raise ConfigError("train: need auxiliary_weight >= 0, distill_weight in [0, 1], distill_temperature > 0")
        if self.network != "eval" and (self.auxiliary_weight > 0 or self.drop_path_prob > 0):
            raise ConfigError("train.auxiliary_weight and train.drop_path_prob need the evaluation network "
                              "(train.network=eval, DARTS)")

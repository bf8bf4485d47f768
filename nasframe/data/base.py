"""Data held as tensors, split into train / valid / test, and a seeded in-memory batch loader.

Small and medium image data sets fit in memory (digits: 1,797 images; CIFAR-10: 60k x 3 KB); keeping them as
one tensor avoids DataLoader worker start-up and per-item Python work in the training step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from nasframe.core.registry import DATASETS
from nasframe.core.space import DataSpec


@dataclass
class TensorSplit:
    """Inputs ``x`` (N, C, H, W) and integer labels ``y`` (N,) of one split."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"split has {len(self.x)} inputs but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> TensorSplit:
        return TensorSplit(self.x.to(device), self.y.to(device))


@dataclass
class DatasetSplits:
    """The splits a search uses: train the supernet, select on valid, report on test."""

    train: TensorSplit
    valid: TensorSplit
    test: TensorSplit
    spec: DataSpec
    name: str

    def summary(self) -> str:
        return (
            f"{self.name}: train {len(self.train)}, valid {len(self.valid)}, test {len(self.test)}; "
            f"input {tuple(self.spec.input_shape)}, {self.spec.num_classes} classes"
        )


class InMemoryLoader:
    """Batches of a :class:`TensorSplit`, reshuffled each epoch by its own seeded generator.

    The loader's state is the generator state at the start of the current epoch, so a checkpoint taken
    mid-epoch resumes the same order (:meth:`epoch` with ``skip`` batches). ``transform`` (e.g. augmentation
    on the device) is applied per batch.
    """

    def __init__(
        self,
        split: TensorSplit,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        transform: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.split = split
        self.batch_size = min(batch_size, len(split)) if drop_last else batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.transform = transform
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.split)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch(self, skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One pass over the split; the generator advances once per epoch (and for each transform call)."""
        n = len(self.split)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        order = order.to(self.split.x.device)
        for b in range(skip, len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            x = self.split.x[idx]
            if self.transform is not None:
                x = self.transform(x, self.generator)
            yield x, self.split.y[idx]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.epoch()

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


def build_dataset(node: Any) -> DatasetSplits:
    """Load the data set named by ``node.name`` with the rest of ``node`` as its settings."""
    name = node["name"] if node is not None and "name" in node else None
    if not name:
        from nasframe.errors import ConfigError

        raise ConfigError(f"dataset.name is required; known data sets: {', '.join(DATASETS.names())}")
    cls = DATASETS.get(name)
    return cls.from_config(node, where="dataset").load()

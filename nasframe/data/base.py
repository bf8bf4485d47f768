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


Transform = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]


@dataclass
class DatasetSplits:
    """The splits a search uses: train the supernet, select on valid, report on test.

    Splits may hold inputs in a compact storage form (uint8 images); ``prepare`` turns a batch of stored
    inputs into model inputs (e.g. normalised floats) and ``augment`` does the same with training
    augmentation. Both run per batch on the batch's device; ``None`` means the stored inputs are ready.

    A node-classification data set holds node ids as inputs and its graph in ``graph`` (a
    :class:`~nasframe.data.graph.GraphData`), which the network is bound to (:mod:`nasframe.core.graph`).
    """

    train: TensorSplit
    valid: TensorSplit
    test: TensorSplit
    spec: DataSpec
    name: str
    prepare: Transform | None = None
    augment: Transform | None = None
    graph: Any = None

    @property
    def is_graph(self) -> bool:
        return self.graph is not None

    @property
    def train_transform(self) -> Transform | None:
        return self.augment or self.prepare

    def prepared(self, split: TensorSplit, device: torch.device | str | None = None) -> TensorSplit:
        """``split`` on ``device`` with its inputs prepared for the model (for evaluation, not training)."""
        x = split.x.to(device) if device is not None else split.x
        return TensorSplit(self.prepare(x, None) if self.prepare else x, split.y.to(x.device))

    def summary(self) -> str:
        if self.graph is not None:
            return self.graph.summary()
        return (
            f"{self.name}: train {len(self.train)}, valid {len(self.valid)}, test {len(self.test)}; "
            f"input {tuple(self.spec.input_shape)}, {self.spec.num_classes} classes"
        )


class DataOrder:
    """Which training examples an epoch visits, in which order. The default visits each once, shuffled.

    Adaptive data samplers (PA&DA) override :meth:`order`, compute their per-example statistics from every
    training batch's outputs in :meth:`observe_batch`, and update at :meth:`end_epoch`; their state is checkpointed
    with the trainer's.
    """

    def order(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randperm(n, generator=generator)

    def observe_batch(self, indices: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor,
                      gather: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """A training step's detached ``logits`` and ``targets`` for this rank's slice of the batch whose examples
        are ``indices`` (into the split, the whole global batch); ``gather`` turns a per-example tensor of this
        rank's slice into the global batch's. The default records nothing."""

    def end_epoch(self, epoch: int, epochs: int) -> None:
        """Called after epoch ``epoch`` (0-based) of ``epochs``."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def log_to(self, writer: Any, epoch: int) -> None:
        """Write the sampling distribution to TensorBoard."""


class InMemoryLoader:
    """Batches of a :class:`TensorSplit`, ordered each epoch by a :class:`DataOrder` and its own seeded generator.

    The trainer checkpoints the generator state of the current epoch's start, so a checkpoint taken
    mid-epoch resumes the same order (:meth:`epoch` with ``skip`` batches). ``transform`` (e.g. augmentation
    on the device) is applied per batch. Batches are ``(x, y, indices)``.
    """

    def __init__(
        self,
        split: TensorSplit,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        transform: Transform | None = None,
        data_order: DataOrder | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.split = split
        self.batch_size = min(batch_size, len(split)) if drop_last else batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.transform = transform
        self.data_order = data_order or DataOrder()
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.split)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch(self, skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """One pass over the split, starting at batch ``skip``.

        The loader's generator draws the epoch's order and one augmentation seed; batch ``b`` is augmented
        with a generator seeded from (that seed, ``b``). So the same batches and the same augmentation follow
        whether or not earlier batches were skipped, and a mid-epoch resume is exact.
        """
        n = len(self.split)
        order = self.data_order.order(n, self.generator) if self.shuffle else torch.arange(n)
        order = order.to(self.split.x.device)
        augment_seed = int(torch.randint(0, 2**62, (1,), generator=self.generator))
        batch_generator = torch.Generator()
        for b in range(skip, len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            x = self.split.x[idx]
            if self.transform is not None:
                x = self.transform(x, batch_generator.manual_seed(augment_seed + b))
            yield x, self.split.y[idx], idx

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        return self.epoch()

    def probe_batches(self, count: int, seed: int, device: torch.device | str) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``count`` batches drawn with ``seed`` (transformed like training batches), outside the epoch's order and
        without touching its generator: data for decisions during training (a few-shot split's gradients)."""
        generator = torch.Generator().manual_seed(seed)
        batches = []
        for _ in range(count):
            idx = torch.randperm(len(self.split), generator=generator)[: self.batch_size].to(self.split.x.device)
            x = self.split.x[idx]
            if self.transform is not None:
                x = self.transform(x, generator)
            batches.append((x.to(device), self.split.y[idx].to(device)))
        return batches

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


class CyclingBatches:
    """An endless stream of batches from an :class:`InMemoryLoader`, pass after pass, with a resumable state
    (the loader's state at the start of the current pass and the position in it). DARTS draws its
    architecture-step batches from the valid split this way, one per training step."""

    def __init__(self, loader: InMemoryLoader) -> None:
        self.loader = loader
        self._pass_start = loader.state_dict()
        self._position = 0
        self._iterator: Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._iterator is None:
            self.loader.load_state_dict(self._pass_start)
            self._iterator = self.loader.epoch(skip=self._position)
        batch = next(self._iterator, None)
        if batch is None:  # start the next pass
            self._pass_start = self.loader.state_dict()
            self._position = 0
            self._iterator = self.loader.epoch()
            batch = next(self._iterator)
        self._position += 1
        return batch[0], batch[1]

    def state_dict(self) -> dict[str, Any]:
        return {"pass_start": self._pass_start, "position": self._position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._pass_start = state["pass_start"]
        self._position = int(state["position"])
        self._iterator = None


def build_dataset(node: Any) -> DatasetSplits:
    """Load the data set named by ``node.name`` with the rest of ``node`` as its settings."""
    return DATASETS.build(node, "dataset").load()

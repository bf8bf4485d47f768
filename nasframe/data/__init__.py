"""Data sets as in-memory tensors, and the loaders that batch them."""

from nasframe.data.base import DatasetSplits, InMemoryLoader, TensorSplit, build_dataset

__all__ = ["DatasetSplits", "InMemoryLoader", "TensorSplit", "build_dataset"]

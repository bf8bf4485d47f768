"""scikit-learn's bundled digits (1,797 real 8x8 grey images of handwritten digits, 10 classes).

It ships inside scikit-learn, so searches and tests run offline. Splits are stratified and fixed by
``split_seed``; inputs are scaled to [0, 1] and standardised with the training split's mean and std.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nasframe.core.registry import DATASETS
from nasframe.core.settings import Configurable
from nasframe.core.space import DataSpec
from nasframe.data.base import DatasetSplits, TensorSplit
from nasframe.errors import ConfigError


@dataclass
class DigitsConfig:
    valid_fraction: float = 0.2
    test_fraction: float = 0.2
    split_seed: int = 0
    train_limit: int = 0  # use only the first N training images of the split (0: all), as cifar10's setting
    valid_limit: int = 0  # likewise for the valid split


@DATASETS.register("digits")
class Digits(Configurable):
    """The digits data set split into train / valid / test."""

    Config = DigitsConfig

    def __init__(self, **settings) -> None:
        self._init_config(settings, where="dataset")
        cfg = self.config
        if not (0 < cfg.valid_fraction < 1 and 0 < cfg.test_fraction < 1 and cfg.valid_fraction + cfg.test_fraction < 1):
            raise ConfigError("dataset: valid_fraction and test_fraction must be in (0, 1) and sum to less than 1")
        if cfg.train_limit < 0 or cfg.valid_limit < 0:
            raise ConfigError("dataset: train_limit and valid_limit must be >= 0 (0: the whole split)")

    def load(self) -> DatasetSplits:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        cfg = self.config
        bunch = load_digits()
        images = (bunch.images.astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8) in [0, 1]
        labels = bunch.target.astype(np.int64)
        holdout = cfg.valid_fraction + cfg.test_fraction
        x_train, x_rest, y_train, y_rest = train_test_split(
            images, labels, test_size=holdout, stratify=labels, random_state=cfg.split_seed
        )
        x_valid, x_test, y_valid, y_test = train_test_split(
            x_rest, y_rest, test_size=cfg.test_fraction / holdout, stratify=y_rest, random_state=cfg.split_seed
        )
        mean, std = float(x_train.mean()), float(x_train.std())

        def split(x: np.ndarray, y: np.ndarray) -> TensorSplit:
            return TensorSplit(torch.from_numpy((x - mean) / std), torch.from_numpy(y))

        train_end = cfg.train_limit or len(y_train)
        valid_end = cfg.valid_limit or len(y_valid)
        return DatasetSplits(
            train=split(x_train[:train_end], y_train[:train_end]),
            valid=split(x_valid[:valid_end], y_valid[:valid_end]),
            test=split(x_test, y_test),
            spec=DataSpec(in_channels=1, input_size=(8, 8), num_classes=10),
            name="digits",
        )

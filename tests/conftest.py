"""Shared fixtures: a tiny NAS-Bench-201 space on the digits data (fast on 2 CPU cores)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasframe.core.space import DataSpec
from search_spaces.nb201 import NB201Space

TINY = {"channels": 4, "cells_per_stage": 1}


@pytest.fixture(autouse=True)
def _two_threads() -> None:
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def digits():
    from nasframe.data.digits import Digits

    return Digits().load()


@pytest.fixture
def tiny_space(digits) -> NB201Space:
    return NB201Space(digits.spec, **TINY)


@pytest.fixture
def cifar_like_space() -> NB201Space:
    return NB201Space(DataSpec(3, (32, 32), 10), channels=8, cells_per_stage=1)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)

"""Shared fixtures: a tiny NAS-Bench-201 space on the digits data (fast on 2 CPU cores)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

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


@pytest.fixture(scope="session")
def load_script():
    """``load_script(name)``: the module of ``scripts/<name>.py``, imported with ``scripts/`` on the path (as when it
    runs), for tests of a script's functions."""
    folder = Path(__file__).resolve().parent.parent / "scripts"

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
        sys.path.insert(0, str(folder))
        module = importlib.util.module_from_spec(spec)
        previous = sys.modules.get(name)
        sys.modules[name] = module  # a dataclass of a module with postponed annotations looks its module up
        try:
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(folder))
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
        return module

    return load


@pytest.fixture(scope="session")
def slurm_env() -> dict[str, str]:
    """The environment of a process that talks to the local Slurm cluster of ``scripts/slurm_local.sh`` (its
    ``SLURM_CONF``, this Python first on the PATH); skips the test, saying why, when no such cluster answers."""
    import os
    import shutil
    import subprocess

    conf = os.environ.get("SLURM_CONF") or str(Path(os.environ.get("NASFRAME_SLURM_DIR", "/tmp/nasframe-slurm")) / "slurm.conf")
    if shutil.which("sinfo") is None or not Path(conf).is_file():
        pytest.skip("no local Slurm cluster (start one with scripts/slurm_local.sh start; .ci/run does where it is root)")
    env = {**os.environ, "SLURM_CONF": conf, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    try:
        state = subprocess.run(["sinfo", "-h", "-n", "localhost", "-o", "%T"], capture_output=True, text=True, env=env,
                               timeout=20).stdout.strip()
    except subprocess.TimeoutExpired:
        state = "no answer in 20 s"
    if state not in ("idle", "mixed", "allocated"):
        pytest.skip(f"the local Slurm cluster of {conf} does not answer (node state: {state or 'none'}): "
                    "scripts/slurm_local.sh start")
    return env

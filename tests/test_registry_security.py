"""Names read from files cannot import code: a ``module:attr`` name in an export's ``arch.json``, a run's
``config.yaml`` or a latency table is refused without importing the module; from the command line or a library
call it is still imported."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

import numpy as np
import pytest
import torch

from nasframe.core.registry import SAMPLERS, SPACES
from nasframe.core.space import DataSpec
from nasframe.errors import UnknownNameError
from nasframe.export import load_export
from nasframe.export.save import save_export
from nasframe.rank import load_run_config

SMALL = {"channels": 4, "cells_per_stage": 1}


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """A module on ``sys.path`` whose import writes a marker file; ``Thing`` is the NAS-Bench-201 space class."""
    name = f"nasframe_planted_{uuid.uuid4().hex[:12]}"
    code_dir, marker = tmp_path / "code", tmp_path / "imported.marker"
    code_dir.mkdir()
    (code_dir / f"{name}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n"
        "from search_spaces.nb201 import NB201Space as Thing\n")
    monkeypatch.syspath_prepend(str(code_dir))
    yield name, marker, code_dir
    sys.modules.pop(name, None)


def assert_not_imported(planted) -> None:
    name, marker, _ = planted
    assert not marker.exists() and name not in sys.modules


def nasframe(*args: str, cwd, pythonpath) -> subprocess.CompletedProcess:
    exe = shutil.which("nasframe")
    cmd = [exe] if exe else [sys.executable, "-m", "nasframe.cli"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(pythonpath), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=cwd, timeout=300, env=env)


def test_an_export_naming_a_module_path_is_refused_without_importing_it(planted, tmp_path):
    name, marker, _ = planted
    space = SPACES.get("nb201")(DataSpec(1, (8, 8), 10), **SMALL)
    arch = space.sample(np.random.default_rng(0))
    subnet = space.build_subnet(arch).eval()
    export = tmp_path / "export"
    save_export(export, space, arch, subnet, torch_export=False)
    record = json.loads((export / "arch.json").read_text())
    record["space"]["name"] = f"{name}:Thing"
    (export / "arch.json").write_text(json.dumps(record))

    with pytest.raises(UnknownNameError) as refused:
        load_export(export)
    message = str(refused.value)
    assert f"refusing search space '{name}:Thing' read from {export / 'arch.json'}" in message
    assert "allow_import=True" in message and "\n" not in message
    assert_not_imported(planted)

    # the caller who trusts the export opts in: the module is imported and the subnet loads
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(load_export(export, allow_import=True)(x), subnet(x))
    assert marker.read_text() == "imported" and name in sys.modules


def write_run_config(run_dir, **names: str) -> None:
    components = {"space": "nb201", "dataset": "digits", "sampler": "uniform", "selector": "evolutionary", **names}
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("".join(f"{group}:\n  name: {value}\n" for group, value in components.items()))


@pytest.mark.parametrize("group", ["space", "sampler"])
def test_a_run_config_naming_a_module_path_is_refused_without_importing_it(planted, tmp_path, group):
    name, _, _ = planted
    run_dir = tmp_path / "run"
    write_run_config(run_dir, **{group: f"{name}:Thing"})
    with pytest.raises(UnknownNameError, match=rf"refusing .* '{name}:Thing' read from .*config.yaml \({group}.name\)"):
        load_run_config(run_dir)
    assert_not_imported(planted)


def test_nasframe_rank_refuses_a_run_naming_a_module_path_in_one_line(planted, tmp_path):
    name, _, code_dir = planted
    run_dir = tmp_path / "run"
    write_run_config(run_dir, space=f"{name}:Thing")
    proc = nasframe("rank", f"run={run_dir}", f"hydra.run.dir={tmp_path / 'rank'}", cwd=tmp_path, pythonpath=code_dir)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    refused = f"nasframe rank: error: refusing search space '{name}:Thing' read from {run_dir / 'config.yaml'}"
    assert refused in proc.stderr, proc.stderr[-2000:]
    assert_not_imported(planted)  # neither here nor in the subprocess (its marker file)


def test_a_latency_table_naming_a_module_path_is_data_only(planted, tmp_path):
    from nasframe.hardware.predictor import LatencyPredictor, PredictorKey, load_predictor

    name, _, _ = planted
    space = SPACES.get("nb201")(DataSpec(), **SMALL)
    key = PredictorKey("toy device", 1, torch.__version__, {**space.describe(), "name": f"{name}:Thing"})
    path = LatencyPredictor(space.choices, np.zeros(sum(len(c.options) for c in space.choices)), 1.0, key).save(
        tmp_path / "table.json")
    assert load_predictor(path).key.space["name"] == f"{name}:Thing"  # compared as data, never resolved
    assert_not_imported(planted)


def test_module_paths_from_code_and_the_command_line_are_still_imported(planted, tmp_path):
    name, marker, code_dir = planted
    # the command line: the class is imported and its settings checked (an unknown key stops the run there)
    proc = nasframe("search", f"space.name={name}:Thing", "+space.bogus=1", f"hydra.run.dir={tmp_path / 'run'}",
                    cwd=tmp_path, pythonpath=code_dir)
    assert proc.returncode != 0 and "space.bogus: unknown key for NB201Config" in proc.stderr, proc.stderr[-2000:]
    assert marker.exists()
    marker.unlink()
    # a library call
    assert SPACES.get(f"{name}:Thing").__name__ == "NB201Space" and marker.exists()
    with pytest.raises(UnknownNameError, match="cannot load path sampler 'not_a_module_xyz:Thing'"):
        SAMPLERS.get("not_a_module_xyz:Thing")
    # a run config the caller trusts
    write_run_config(tmp_path / "trusted", space=f"{name}:Thing")
    assert load_run_config(tmp_path / "trusted", allow_import=True).space.name == f"{name}:Thing"

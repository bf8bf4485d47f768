"""The non-additive latency models (interaction, transfer) and their registry, at toy scale.

Synthetic devices have a known interaction term: latency = additive part + a product of two choices' terms, so
an additive model cannot fit them; every model must recover such a device better than the additive one.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nasframe.core.choice import Choice
from nasframe.core.space import SearchSpace
from nasframe.errors import ConfigError
from nasframe.hardware.encoding import TermEncoder
from nasframe.hardware.metrics import latency_metrics
from nasframe.hardware.models import (
    MODELS, BackboneSettings, InteractionPredictor, LatencyModel, TransferBackbone, TransferPredictor, TreeEnsemble,
    fit_model, ridge_loo, source_columns,
)
from nasframe.hardware.predictor import LatencyPredictor, LatencyTableError, PredictorKey, load_predictor
from nasframe.selection.constraints import load_latency_budget

SMALL = BackboneSettings(hidden=32, epochs=60, batch_size=128, learning_rate=3e-3)


class GridSpace(SearchSpace):
    """Four free choices, 5 x 5 x 5 x 4 = 500 archs, no network (for the predictor maths)."""

    name = "grid_toy"
    zero_option = "none"

    def _make_choices(self):
        return [Choice("a", ("none", "a1", "a2", "a3", "a4")), Choice("b", ("none", "b1", "b2", "b3", "b4")),
                Choice("c", ("none", "c1", "c2", "c3", "c4")), Choice("d", ("d0", "d1", "d2", "d3"))]

    def build_supernet(self):
        raise NotImplementedError

    def build_subnet(self, arch):
        raise NotImplementedError


@pytest.fixture(scope="module")
def grid():
    space = GridSpace()
    archs = list(space.enumerate())
    matrix = TermEncoder(space.choices).encode(archs)
    return space, archs, matrix


def synthetic_devices(matrix: np.ndarray, count: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Devices sharing per-term costs up to a device scale, each with its own weight on an interaction: the
    product of the terms of choices a and b (an op on ``a`` costs more when ``b`` holds a costly op)."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.5, 3.0, matrix.shape[1])
    base[[0, 5, 10]] = 0.0  # the 'none' options
    term_a, term_b = matrix[:, 0:5] @ base[0:5], matrix[:, 5:10] @ base[5:10]
    devices = {}
    for k in range(count):
        scale, weight = rng.uniform(0.5, 2.0), rng.uniform(0.5, 1.5)
        own = rng.normal(0.0, 0.05, matrix.shape[1])
        devices[f"dev{k}"] = 2.0 + scale * (matrix @ base) + weight * term_a * term_b + matrix @ own
    return devices


def key(space: SearchSpace, device: str) -> PredictorKey:
    return PredictorKey(device, None, torch.__version__, space.describe())


def split(n: int, measured: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    fit = np.sort(np.random.default_rng(seed).choice(n, measured, replace=False))
    return fit, np.setdiff1d(np.arange(n), fit)


@pytest.fixture(scope="module")
def backbone(grid):
    space, _, matrix = grid
    columns = synthetic_devices(matrix, 6)
    return TransferBackbone.pretrain(space.choices, matrix, source_columns(columns, "dev5"), seed=0,
                                     target="dev5", settings=SMALL)


# -- recovery of a device with a known interaction ----------------------------------------------------------
def test_interaction_model_recovers_an_interaction_the_additive_model_cannot(grid):
    space, _, matrix = grid
    latency = synthetic_devices(matrix, 1)["dev0"]
    fit, held = split(len(latency), 150)
    errors = {}
    for name in ("additive", "interaction"):
        model = fit_model(name, space.choices, matrix[fit], latency[fit], key(space, "dev0"), seed=0)
        errors[name] = latency_metrics(model.predict_matrix(matrix[held]), latency[held])
    assert errors["interaction"]["rmse_ms"] < 0.5 * errors["additive"]["rmse_ms"]
    assert errors["interaction"]["within_10pct"] > errors["additive"]["within_10pct"]


def test_transfer_model_recovers_a_new_device_from_few_measured_archs(grid, backbone):
    space, _, matrix = grid
    latency = synthetic_devices(matrix, 6)["dev5"]
    fit, held = split(len(latency), 20)
    errors = {}
    for name in ("additive", "transfer"):
        model = fit_model(name, space.choices, matrix[fit], latency[fit], key(space, "dev5"), backbone=backbone)
        errors[name] = latency_metrics(model.predict_matrix(matrix[held]), latency[held])
    assert errors["transfer"]["rmse_ms"] < 0.5 * errors["additive"]["rmse_ms"]
    assert errors["transfer"]["kendall_tau"] > max(0.9, errors["additive"]["kendall_tau"])


# -- leave-one-device-out --------------------------------------------------------------------------------
def test_pretraining_never_reads_the_held_out_column(grid, backbone):
    space, _, matrix = grid
    columns = synthetic_devices(matrix, 6)
    fit, held = split(matrix.shape[0], 20)
    poisoned = dict(columns)
    poisoned["dev5"] = np.full(matrix.shape[0], np.nan)  # anything read from it outside the fit set is NaN
    poisoned["dev5"][fit] = columns["dev5"][fit]
    again = TransferBackbone.pretrain(space.choices, matrix, source_columns(poisoned, "dev5"), seed=0,
                                      target="dev5", settings=SMALL)
    assert again.sources == backbone.sources and "dev5" not in again.sources
    model = fit_model("transfer", space.choices, matrix[fit], poisoned["dev5"][fit], key(space, "dev5"), backbone=again)
    reference = fit_model("transfer", space.choices, matrix[fit], columns["dev5"][fit], key(space, "dev5"),
                          backbone=backbone)
    np.testing.assert_array_equal(model.predict_matrix(matrix), reference.predict_matrix(matrix))
    # the check can fail: changing a source column does change the backbone
    changed = dict(poisoned, dev0=columns["dev0"] * 1.5 + matrix[:, 1])
    other = TransferBackbone.pretrain(space.choices, matrix, source_columns(changed, "dev5"), seed=0,
                                      target="dev5", settings=SMALL)
    assert not np.array_equal(other.source_ms(matrix), again.source_ms(matrix))


def test_the_target_device_cannot_be_a_source(grid, backbone):
    space, _, matrix = grid
    columns = synthetic_devices(matrix, 3)
    with pytest.raises(ConfigError, match="target device 'dev1' is among its source devices"):
        TransferBackbone.pretrain(space.choices, matrix, columns, target="dev1", settings=SMALL)
    with pytest.raises(ConfigError, match="pre-trained on the target device 'dev0' itself"):
        fit_model("transfer", space.choices, matrix[:10], columns["dev0"][:10], key(space, "dev0"), backbone=backbone)
    with pytest.raises(ConfigError, match="no device column 'gpu'"):
        source_columns(columns, "gpu")


# -- determinism ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(MODELS))
def test_predictions_are_identical_for_the_same_seed(grid, name):
    space, _, matrix = grid
    columns = synthetic_devices(matrix, 3)
    fit, _ = split(matrix.shape[0], 60)

    def run(seed: int) -> np.ndarray:
        backbone = TransferBackbone.pretrain(space.choices, matrix, source_columns(columns, "dev2"), seed=seed,
                                             target="dev2", settings=SMALL) if MODELS[name].needs_backbone else None
        model = fit_model(name, space.choices, matrix[fit], columns["dev2"][fit], key(space, "dev2"), seed=seed,
                          backbone=backbone)
        return model.predict_matrix(matrix)

    np.testing.assert_array_equal(run(3), run(3))
    if name != "additive":  # the seed matters: subsampling (trees) and initialisation (backbone)
        assert not np.array_equal(run(3), run(4))


# -- files and the search's latency budget ------------------------------------------------------------------
@pytest.mark.parametrize("name", list(MODELS))
def test_save_load_round_trip_and_search_budget(grid, backbone, tmp_path, name):
    space, archs, matrix = grid
    latency = synthetic_devices(matrix, 6)["dev5"]
    fit, _ = split(len(latency), 80)
    model = fit_model(name, space.choices, matrix[fit], latency[fit], key(space, "dev5"), seed=0, backbone=backbone)
    assert isinstance(model, LatencyModel) and isinstance(model, MODELS[name].cls)
    path = model.save(tmp_path / f"{name}.json")
    assert json.loads(path.read_text())["model"] == name
    loaded = load_predictor(path, expected=key(space, "dev5"))
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict(archs), model.predict(archs))
    assert loaded.predict_one(archs[7]) == pytest.approx(model.predict(archs[7:8])[0], rel=1e-12)
    budget = load_latency_budget(space, path, max_ms=float(np.median(latency)))
    accepted = [budget(a) for a in archs[:50]]
    assert accepted == [bool(v <= np.median(latency)) for v in model.predict(archs[:50])]


def test_tree_arrays_predict_as_scikit_learn_does(rng):
    from sklearn.ensemble import GradientBoostingRegressor

    x = rng.normal(size=(200, 5))
    y = np.sin(x[:, 0]) * x[:, 1] + x[:, 2] ** 2
    model = GradientBoostingRegressor(n_estimators=40, max_depth=3, init="zero", random_state=0).fit(x, y)
    trees = TreeEnsemble.from_dict(json.loads(json.dumps(TreeEnsemble.from_sklearn(model, 40).to_dict())))
    np.testing.assert_allclose(trees.predict(x), model.predict(x), rtol=1e-12, atol=1e-12)
    empty = TreeEnsemble.from_dict(json.loads(json.dumps(TreeEnsemble.empty().to_dict())))
    assert empty.num_trees == 0 and empty.predict(x).tolist() == [0.0] * 200


def test_an_interaction_model_without_trees_round_trips(grid, tmp_path):
    space, archs, matrix = grid
    latency = synthetic_devices(matrix, 1)["dev0"]
    model = fit_model("interaction", space.choices, matrix[:40], latency[:40], key(space, "dev0"))
    bare = InteractionPredictor(model.base, TreeEnsemble.empty(), details={"trees": 0})
    loaded = load_predictor(bare.save(tmp_path / "bare.json"))
    np.testing.assert_array_equal(loaded.predict(archs), model.base.predict(archs))


def test_ridge_leave_one_out_matches_refitting(rng):
    x = rng.normal(size=(15, 4))
    y = x @ np.array([1.0, -2.0, 0.5, 0.0]) + rng.normal(0, 0.3, 15) + 4.0
    alphas = (0.01, 1.0, 100.0)

    def loo_error(alpha: float) -> float:
        errors = []
        for k in range(15):
            keep = np.arange(15) != k
            w, b, _ = ridge_loo(x[keep], y[keep], (alpha,))
            errors.append((x[k] @ w + b - y[k]) ** 2)
        return float(np.mean(errors))

    _, _, chosen = ridge_loo(x, y, alphas)
    assert chosen == min(alphas, key=loo_error)


# -- bad input ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "measured", "message"),
    [
        ("forest", 50, "unknown latency model 'forest': choose from additive, interaction, transfer"),
        ("interaction", 5, "latency model 'interaction' needs at least 10 measured archs, got 5"),
        ("transfer", 2, "latency model 'transfer' needs at least 3 measured archs, got 2"),
        ("additive", 1, "latency model 'additive' needs at least 2 measured archs, got 1"),
    ],
)
def test_bad_model_names_and_too_few_archs_are_one_line_errors(grid, backbone, name, measured, message):
    space, _, matrix = grid
    latency = synthetic_devices(matrix, 1)["dev0"]
    with pytest.raises(ConfigError) as info:
        fit_model(name, space.choices, matrix[:measured], latency[:measured], key(space, "dev5"), backbone=backbone)
    assert str(info.value) == message


def test_transfer_without_a_backbone_and_unknown_models_in_files(grid, tmp_path):
    space, _, matrix = grid
    with pytest.raises(ConfigError, match="needs a backbone pre-trained on other devices"):
        fit_model("transfer", space.choices, matrix[:10], np.ones(10), key(space, "x"))
    path = LatencyPredictor(space.choices, np.zeros(19), 1.0, key(space, "x")).save(tmp_path / "t.json")
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "model": "forest"}))
    with pytest.raises(LatencyTableError, match="unknown latency model 'forest'"):
        load_predictor(path)
    path.write_text(json.dumps({**data, "model": "interaction"}))
    with pytest.raises(LatencyTableError, match="corrupt: KeyError"):
        load_predictor(path)
    assert InteractionPredictor.name == "interaction" and TransferPredictor.name == "transfer"


# -- the CLI ---------------------------------------------------------------------------------------------
TOY_CLI = ["--space-opt", "channels=2", "--space-opt", "cells_per_stage=1", "--input-shape", "3", "8", "8",
           "--warmup", "0", "--repeats", "1", "--held-out", "4"]


def test_latency_command_fits_and_saves_the_interaction_model(tmp_path):
    from nasframe.hardware.cli import main
    from search_spaces.nb201 import NB201Space
    from nasframe.core.space import DataSpec

    report = main([*TOY_CLI, "--fit", "12", "--model", "interaction", "--out", str(tmp_path)])
    assert "interaction model" in report["held_out_metrics"] and report["model"]["name"] == "interaction"
    assert report["model"]["details"]["additive_part"] == "measured lookup table + affine correction"
    path = tmp_path / "latency_table_nb201_cpu_interaction.json"
    loaded = load_predictor(path)
    assert isinstance(loaded, InteractionPredictor) and loaded.base.method == "lookup table"
    space = NB201Space(DataSpec(3, (8, 8), 10), channels=2, cells_per_stage=1)
    budget = load_latency_budget(space, path, None)
    archs = [space.sample(np.random.default_rng(k)) for k in range(5)]
    np.testing.assert_allclose(budget.latencies(archs), loaded.predict(archs))


def test_latency_command_transfers_from_a_source_table(tmp_path):
    from nasframe.hardware.cli import main
    from search_spaces.nb201 import NB201Space

    space = NB201Space()
    archs = list(space.enumerate())[::60]  # 261 archs
    matrix = TermEncoder(space.choices).encode(archs)
    rng = np.random.default_rng(0)
    lines = ["index,arch,dev_a,dev_b"]
    for k, (arch, row) in enumerate(zip(archs, matrix)):
        a = 1.0 + row @ rng.uniform(0.1, 1.0, 30) if k == 0 else 1.0 + row @ np.linspace(0.1, 1.0, 30)
        lines.append(f"{k},{space.format(arch)},{a:.6f},{2.0 * a + 0.5:.6f}")
    (tmp_path / "src.csv").write_text("\n".join(lines) + "\n")
    report = main([*TOY_CLI, "--fit", "5", "--model", "transfer", "--source-table", str(tmp_path / "src.csv"),
                   "--out", str(tmp_path / "out")])
    assert "transfer model" in report["held_out_metrics"]
    loaded = load_predictor(tmp_path / "out" / "latency_table_nb201_cpu_transfer.json")
    assert isinstance(loaded, TransferPredictor) and loaded.backbone.sources == ("dev_a", "dev_b")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "forest"], "unknown latency model 'forest'"),
        (["--model", "interaction", "--fit", "4"], "--model interaction needs --fit >= 10, got 4"),
    ],
)
def test_latency_command_rejects_bad_models_before_measuring(tmp_path, argv, message):
    from nasframe.hardware.cli import main

    with pytest.raises(ConfigError, match=message):
        main([*TOY_CLI, *argv, "--out", str(tmp_path)])
    assert not any(tmp_path.iterdir())


def test_search_runs_under_the_budget_of_an_interaction_model(tmp_path):
    from nasframe.core.space import DataSpec
    from search_spaces.nb201 import NB201Space
    from test_cli import TINY, nasframe

    space = NB201Space(DataSpec(in_channels=1, input_size=(8, 8), num_classes=10), channels=4, cells_per_stage=1)
    costs = {"none": 0.0, "skip_connect": 0.1, "avg_pool_3x3": 0.5, "nor_conv_1x1": 1.0, "nor_conv_3x3": 3.0}
    archs = [space.sample(np.random.default_rng(k)) for k in range(150)]
    edge = [[costs[a[c.name]] for c in space.choices] for a in archs]
    latency = np.array([2.0 + sum(e) + 0.5 * e[0] * e[5] for e in edge])  # edges 1_0 and 3_2 interact
    encoder = TermEncoder(space.choices)
    model = fit_model("interaction", space.choices, encoder.encode(archs), latency,
                      PredictorKey("synthetic", 1, "test", space.describe()), seed=0)
    table = model.save(tmp_path / "interaction.json")
    run_dir = tmp_path / "run"
    proc = nasframe("search", *TINY, f"constraints.latency_table={table}", "constraints.max_latency_ms=9",
                    f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcome = json.loads((run_dir / "outcome.json").read_text())
    assert outcome["predicted_latency_ms"] <= 9.0
    assert outcome["predicted_latency_ms"] == pytest.approx(model.predict_one(space.parse(outcome["arch"])))
    assert "predicted latency <= 9 ms on synthetic" in (run_dir / "report.md").read_text()

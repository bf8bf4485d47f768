"""Latency measurement mechanics, the additive lookup-table predictor, its JSON file, the CSV fit, the NB201 adapter.

No test depends on a timing: measured figures are only checked for their form (counts, order of statistics).
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from nasframe.core.choice import Choice
from nasframe.core.space import DataSpec, SearchSpace
from nasframe.errors import ConfigError, DataError, NasframeError
from nasframe.hardware.device import describe_device
from nasframe.hardware.encoding import TermEncoder
from nasframe.hardware.external import default_table_path, fit_from_measurements, read_latency_table
from nasframe.hardware.latency import LatencyResult, make_inputs, measure_latency
from nasframe.hardware.lut import MeasureSettings, build_lut, find_adapter, measure_archs
from nasframe.hardware.metrics import latency_metrics
from nasframe.hardware.predictor import (
    LatencyPredictor, LatencyTableError, PredictorKey, fit_additive, fit_affine, load_predictor, reference_options,
)
from search_spaces.nb201 import OPS, NB201Cell, NB201Space
from search_spaces.nb201_latency import NB201LatencyAdapter

OPS_BUT_NONE = [op for op in OPS if op != "none"]
FAST = MeasureSettings(device="cpu", batch_size=1, warmup=1, repeats=2)


class ToySpace(SearchSpace):
    """Three free choices of different sizes, no network (for the predictor maths)."""

    name = "toy"
    zero_option = "none"

    def _make_choices(self):
        return [Choice("a", ("none", "x", "y")), Choice("b", ("p", "q", "r", "s")), Choice("c", ("none", "z"))]

    def build_supernet(self):
        raise NotImplementedError

    def build_subnet(self, arch):
        raise NotImplementedError


@pytest.fixture
def toy() -> ToySpace:
    return ToySpace()


def toy_key(space: SearchSpace, device: str = "toy device", batch_size: int | None = 1) -> PredictorKey:
    return PredictorKey(device, batch_size, torch.__version__, space.describe())


def known_terms(encoder: TermEncoder, reference: dict[str, str], rng: np.random.Generator) -> np.ndarray:
    terms = rng.uniform(0.5, 5.0, encoder.num_terms)
    for k, (choice, option) in enumerate(encoder.columns):
        if reference[choice] == option:
            terms[k] = 0.0
    return terms


# -- predictor maths ------------------------------------------------------------------------------------
def test_fit_additive_recovers_per_term_costs_and_intercept_exactly(toy, rng):
    encoder = TermEncoder(toy.choices)
    reference = reference_options(toy.choices, toy.zero_option)
    assert reference == {"a": "none", "b": "p", "c": "none"}  # the zero option where a choice has it, else the first
    truth = known_terms(encoder, reference, rng)
    archs = list(toy.enumerate())  # 24 archs
    matrix = encoder.encode(archs)
    y = matrix @ truth + 3.25
    terms, intercept = fit_additive(encoder, matrix, y, ridge=0.0, reference=reference)
    np.testing.assert_allclose(terms, truth, atol=1e-10)
    assert intercept == pytest.approx(3.25, abs=1e-10)
    ridged, _ = fit_additive(encoder, matrix, y, ridge=1e-2, reference=reference)
    np.testing.assert_allclose(ridged, truth, rtol=0.02, atol=0.02)  # a small ridge barely moves a determined fit


def test_calibrate_recovers_a_linear_correction_exactly(toy, rng):
    encoder = TermEncoder(toy.choices)
    table = LatencyPredictor(toy.choices, rng.uniform(0.1, 2.0, encoder.num_terms), 1.5, toy_key(toy))
    archs = [toy.sample(rng) for _ in range(12)]
    measured = 1.3 * table.predict(archs) + 0.7
    corrected = table.calibrate(archs, measured)
    assert (corrected.scale, corrected.offset) == (pytest.approx(1.3), pytest.approx(0.7))
    others = [toy.sample(rng) for _ in range(30)]
    np.testing.assert_allclose(corrected.predict(others), 1.3 * table.predict(others) + 0.7)
    with pytest.raises(LatencyTableError, match="differ"):
        fit_affine(np.ones(5), np.arange(5.0))


def test_a_non_positive_fitted_scale_falls_back_to_the_ratio_of_means():
    raw = np.array([1.0, 2.0, 3.0, 4.0])
    measured = np.array([4.0, 3.0, 2.0, 1.0])  # anti-correlated: least squares would give scale -1
    assert fit_affine(raw, measured) == pytest.approx((2.5 / 2.5, 0.0))
    assert fit_affine(raw, 2 * raw + 1) == pytest.approx((2.0, 1.0))


def test_population_encoding_equals_per_arch_encoding_on_all_nb201_archs():
    space = NB201Space()
    encoder = TermEncoder(space.choices)
    archs = list(space.enumerate())
    matrix = encoder.encode(archs)
    assert matrix.shape == (15_625, 30)
    assert (matrix.sum(axis=1) == 6).all()
    assert np.array_equal(matrix, np.stack([encoder.encode_one(a) for a in archs]))
    assert matrix[0, encoder.column("edge_1_0", archs[0]["edge_1_0"])] == 1.0
    predictor = LatencyPredictor(space.choices, np.arange(30.0), 2.0, toy_key(space), scale=1.1, offset=0.3)
    some = archs[::997]
    np.testing.assert_allclose(predictor.predict(some), [predictor.predict_one(a) for a in some])


def test_encoding_rejects_unknown_options(toy):
    encoder = TermEncoder(toy.choices)
    with pytest.raises(NasframeError, match="option"):
        encoder.encode([{"a": "x", "b": "nope", "c": "z"}])
    with pytest.raises(NasframeError, match="out of range"):
        encoder.from_option_indices(np.array([[0, 4, 0]]))


# -- files ----------------------------------------------------------------------------------------------
def test_save_load_round_trip(toy, rng, tmp_path):
    encoder = TermEncoder(toy.choices)
    predictor = LatencyPredictor(
        toy.choices, rng.uniform(0, 3, encoder.num_terms), 0.4, toy_key(toy), 1.2, -0.1, "test", {"note": (1, 2)}
    )
    path = predictor.save(tmp_path / "table.json")
    assert json.loads(path.read_text())["format"] == "nasframe-latency-table"
    loaded = load_predictor(path, expected=toy_key(toy))
    archs = list(toy.enumerate())
    np.testing.assert_array_equal(loaded.predict(archs), predictor.predict(archs))
    assert loaded.key == predictor.key and loaded.method == "test" and loaded.details == {"note": [1, 2]}
    assert (loaded.scale, loaded.offset, loaded.fixed_ms) == (1.2, -0.1, 0.4)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"device": "another device"}, "device: the table has 'toy device', expected 'another device'"),
        ({"batch_size": 64}, "batch size: the table has 1, expected 64"),
        ({"torch_version": "1.0"}, "torch version"),
        ({"space": ToySpace(DataSpec(1, (8, 8), 10)).describe()}, "space: the table has"),
    ],
)
def test_loading_for_another_key_names_the_mismatch(toy, tmp_path, change, message):
    path = LatencyPredictor(toy.choices, np.zeros(9), 1.0, toy_key(toy)).save(tmp_path / "t.json")
    expected = dataclasses.replace(toy_key(toy), **change)
    with pytest.raises(LatencyTableError, match=message):
        load_predictor(path, expected=expected)


def test_torch_version_mismatch_can_be_ignored(toy, tmp_path):
    path = LatencyPredictor(toy.choices, np.zeros(9), 1.0, toy_key(toy)).save(tmp_path / "t.json")
    expected = PredictorKey("toy device", 1, "0.0", toy.describe())
    assert load_predictor(path, expected=expected, ignore=("torch_version",)).fixed_ms == 1.0


def test_nb201_space_settings_are_part_of_the_key(tmp_path):
    small, large = NB201Space(channels=8), NB201Space(channels=16)
    path = LatencyPredictor(small.choices, np.zeros(30), 1.0, toy_key(small)).save(tmp_path / "t.json")
    with pytest.raises(LatencyTableError, match="space: .*'channels': 8"):
        load_predictor(path, expected=toy_key(large))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text[: len(text) // 2], "not JSON"),
        (lambda text: "\xff\xfe garbage", "not JSON"),
        (lambda text: json.dumps({"format": "something else"}), "not a nasframe latency table"),
        (lambda text: text.replace('"format_version": 1', '"format_version": 99'), "format version 99"),
        (lambda text: text.replace('"fixed_ms"', '"fixed"'), "corrupt: KeyError"),
        (lambda text: text.replace('"ms": 0.0', '"ms": NaN', 1), "non-finite"),
        (lambda text: text.replace('"option": "z"', '"option": "w"'), "terms do not match"),
    ],
)
def test_corrupt_files_raise_latency_table_errors(toy, tmp_path, edit, message):
    path = LatencyPredictor(toy.choices, np.zeros(9), 1.0, toy_key(toy)).save(tmp_path / "t.json")
    path.write_text(edit(path.read_text()))
    with pytest.raises(LatencyTableError, match=message):
        load_predictor(path)


def test_missing_file(tmp_path):
    with pytest.raises(LatencyTableError, match="no latency table"):
        load_predictor(tmp_path / "absent.json")


# -- metrics --------------------------------------------------------------------------------------------
def test_metrics_on_known_values():
    m = latency_metrics(np.array([1.05, 2.5, 3.0]), np.array([1.0, 2.0, 3.0]))
    assert m["rmse_ms"] == pytest.approx(math.sqrt((0.05**2 + 0.5**2) / 3))
    assert m["mape_pct"] == pytest.approx(10.0)
    assert m["within_10pct"] == pytest.approx(2 / 3)
    assert m["kendall_tau"] == pytest.approx(1.0) and m["n"] == 3
    with pytest.raises(ConfigError):
        latency_metrics(np.ones(3), np.array([1.0, 0.0, 2.0]))


# -- measuring ------------------------------------------------------------------------------------------
class Recorder(nn.Module):
    """Counts calls and records the modes it ran in."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)
        self.calls, self.modes = 0, set()

    def forward(self, x):
        self.calls += 1
        self.modes.add((self.training, torch.is_inference_mode_enabled(), tuple(x.shape)))
        return self.linear(x)


def test_measure_latency_mechanics_on_cpu():
    module = Recorder().train()
    result = measure_latency(module, (4,), "cpu", warmup=3, repeats=7, batch_size=5)
    assert isinstance(result, LatencyResult)
    assert (result.repeats, result.warmup, result.batch_size, result.device) == (7, 3, 5, "cpu")
    assert module.calls == 10
    assert module.modes == {(False, True, (5, 4))}  # eval mode, inference mode, the batch built from the shape
    assert module.training  # restored
    assert 0 <= result.min_ms <= result.median_ms <= result.max_ms and result.iqr_ms >= 0
    assert set(result.to_dict()) == {"median_ms", "iqr_ms", "min_ms", "max_ms", "repeats", "warmup", "batch_size", "device"}
    tensor_result = measure_latency(nn.Linear(4, 2), torch.zeros(3, 4), warmup=0, repeats=1)
    assert tensor_result.batch_size == 3 and tensor_result.repeats == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"repeats": 0}, "repeats must be an integer >= 1"),
        ({"repeats": True}, "repeats must be an integer"),
        ({"warmup": -1}, "warmup must be an integer >= 0"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"example_inputs": torch.zeros(3, 4), "batch_size": 2}, "batch_size=2 but the example input has batch dimension 3"),
        ({"example_inputs": (4, 0)}, "positive integers"),
        ({"example_inputs": "4"}, "example_inputs must be"),
        ({"device": "mps"}, "only cpu and cuda"),
        ({"device": "nonsense"}, "unknown device"),
    ],
)
def test_measure_latency_rejects_bad_arguments(kwargs, message):
    call = {"module": nn.Linear(4, 2), "example_inputs": (4,), "device": "cpu", "warmup": 0, "repeats": 1, **kwargs}
    with pytest.raises(ConfigError, match=message):
        measure_latency(**call)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_measure_latency_on_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ConfigError, match="CUDA is not available"):
        measure_latency(nn.Linear(4, 2), (4,), "cuda", warmup=0, repeats=1)


def test_make_inputs_shape_and_seed():
    x = make_inputs((3, 8, 8), 4)
    assert x.shape == (4, 3, 8, 8) and torch.equal(x, make_inputs((3, 8, 8), 4))


# -- NB201 adapter and the table ------------------------------------------------------------------------
@pytest.fixture
def two_cell_space() -> NB201Space:
    return NB201Space(DataSpec(3, (16, 16), 10), channels=4, cells_per_stage=2)


def test_find_adapter_uses_the_module_beside_the_space(two_cell_space, toy):
    assert isinstance(find_adapter(two_cell_space), NB201LatencyAdapter)
    with pytest.raises(ConfigError, match="no latency adapter for space 'toy'"):
        find_adapter(toy)


def test_nb201_adapter_ops_have_the_input_shapes_of_the_real_network(two_cell_space):
    adapter = NB201LatencyAdapter(two_cell_space)
    network = two_cell_space.build_subnet({c.name: "nor_conv_3x3" for c in two_cell_space.choices})
    modules = dict(network.named_modules())
    seen: dict[str, tuple[int, ...]] = {}
    for name, module in modules.items():
        if name.startswith("cells.") and ".edges." in name and name.count(".") == 3 or name in ("stem", "head"):
            module.register_forward_pre_hook(lambda _m, args, name=name: seen.__setitem__(name, tuple(args[0].shape[1:])))
    network(torch.zeros(1, 3, 16, 16))
    cells = [k for k, child in enumerate(network.cells) if isinstance(child, NB201Cell)]
    assert len(cells) == 6  # 3 stages x 2 cells
    for choice in two_cell_space.choices:
        assert adapter.option_instances(choice.name, "none") == []
        for option in OPS_BUT_NONE:
            instances = adapter.option_instances(choice.name, option)
            assert [i.label for i in instances] == [f"cells.{k}.edges.{choice.name}" for k in cells]
            for inst in instances:
                assert inst.input_shape == seen[inst.label]
                op = inst.build()
                assert type(op) is type(modules[inst.label]) or option != "nor_conv_3x3"
                assert op(torch.zeros(2, *inst.input_shape)).shape == (2, *inst.input_shape)
    shapes = {i.label: i.input_shape for i in adapter.fixed_instances()}
    assert shapes["stem"] == (3, 16, 16) and shapes["head+classifier"] == seen["head"] == (16, 4, 4)
    assert [label for label in shapes if label.startswith("cells.")] == ["cells.2", "cells.5"]  # the reductions
    assert shapes["cells.2"] == (4, 16, 16) and shapes["cells.5"] == (8, 8, 8)
    for inst in adapter.fixed_instances():
        inst.build()(torch.zeros(1, *inst.input_shape))


def test_build_lut_mechanics_and_whole_arch_measurement(rng):
    space = NB201Space(DataSpec(3, (8, 8), 10), channels=2, cells_per_stage=1)
    adapter = find_adapter(space)
    table = build_lut(space, adapter, FAST)
    assert table.key == PredictorKey(describe_device("cpu"), 1, torch.__version__, space.describe())
    assert table.details["distinct_measurements"] == 3 * 4 + 4  # 3 stages x 4 ops, stem + 2 reductions + head
    assert all(table.term_ms(c.name, "none") == 0.0 for c in space.choices)
    for option in OPS_BUT_NONE:  # every edge sees the same shapes: one shared term per op
        assert len({table.term_ms(c.name, option) for c in space.choices}) == 1
        assert table.term_ms("edge_1_0", option) > 0
    assert table.fixed_ms > 0 and table.method == "lookup table"
    archs = [space.sample(rng) for _ in range(3)]
    measured = measure_archs(adapter, archs, FAST)
    assert measured.shape == (3,) and (measured > 0).all()


def test_latency_command_runs_end_to_end_at_toy_size(tmp_path):
    from nasframe.hardware.cli import main

    report = main([
        "--space-opt", "channels=2", "--space-opt", "cells_per_stage=1", "--input-shape", "3", "8", "8",
        "--warmup", "0", "--repeats", "1", "--fit", "4", "--held-out", "4", "--out", str(tmp_path),
    ])
    assert set(report["held_out_metrics"]) == {"table sum", "table + affine correction", "additive fit without table"}
    assert report["protocol"]["sets_disjoint"] and report["predictions_per_second"]["matvec_population"] == 100_000
    assert (tmp_path / "latency_predictor_nb201_cpu.md").is_file()
    space = NB201Space(DataSpec(3, (8, 8), 10), channels=2, cells_per_stage=1)
    key = PredictorKey(describe_device("cpu"), 1, torch.__version__, space.describe())
    loaded = load_predictor(tmp_path / "latency_table_nb201_cpu.json", expected=key)
    assert loaded.scale == pytest.approx(report["correction"]["scale"])


@pytest.mark.parametrize(
    ("argv", "error", "message"),
    [
        (["--space-opt", "channels"], ConfigError, "KEY=VALUE"),
        (["--input-shape", "3", "32"], ConfigError, "C H W"),
        (["--space", "nope"], NasframeError, "unknown search space 'nope'"),
        (["--space-opt", "chanels=4"], ConfigError, "space.chanels: unknown key"),
    ],
)
def test_latency_command_rejects_bad_arguments_before_measuring(tmp_path, argv, error, message):
    from nasframe.hardware.cli import main

    with pytest.raises(error, match=message):
        main([*argv, "--out", str(tmp_path)])
    assert not any(tmp_path.iterdir())


# -- fitting from a latency CSV -------------------------------------------------------------------------
def write_synthetic_csv(path, archs, space, columns):
    lines = ["index,arch," + ",".join(columns)]
    for k, arch in enumerate(archs):
        lines.append(f"{k},{space.format(arch)}," + ",".join(f"{columns[c][k]:.10f}" for c in columns))
    path.write_text("\n".join(lines) + "\n")


def test_csv_fit_on_a_synthetic_additive_table(tmp_path, rng):
    space = NB201Space()
    encoder = TermEncoder(space.choices)
    reference = reference_options(space.choices, space.zero_option)
    every = list(space.enumerate())
    archs = [every[k] for k in rng.choice(len(every), 300, replace=False)]  # in random order
    truth = {name: known_terms(encoder, reference, rng) for name in ("dev_a", "dev_b")}
    columns = {name: encoder.encode(archs) @ t + 2.0 for name, t in truth.items()}
    write_synthetic_csv(tmp_path / "lat.csv", archs, space, columns)
    read_archs, read = read_latency_table(tmp_path / "lat.csv", space)
    assert read_archs == archs and list(read) == ["dev_a", "dev_b"]
    for name, latency in read.items():
        predictor = fit_from_measurements(space, read_archs[:50], latency[:50], name, ridge=0.0)
        np.testing.assert_allclose(predictor.terms_ms, truth[name], atol=1e-6)
        np.testing.assert_allclose(predictor.predict(read_archs[50:]), latency[50:], rtol=1e-6)
        assert predictor.key.device == name


def test_csv_errors(tmp_path):
    space = NB201Space()
    with pytest.raises(DataError, match="not found"):
        read_latency_table(tmp_path / "absent.csv", space)
    (tmp_path / "no_arch.csv").write_text("index,dev\n0,1.0\n")
    with pytest.raises(DataError, match="'arch' column"):
        read_latency_table(tmp_path / "no_arch.csv", space)
    arch = space.format(space.sample(np.random.default_rng(0)))
    (tmp_path / "bad.csv").write_text(f"index,arch,dev\n0,{arch},-1\n")
    with pytest.raises(DataError, match="positive"):
        read_latency_table(tmp_path / "bad.csv", space)
    (tmp_path / "bad_arch.csv").write_text("index,arch,dev\n0,|conv~0|,1\n")
    with pytest.raises(DataError, match="line 2"):
        read_latency_table(tmp_path / "bad_arch.csv", space)


@pytest.fixture(scope="module")
def real_latency_table():
    path = default_table_path()
    if not path.is_file():
        pytest.skip(f"NAS-Bench-201 latency table not found at {path} (set NASFRAME_DATA)")
    space = NB201Space()
    return space, *read_latency_table(path, space)


@pytest.mark.parametrize("column", ["1080ti_256", "titan_rtx_256", "fpga"])
def test_fit_on_50_real_archs_ranks_the_held_out_archs(real_latency_table, column):
    space, archs, columns = real_latency_table
    assert len(archs) == 15_625 and column in columns
    latency = columns[column]
    fit = np.random.default_rng(0).choice(len(archs), 50, replace=False)
    held = np.setdiff1d(np.arange(len(archs)), fit)
    predictor = fit_from_measurements(space, [archs[k] for k in fit], latency[fit], column)
    metrics = latency_metrics(predictor.predict_matrix(predictor.encoder.encode(archs)[held]), latency[held])
    assert metrics["kendall_tau"] > 0.9 and metrics["within_10pct"] > 0.95

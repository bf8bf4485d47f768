"""Building a latency table on this device and measuring how well it predicts held-out archs.

Protocol (:func:`evaluate_on_device`):

1. build the lookup table on the device (:func:`nasframe.hardware.lut.build_lut`: every (choice, option) measured
   in the input shape it sees, plus the fixed part);
2. draw ``fit`` distinct archs and ``held_out`` other distinct archs uniformly from the space (seeded; the two sets
   are disjoint) and measure each whole arch on the device as the table entries are measured, both sets in one
   shuffled order so that a drift of the machine does not separate them;
3. fit the affine correction on the fitting set only (:meth:`LatencyPredictor.calibrate`), and the chosen model
   of :data:`nasframe.hardware.models.MODELS` (``model``; ``additive`` is the table with its correction) on the
   fitting set only, with the measured table as its additive part;
4. report, on the held-out archs only, RMSE, MAPE, share within +-10 % and Kendall tau of the predictors: the
   raw table sum, the table with its correction, for comparison an additive model fitted on the fitting set
   alone without the table (:func:`nasframe.hardware.external.fit_from_measurements`), and the chosen model;
5. time predictions per second on a large random population (one matrix-vector product on its 0/1 term matrix,
   and end to end from Arch objects).
"""

from __future__ import annotations

import datetime
import json
import platform
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasframe.core.arch import Arch
from nasframe.core.space import SearchSpace
from nasframe.errors import ConfigError
from nasframe.hardware.device import describe_device
from nasframe.hardware.external import fit_from_measurements
from nasframe.hardware.latency import resolve_device
from nasframe.hardware.lut import LatencyAdapter, MeasureSettings, build_lut, measure_archs
from nasframe.hardware.metrics import latency_metrics
from nasframe.hardware.models import DEFAULT_MODEL, LatencyModel, TransferBackbone, fit_model, model_spec
from nasframe.markdown import markdown_table


def distinct_archs(space: SearchSpace, count: int, rng: np.random.Generator, exclude: set[Arch] = frozenset()) -> list[Arch]:
    """``count`` distinct archs drawn uniformly from ``space``, none of them in ``exclude``."""
    if count > space.size - len(exclude):
        raise ConfigError(f"cannot draw {count} distinct archs from a space of {space.size} ({len(exclude)} excluded)")
    out: list[Arch] = []
    seen = set(exclude)
    while len(out) < count:
        arch = space.sample(rng)
        if arch not in seen:
            seen.add(arch)
            out.append(arch)
    return out


def random_option_indices(predictor: LatencyModel, count: int, rng: np.random.Generator) -> np.ndarray:
    """A population of ``count`` random archs as option indices (one column per choice)."""
    sizes = [len(c) for c in predictor.encoder.choices]
    return np.stack([rng.integers(size, size=count) for size in sizes], axis=1)


def best_prediction_seconds(predictor: LatencyModel, matrix: np.ndarray, archs: list, repeats: int
                            ) -> tuple[float, float]:
    """Best-of-``repeats`` seconds of ``predict_matrix(matrix)`` and of ``predict(archs)`` (encoding included)."""
    best_matvec = best_archs = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.predict_matrix(matrix)
        best_matvec = min(best_matvec, time.perf_counter() - start)
        start = time.perf_counter()
        predictor.predict(archs)
        best_archs = min(best_archs, time.perf_counter() - start)
    return best_matvec, best_archs


def predictions_per_second(predictor: LatencyModel, space: SearchSpace, population: int,
                           rng: np.random.Generator, repeats: int = 5) -> dict[str, Any]:
    """Best-of-``repeats`` throughput of :meth:`LatencyPredictor.predict_matrix` on ``population`` archs, and of
    :meth:`LatencyPredictor.predict` (encoding included) on a population of Arch objects of up to 20,000."""
    matrix = predictor.encoder.from_option_indices(random_option_indices(predictor, population, rng))
    archs = [space.sample(rng) for _ in range(min(population, 20_000))]
    best_matvec, best_archs = best_prediction_seconds(predictor, matrix, archs, repeats)
    return {
        "matvec_population": population, "matvec_per_s": population / best_matvec,
        "end_to_end_population": len(archs), "end_to_end_per_s": len(archs) / best_archs,
        "timing": f"best of {repeats}",
    }


def device_slug(device: torch.device | str) -> str:
    """``cpu``, or ``cuda_<gpu name>`` in lower case with non-alphanumerics as ``_`` (for file names)."""
    device = resolve_device(device)
    if device.type == "cpu":
        return "cpu"
    return "cuda_" + re.sub(r"[^a-z0-9]+", "_", describe_device(device).lower()).strip("_")


def evaluate_on_device(
    space: SearchSpace, adapter: LatencyAdapter, table_settings: MeasureSettings, arch_settings: MeasureSettings,
    fit: int = 30, held_out: int = 50, seed: int = 0, population: int = 100_000,
    log: Callable[[str], None] = print, model: str = DEFAULT_MODEL, backbone: TransferBackbone | None = None,
) -> tuple[LatencyModel, dict[str, Any]]:
    """Run the protocol of the module docstring; returns the fitted model (``additive``: the corrected table)
    and the report. ``backbone``: the pre-trained part of the ``transfer`` model."""
    if fit < 2 or held_out < 2:
        raise ConfigError(f"latency evaluation needs >= 2 fitting and >= 2 held-out archs, got {fit} and {held_out}")
    spec = model_spec(model)
    if fit < spec.min_measured:
        raise ConfigError(f"latency model '{model}' needs at least {spec.min_measured} measured archs, got --fit {fit}")
    if spec.needs_backbone and backbone is None:
        raise ConfigError(f"latency model '{model}' needs a backbone pre-trained on other devices' latency tables")
    if table_settings.device != arch_settings.device or table_settings.batch_size != arch_settings.batch_size:
        raise ConfigError("the table and the whole archs must be measured on the same device and batch size")
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    log(f"building the latency table on {describe_device(table_settings.device)} (batch {table_settings.batch_size})")
    table = build_lut(space, adapter, table_settings, progress=lambda line: log("  " + line))
    fit_archs = distinct_archs(space, fit, rng)
    held_archs = distinct_archs(space, held_out, rng, exclude=set(fit_archs))

    def progress(_name: str, total: int) -> Callable[[int, float], None]:
        return lambda k, ms: log(f"  arch {k + 1}/{total}: {ms:.3f} ms") if (k + 1) % 10 == 0 or k + 1 == total else None

    log(f"measuring {fit} fitting archs and {held_out} held-out archs, in one shuffled order")
    everything = fit_archs + held_archs
    order = rng.permutation(len(everything))  # drift of the machine hits both sets alike
    y_all = np.empty(len(everything))
    y_all[order] = measure_archs(adapter, [everything[k] for k in order], arch_settings, progress("", len(everything)))
    y_fit, y_held = y_all[:fit], y_all[fit:]
    corrected = table.calibrate(fit_archs, y_fit)
    ridge_only = fit_from_measurements(
        space, fit_archs, y_fit, table.key.device, table.key.batch_size, torch_version=table.key.torch_version
    )
    chosen = fit_model(model, table.encoder.choices, table.encoder.encode(fit_archs), y_fit, table.key, seed=seed,
                       table=table, arch_map=table.encoder.arch_map, backbone=backbone)
    predictors = {"table sum": table, "table + affine correction": corrected, "additive fit without table": ridge_only,
                  {DEFAULT_MODEL: "table + affine correction"}.get(model, f"{model} model"): chosen}
    # each predictor encodes the archs its own way (the table may have an adapter's table choices)
    metrics = {name: latency_metrics(p.predict(held_archs), y_held) for name, p in predictors.items()}
    archs = [
        {"set": "fit" if k < fit else "held_out", "arch": space.format(arch), "measured_ms": float(y_all[k]),
         "table_sum_ms": float(table.predict_one(arch)), "corrected_ms": float(corrected.predict_one(arch))}
        for k, arch in enumerate(everything)
    ]
    speed = predictions_per_second(chosen, space, population, rng)
    report = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": describe_device(table_settings.device),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
        "space": space.describe(),
        "table_measurement": asdict(table_settings),
        "arch_measurement": asdict(arch_settings),
        "protocol": {"fit_archs": fit, "held_out_archs": held_out, "seed": seed, "sets_disjoint": True},
        "model": {"name": model, "method": chosen.method, "details": chosen.details},
        "table": {
            "fixed_ms": table.fixed_ms,
            "terms_ms": {f"{c}/{o}": table.term_ms(c, o) for c, o in table.encoder.columns},
            "distinct_measurements": table.details.get("distinct_measurements"),
        },
        "correction": {"scale": corrected.scale, "offset_ms": corrected.offset},
        "held_out_metrics": metrics,
        "measured_held_out_ms": {"median": float(np.median(y_held)), "min": float(y_held.min()), "max": float(y_held.max())},
        "predictions_per_second": speed,
        "seconds": time.perf_counter() - started,
        "archs": archs,
    }
    return chosen, report


def write_report(report: Mapping[str, Any], out: Path, name: str) -> tuple[Path, Path]:
    """``<out>/<name>.json`` and ``<out>/<name>.md``."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{name}.json", out / f"{name}.md"
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    md_path.write_text(markdown(report))
    return json_path, md_path


def markdown(report: Mapping[str, Any]) -> str:
    p, t, a = report["protocol"], report["table_measurement"], report["arch_measurement"]
    speed = report["predictions_per_second"]
    lines = [
        f"# Latency predictor on {report['machine']}: {report['space']['name']}",
        "",
        f"- space: `{json.dumps(report['space']['config'])}`, input {report['space']['data']['in_channels']}x"
        f"{'x'.join(map(str, report['space']['data']['input_size']))}, batch {t['batch_size']}, device `{t['device']}`",
        f"- table: each (choice, option) measured in its input shape, median of {t['repeats']} after {t['warmup']} warm-up "
        f"calls ({report['table']['distinct_measurements']} distinct measurements); whole archs: median of {a['repeats']} "
        f"after {a['warmup']}",
        f"- protocol: correction fitted on {p['fit_archs']} archs, evaluated on {p['held_out_archs']} other archs "
        f"(disjoint, uniform, seed {p['seed']}); fitted correction: scale {report['correction']['scale']:.4f}, "
        f"offset {report['correction']['offset_ms']:.4f} ms",
        *([f"- model saved: {report['model']['name']} ({report['model']['method']})"] if "model" in report else []),
        f"- versions: python {report['versions']['python']}, torch {report['versions']['torch']}, numpy {report['versions']['numpy']}",
        f"- command: `{report.get('command', '')}` ({report['date']}, {report['seconds']:.0f} s)",
        "",
        markdown_table(
            ["predictor (held-out archs)", "RMSE (ms)", "MAPE (%)", "within ±10 %", "Kendall tau"],
            [[name, m["rmse_ms"], m["mape_pct"], m["within_10pct"], m["kendall_tau"]]
             for name, m in report["held_out_metrics"].items()],
            "lrrrr", formats=[None, ".4f", ".2f", ".3f", ".3f"]),
    ]
    held = report["measured_held_out_ms"]
    lines += [
        "",
        f"Measured held-out latency: median {held['median']:.3f} ms (range {held['min']:.3f}-{held['max']:.3f}).",
        f"Predictions per second: {speed['matvec_per_s']:,.0f} on {speed['matvec_population']:,} archs as one matrix-vector "
        f"product, {speed['end_to_end_per_s']:,.0f} end to end from {speed['end_to_end_population']:,} Arch objects ({speed['timing']}).",
        "",
    ]
    return "\n".join(lines)

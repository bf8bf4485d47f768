"""Fitting the additive latency model from external whole-arch measurements (no per-op measurement possible).

The use case is a published latency table such as ``$NASFRAME_DATA/nb201/latency_ms.csv``: NAS-Bench-201 archs
measured on 13 devices, from "HW-NAS-Bench: Hardware-Aware Neural Architecture Search Benchmark" (Li et al.,
ICLR 2021) and the HELP release. The devices cannot be reached, so the table terms are not measured op by op:
they are fitted (:func:`nasframe.hardware.predictor.fit_additive`: ridge regression of the latencies on the 0/1
``(choice, option)`` terms, one reference option per choice pinned to 0, unpenalised intercept) from a few
measured archs, and the fitted predictor predicts every other arch with one matrix-vector product.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from nasframe.core.arch import Arch
from nasframe.core.space import SearchSpace
from nasframe.data.paths import data_root
from nasframe.errors import DataError, NasframeError
from nasframe.hardware.encoding import TermEncoder
from nasframe.hardware.predictor import LatencyPredictor, PredictorKey, fit_additive, reference_options

#: the default table: NAS-Bench-201 archs x devices, in milliseconds
DEFAULT_TABLE = ("nb201", "latency_ms.csv")

#: the torch version field of a predictor fitted from data measured elsewhere
EXTERNAL_TORCH = "external measurements"


def default_table_path() -> Path:
    return data_root().joinpath(*DEFAULT_TABLE)


def read_latency_table(path: str | Path, space: SearchSpace) -> tuple[list[Arch], dict[str, np.ndarray]]:
    """Archs (parsed with ``space``, native strings or JSON) and one latency array (ms) per device column.

    The file is a CSV with an ``arch`` column, an optional ``index`` column and one numeric column per device.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"latency table not found at {path}; set $NASFRAME_DATA or give the path")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "arch" not in reader.fieldnames:
            raise DataError(f"{path}: a latency table needs an 'arch' column, got {reader.fieldnames}")
        devices = [c for c in reader.fieldnames if c not in ("index", "arch")]
        if not devices:
            raise DataError(f"{path}: no device column besides index and arch")
        archs, values = [], []
        for line, row in enumerate(reader, start=2):
            try:
                archs.append(space.parse(row["arch"]))
                values.append([float(row[d]) for d in devices])
            except (NasframeError, TypeError, ValueError) as exc:
                raise DataError(f"{path}, line {line}: {exc}") from None
    if not archs:
        raise DataError(f"{path}: the table is empty")
    table = np.asarray(values, dtype=np.float64)
    if not np.isfinite(table).all() or (table <= 0).any():
        raise DataError(f"{path}: latencies must be positive, finite numbers")
    return archs, {d: table[:, k] for k, d in enumerate(devices)}


def fit_from_measurements(
    space: SearchSpace, archs: Sequence[Mapping[str, str]], measured_ms: np.ndarray, device: str,
    batch_size: int | None = None, ridge: float = 1e-2, torch_version: str = EXTERNAL_TORCH,
) -> LatencyPredictor:
    """The additive predictor fitted on ``archs`` and their measured latencies (method in the module docstring).

    ``device`` and ``batch_size`` name where the measurements come from (the key of the saved table).
    """
    measured_ms = np.asarray(measured_ms, dtype=np.float64)
    if len(archs) != measured_ms.size:
        raise DataError(f"{len(archs)} archs but {measured_ms.size} latencies")
    key = PredictorKey(device, batch_size, torch_version, space.describe())
    encoder = TermEncoder(space.choices)
    reference = reference_options(space.choices, space.zero_option)
    terms, intercept = fit_additive(encoder, encoder.encode(archs), measured_ms, ridge, reference)
    return LatencyPredictor(
        space.choices, terms, intercept, key, method="ridge fit of the additive model on measured archs",
        details={"ridge": ridge, "fit_archs": int(measured_ms.size), "reference_options": reference},
    )

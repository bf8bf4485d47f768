"""The additive lookup-table latency predictor, its fitting, and its JSON file.

Model. An arch's latency is predicted as ``scale * (fixed_ms + sum of its table terms) + offset``: one term
``t[choice, option]`` (ms) per choice for the option the arch takes, a fixed part (the network's parts that no
choice controls: stem, reductions, head), and an affine correction fitted on whole archs. This is the
lookup-table approach of "ProxylessNAS: Direct Neural Architecture Search on Target Task and Hardware" and
"Once-for-All: Train One Network and Specialize it for Efficient Deployment": measure each op in the input shape
it sees in the network, add up. The correction absorbs what the sum misses (the additions that join branches,
framework overhead per call, caches warm across consecutive ops).

A population is encoded as one ``(archs x terms)`` 0/1 matrix (:class:`~nasframe.hardware.encoding.TermEncoder`),
so its predictions are one matrix-vector product with the effective weights ``scale * t`` plus the effective
intercept ``scale * fixed_ms + offset``.

Where the terms come from:

* measured per op on the device (:func:`nasframe.hardware.lut.build_lut`), then :meth:`LatencyPredictor.calibrate`
  fits ``scale`` and ``offset`` by least squares on ``[table sum, 1]`` over a few dozen measured whole archs;
* or fitted directly from whole-arch measurements when per-op measurement is impossible
  (:func:`fit_additive`, used on the HW-NAS-Bench table): ridge regression of the latencies on the 0/1 terms.

A predictor is saved as JSON (never pickle), keyed by device name, batch size, torch version and the space's
description; :func:`load_predictor` refuses a file whose key differs from the one expected, naming the field.
The file's ``model`` field names the model (``additive`` here; files without it are additive); the non-additive
models of :mod:`nasframe.hardware.models` share the format and the loader.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nasframe.core.choice import Choice
from nasframe.errors import NasframeError
from nasframe.hardware.encoding import ArchMap, TermEncoder

FORMAT = "nasframe-latency-table"
FORMAT_VERSION = 1


class LatencyTableError(NasframeError, ValueError):
    """A latency table file is corrupt, or was built for another device, batch size, torch version or space."""


def _plain(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples become lists), so descriptions compare after a round trip."""
    return json.loads(json.dumps(value))


@dataclass(frozen=True)
class PredictorKey:
    """What a latency table is valid for."""

    device: str  # describe_device(...) for a measured table; the device's name for external data
    batch_size: int | None
    torch_version: str
    space: dict[str, Any] = field(default_factory=dict)  # SearchSpace.describe()

    def __post_init__(self) -> None:
        object.__setattr__(self, "space", _plain(dict(self.space)))

    def mismatches(self, other: PredictorKey, ignore: Iterable[str] = ()) -> list[str]:
        """One line per field in which ``self`` (a file) differs from ``other`` (what is expected); a space setting
        that the file's record lacks counts at its default (the file predates the setting)."""
        lines = []
        for name in ("device", "batch_size", "torch_version", "space"):
            if name in ignore:
                continue
            mine, theirs = getattr(self, name), getattr(other, name)
            if name == "space" and mine and theirs:  # settings added to a space later count at their defaults
                from nasframe.core.space import with_later_defaults

                mine, theirs = _plain(with_later_defaults(mine)), _plain(with_later_defaults(theirs))
            if mine != theirs:
                lines.append(f"{name.replace('_', ' ')}: the table has {mine!r}, expected {theirs!r}")
        return lines


def reference_options(choices: Sequence[Choice], zero_option: str | None = None) -> dict[str, str]:
    """Per choice, the option whose term a fit pins to 0 ms: the space's zero option (``none``) where the choice
    has it, else the choice's first option. Without a reference the terms of a choice and the intercept are
    determined only up to a shared constant."""
    return {c.name: zero_option if zero_option in c.options else c.options[0] for c in choices}


def fit_additive(
    encoder: TermEncoder, matrix: np.ndarray, measured_ms: np.ndarray, ridge: float = 1e-2,
    reference: Mapping[str, str] | None = None,
) -> tuple[np.ndarray, float]:
    """Per-term costs and intercept of the additive model ``y = X t + b`` from whole-arch measurements.

    Method: ridge regression (least squares plus ``ridge * ||t||^2``) on the 0/1 term matrix, with the reference
    option of each choice (:func:`reference_options`) pinned to 0 ms and the intercept unpenalised (columns and
    latencies are centred, the intercept is recovered from the means). ``ridge=0`` is plain least squares
    (minimum-norm where the fit set does not determine every term). Returns ``(terms_ms, intercept_ms)``.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    y = np.asarray(measured_ms, dtype=np.float64).ravel()
    if matrix.ndim != 2 or matrix.shape != (y.size, encoder.num_terms):
        raise LatencyTableError(f"fit needs a ({y.size}, {encoder.num_terms}) term matrix, got {matrix.shape}")
    if y.size < 2 or not np.isfinite(y).all():
        raise LatencyTableError("fit needs at least 2 finite measured latencies")
    if ridge < 0:
        raise LatencyTableError(f"ridge must be >= 0, got {ridge}")
    reference = reference if reference is not None else reference_options(encoder.choices)
    free = np.array([reference.get(choice) != option for choice, option in encoder.columns])
    x = matrix[:, free]
    x_mean, y_mean = x.mean(axis=0), y.mean()
    xc, yc = x - x_mean, y - y_mean
    if ridge == 0:
        solution = np.linalg.lstsq(xc, yc, rcond=None)[0]
    else:
        solution = np.linalg.solve(xc.T @ xc + ridge * np.eye(x.shape[1]), xc.T @ yc)
    terms = np.zeros(encoder.num_terms)
    terms[free] = solution
    return terms, float(y_mean - x_mean @ solution)


def fit_affine(raw_ms: np.ndarray, measured_ms: np.ndarray) -> tuple[float, float]:
    """``(scale, offset)`` minimising ``sum (scale * raw + offset - measured)^2`` (least squares on ``[raw, 1]``).

    When noise swamps the fitting archs (few archs, a busy machine), the least-squares scale can come out zero or
    negative, which would reverse the table's ranking of archs; the correction is then the ratio of the means
    (``scale = mean(measured) / mean(raw)``, ``offset = 0``)."""
    raw = np.asarray(raw_ms, dtype=np.float64).ravel()
    y = np.asarray(measured_ms, dtype=np.float64).ravel()
    if raw.size != y.size or raw.size < 2:
        raise LatencyTableError(f"an affine correction needs >= 2 paired values, got {raw.size} and {y.size}")
    if np.ptp(raw) == 0:
        raise LatencyTableError("an affine correction needs archs whose table sums differ")
    design = np.stack([raw, np.ones_like(raw)], axis=1)
    (scale, offset), *_ = np.linalg.lstsq(design, y, rcond=None)
    if not scale > 0:
        return float(y.mean() / raw.mean()), 0.0
    return float(scale), float(offset)


class LatencyPredictor:
    """``scale * (fixed_ms + X @ terms_ms) + offset`` over the 0/1 term matrix ``X`` of a population."""

    def __init__(
        self, choices: Sequence[Choice], terms_ms: np.ndarray, fixed_ms: float, key: PredictorKey,
        scale: float = 1.0, offset: float = 0.0, method: str = "", details: Mapping[str, Any] | None = None,
        arch_map: ArchMap | None = None,
    ) -> None:
        """``arch_map`` maps a space's arch onto ``choices`` when those are the adapter's table choices
        (:class:`~nasframe.hardware.encoding.TermEncoder`); it is code, so it is not saved: rebind it after
        loading with :meth:`with_arch_map` (:func:`nasframe.selection.constraints.load_latency_budget` does)."""
        self.encoder = TermEncoder(choices, arch_map)
        self.terms_ms = np.asarray(terms_ms, dtype=np.float64).copy()
        if self.terms_ms.shape != (self.encoder.num_terms,):
            raise LatencyTableError(f"expected {self.encoder.num_terms} table terms, got shape {self.terms_ms.shape}")
        self.fixed_ms, self.scale, self.offset = float(fixed_ms), float(scale), float(offset)
        values = [*self.terms_ms, self.fixed_ms, self.scale, self.offset]
        if not all(math.isfinite(v) for v in values):
            raise LatencyTableError("a latency table holds a non-finite number")
        self.key = key
        self.method = method
        self.details: dict[str, Any] = _plain(dict(details or {}))
        self.weights = self.scale * self.terms_ms
        self.intercept = self.scale * self.fixed_ms + self.offset

    # -- prediction --------------------------------------------------------------------------------------
    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Predicted ms of every row of a population's 0/1 term matrix: one matrix-vector product."""
        return matrix @ self.weights + self.intercept

    def predict(self, archs: Iterable[Mapping[str, str]]) -> np.ndarray:
        """Predicted ms of each arch of a population."""
        return self.predict_matrix(self.encoder.encode(archs))

    def predict_one(self, arch: Mapping[str, str]) -> float:
        return float(self.encoder.encode_one(arch) @ self.weights + self.intercept)

    def raw(self, matrix: np.ndarray) -> np.ndarray:
        """The uncorrected table sums ``fixed_ms + X @ terms_ms``."""
        return matrix @ self.terms_ms + self.fixed_ms

    def term_ms(self, choice: str, option: str) -> float:
        """The table's (uncorrected) term of one option of one choice."""
        return float(self.terms_ms[self.encoder.column(choice, option)])

    # -- correction -----------------------------------------------------------------------------------
    def _copy(self, **changes: Any) -> LatencyPredictor:
        settings = dict(scale=self.scale, offset=self.offset, method=self.method, details=self.details,
                        arch_map=self.encoder.arch_map)
        settings.update(changes)
        return LatencyPredictor(self.encoder.choices, self.terms_ms, self.fixed_ms, self.key, **settings)

    def with_correction(self, scale: float, offset: float) -> LatencyPredictor:
        return self._copy(scale=scale, offset=offset)

    def with_arch_map(self, arch_map: ArchMap | None) -> LatencyPredictor:
        """A copy that maps each arch with ``arch_map`` before encoding it."""
        return self._copy(arch_map=arch_map)

    def calibrate(self, archs: Sequence[Mapping[str, str]], measured_ms: np.ndarray) -> LatencyPredictor:
        """A copy whose affine correction is fitted (:func:`fit_affine`) on measured whole archs."""
        scale, offset = fit_affine(self.raw(self.encoder.encode(archs)), measured_ms)
        return self.with_correction(scale, offset)

    # -- files --------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": "additive",
            "key": asdict(self.key),
            "method": self.method,
            "choices": [{"name": c.name, "options": list(c.options)} for c in self.encoder.choices],
            "terms": [
                {"choice": choice, "option": option, "ms": float(ms)}
                for (choice, option), ms in zip(self.encoder.columns, self.terms_ms)
            ],
            "fixed_ms": self.fixed_ms,
            "correction": {"kind": "affine", "scale": self.scale, "offset": self.offset},
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "latency table") -> LatencyPredictor:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise LatencyTableError(f"{where} is not a nasframe latency table")
        if data.get("format_version") != FORMAT_VERSION:
            raise LatencyTableError(
                f"{where} has format version {data.get('format_version')!r}, this nasframe reads {FORMAT_VERSION}"
            )
        if data.get("model", "additive") != "additive":
            raise LatencyTableError(f"{where} holds a {data.get('model')!r} model, not the additive one")
        try:
            choices = [Choice(str(c["name"]), tuple(str(o) for o in c["options"])) for c in data["choices"]]
            terms = {(str(t["choice"]), str(t["option"])): float(t["ms"]) for t in data["terms"]}
            encoder = TermEncoder(choices)
            missing = [col for col in encoder.columns if col not in terms]
            if missing or len(terms) != encoder.num_terms:
                raise LatencyTableError(f"{where}: the terms do not match the choices (first missing: {missing[:1]})")
            key_data = data["key"]
            key = PredictorKey(
                device=str(key_data["device"]),
                batch_size=None if key_data["batch_size"] is None else int(key_data["batch_size"]),
                torch_version=str(key_data["torch_version"]), space=dict(key_data["space"]),
            )
            correction = data["correction"]
            return cls(
                choices, np.array([terms[col] for col in encoder.columns]), float(data["fixed_ms"]), key,
                float(correction["scale"]), float(correction["offset"]), str(data.get("method", "")),
                data.get("details") or {},
            )
        except LatencyTableError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise LatencyTableError(f"{where} is corrupt: {type(exc).__name__}: {exc}") from None

    def save(self, path: str | Path) -> Path:
        """Write the JSON file atomically (temporary file, then rename)."""
        return write_json_atomic(path, self.to_dict())


def write_json_atomic(path: str | Path, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as JSON (no NaN) to ``path`` atomically: a temporary file beside it, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1, allow_nan=False)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_predictor(
    path: str | Path, expected: PredictorKey | None = None, ignore: Iterable[str] = ()
) -> LatencyPredictor:
    """Read a latency table written by :meth:`LatencyPredictor.save` or by the ``save`` of any model of
    :data:`nasframe.hardware.models.MODELS` (the file's ``model`` field picks the class; absent: additive).

    With ``expected``, a table built for another device, batch size, torch version or space (fields in
    ``ignore`` excepted, e.g. ``("torch_version",)``) raises :class:`LatencyTableError` naming each mismatch.
    """
    path = Path(path)
    if not path.is_file():
        raise LatencyTableError(f"no latency table at {path}")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LatencyTableError(f"latency table {path} is corrupt: not JSON ({exc})") from None
    from nasframe.hardware.models import model_class  # the models import this module

    where = f"latency table {path}"
    name = data.get("model", "additive") if isinstance(data, dict) else "additive"
    predictor = model_class(name, where).from_dict(data, where=where)
    if expected is not None:
        problems = predictor.key.mismatches(expected, ignore)
        if problems:
            raise LatencyTableError(f"latency table {path} does not fit here: " + "; ".join(problems))
    return predictor

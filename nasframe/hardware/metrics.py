"""Accuracy of latency predictions against measured latency."""

from __future__ import annotations

import numpy as np
from scipy import stats

from nasframe.errors import ConfigError


def latency_metrics(predicted_ms: np.ndarray, measured_ms: np.ndarray) -> dict[str, float]:
    """RMSE (ms), mean absolute percentage error (%), share of predictions within +-10 % of the measurement
    (a fraction in [0, 1]), Kendall tau (tau-b, ties counted as SciPy does) and the number of archs."""
    predicted = np.asarray(predicted_ms, dtype=np.float64).ravel()
    measured = np.asarray(measured_ms, dtype=np.float64).ravel()
    if predicted.shape != measured.shape or predicted.size < 2:
        raise ConfigError(f"latency metrics need two equal-length series of >= 2 values, got {predicted.size} and {measured.size}")
    if (measured <= 0).any() or not np.isfinite(measured).all():
        raise ConfigError("latency metrics need positive, finite measured latencies")
    relative = np.abs(predicted - measured) / measured
    return {
        "rmse_ms": float(np.sqrt(np.mean((predicted - measured) ** 2))),
        "mape_pct": float(100.0 * relative.mean()),
        "within_10pct": float((relative <= 0.10).mean()),
        "kendall_tau": float(stats.kendalltau(predicted, measured).statistic),
        "n": int(predicted.size),
    }

"""scripts/latency_curves_measured.py at toy scale: every model is fitted on N measured archs and scored on the
others only, with the same draw for every model, and the summary keeps spaces apart."""

from __future__ import annotations

import numpy as np

from nasframe.core.space import DataSpec
from nasframe.hardware.evaluate import distinct_archs
from nasframe.hardware.lut import MeasureSettings, build_lut, find_adapter
from search_spaces.nb201 import NB201Space


def test_curves_fit_on_n_and_score_on_the_rest(load_script, monkeypatch) -> None:
    script = load_script("latency_curves_measured")
    space = NB201Space(DataSpec(3, (8, 8), 10), channels=4, cells_per_stage=1)
    table = build_lut(space, find_adapter(space), MeasureSettings("cpu", 1, 0, 1))
    archs = distinct_archs(space, 30, np.random.default_rng(0))
    measured = np.array([1.0 + table.predict_one(a) for a in archs])  # a device the table explains up to an offset
    params = script.params_of(space, archs)
    scored = []
    original = script.latency_metrics
    monkeypatch.setattr(script, "latency_metrics", lambda p, m: scored.append(len(m)) or original(p, m))
    rows = script.curves(table, archs, measured, params, [10, 20], [0, 1])
    assert {r["model"] for r in rows} == {"additive", "interaction", "baseline: affine in #params"}
    assert scored == [20] * 6 + [10] * 6  # 3 models x 2 draws at N=10 scored on 20 archs, then at N=20 on 10
    additive = [r for r in rows if r["model"] == "additive"]
    assert all(r["within_10pct"] == 1.0 for r in additive)  # an exact table + affine correction fits this device
    for row in rows:
        row["space"] = "nb201"
    summary = script.summarise(rows + [{**rows[0], "space": "mobilenet", "kendall_tau": -1.0}])
    assert summary[("mobilenet", "additive", 10)]["kendall_tau"] == (-1.0, 0.0)
    assert summary[("nb201", "additive", 10)]["kendall_tau"][0] > 0.9

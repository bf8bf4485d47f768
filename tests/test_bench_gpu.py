"""scripts/bench_gpu.py runs at toy scale on the CPU and writes its table (timings are not checked: no timings in
pass/fail tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_gpu_toy_run_writes_every_measurement(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_gpu.py"), "--toy", "--device", "cpu",
                           "--threads", "1", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "bench_gpu_toy_cpu.json").read_text())
    assert set(report["epoch_seconds"]) == {f"{way}/{sampler}" for way in ("fast", "exact", "compiled")
                                            for sampler in ("uniform", "pada")} | {"plain/uniform"}
    assert set(report["warmup_seconds"]) == set(report["epoch_seconds"]) - {"plain/uniform"}
    assert report["concurrent"]["trainings"] == 2 and report["concurrent"]["gain"] > 0
    assert set(report["archs_per_second"]) == {"fast/recal", "fast/no_recal", "plain/recal", "plain/no_recal"}
    assert all(v > 0 for v in [*report["epoch_seconds"].values(), *report["archs_per_second"].values()])
    assert set(report["projection_seconds"]) == {"fast", "plain"}
    assert "Projection** (not a measurement)" in (tmp_path / "bench_gpu_toy_cpu.md").read_text()

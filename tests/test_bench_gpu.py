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
    assert report["meta"]["complete"] is True
    table = (tmp_path / "bench_gpu_toy_cpu.md").read_text()
    assert "Projection** (not a measurement)" in table and "Partial" not in table


def test_a_run_stopped_early_leaves_a_table_of_what_it_measured(tmp_path: Path) -> None:
    """The bench rewrites its table after each measurement: one stopped by a time limit says it is partial and
    projects only what its measurements allow."""
    import argparse

    import torch

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import bench_gpu
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    args = argparse.Namespace(out=tmp_path, toy=False, channels=16, cells=5, batch_size=256, recal_images=4096,
                              workers=8, compile="default")
    timings = bench_gpu.Timings(epochs={"fast/uniform": 5.0}, warmups={"fast/uniform": 9.0})
    timings.project(train_images=50_000, score_images=10_000)
    assert timings.projection == {}  # no scoring rate yet
    timings.scoring["fast/recal"] = 20.0
    timings.project(train_images=50_000, score_images=10_000)
    assert timings.projection["fast"]["train_s"] == 250 * 5.0 and timings.projection["fast"]["score_s"] == 15_625 / 20
    bench_gpu.write(args, "synthetic", torch.device("cpu"), 50_000, 10_000, timings, complete=False)
    report = json.loads((tmp_path / "bench_gpu_cpu.json").read_text())
    assert report["meta"]["complete"] is False and set(report["projection_seconds"]) == {"fast"}
    assert "**Partial:**" in (tmp_path / "bench_gpu_cpu.md").read_text()

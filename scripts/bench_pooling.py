"""Time ``nn.AvgPool2d`` against nasframe's CPU path (:mod:`nasframe.core.pooling`) on cell-space shapes.

For each shape: forward alone (no grad) and forward plus backward, median of ``--repeats`` timed calls after
warm-up, and the largest output and gradient difference between the two. Writes ``results/bench_pooling.{md,json}``.

    python scripts/bench_pooling.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from nasframe.core.pooling import AvgPool2d
from nasframe.markdown import markdown_table

#: (batch, channels, size, stride): NB201 C=16 stages at batch 64 and 256, a DARTS reduction pool
SHAPES = [(64, 16, 32, 32, 1), (64, 32, 16, 16, 1), (64, 64, 8, 8, 1), (256, 16, 32, 32, 1), (64, 16, 32, 32, 2)]


def median_ms(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def measure(shape: tuple[int, ...], repeats: int) -> dict:
    batch, channels, size, stride = shape[0], shape[1], shape[2], shape[4]
    torch.manual_seed(0)
    x = torch.randn(batch, channels, size, size)
    row: dict = {"shape": [batch, channels, size, size], "kernel": 3, "stride": stride, "padding": 1}
    outputs = {}
    for label, pool in (("torch", nn.AvgPool2d(3, stride, 1, count_include_pad=False)),
                        ("nasframe", AvgPool2d(3, stride, 1, count_include_pad=False))):
        with torch.no_grad():
            row[f"{label}_forward_ms"] = median_ms(lambda: pool(x), repeats)
        leaf = x.clone().requires_grad_()

        def step() -> None:
            leaf.grad = None
            pool(leaf).sum().backward()

        row[f"{label}_forward_backward_ms"] = median_ms(step, repeats)
        out = pool(leaf)
        out.backward(torch.ones_like(out))
        outputs[label] = (out.detach(), leaf.grad.clone())
    row["max_output_difference"] = (outputs["torch"][0] - outputs["nasframe"][0]).abs().max().item()
    row["max_gradient_difference"] = (outputs["torch"][1] - outputs["nasframe"][1]).abs().max().item()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [measure(shape, args.repeats) for shape in SHAPES]
    meta = {"command": "python " + " ".join(sys.argv), "python": platform.python_version(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine(), "device": "cpu"}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_pooling.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    lines = [
        "# 3x3 average pooling on the CPU: torch's avg_pool2d vs nasframe.core.pooling (count_include_pad=False)",
        "",
        f"- command: `{meta['command']}`; python {meta['python']}, torch {meta['torch']}, {meta['threads']} threads, "
        f"{meta['machine']}",
        f"- median of {args.repeats} calls after 3 warm-up calls; milliseconds",
        "",
    ]
    table = []
    for r in rows:
        f_t, f_n = r["torch_forward_ms"], r["nasframe_forward_ms"]
        b_t, b_n = r["torch_forward_backward_ms"], r["nasframe_forward_backward_ms"]
        table.append([tuple(r["shape"]), r["stride"], f_t, f_n, f"{f_t / f_n:.1f}x", b_t, b_n, f"{b_t / b_n:.1f}x",
                      r["max_output_difference"], r["max_gradient_difference"]])
    lines += [markdown_table(
        ["input (N, C, H, W)", "stride", "forward torch", "forward nasframe", "speed-up", "fwd+bwd torch",
         "fwd+bwd nasframe", "speed-up", "max output diff.", "max grad. diff."],
        table, "l" + "r" * 9, formats=[None, None, ".2f", ".2f", None, ".2f", ".2f", None, ".1e", ".1e"]), ""]
    (args.out / "bench_pooling.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

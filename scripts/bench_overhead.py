"""Overhead of the single-path supernet over the standalone subnet (NAS-Bench-201, elastic MobileNetV3).

For each arch: the median time of a training step (zero_grad, forward, cross-entropy, backward, SGD step with
momentum and weight decay) and of an inference forward, for (a) the supernet with the arch active, routing
``set_arch`` every step as training does, and (b) the standalone subnet of the same arch. The two are timed in
alternation, round after round, so drift of a shared machine hits both alike. Target: ratio <= 1.05.

For the MobileNet space the supernet's layers are elastic (kernel: centre crop of the 7x7 kernel; expand ratio:
the first channels; depth: the first blocks), so the comparison measures the cost of slicing shared weights.

    python scripts/bench_overhead.py                       # NB201 C=16 N=5, batch 64, 3x32x32, 2 threads
    python scripts/bench_overhead.py --device cuda --threads 0
    python scripts/bench_overhead.py --space mobilenet --batch-size 16 --warmup 2 --repeats 8   # CPU scale
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from nasframe.core.space import DataSpec
from nasframe.hardware import describe_device
from nasframe.markdown import markdown_table
from search_spaces.mobilenet import MobileNetSpace
from search_spaces.nb201 import NB201Space

NB201_ARCHS = {
    "best (94.37% on CIFAR-10)": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "all nor_conv_3x3": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "pooling-heavy": "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|nor_conv_1x1~2|",
    "mixed": "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|",
    "skip-heavy": "|skip_connect~0|+|skip_connect~0|none~1|+|skip_connect~0|nor_conv_1x1~1|skip_connect~2|",
    "sparse (none-heavy)": "|none~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|nor_conv_3x3~2|",
}

MOBILENET_ARCHS = {
    "largest (d4, k7, e6)": "d4,4,4,4,4|" + "|".join([",".join(["k7e6"] * 4)] * 5),
    "smallest (d2, k3, e3)": "d2,2,2,2,2|" + "|".join([",".join(["k3e3"] * 2)] * 5),
    "middle (d3, k5, e4)": "d3,3,3,3,3|" + "|".join([",".join(["k5e4"] * 3)] * 5),
    "mixed": "d2,3,4,3,2|k3e6,k7e3|k5e4,k3e6,k7e4|k3e3,k5e4,k7e6,k3e4|k7e6,k5e3,k3e4|k5e6,k3e3",
}


def build_space(args: argparse.Namespace) -> tuple[object, dict[str, str], str]:
    """The space, its benchmark archs (label -> native string) and a description of the setting."""
    data = DataSpec(3, (32, 32), 10)
    if args.space == "nb201":
        space = NB201Space(data, channels=args.channels, cells_per_stage=args.cells_per_stage)
        return space, NB201_ARCHS, f"NB201 C={args.channels} N={args.cells_per_stage}"
    space = MobileNetSpace(data, width_mult=args.width_mult)
    return space, MOBILENET_ARCHS, f"MobileNetV3 elastic space, width {args.width_mult}, 32x32 stride schedule"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_train_step(model, optimizer, x, y, arch=None):
    def step() -> None:
        if arch is not None:
            model.set_arch(arch)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    return step


def make_infer_step(model, x, arch=None):
    @torch.no_grad()
    def step() -> None:
        if arch is not None:
            model.set_arch(arch)
        model(x)

    return step


def timed(step, device) -> float:
    sync(device)
    start = time.perf_counter()
    step()
    sync(device)
    return time.perf_counter() - start


def compare(super_step, sub_step, device, warmup: int, repeats: int) -> tuple[float, float]:
    for _ in range(warmup):
        super_step()
        sub_step()
    supers, subs = [], []
    for r in range(repeats):
        pair = [(supers, super_step), (subs, sub_step)]
        for times, step in pair if r % 2 == 0 else reversed(pair):
            times.append(timed(step, device))
    return statistics.median(supers), statistics.median(subs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", choices=("nb201", "mobilenet"), default="nb201")
    parser.add_argument("--width-mult", type=float, default=1.0, help="mobilenet: width multiplier")
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--cells-per-stage", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (0: torch default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args()

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    space, archs, setting = build_space(args)
    supernet = space.build_supernet().to(device)
    super_opt = torch.optim.SGD(supernet.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.randn(args.batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch_size,), device=device)

    rows = []
    for label, native in archs.items():
        arch = space.parse(native)
        subnet = space.build_subnet(arch).to(device)
        sub_opt = torch.optim.SGD(subnet.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
        supernet.train(), subnet.train()
        train = compare(
            make_train_step(supernet, super_opt, x, y, arch), make_train_step(subnet, sub_opt, x, y),
            device, args.warmup, args.repeats,
        )
        supernet.eval(), subnet.eval()
        infer = compare(make_infer_step(supernet, x, arch), make_infer_step(subnet, x), device, args.warmup, args.repeats)
        row = {
            "arch": label,
            "native": native,
            "params": space.count_params(arch),
            "train_ms": {"supernet": 1e3 * train[0], "subnet": 1e3 * train[1], "ratio": train[0] / train[1]},
            "infer_ms": {"supernet": 1e3 * infer[0], "subnet": 1e3 * infer[1], "ratio": infer[0] / infer[1]},
        }
        rows.append(row)
        print(f"{label:<28} train {row['train_ms']['supernet']:8.2f} / {row['train_ms']['subnet']:8.2f} ms "
              f"= {row['train_ms']['ratio']:.3f}   infer {row['infer_ms']['supernet']:8.2f} / "
              f"{row['infer_ms']['subnet']:8.2f} ms = {row['infer_ms']['ratio']:.3f}", flush=True)

    meta = {
        "command": "python " + " ".join(sys.argv),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": describe_device(device),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "space": args.space,
        "setting": f"{setting}, batch {args.batch_size}, 3x32x32, 10 classes, "
                   f"SGD momentum 0.9 nesterov wd 5e-4, {args.warmup} warm-up + {args.repeats} timed steps each, median",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"overhead_{args.space}_{device.type}"
    (args.out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(render(meta, rows))
    print(f"wrote {args.out / stem}.md and .json")


TITLES = {"nb201": "NAS-Bench-201", "mobilenet": "elastic MobileNetV3"}


def render(meta: dict, rows: list[dict]) -> str:
    lines = [
        f"# Single-path supernet overhead vs the standalone subnet ({TITLES[meta.get('space', 'nb201')]})",
        "",
        f"- machine: {meta['machine']}",
        f"- versions: python {meta['python']}, torch {meta['torch']}",
        f"- setting: {meta['setting']}",
        f"- command: `{meta['command']}` ({meta['date']})",
        "- the supernet step includes `set_arch` (routing the path) every step, as in training",
        "",
        markdown_table(
            ["arch", "params", "train step supernet (ms)", "train step subnet (ms)", "ratio", "inference supernet (ms)",
             "inference subnet (ms)", "ratio"],
            [[r["arch"], r["params"], r["train_ms"]["supernet"], r["train_ms"]["subnet"], r["train_ms"]["ratio"],
              r["infer_ms"]["supernet"], r["infer_ms"]["subnet"], r["infer_ms"]["ratio"]] for r in rows],
            "l" + "r" * 7, formats=[None, ",", ".2f", ".2f", ".3f", ".2f", ".2f", ".3f"]),
    ]
    worst_train = max(r["train_ms"]["ratio"] for r in rows)
    worst_infer = max(r["infer_ms"]["ratio"] for r in rows)
    lines += ["", f"Worst ratio: training {worst_train:.3f}, inference {worst_infer:.3f} (target <= 1.05).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""Overhead of the single-path supernet over the standalone subnet (NAS-Bench-201, elastic MobileNetV3).

For each arch: the median time of a training step (zero_grad, forward, cross-entropy, backward, SGD step with
momentum and weight decay) and of an inference forward, for (a) the supernet with the arch active, routing
``set_arch`` every step as training does, and (b) the standalone subnet of the same arch. The two are timed in
alternation, round after round, so drift of a shared machine hits both alike. Target: ratio <= 1.05.

For the MobileNet space the supernet's layers are elastic (kernel: centre crop of the 7x7 kernel; expand ratio:
the first channels; depth: the first blocks), so the comparison measures the cost of slicing shared weights. Its
supernet steps with the trainer's optimiser, the active-slice SGD (``trainer.active_slices``: gradient, weight
decay and momentum on the slices that ran), and is also timed with a whole-tensor ``torch.optim.SGD``.
The ratio of each arch is the median of the per-round ratios (supernet / subnet of the same round); the spread is
their interquartile range.

    python scripts/bench_overhead.py                       # NB201 C=16 N=5, batch 64, 3x32x32, 2 threads
    python scripts/bench_overhead.py --device cuda --threads 0
    python scripts/bench_overhead.py --space mobilenet --batch-size 16 --warmup 2 --repeats 8   # CPU scale
"""

from __future__ import annotations

import argparse
import contextlib
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
from nasframe.training.active_step import ActiveRegions
from nasframe.training.config import TrainerConfig, build_optimizer
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
    regions = getattr(optimizer, "regions", None)  # the active-slice step records the slices that run

    def step() -> None:
        if arch is not None:
            model.set_arch(arch)
        optimizer.zero_grad(set_to_none=True)
        with regions.recording() if regions is not None else contextlib.nullcontext():
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


def compare(steps: dict, device, warmup: int, repeats: int) -> dict[str, list[float]]:
    """Each named step timed once per round, in an order that rotates from round to round; per name, the times."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            times[name].append(timed(steps[name], device))
    return times


def summary(times: dict[str, list[float]], name: str) -> dict[str, float]:
    """Median time (ms) of ``name`` and its median per-round ratio to the subnet, with the ratios' quartiles."""
    ratios = [a / b for a, b in zip(times[name], times["subnet"])]
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return {"ms": 1e3 * statistics.median(times[name]), "ratio": statistics.median(ratios), "ratio_q1": q1,
            "ratio_q3": q3}


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
    parser.add_argument("--only", nargs="*", default=None, help="archs to time, by the first word of their label "
                        "(e.g. smallest largest); default: all")
    parser.add_argument("--suffix", default="", help="appended to the output file names (e.g. _batch64)")
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args()

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    space, archs, setting = build_space(args)
    supernet = space.build_supernet().to(device)
    sgd = TrainerConfig(lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    regions = ActiveRegions(supernet)
    super_opt = build_optimizer(sgd, list(supernet.parameters()), sgd.lr, regions)  # the trainer's optimiser
    whole_opt = torch.optim.SGD(supernet.parameters(), lr=sgd.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.randn(args.batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch_size,), device=device)

    rows = []
    if args.only:
        archs = {label: native for label, native in archs.items() if label.split()[0] in args.only}
    for label, native in archs.items():
        arch = space.parse(native)
        subnet = space.build_subnet(arch).to(device)
        sub_opt = torch.optim.SGD(subnet.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
        supernet.train(), subnet.train()
        train_steps = {"supernet": make_train_step(supernet, super_opt, x, y, arch),
                       "subnet": make_train_step(subnet, sub_opt, x, y)}
        if regions:
            train_steps["supernet_whole_sgd"] = make_train_step(supernet, whole_opt, x, y, arch)
        train = compare(train_steps, device, args.warmup, args.repeats)
        supernet.eval(), subnet.eval()
        infer = compare({"supernet": make_infer_step(supernet, x, arch), "subnet": make_infer_step(subnet, x)},
                        device, args.warmup, args.repeats)
        row = {
            "arch": label,
            "native": native,
            "params": space.count_params(arch),
            "supernet_params": sum(p.numel() for p in supernet.parameters()),
            "train_ms": {"subnet": 1e3 * statistics.median(train["subnet"]),
                         **{name: summary(train, name) for name in train if name != "subnet"}},
            "infer_ms": {"subnet": 1e3 * statistics.median(infer["subnet"]), "supernet": summary(infer, "supernet")},
        }
        rows.append(row)
        t, i = row["train_ms"], row["infer_ms"]
        print(f"{label:<28} train {t['supernet']['ms']:8.2f} / {t['subnet']:8.2f} ms = {t['supernet']['ratio']:.3f} "
              f"[{t['supernet']['ratio_q1']:.3f}, {t['supernet']['ratio_q3']:.3f}]"
              + (f"  whole-tensor SGD {t['supernet_whole_sgd']['ratio']:.3f}" if "supernet_whole_sgd" in t else "")
              + f"   infer {i['supernet']['ms']:8.2f} / {i['subnet']:8.2f} ms = {i['supernet']['ratio']:.3f}", flush=True)

    meta = {
        "command": "python " + " ".join(sys.argv),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": describe_device(device),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "space": args.space,
        "setting": f"{setting}, batch {args.batch_size}, 3x32x32, 10 classes, "
                   f"SGD momentum 0.9 nesterov wd 5e-4, {args.warmup} warm-up + {args.repeats} timed rounds, "
                   "ratio = median of the per-round ratios [interquartile range]",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"overhead_{args.space}_{device.type}{args.suffix}"
    (args.out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(render(meta, rows))
    print(f"wrote {args.out / stem}.md and .json")


TITLES = {"nb201": "NAS-Bench-201", "mobilenet": "elastic MobileNetV3"}


def render(meta: dict, rows: list[dict]) -> str:
    whole = any("supernet_whole_sgd" in r["train_ms"] for r in rows)
    lines = [
        f"# Single-path supernet overhead vs the standalone subnet ({TITLES[meta.get('space', 'nb201')]})",
        "",
        f"- machine: {meta['machine']}",
        f"- versions: python {meta['python']}, torch {meta['torch']}",
        f"- setting: {meta['setting']}",
        f"- command: `{meta['command']}` ({meta['date']})",
        "- the supernet step includes `set_arch` (routing the path) every step, as in training",
    ]
    if whole:
        lines.append("- supernet train step: the trainer's active-slice SGD (`trainer.active_slices=true`, the default); "
                     "the last train column times the same supernet with a whole-tensor `torch.optim.SGD`")
    def ratio(entry: dict) -> str:
        return f"{entry['ratio']:.3f} [{entry['ratio_q1']:.3f}, {entry['ratio_q3']:.3f}]"

    headers = ["arch", "params", "train step supernet (ms)", "train step subnet (ms)", "train ratio [IQR]"]
    headers += ["train ratio, whole-tensor SGD [IQR]"] if whole else []
    headers += ["inference supernet (ms)", "inference subnet (ms)", "inference ratio [IQR]"]
    table = []
    for r in rows:
        t, i = r["train_ms"], r["infer_ms"]
        line = [r["arch"], f"{r['params']:,}", f"{t['supernet']['ms']:.2f}", f"{t['subnet']:.2f}", ratio(t["supernet"])]
        line += [ratio(t["supernet_whole_sgd"])] if whole else []
        line += [f"{i['supernet']['ms']:.2f}", f"{i['subnet']:.2f}", ratio(i["supernet"])]
        table.append(line)
    lines += ["", markdown_table(headers, table, "l" + "r" * (len(headers) - 1))]
    worst_train = max(r["train_ms"]["supernet"]["ratio"] for r in rows)
    worst_infer = max(r["infer_ms"]["supernet"]["ratio"] for r in rows)
    lines += ["", f"Worst ratio: training {worst_train:.3f}, inference {worst_infer:.3f} (target <= 1.05).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""Cost of a PA&DA training step against a uniform (SPOS) step, on the same archs.

Both trainers train the NB201 supernet (C=16, N=5) on the same batches of CIFAR-10-shaped data, and for step
``i`` both train the same arch ``A_i`` (a uniform draw): each sampler's own ``sample()`` still runs (its cost
counts), but its draw is replaced by ``A_i``, so the network work is identical and the difference is what PA&DA
adds: gradient norms of the active ops, the per-example logit-gradient proxy, the bookkeeping. Steps alternate
between the two trainers; the median ratio is reported. Target: PA&DA within 10 % of uniform.

    python scripts/bench_pada_cost.py                 # CPU, 2 threads, batch 64
    python scripts/bench_pada_cost.py --device cuda --batch-size 256
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

import numpy as np
import torch

from nasframe.core.space import DataSpec
from nasframe.hardware import describe_device
from nasframe.data.base import InMemoryLoader, TensorSplit
from nasframe.markdown import markdown_table
from nasframe.sampling.pada import PADASampler
from nasframe.sampling.uniform import UniformSampler
from nasframe.training import SupernetTrainer, TrainerConfig
from search_spaces.nb201 import NB201Space


def make_trainer(sampler_cls, space, split, batch, device):
    torch.manual_seed(0)
    sampler = sampler_cls(space, seed=0)
    loader = InMemoryLoader(split, batch, seed=0, data_order=sampler.data_order(len(split)))
    config = TrainerConfig(epochs=1, batch_size=batch, progress=False)
    return SupernetTrainer(space.build_supernet().to(device), sampler, loader, config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    space = NB201Space(DataSpec(3, (32, 32), 10))
    n = args.batch_size * (args.steps + args.warmup)
    split = TensorSplit(torch.randn(n, 3, 32, 32, device=device), torch.randint(0, 10, (n,), device=device))
    trainers = {name: make_trainer(cls, space, split, args.batch_size, device)
                for name, cls in (("uniform", UniformSampler), ("pada", PADASampler))}
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(args.steps + args.warmup)]
    batches = {name: t.loader.epoch() for name, t in trainers.items()}
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for i, arch in enumerate(archs):
        order = list(trainers) if i % 2 == 0 else list(reversed(trainers))
        for name in order:
            trainer = trainers[name]
            real_sample = type(trainer.sampler).sample
            trainer.sampler.sample = lambda s=trainer.sampler, f=real_sample, a=arch: (f(s), a)[1]
            x, y, idx = next(batches[name])
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            trainer.train_step(x, y, idx)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= args.warmup:
                times[name].append(time.perf_counter() - start)
    start = time.perf_counter()  # the once-per-epoch update (reads the epoch's statistics), timed separately
    trainers["pada"].sampler.end_epoch(0, 1)
    trainers["pada"].loader.data_order.end_epoch(0, 1)
    epoch_update = time.perf_counter() - start

    ratios = [p / u for p, u in zip(times["pada"], times["uniform"])]
    row = {
        "uniform_ms": 1e3 * statistics.median(times["uniform"]),
        "pada_ms": 1e3 * statistics.median(times["pada"]),
        "median_ratio_per_step": statistics.median(ratios),
        "ratio_of_medians": statistics.median(times["pada"]) / statistics.median(times["uniform"]),
        "epoch_update_ms": 1e3 * epoch_update,
    }
    meta = {
        "command": "python " + " ".join(sys.argv),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "device": describe_device(device),
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "setting": f"NB201 C=16 N=5, batch {args.batch_size}, 3x32x32, {args.steps} timed steps per sampler "
                   f"after {args.warmup} warm-up, same archs and batch shapes for both",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"pada_cost_{device.type}"
    Path(f"{stem}.json").write_text(json.dumps({"meta": meta, "result": row}, indent=2) + "\n")
    text = "\n".join([
        "# PA&DA training-step cost vs uniform sampling",
        "",
        f"- device: {meta['device']}; python {meta['versions']['python']}, torch {meta['versions']['torch']}",
        f"- setting: {meta['setting']}",
        f"- command: `{meta['command']}` ({meta['date']})",
        "",
        markdown_table(
            ["uniform step (ms, median)", "PA&DA step (ms, median)", "median per-step ratio",
             "PA&DA end-of-epoch update (ms)"],
            [[row["uniform_ms"], row["pada_ms"], row["median_ratio_per_step"], row["epoch_update_ms"]]],
            "rrrr", formats=[".1f", ".1f", ".3f", ".1f"]),
        "",
        "Target: ratio <= 1.10.",
        "",
    ])
    Path(f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

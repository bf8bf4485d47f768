"""Host cost of compiled supernet parts: one code object per part structure against ``nn.Module.compile``.

``trainer.compile`` compiles the parts of a supernet that do not change with the arch
(:mod:`nasframe.training.compile`). This script isolates what that costs the host per call, apart from the kernels:
every part's graph is compiled with dynamo's ``eager`` backend (the captured graph runs torch's own kernels), so a
difference to plain eager is the compiled calls' dispatch and guard checks. Three ways, each in a fresh process:

* ``eager``: no compilation;
* ``module_compile``: ``nn.Module.compile`` on each part (every part shares one code object, so one list of graphs;
  dynamo's recompile limit raised as nasframe raises it);
* ``nasframe``: :func:`~nasframe.training.compile.compile_fixed_parts` (a code object per part structure).

Each process builds the space's supernet (random weights; CIFAR-sized input), runs archs that together take every
option in the three modes a search uses (training with backward, BN recalibration, scoring), counts the graphs and
whether dynamo hit its recompile limit (after which it runs the rest eager), then times training steps and scoring
forwards on seeded random archs. Batch 2 by default, so that the host's work dominates. Writes
``results/compile_dispatch_cpu.{md,json}``.

    python scripts/bench_compile_dispatch.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

WAYS = ("eager", "module_compile", "nasframe")
SPACES = ("nb201", "darts")


def build_space(name: str):
    from nasframe.core.space import DataSpec

    spec = DataSpec(3, (32, 32), 10)
    if name == "nb201":
        from search_spaces.nb201 import NB201Space

        return NB201Space(spec)  # C=16, N=5
    from search_spaces.darts import DARTSSpace

    return DARTSSpace(spec)  # C=16, 8 cells


class LimitWatch(logging.Handler):
    """Notes dynamo's warning that a code object hit its recompile limit."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.hit = False

    def emit(self, record: logging.LogRecord) -> None:
        self.hit = self.hit or "recompile_limit" in record.getMessage() or "cache_size_limit" in record.getMessage()


def compile_parts(supernet, way: str) -> int:
    from nasframe.training.compile import compile_fixed_parts, fixed_parts

    if way == "eager":
        return 0
    names = compile_fixed_parts(supernet, "default", backend="eager")  # sets the limit either way
    if way == "module_compile":
        for _, module in fixed_parts(supernet):
            module.compile(backend="eager")  # replaces nasframe's compiled call with torch's own
    return len(names)


def one_process(space_name: str, way: str, batch: int, steps: int, seed: int) -> dict:
    """What the parent process records for one (space, way): runs in a fresh process."""
    from torch._dynamo.utils import counters

    from nasframe.core.arch import Arch

    watch = LimitWatch()
    logging.getLogger("torch._dynamo").addHandler(watch)
    space = build_space(space_name)
    torch.manual_seed(seed)
    supernet = space.build_supernet()
    parts = compile_parts(supernet, way)
    widest = max(len(choice) for choice in space.choices)
    covering = [Arch({c.name: c.options[k % len(c)] for c in space.choices}) for k in range(widest)]
    x = torch.randn(batch, 3, 32, 32)

    def train_step(arch) -> None:
        supernet.set_arch(arch)
        supernet.zero_grad(set_to_none=True)
        supernet(x).sum().backward()

    def forward(arch) -> None:
        supernet.set_arch(arch)
        with torch.no_grad():
            supernet(x)

    start = time.perf_counter()
    for mode, run in (("train", train_step), ("recalibrate", forward), ("score", forward)):
        supernet.train(mode != "score")
        for arch in covering:
            run(arch)
    warm_up_s = time.perf_counter() - start
    rng = np.random.default_rng(seed)
    archs = [space.sample(rng) for _ in range(steps + 10)]
    timings = {}
    for mode, run in (("train", train_step), ("score", forward)):
        supernet.train(mode == "train")
        for arch in archs[:10]:
            run(arch)
        times = []
        for arch in archs[10:]:
            begin = time.perf_counter()
            run(arch)
            times.append(time.perf_counter() - begin)
        timings[f"{mode}_ms"] = 1000 * statistics.median(times)
    return {"space": space_name, "way": way, "parts": parts, "graphs": counters["stats"]["unique_graphs"],
            "limit_hit": watch.hit, "warm_up_s": warm_up_s, **timings}


def run_child(args, space_name: str, way: str) -> dict:
    command = [sys.executable, __file__, "--one", space_name, way, "--threads", str(args.threads),
               "--batch", str(args.batch), "--steps", str(args.steps)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{space_name} / {way} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=40, help="timed steps (median) per mode, after 10 untimed")
    parser.add_argument("--repeats", type=int, default=2, help="processes per (space, way); the table gives each")
    parser.add_argument("--spaces", nargs="+", default=list(SPACES), choices=SPACES)
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--one", nargs=2, metavar=("SPACE", "WAY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(one_process(*args.one, batch=args.batch, steps=args.steps, seed=0)))
        return
    rows = []
    for repeat in range(args.repeats):  # ways interleaved, so that a slow moment of the machine hits all of them
        for space_name in args.spaces:
            for way in WAYS:
                row = run_child(args, space_name, way)
                rows.append({**row, "repeat": repeat})
                print(json.dumps(row), flush=True)
    meta = {"command": "python " + " ".join(sys.argv), "python": platform.python_version(), "torch": torch.__version__,
            "threads": args.threads, "batch": args.batch, "timed_steps": args.steps,
            "machine": platform.processor() or platform.machine(), "device": "cpu"}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compile_dispatch_cpu.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    from nasframe.markdown import markdown_table

    lines = [
        "# Host cost of compiled supernet parts (dynamo `eager` backend: no kernel changes, only the compiled calls)",
        "",
        f"- command: `{meta['command']}`; python {meta['python']}, torch {meta['torch']}, {meta['threads']} threads, "
        f"{meta['machine']}, CPU",
        f"- input 3x32x32 at batch {args.batch}, random weights; median milliseconds of {args.steps} steps on seeded "
        "random archs, after archs covering every option ran in training, BN recalibration and scoring mode",
        "- `module_compile`: `nn.Module.compile` on each part (one code object for all); `nasframe`: "
        "`compile_fixed_parts` (one per part structure); `limit hit`: dynamo reached its recompile limit and ran "
        "the later graphs eager",
        "",
        markdown_table(
            ["space", "way", "run", "parts", "graphs at the end", "limit hit", "warm-up s", "train step ms",
             "scoring forward ms"],
            [[r["space"], r["way"], r["repeat"] + 1, r["parts"], r["graphs"], "yes" if r["limit_hit"] else "no",
              f"{r['warm_up_s']:.1f}", f"{r['train_ms']:.1f}", f"{r['score_ms']:.1f}"]
             for r in sorted(rows, key=lambda r: (SPACES.index(r["space"]), WAYS.index(r["way"]), r["repeat"]))],
            "llrrrlrrr"),
        "",
    ]
    (args.out / "compile_dispatch_cpu.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

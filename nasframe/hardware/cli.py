"""``nasframe latency``: build a latency table on this device and report how well it predicts held-out archs.

Plain arguments (not Hydra). The protocol is :func:`nasframe.hardware.evaluate.evaluate_on_device`. Writes
``<out>/latency_predictor_<space>_<device>.{md,json}`` and the corrected table as
``<out>/latency_table_<space>_<device>.json`` (load it with :func:`nasframe.hardware.predictor.load_predictor`).

    nasframe latency                                          # NB201 C=16 N=5, 3x32x32, batch 1, CPU
    nasframe latency --device cuda --batch-size 64 --out results
    nasframe latency --space-opt channels=8 --space-opt cells_per_stage=2 --fit 20 --held-out 30
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import yaml

from nasframe.core.registry import SPACES
from nasframe.core.space import DataSpec
from nasframe.errors import ConfigError, NasframeError
from nasframe.hardware.evaluate import device_slug, evaluate_on_device, write_report
from nasframe.hardware.lut import MeasureSettings, find_adapter


def build_parser(default_out: str = "latency") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nasframe latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="nb201", help="search space name (default nb201)")
    parser.add_argument("--space-opt", action="append", default=[], metavar="KEY=VALUE",
                        help="a space setting, e.g. channels=16 (repeatable; values read as YAML)")
    parser.add_argument("--input-shape", type=int, nargs="+", default=[3, 32, 32], metavar="N",
                        help="per-sample input shape C H W (default 3 32 32)")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls before each measurement")
    parser.add_argument("--repeats", type=int, default=50, help="timed calls per measurement (median)")
    parser.add_argument("--fit", type=int, default=30, help="archs measured to fit the correction")
    parser.add_argument("--held-out", type=int, default=50, help="other archs measured to evaluate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave torch's default)")
    parser.add_argument("--out", default=default_out, help=f"output directory (default {default_out})")
    return parser


def parse_space_opts(items: list[str]) -> dict:
    opts = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--space-opt expects KEY=VALUE, got {item!r}")
        opts[key.strip()] = yaml.safe_load(value)
    return opts


def main(argv: list[str] | None = None, default_out: str = "latency", command: str = "nasframe latency") -> dict:
    """Run the command; ``default_out`` and ``command`` let a script reuse it (the command is recorded in the report)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(default_out).parse_args(argv)
    if len(args.input_shape) != 3:
        raise ConfigError(f"--input-shape takes C H W, got {args.input_shape}")
    if args.threads:
        torch.set_num_threads(args.threads)
    data = DataSpec(args.input_shape[0], (args.input_shape[1], args.input_shape[2]), args.num_classes)
    space = SPACES.build({"name": args.space, **parse_space_opts(args.space_opt)}, "space", data=data)
    settings = MeasureSettings(args.device, args.batch_size, args.warmup, args.repeats)
    predictor, report = evaluate_on_device(
        space, find_adapter(space), settings, settings, fit=args.fit, held_out=args.held_out, seed=args.seed
    )
    report["command"] = " ".join([command, *argv])
    name = f"{space.name}_{device_slug(args.device)}"
    json_path, md_path = write_report(report, Path(args.out), f"latency_predictor_{name}")
    table_path = predictor.save(Path(args.out) / f"latency_table_{name}.json")
    for label, metrics in report["held_out_metrics"].items():
        print(f"{label:<28} RMSE {metrics['rmse_ms']:.4f} ms  MAPE {metrics['mape_pct']:.2f} %  "
              f"within ±10 % {metrics['within_10pct']:.3f}  Kendall tau {metrics['kendall_tau']:.3f}")
    print(f"written to {md_path}, {json_path} and {table_path}")
    return report


if __name__ == "__main__":
    try:
        main()
    except NasframeError as exc:
        sys.exit(f"nasframe latency: error: {exc}")

"""``nasframe latency``: build a latency table on this device and report how well it predicts held-out archs.

Plain arguments (not Hydra). The protocol is :func:`nasframe.hardware.evaluate.evaluate_on_device`. Writes
``<out>/latency_predictor_<space>_<device>.{md,json}`` and the corrected table as
``<out>/latency_table_<space>_<device>.json`` (load it with :func:`nasframe.hardware.predictor.load_predictor`).

    nasframe latency                                          # NB201 C=16 N=5, 3x32x32, batch 1, CPU
    nasframe latency --device cuda --batch-size 64 --out results
    nasframe latency --space-opt channels=8 --space-opt cells_per_stage=2 --fit 20 --held-out 30
    nasframe latency --model interaction --fit 100                # additive table + boosted trees on the residual
    nasframe latency --model transfer --fit 20                    # pre-trained on the 13 devices of the NB201 table

``--model`` picks a model of :data:`nasframe.hardware.models.MODELS` (default ``additive``: the table with its
affine correction); a non-additive one is written as ``latency_table_<space>_<device>_<model>.json``, a file that
``constraints.latency_table`` accepts like the additive one. ``transfer`` pre-trains on ``--source-table`` (a CSV
of this space's archs x other devices, default ``$NASFRAME_DATA/nb201/latency_ms.csv``).
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
from nasframe.hardware.encoding import TermEncoder
from nasframe.hardware.external import default_table_path, read_latency_table
from nasframe.hardware.lut import MeasureSettings, find_adapter
from nasframe.hardware.models import DEFAULT_MODEL, MODELS, TransferBackbone, model_spec


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
    parser.add_argument("--model", default=DEFAULT_MODEL, metavar="|".join(MODELS),
                        help=f"latency model to fit and save (default {DEFAULT_MODEL})")
    parser.add_argument("--source-table", default=None,
                        help="transfer: CSV of this space's archs x other devices (default $NASFRAME_DATA/nb201/latency_ms.csv)")
    return parser


def pretrained_backbone(space, source_table: str | None, seed: int) -> TransferBackbone:
    """The transfer model's backbone, pre-trained on every device column of the source table."""
    path = Path(source_table) if source_table else default_table_path()
    archs, columns = read_latency_table(path, space)
    print(f"pre-training the transfer backbone on {len(columns)} devices x {len(archs):,} archs of {path}")
    return TransferBackbone.pretrain(space.choices, TermEncoder(space.choices).encode(archs), columns, seed=seed)


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
    spec = model_spec(args.model)
    if args.fit < spec.min_measured:
        raise ConfigError(f"--model {args.model} needs --fit >= {spec.min_measured}, got {args.fit}")
    adapter = find_adapter(space)
    backbone = pretrained_backbone(space, args.source_table, args.seed) if spec.needs_backbone else None
    settings = MeasureSettings(args.device, args.batch_size, args.warmup, args.repeats)
    predictor, report = evaluate_on_device(
        space, adapter, settings, settings, fit=args.fit, held_out=args.held_out, seed=args.seed,
        model=args.model, backbone=backbone,
    )
    report["command"] = " ".join([command, *argv])
    name = f"{space.name}_{device_slug(args.device)}" + ("" if args.model == DEFAULT_MODEL else f"_{args.model}")
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

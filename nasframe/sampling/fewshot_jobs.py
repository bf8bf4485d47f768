"""Few-shot sub-supernets trained as separate jobs, merged into one few-shot supernet for selection.

The workflow (also in the README): train the one-shot warm-up once and stop at the split epoch; start one job per
sub-supernet from that checkpoint with ``sampler.train_only=k`` (one after another, or in parallel as a Hydra
multirun); every job makes the same split from the same weights and trains sub-supernet ``k`` only; then
:func:`merge_runs` takes sub-supernet ``k``'s weights from job ``k`` and writes one finished checkpoint, which
``nasframe search resume=<merged dir>`` selects and exports from, routing each arch to its sub-supernet.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nasframe.errors import CheckpointError
from nasframe.training.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_atomic

PREFIX = "supernets."


def part_of(state: dict[str, Any], source: Path) -> tuple[int, str]:
    """The sub-supernet index a job trained, and its split (partition + decisions) as a comparable string."""
    sampler = state.get("sampler", {})
    if "partition" not in sampler or json.loads(sampler["partition"]) is None:
        raise CheckpointError(f"{source} is not a split few-shot run (sampler=fewshot, trained past the split)")
    index = json.loads(sampler.get("train_only", "null"))
    if index is None:
        raise CheckpointError(f"{source} trained every sub-supernet (sampler.train_only was not set): nothing to merge")
    return index, sampler["partition"] + sampler["decisions"]


def merge_runs(runs: list[Path], out: Path) -> Path:
    """One checkpoint holding sub-supernet ``k`` of the run that trained it (``sampler.train_only=k``), for every k.

    The runs must come from the same space, the same split and the same schedule, and all be finished."""
    if not runs:
        raise CheckpointError("merge: no runs given")
    states = [(Path(run), load_checkpoint(run)) for run in runs]
    first_source, first = states[0]
    parts: dict[int, tuple[Path, dict[str, Any]]] = {}
    split = None
    for source, state in states:
        index, this_split = part_of(state, source)
        if state["space"] != first["space"] or state["schedule"] != first["schedule"]:
            raise CheckpointError(f"{source} and {first_source} come from different spaces or schedules")
        if split is not None and this_split != split:
            raise CheckpointError(f"{source} split the supernet differently from {first_source}: resume every job from "
                                  "the same warm-up checkpoint")
        split = this_split
        if state["epoch"] != state["schedule"]["epochs"]:
            raise CheckpointError(f"{source} is unfinished (epoch {state['epoch']} of {state['schedule']['epochs']}): "
                                  f"resume it first")
        if index in parts:
            raise CheckpointError(f"sub-supernet {index} was trained by both {parts[index][0]} and {source}")
        parts[index] = (source, state)
    count = len(json.loads(first["sampler"]["partition"]))
    missing = sorted(set(range(count)) - set(parts))
    if missing:
        raise CheckpointError(f"merge: no run trained sub-supernet(s) {missing} of {count}")
    model = {}
    for key in first["model"]:
        if not key.startswith(PREFIX):
            raise CheckpointError(f"{first_source}: unexpected weight {key!r} outside the sub-supernets")
        index = int(key[len(PREFIX):].split(".", 1)[0])
        model[key] = parts[index][1]["model"][key]
    merged = {**parts[0][1], "model": model,
              "sampler": {**parts[0][1]["sampler"], "train_only": json.dumps(None)},
              "merged_from": json.dumps({str(k): str(src) for k, (src, _) in sorted(parts.items())})}
    out.mkdir(parents=True, exist_ok=True)
    return save_atomic(merged, out / CHECKPOINT_NAME)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="nasframe merge", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path,
                        help="run directories (or checkpoints) of the sub-supernet jobs, or one multirun directory")
    parser.add_argument("--out", type=Path, required=True, help="directory for the merged checkpoint")
    args = parser.parse_args(argv)
    runs = args.runs
    if len(runs) == 1 and runs[0].is_dir() and not (runs[0] / CHECKPOINT_NAME).exists():
        runs = sorted(p.parent for p in runs[0].rglob(CHECKPOINT_NAME))  # a multirun directory
    path = merge_runs(runs, args.out)
    print(f"merged {len(runs)} sub-supernet runs into {path}")
    print(f"select and export with: nasframe search sampler=fewshot resume={args.out} hydra.run.dir={args.out} "
          "(with the jobs' other settings)")

"""Try every kind of bad input a user can give and record what nasframe answers.

Each case runs the real ``nasframe search`` command in a fresh process (or, for library-only inputs, the library
call) and records the exit status, the error line, whether a traceback leaked, and whether any training
happened before the error (a checkpoint in the run directory). Writes ``results/bad_inputs.{md,json}``.

    python scripts/bad_inputs.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

TINY = ["space.channels=4", "space.cells_per_stage=1", "trainer.epochs=1", "trainer.batch_size=128",
        "selector=random", "selector.num_samples=2", "evaluator.bn_recalibration_batches=1", "export.torch_export=false"]
DARTS = ["space=darts", "space.channels=4", "space.layers=3"]


def error_line(stderr: str) -> str:
    """The line a user reads: nasframe's own ``nasframe <command>: error: ...``, else Hydra's first line."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.startswith("[")]
    ours = [ln for ln in lines if ln.startswith("nasframe ")]
    return ours[-1] if ours else " ".join(lines[:2])  # Hydra: its headline and the reason below it


def cli(*args: str) -> Callable[[Path], dict]:
    def run(work: Path) -> dict:
        exe = shutil.which("nasframe")
        cmd = [*([exe] if exe else [sys.executable, "-m", "nasframe.cli"]), "search", *args, f"hydra.run.dir={work / 'run'}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work, timeout=600)
        return {"exit": proc.returncode, "message": error_line(proc.stderr), "traceback": "Traceback" in proc.stderr,
                "trained": (work / "run" / "checkpoint.pt").exists()}
    return run


def cli_env(env: dict[str, str], *args: str) -> Callable[[Path], dict]:
    """A CLI case with extra environment variables (as torchrun would set them)."""
    def run(work: Path) -> dict:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            return cli(*args)(work)
        finally:
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return run


def library(call: Callable[[Path], object]) -> Callable[[Path], dict]:
    def run(work: Path) -> dict:
        from nasframe.errors import NasframeError

        try:
            call(work)
        except NasframeError as exc:
            return {"exit": "NasframeError", "message": f"{type(exc).__name__}: {exc}", "traceback": False, "trained": False}
        return {"exit": 0, "message": "accepted", "traceback": False, "trained": False}
    return run


def good_checkpoint(work: Path) -> Path:
    """A real checkpoint of a tiny NB201 run, made once per case that needs one."""
    cli(*TINY)(work)
    return work / "run" / "checkpoint.pt"


def resuming(*args: str, edit: Callable[[dict], None] | None = None) -> Callable[[Path], dict]:
    """Resume, with ``args``, from a real checkpoint of a tiny NB201 run (optionally edited first)."""
    def run(work: Path) -> dict:
        from nasframe.training.checkpoint import load_checkpoint, save_atomic

        path = good_checkpoint(work)
        if edit is not None:
            state = load_checkpoint(path)
            edit(state)
            path = save_atomic(state, work / "edited.pt")
        (work / "second").mkdir()
        return cli(*TINY, *args, f"resume={path}")(work / "second")
    return run


def restricted_space_member(work: Path) -> None:
    from nasframe.core.space import DataSpec
    from search_spaces.nb201 import NB201Space

    space = NB201Space(DataSpec()).restrict({"edge_1_0": ["nor_conv_3x3"]})
    space.parse("|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|")


def corrupt_file(work: Path) -> None:
    from nasframe.training.checkpoint import load_checkpoint

    path = work / "corrupt.pt"
    path.write_bytes(b"PK\x03\x04 not really a zip archive" * 10)
    load_checkpoint(path)


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # would run a shell command if unpickled
        return (os.system, (f"touch {self.marker}",))


def pickled_payload(work: Path) -> None:
    from nasframe.training.checkpoint import load_checkpoint

    path = work / "payload.pt"
    torch.save({"format": "nasframe-checkpoint", "model": {}, "extra": Payload(work / "payload_ran")}, path)
    try:
        load_checkpoint(path)
    finally:
        if (work / "payload_ran").exists():
            raise SystemExit("SECURITY: the payload ran")


def export_payload(work: Path) -> None:
    from nasframe.core.space import DataSpec
    from nasframe.export import extract, load_export, save_export
    from search_spaces.nb201 import NB201Space

    space = NB201Space(DataSpec(), channels=4, cells_per_stage=1)
    arch = space.parse("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|")
    save_export(work, space, arch, extract(space, space.build_supernet(), arch), torch_export=False)
    torch.save({"stem.0.weight": Payload(work / "payload_ran")}, work / "subnet_state_dict.pt")
    try:
        load_export(work)
    finally:
        if (work / "payload_ran").exists():
            raise SystemExit("SECURITY: the payload ran")


def latency_table_of_another_device(work: Path) -> None:
    import numpy as np

    from nasframe.core.space import DataSpec
    from nasframe.hardware.device import describe_device
    from nasframe.hardware.predictor import LatencyPredictor, PredictorKey, load_predictor
    from search_spaces.nb201 import NB201Space

    space = NB201Space(DataSpec())
    table_key = PredictorKey("NVIDIA H100 80GB HBM3", 256, torch.__version__, space.describe())
    path = LatencyPredictor(space.choices, np.zeros(30), 1.0, table_key).save(work / "h100.json")
    load_predictor(path, expected=PredictorKey(describe_device("cpu"), 256, torch.__version__, space.describe()))


def gather_missing(work: Path) -> None:
    from nasframe.gather import gather

    gather(work / "no_such_sweep")


def empty_data_dir(work: Path) -> dict:
    (work / "empty").mkdir()
    return cli(*TINY, "dataset=cifar10", f"dataset.root={work / 'empty'}")(work)


CASES: list[tuple[str, str, Callable[[Path], dict]]] = [
    ("names", "unknown space (config group)", cli("space=nb999")),
    ("names", "unknown space (name)", cli("space.name=nb999")),
    ("names", "unknown sampler", cli("sampler.name=spos2")),
    ("names", "unknown selector", cli("selector=genetic")),
    ("names", "unknown dataset", cli("dataset.name=imagenet")),
    ("config", "unknown trainer key", cli("trainer.epoch=3")),
    ("config", "unknown space key", cli("+space.chanels=8")),
    ("config", "wrong type (int)", cli("trainer.epochs=two")),
    ("config", "wrong type (space setting)", cli("space.channels=many")),
    ("config", "out of range", cli("trainer.lr=-1")),
    ("config", "selector needs another sampler", cli("selector=magnitude")),
    ("config", "sampler incompatible with the space", cli(*DARTS, "sampler=pada")),
    ("config", "device not present", cli("device=cuda:3" if not torch.cuda.is_available() else "device=tpu")),
    ("arch", "NB201: unknown op", cli("arch='|nor_conv_3x3~0|+|bogus~0|none~1|+|none~0|none~1|none~2|'")),
    ("arch", "NB201: wrong node count", cli("arch='|nor_conv_3x3~0|'")),
    ("arch", "NB201: wrong input index", cli("arch='|nor_conv_3x3~1|+|none~0|none~1|+|none~0|none~1|none~2|'")),
    ("arch", "DARTS: truncated genotype", cli(*DARTS, "arch=\"Genotype(normal=[('sep_conv_3x3', 0)])\"")),
    ("arch", "DARTS: input used twice", cli(*DARTS, "arch=\"Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 0), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=range(2, 6))\"")),
    ("arch", "JSON arch with an unknown choice", cli("arch='{\"edge_9_9\": \"none\"}'")),
    ("arch", "arch outside a restricted sub-space", library(restricted_space_member)),
    ("data", "missing data root", cli(*TINY, "dataset=cifar10", "dataset.root=/nonexistent/cifar")),
    ("data", "empty data directory", empty_data_dir),
    ("data", "graph space with image data", cli("space=gnn_bench")),
    ("data", "image space with a graph data set", cli("dataset=planetoid")),
    ("data", "missing graph data root", cli("space=gnn_bench", "dataset=planetoid", "dataset.root=/nonexistent/planetoid")),
    ("checkpoint", "missing checkpoint", cli("resume=/nonexistent/run")),
    ("checkpoint", "checkpoint of another space", resuming("space.channels=8")),
    ("checkpoint", "checkpoint of another format version", resuming(edit=lambda s: s.update(format_version=999))),
    ("checkpoint", "checkpoint of another schedule", resuming("trainer.epochs=5")),
    ("checkpoint", "corrupt checkpoint file", library(corrupt_file)),
    ("checkpoint", "checkpoint carrying a pickled code payload", library(pickled_payload)),
    ("export", "exported state dict carrying a pickled code payload", library(export_payload)),
    ("latency", "latency table of another device", library(latency_table_of_another_device)),
    ("sweep", "gather a directory that does not exist", library(gather_missing)),
    ("sweep", "global batch not divisible by the number of ranks", cli_env({"WORLD_SIZE": "3", "RANK": "0"}, *TINY)),
    ("training", "non-finite loss", cli(*TINY, "trainer.lr=1e30", "trainer.grad_clip=0")),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args()
    rows = []
    for group, label, case in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            outcome = case(Path(tmp))
        rows.append({"group": group, "input": label, **outcome})
        print(json.dumps(rows[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"command": "python " + " ".join(sys.argv), "python": platform.python_version(), "torch": torch.__version__}
    (args.out / "bad_inputs.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    from nasframe.markdown import markdown_table

    table = []
    for r in rows:
        message = r["message"].replace("|", "\\|")  # escaped before shortening, so that the cut counts the escapes
        if len(message) > 220:
            message = message[:217] + "..."
        table.append([r["group"], r["input"], r["exit"], message, "yes" if r["traceback"] else "no",
                      "yes" if r["trained"] else "no"])
    lines = [
        "# Bad input: what nasframe answers",
        "",
        f"- command: `{meta['command']}`; python {meta['python']}, torch {meta['torch']}",
        "- each CLI case is a fresh `nasframe search` process (exit 1 = a one-line error, no traceback); library cases "
        "call nasframe directly and record the NasframeError raised",
        "",
        markdown_table(["kind", "input", "exit", "message", "traceback shown", "trained before failing"], table),
    ]
    (args.out / "bad_inputs.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

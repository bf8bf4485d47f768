"""Time the README's default workflow on this machine: ``nasframe search`` (the embedded default), then
``nasframe train run=<that run>`` (the evaluation phase on the found arch), both as a newcomer types them.

    python scripts/bench_search_then_train.py            # writes results/search_then_train_cpu.{md,json}

Each command runs as its own ``nasframe`` process (the installed entry point, ``hydra.run.dir`` set to a temporary
folder so nothing lands in ``runs/``); the wall time of each process is measured from its start to its exit, so
it includes imports, data loading, the report and the export. The train run's outcome (accuracies, epochs) is read
from its ``outcome.json``. The bar of the evaluation-phase issue: the train step finishes in <= 2 min on 2 cores.
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
import time
from pathlib import Path
from typing import Any

import torch

from nasframe.markdown import markdown_table

NAME = "search_then_train_cpu"
TRAIN_BAR_SECONDS = 120.0


def nasframe_command() -> list[str]:
    """The installed ``nasframe`` entry point, else ``python -m nasframe.cli`` with this interpreter."""
    found = shutil.which("nasframe")
    return [found] if found else [sys.executable, "-m", "nasframe.cli"]


def timed(args: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, done


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--search-args", nargs="*", default=[], help="extra search overrides (toy runs)")
    parser.add_argument("--train-args", nargs="*", default=[], help="extra train overrides (toy runs)")
    args = parser.parse_args(argv)
    nasframe = nasframe_command()
    with tempfile.TemporaryDirectory(prefix="nasframe-bench-") as work:
        search_dir, train_dir = Path(work) / "search", Path(work) / "train"
        search_cmd = [*nasframe, "search", f"hydra.run.dir={search_dir}", *args.search_args]
        search_seconds, _ = timed(search_cmd)
        train_cmd = [*nasframe, "train", f"run={search_dir}", f"hydra.run.dir={train_dir}", *args.train_args]
        train_seconds, _ = timed(train_cmd)
        outcome = json.loads((train_dir / "outcome.json").read_text())
    payload = {
        "commands": ["nasframe search", "nasframe train run=<the search run>"],
        "extra_search_args": args.search_args, "extra_train_args": args.train_args,
        "script": "python scripts/bench_search_then_train.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "python": platform.python_version(),
        "torch": torch.__version__, "search_seconds": search_seconds, "train_seconds": train_seconds,
        "train_bar_seconds": TRAIN_BAR_SECONDS, "train_within_bar": train_seconds <= TRAIN_BAR_SECONDS,
        "train_outcome": {k: outcome[k] for k in ("arch", "epochs", "valid_accuracy", "test_accuracy", "params")},
        "train_seconds_inside": outcome["seconds"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{NAME}.json").write_text(json.dumps(payload, indent=1) + "\n")
    (args.out / f"{NAME}.md").write_text(render(payload))
    print(f"search {search_seconds:.0f} s, train {train_seconds:.0f} s (bar {TRAIN_BAR_SECONDS:.0f} s)")
    return payload


def render(p: dict[str, Any]) -> str:
    o = p["train_outcome"]
    return "\n".join([
        "# The README's default search, then `nasframe train run=` on its run (CPU)",
        "",
        f"- script: `{p['script']}`; {p['machine']}, python {p['python']}, torch {p['torch']}",
        "- wall time of each `nasframe` process, start to exit (imports, data, training, report, export)",
        "",
        markdown_table(["command", "wall time", "result"], [
            ["`nasframe search`" + (f" {' '.join(p['extra_search_args'])}" if p["extra_search_args"] else ""),
             f"{p['search_seconds']:.0f} s", "a run directory with export/arch.json"],
            ["`nasframe train run=<that run>`" + (f" {' '.join(p['extra_train_args'])}" if p["extra_train_args"] else ""),
             f"{p['train_seconds']:.0f} s (bar {p['train_bar_seconds']:.0f} s: "
             f"{'met' if p['train_within_bar'] else 'missed'})",
             f"`{o['arch']}`: {o['epochs']} epochs, valid {o['valid_accuracy']:.2f} %, test {o['test_accuracy']:.2f} %, "
             f"{o['params']:,} parameters"],
        ]),
        "",
    ])


if __name__ == "__main__":
    main()

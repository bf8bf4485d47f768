"""``nasframe gather DIR``: one report from many search runs (a Hydra multirun sweep, or any folder of runs).

Every run directory under ``DIR`` that holds an ``outcome.json`` (written by a finished ``nasframe search``) is a
row: its Hydra overrides (``.hydra/overrides.yaml``), the selected arch and its accuracies, and the time it took.
Runs that started (a checkpoint or Hydra's ``.hydra`` record) but have no outcome (stopped early, killed,
cancelled, still running) are listed as unfinished by name (their overrides) with how far they got, so a sweep
never silently loses a job; rerunning the sweep with ``resume=auto`` continues exactly those. A directory inside
another run's directory (the parts of a few-shot ``sampler.budget=per_part`` run) belongs to that run. Rows that
differ only in ``seed`` are summarised as mean ± standard deviation. With a tabular benchmark for the runs' space (``--benchmark nb201``,
``--benchmark nasbench_graph [--benchmark-dataset cora]``), each selected arch's true accuracy is added.
Writes ``gather.md`` and ``gather.json`` into ``DIR`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from nasframe.errors import ConfigError, DataError
from nasframe.markdown import markdown_table
from nasframe.selection.baselines import counted_label


def find_runs(root: Path) -> tuple[list[Path], list[Path]]:
    """Finished run directories (with ``outcome.json``) and unfinished ones (a checkpoint or a Hydra record, no
    outcome); directories nested in another run's directory are part of that run, not runs of their own."""
    if not root.is_dir():
        raise DataError(f"gather: no such directory: {root}")
    marks = [*root.rglob("outcome.json"), *root.rglob("checkpoint.pt"), *root.rglob(".hydra/overrides.yaml")]
    runs = {p.parent.parent if p.parent.name == ".hydra" else p.parent for p in marks}
    runs = {run for run in runs if not any(parent in runs for parent in run.parents)}
    finished = sorted(run for run in runs if (run / "outcome.json").is_file())
    unfinished = sorted(run for run in runs if not (run / "outcome.json").is_file())
    return finished, unfinished


def progress_of(run: Path) -> str:
    """How far an unfinished run got: the epoch of its checkpoint, or that it wrote none."""
    from nasframe.errors import CheckpointError
    from nasframe.training.checkpoint import CHECKPOINT_NAME, load_checkpoint

    if not (run / CHECKPOINT_NAME).is_file():
        return "no checkpoint (it stopped before its first one, or is still starting)"
    try:
        state = load_checkpoint(run, mmap=True)  # the epoch only
    except CheckpointError as exc:
        return f"unreadable checkpoint ({exc})"
    total = state.get("schedule", {}).get("epochs")
    return f"checkpoint at epoch {state['epoch']}" + (f" of {total}" if total else "")


def describe_unfinished(run: Path, root: Path) -> dict[str, Any]:
    """An unfinished run by name: its directory, its overrides and how far it got."""
    return {"run": str(run.relative_to(root)) or ".", "overrides": overrides_of(run), "progress": progress_of(run)}


def unfinished_line(unfinished: dict[str, Any]) -> str:
    """One line for an unfinished run of :func:`describe_unfinished`: directory (overrides): progress."""
    return f"{unfinished['run']} ({' '.join(unfinished['overrides']) or 'no overrides recorded'}): {unfinished['progress']}"


def overrides_of(run: Path) -> list[str]:
    """The command-line overrides Hydra recorded for the run (empty when it was not a Hydra run)."""
    path = run / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    from omegaconf import OmegaConf

    return [str(o) for o in OmegaConf.load(path)]


def load_row(run: Path, root: Path) -> dict[str, Any]:
    try:
        outcome = json.loads((run / "outcome.json").read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"gather: {run / 'outcome.json'} is not valid JSON ({exc})") from None
    row = {"run": str(run.relative_to(root)) or ".", "overrides": overrides_of(run), **outcome}
    row["method"] = group_key(row)  # the machine-readable columns of every results/ row: method, seed, found_true
    return row


def true_accuracies(rows: list[dict[str, Any]], benchmark_name: str, metric: str | None,
                    dataset: str | None = None) -> str:
    """Add ``true_accuracy`` from a registered tabular benchmark (``nb201``, ``nasbench_graph``; ``dataset`` picks
    the latter's data set, default its config's) to rows of its space; returns the metric used (default: the
    benchmark's first ``*_test`` metric)."""
    from nasframe.benchmarks.base import BENCHMARKS, build_benchmark

    if benchmark_name not in BENCHMARKS:
        raise ConfigError(f"gather: unknown benchmark '{benchmark_name}'; known: {', '.join(BENCHMARKS.names())}")
    node: dict[str, Any] = {"name": benchmark_name}
    if dataset:
        node["dataset"] = dataset
    benchmark = build_benchmark(node)
    tests = [m for m in benchmark.metrics if m.endswith("_test")]
    metric = benchmark.check_metric(metric or (tests[0] if tests else benchmark.metrics[0]))
    for row in rows:
        if row["space"] == benchmark.space_name:
            row["true_accuracy"] = row["found_true"] = benchmark.metric(row["arch"], metric)
    return metric


def group_key(row: dict[str, Any]) -> str:
    """The row's settings without its seed: runs with the same key are repeats."""
    return " ".join(o for o in row["overrides"] if not o.lstrip("+~").startswith("seed=")) or "(defaults)"


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[group_key(row)].append(row)
    summary = []
    for key, members in groups.items():
        entry: dict[str, Any] = {"settings": key, "runs": len(members)}
        for field in ("valid_accuracy", "test_accuracy", "true_accuracy"):
            values = [m[field] for m in members if m.get(field) is not None]
            if values:
                entry[field] = (statistics.mean(values), statistics.pstdev(values))
        entry["baselines"] = baseline_means(members)
        summary.append(entry)
    return summary


def baseline_means(members: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """Each baseline row's true accuracy (the search report's largest arch, random search ...) as mean and
    standard deviation over ``members``, where their outcomes hold one. Rows are grouped by their ``kind``. Random
    search runs with its seed's pick's number of evaluations, which differs by seed when a selector skips repeats:
    those rows are one baseline, labelled with the range of their ``evaluations`` ("random search, 193-200
    evaluations")."""
    values: dict[str, list[float]] = defaultdict(list)
    labels: dict[str, str] = {}
    counts: dict[str, set[int]] = defaultdict(set)
    for member in members:
        for row in member.get("baselines", {}).get("rows", []):
            if row.get("true_accuracy") is None:
                continue
            kind, evaluations = baseline_identity(row)
            values[kind].append(row["true_accuracy"])
            labels.setdefault(kind, row["label"])
            if evaluations is not None:
                counts[kind].add(evaluations)
    return {(_counted(kind, counts[kind]) if counts[kind] else labels[kind]): (statistics.mean(v), statistics.pstdev(v))
            for kind, v in values.items()}


def baseline_identity(row: dict[str, Any]) -> tuple[str, int | None]:
    """A report row's baseline kind and number of evaluations (:class:`~nasframe.selection.baselines.BaselineRow`).
    Outcomes written before rows carried them hold only the label, which then names the kind, and a count in it
    ("random search, 200 evaluations") is the evaluations."""
    if "kind" in row:
        return row["kind"], row.get("evaluations")
    counted = _LEGACY_COUNTED_LABEL.fullmatch(row["label"])
    return (counted.group(1), int(counted.group(2))) if counted else (row["label"], None)


_LEGACY_COUNTED_LABEL = re.compile(r"(.+), (\d+) evaluations")


def _counted(kind: str, counts: set[int]) -> str:
    low, high = min(counts), max(counts)
    return counted_label(kind, low if low == high else f"{low}-{high}")


def _percent(value: Any) -> str | None:
    return None if value is None else f"{value:.2f}"


def render(root: Path, rows: list[dict[str, Any]], unfinished: list[dict[str, Any]], summary: list[dict[str, Any]],
           metric: str | None) -> str:
    true_col = metric is not None
    lines = [f"# Gathered runs: {root}", "", f"{len(rows)} finished, {len(unfinished)} unfinished.", ""]
    header = ["run", "overrides", "arch", "valid acc. (supernet)", "test acc. (exported)"]
    header += [f"true {metric}"] if true_col else []
    header += ["params", "train s", "total s"]
    table = []
    for r in rows:
        cells = [r["run"], " ".join(r["overrides"]) or "-", f"`{r['arch']}`", _percent(r.get("valid_accuracy")),
                 _percent(r.get("test_accuracy"))]
        cells += [f"{r['true_accuracy']:.2f}" if "true_accuracy" in r else None] if true_col else []
        cells += [f"{r['params']:,}", f"{r['seconds']['train']:.0f}", f"{r['seconds']['total']:.0f}"]
        table.append(cells)
    lines.append(markdown_table(header, table))
    fields = ("valid_accuracy", "test_accuracy") + (("true_accuracy",) if true_col else ())
    lines += ["", "## Over seeds", "", markdown_table(
        ["settings", "runs", "valid acc.", "test acc."] + (["true acc."] if true_col else []),
        [[s["settings"], s["runs"]] + [f"{s[f][0]:.2f} ± {s[f][1]:.2f}" if f in s else None for f in fields]
         for s in summary],
        "l" + "r" * (len(fields) + 1))]
    baselines = [[s["settings"], label, f"{mean:.2f} ± {std:.2f}"]
                 for s in summary for label, (mean, std) in s["baselines"].items()]
    if baselines:
        lines += ["", "## Baselines over seeds (true accuracy, from each run's report)", "",
                  markdown_table(["settings", "baseline", "true acc."], baselines, "llr")]
    if unfinished:
        lines += ["", "## Unfinished (no outcome: rerun the sweep with `resume=auto`, or one run with "
                  "`nasframe search resume=DIR`)", ""]
        lines += [f"- {unfinished_line(u)}" for u in unfinished]
    return "\n".join(lines) + "\n"


def gather(root: Path, out: Path | None = None, benchmark: str | None = None, metric: str | None = None,
           benchmark_dataset: str | None = None) -> Path:
    """Gather the runs under ``root``; returns the path of the Markdown report."""
    finished, unfinished = find_runs(root)
    if not finished and not unfinished:
        raise DataError(f"gather: no search runs under {root} (a run directory holds outcome.json, checkpoint.pt or .hydra/)")
    rows = [load_row(run, root) for run in finished]
    unfinished = [describe_unfinished(run, root) for run in unfinished]
    used_metric = true_accuracies(rows, benchmark, metric, benchmark_dataset) if benchmark else None
    summary = summarise(rows)
    out = out or root
    out.mkdir(parents=True, exist_ok=True)
    payload = {"root": str(root), "rows": rows, "unfinished": unfinished,
               "summary": summary, "true_metric": used_metric}
    (out / "gather.json").write_text(json.dumps(payload, indent=1) + "\n")
    report = out / "gather.md"
    report.write_text(render(root, rows, unfinished, summary, used_metric))
    return report


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="nasframe gather", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="a multirun directory (or any folder of search runs)")
    parser.add_argument("--out", type=Path, default=None, help="where to write gather.md/.json (default: root)")
    parser.add_argument("--benchmark", default=None,
                        help="add true accuracies from this tabular benchmark (nb201, nasbench_graph)")
    parser.add_argument("--benchmark-dataset", default=None, help="nasbench_graph's data set (default cora)")
    parser.add_argument("--metric", default=None, help="the benchmark metric (default: its first *_test metric)")
    args = parser.parse_args(argv)
    report = gather(args.root, args.out, args.benchmark, args.metric, args.benchmark_dataset)
    print(report.read_text())
    print(f"written to {report} and {report.with_suffix('.json')}")

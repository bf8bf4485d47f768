"""The ``nasframe`` command line: ``nasframe <command> [hydra overrides]``.

Commands:
  search   train a supernet, select an arch, export it (configs/search.yaml)
  rank     score archs with a trained supernet against a tabular benchmark (configs/rank.yaml)
  tabular  compare selectors on a tabular benchmark, no supernet (configs/tabular.yaml)
  train    train a found arch standalone, from scratch or fine-tuned, with a protocol preset (configs/train.yaml)
  gather   one report from many search runs, e.g. a multirun sweep (plain arguments, not Hydra)
  latency  build a latency table on this device and report its accuracy on held-out archs (plain arguments)
  merge    merge few-shot sub-supernets trained as separate jobs into one checkpoint (plain arguments)

Examples::

    nasframe search                                  # NB201 supernet on digits, evolutionary selection
    nasframe search trainer.epochs=50 selector=random
    nasframe search "arch='|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|'"
    (Hydra's override grammar needs the inner quotes around a NAS-Bench-201 string: it contains ~ and |)
    nasframe search --cfg job                        # print the composed config and stop
    nasframe rank run=runs/2026-11-24/10-00-00 ranking.num_archs=0   # rank all archs of the space
    nasframe search -m hydra/launcher=joblib seed=0,1 sampler=uniform,pada   # 4 runs in parallel
    nasframe gather runs/multirun/2026-12-02/10-00-00 --benchmark nb201
    nasframe train run=runs/2026-11-24/10-00-00 +protocol=nb201 trainer.epochs=20   # train the found arch
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from nasframe.config import register_configs
from nasframe.errors import NasframeError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
log = logging.getLogger("nasframe")


def compose_config(command: str, overrides: Sequence[str] = (), resume: Path | None = None) -> DictConfig:
    """The config ``nasframe <command> <overrides>`` would run with, for scripts that drive the library; with
    ``resume`` (a run directory), continue from its checkpoint when it has one."""
    from hydra import compose, initialize_config_dir

    from nasframe.training.checkpoint import CHECKPOINT_NAME

    register_configs()
    overrides = list(overrides)
    if resume is not None and (Path(resume) / CHECKPOINT_NAME).is_file():
        overrides.append(f"resume={resume}")
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose(command, overrides=overrides)


def finished_earlier(cfg: DictConfig, run_dir: Path) -> bool:
    """With ``resume=auto``, a run directory that already holds its outcome is not run again (a rerun sweep
    continues only the jobs that did not finish); says so and returns True."""
    from nasframe.training.checkpoint import AUTO_RESUME

    outcome = run_dir / "outcome.json"
    if cfg.resume != AUTO_RESUME or not outcome.is_file():
        return False
    print(f"\nfinished earlier (resume=auto): nothing to do; its report is {run_dir / 'report.md'}")
    return True


def _search(cfg: DictConfig) -> None:
    from nasframe.search import run_search
    from nasframe.training.distributed import DistributedContext

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if finished_earlier(cfg, run_dir):
        return
    outcome = run_search(cfg, run_dir)
    if outcome is None and not DistributedContext.from_env().is_main:
        return  # a data-parallel helper rank: rank 0 reports
    if outcome is None:
        print(f"\nstopped before selection (trainer.stop_after_epoch or sampler.train_only); checkpoint in {run_dir}")
        return
    print(f"\nselected  {outcome.native}")
    if outcome.trained:
        print(f"accuracy  valid {outcome.valid_accuracy:.2f}% (supernet weights), test {outcome.test_accuracy:.2f}% (exported subnet)")
    else:
        print(f"score     {outcome.score:.6g} ({outcome.score_meaning}; the arch has no trained weights)")
    for row in outcome.baselines[1:]:
        accuracies = "".join(f", {what} {value:.2f}%" for what, value in (("test", row.test_accuracy),
                                                                           ("true", row.true_accuracy)) if value is not None)
        print(f"baseline  {row.label}: score {row.score:.6g}{accuracies}")
    print(f"run dir   {outcome.run_dir}")
    for name, path in outcome.files.items():
        print(f"  {name:<12} {path}")


def _rank(cfg: DictConfig) -> None:
    from nasframe.evaluation.ranking import ScoringStopped
    from nasframe.rank import run_rank

    try:
        report, out = run_rank(cfg)
    except ScoringStopped as stopped:
        print(f"\nranking.stop_after_s={cfg.ranking.stop_after_s} reached: {stopped}")
        return
    if report.protocol.get("note"):
        print(f"\nnote: {report.protocol['note']}")
    baselines = report.extra.get("baselines", {})
    names = ["score", *baselines]
    print(f"\n{'metric (same archs)':<32} " + " ".join(f"{n:>17}" for n in names))
    for name, value in report.metrics.items():
        row = [value, *(b.get(name, float("nan")) for b in baselines.values())]
        print(f"{name:<32} " + " ".join(f"{v:>17.4f}" for v in row))
    print(f"{'scoring throughput (archs/s)':<32} {report.archs_per_second:.2f}")
    print(f"written to {out}/ranking.json and ranking.png")


def _tabular(cfg: DictConfig) -> None:
    from nasframe.benchmarks.tabular_search import run_tabular

    out = Path(cfg.out) if cfg.out else Path(HydraConfig.get().runtime.output_dir)
    print(run_tabular(cfg, out))
    print(f"written to {out}/tabular.json, tabular.md and tabular.png")


def _train(cfg: DictConfig) -> None:
    from nasframe.evaluation_phase.run import run_train

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if finished_earlier(cfg, run_dir):
        return
    outcome = run_train(cfg, run_dir)
    if outcome is None:
        from nasframe.training.distributed import DistributedContext

        if DistributedContext.from_env().is_main:
            print(f"\nstopped before the last epoch (trainer.stop_after_epoch); continue with resume={run_dir}")
        return
    print(f"\ntrained   {outcome.native}")
    print(f"accuracy  valid {outcome.valid_accuracy:.2f}%, test {outcome.test_accuracy:.2f}% (epoch {outcome.epoch})")
    print(f"size      {outcome.params:,} parameters" + (f", {outcome.macs:,} MACs" if outcome.macs is not None else ""))
    print(f"run dir   {outcome.run_dir}")
    for name, path in outcome.files.items():
        print(f"  {name:<12} {path}")


COMMANDS: dict[str, tuple[str, Callable[[DictConfig], None], str]] = {
    "search": ("search", _search, "train a supernet, select an arch, export it"),
    "rank": ("rank", _rank, "score archs with a trained supernet against a tabular benchmark"),
    "tabular": ("tabular", _tabular, "compare selectors on a tabular benchmark (no supernet)"),
    "train": ("train", _train, "train a found arch standalone (arch= or run=; init=scratch|inherited; +protocol=...)"),
}


def _gather_main() -> Callable[[list[str]], None]:
    from nasframe.gather import main

    return main


def _merge_main() -> Callable[[list[str]], None]:
    from nasframe.sampling.fewshot_jobs import main

    return main


def _latency_main() -> Callable[[list[str]], None]:
    from nasframe.hardware.cli import main

    return main


#: commands with plain arguments (no Hydra config): name -> (loader of their main(argv), help)
PLAIN_COMMANDS: dict[str, tuple[Callable[[], Callable[[list[str]], None]], str]] = {
    "gather": (_gather_main, "one report from many search runs (a sweep): nasframe gather DIR [--benchmark nb201|nasbench_graph]"),
    "latency": (_latency_main, "latency table on this device and its accuracy on held-out archs: "
                               "nasframe latency [--device cuda] [--batch-size N] [--model additive|interaction|transfer]"),
    "merge": (_merge_main, "merge few-shot sub-supernet jobs (sampler.train_only=k): nasframe merge RUNS --out DIR"),
}


def _usage() -> str:
    lines = ["usage: nasframe <command> [overrides...]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in PLAIN_COMMANDS.items()]
    lines += ["", "Run 'nasframe <command> --help' for the command's config groups and options."]
    return "\n".join(lines)


def config_problem(config_name: str, args: Sequence[str]) -> str | None:
    """Hydra's composition error for these arguments, as one line: a misspelt key (Hydra checks each group option
    against its settings dataclass, see :mod:`nasframe.config`), a value of the wrong type, an unknown group option.
    None when the config composes, and for arguments Hydra reports on itself: a malformed override, ``--help``,
    another config directory or name, a sweep (``-m seed=0,1``), or ``HYDRA_FULL_ERROR=1`` (Hydra's traceback)."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        return None
    try:
        parsed = get_args_parser().parse_args(list(args))
        overrides = OverridesParser.create().parse_overrides(parsed.overrides)
    except (Exception, SystemExit):
        return None
    if (parsed.help or parsed.hydra_help or parsed.info or parsed.shell_completion or parsed.experimental_rerun
            or parsed.config_path or parsed.config_dir or parsed.config_name
            or any(o.is_sweep_override() for o in overrides)):  # each job of a sweep composes its own config
        return None
    try:
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            compose(config_name, overrides=[o.input_line for o in overrides], return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as exc:
        return _one_line(exc)
    return None


def _one_line(exc: BaseException) -> str:
    """A Hydra composition error and its cause on one line, without the config search path and the node details;
    a key missing from a typed node lists the node's keys instead of Hydra's hint to append it with ``+``."""
    import dataclasses

    node = getattr(exc.__cause__, "object_type", None)
    keys = [f.name for f in dataclasses.fields(node)] if dataclasses.is_dataclass(node) else None
    unknown_key = keys is not None and " not in " in str(exc.__cause__)
    parts: list[str] = []
    for error in (exc, exc.__cause__):
        for line in str(error or "").split("Config search path:")[0].splitlines():
            item = line.strip().rstrip(".")
            if not item or item.startswith(("full_key:", "object_type=", "reference_type=")):
                continue
            if unknown_key and item.startswith("To append to your config use"):
                continue
            if line.startswith("\t") and parts:  # one of the options Hydra lists for a group
                parts[-1] += (" " if parts[-1].endswith(":") else ", ") + item
            elif parts and parts[-1].endswith(":"):
                parts[-1] += " " + item
            else:
                parts.append(item)
    if unknown_key:
        parts.append(f"valid keys: {', '.join(keys) or 'none'}")
    return "; ".join(parts)


def output_dir(config_name: str, args: Sequence[str]) -> tuple[str, Path, bool] | None:
    """Where these arguments make Hydra write: (``hydra.run.dir`` or ``hydra.sweep.dir``, the path, whether it is
    a multirun); None when they run no job (``--help``, ``--cfg``) or do not compose (Hydra reports that itself)."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    try:
        parsed = get_args_parser().parse_args(list(args))
        if (parsed.help or parsed.hydra_help or parsed.cfg or parsed.info or parsed.shell_completion
                or parsed.experimental_rerun):
            return None
        overrides = [o.input_line for o in OverridesParser.create().parse_overrides(parsed.overrides)
                     if not o.is_sweep_override()]  # a sweep's values do not change where it writes
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
        key = "hydra.sweep.dir" if parsed.multirun else "hydra.run.dir"
        return key, Path(str(OmegaConf.select(cfg, key))), bool(parsed.multirun)
    except (Exception, SystemExit):  # not composable: Hydra reports the problem itself, with its own message
        return None


def output_dir_problem(config_name: str, args: Sequence[str]) -> str | None:
    """Why Hydra could not create the run's output directory (``hydra.run.dir``, or ``hydra.sweep.dir`` with
    ``-m``): a path in it is a file, or its nearest existing folder is not writable; None when it can (or when the
    arguments do not run a job: ``--help``, ``--cfg``; or do not compose, which Hydra then reports itself)."""
    where = output_dir(config_name, args)
    if where is None:
        return None
    key, target, _ = where
    existing = target
    while not existing.exists() and not existing.is_symlink() and existing.parent != existing:
        existing = existing.parent
    if existing.is_symlink() and not existing.exists():
        return f"{key}={target}: {existing} is a broken link"
    if not existing.is_dir():
        return f"{key}={target}: {existing} is a file, not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{key}={target}: {existing} is not writable"
    return None


def unfinished_sweep_jobs(sweep_dir: Path) -> list[str]:
    """One line per job of a sweep that has no outcome (killed, cancelled, failed): its directory, overrides and
    how far it got, as ``nasframe gather`` lists them."""
    from nasframe.gather import describe_unfinished, find_runs, unfinished_line

    if not sweep_dir.is_dir():
        return []
    _, unfinished = find_runs(sweep_dir)
    return [unfinished_line(describe_unfinished(run, sweep_dir)) for run in unfinished]


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return
    command = argv[0]
    if command in PLAIN_COMMANDS:
        try:
            PLAIN_COMMANDS[command][0]()(argv[1:])
        except NasframeError as exc:
            sys.exit(f"nasframe {command}: error: {exc}")
        return
    if command not in COMMANDS:
        sys.exit(f"nasframe: unknown command '{command}'; commands: {', '.join([*COMMANDS, *PLAIN_COMMANDS])}")
    if not CONFIG_DIR.is_dir():
        sys.exit(f"nasframe: config directory {CONFIG_DIR} not found; install from a checkout with pip install -e .")
    config_name, task, _ = COMMANDS[command]
    register_configs()
    problem = config_problem(config_name, argv[1:])
    if problem:
        sys.exit(f"nasframe {command}: error: {problem}")
    problem = output_dir_problem(config_name, argv[1:])
    if problem:
        sys.exit(f"nasframe {command}: error: {problem}")

    def task_function(cfg: DictConfig) -> None:
        try:
            task(cfg)
        except NasframeError as exc:
            log.error("%s", exc)
            sys.exit(f"nasframe {command}: error: {exc}")

    sys.argv = [f"nasframe-{command}", *argv[1:]]
    try:
        hydra.main(config_path=str(CONFIG_DIR), config_name=config_name, version_base="1.3")(task_function)()
    except SystemExit as exc:
        where = output_dir(config_name, argv[1:]) if exc.code not in (0, None) else None
        if where is not None and where[2]:  # a sweep failed: name every job that did not finish
            jobs = unfinished_sweep_jobs(where[1])
            if jobs:
                print(f"nasframe {command}: {len(jobs)} job(s) of the sweep in {where[1]} did not finish:\n  "
                      + "\n  ".join(jobs) + "\nrerun the same command with resume=auto to continue only these "
                      "(finished jobs are skipped)", file=sys.stderr)
        raise


if __name__ == "__main__":
    main()

"""Zero-cost scoring in forked CPU worker processes (or in this one), recorded in order by the calling process.

The proxies of one arch run on one thread in a few hundred milliseconds, so a space of thousands of archs is scored
fastest by several single-threaded processes. Each worker builds its own evaluators once (with no cache file) and
computes the values of the archs it is handed; the calling process keeps them, and appends them to its evaluators'
cache files, in the order the archs were given. A stop (``stop_after_s``) therefore leaves a prefix of that order
scored, and the same call continues where it stopped. With one worker the archs are scored in the calling process
itself, on whatever device its evaluators use, with the same order and stop.

Workers are forked (POSIX only): they inherit the data and the ``make_evaluators`` callable instead of pickling them.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from typing import Any, Callable, Iterable, Iterator, Mapping

import torch

from nasframe.evaluation.zero_cost.evaluator import ZeroCostEvaluator

log = logging.getLogger(__name__)

#: the state a forked worker inherits (``make``) and builds once (``evaluators``)
_worker: dict[str, Any] = {}


def missing_jobs(evaluators: Mapping[str, ZeroCostEvaluator], archs: Iterable) -> list[tuple[str, list[str]]]:
    """Each arch (as its string) with the names of the evaluators that lack its values, in order; archs that every
    evaluator has already scored are left out."""
    if not evaluators:
        return []
    todo, space = [], next(iter(evaluators.values())).space
    for arch in archs:
        names = [name for name, ev in evaluators.items() if ev.key(arch) not in ev.values]
        if names:
            todo.append((space.format(arch), names))
    return todo


def _start_worker(threads: int) -> None:
    torch.set_num_threads(threads)
    _worker["evaluators"] = _worker["make"]()


def _score(job: tuple[str, list[str]], evaluators: Mapping[str, ZeroCostEvaluator] | None = None
           ) -> tuple[str, dict[str, tuple[dict[str, float], float]]]:
    """The named evaluators' values of one arch, and the seconds each took (default: a worker's evaluators)."""
    native, names = job
    evaluators = _worker["evaluators"] if evaluators is None else evaluators
    scored = {}
    for name in names:
        evaluator = evaluators[name]
        arch = evaluator.space.parse(native)
        values = evaluator.component_values(arch)
        scored[name] = (values, evaluator.seconds[evaluator.key(arch)])
    return native, scored


def score_in_workers(evaluators: Mapping[str, ZeroCostEvaluator], archs: Iterable,
                     make_evaluators: Callable[[], Mapping[str, ZeroCostEvaluator]], workers: int,
                     threads: int = 1, stop_after_s: float = 0.0, log_every: int = 0) -> int:
    """Score ``archs`` by every evaluator of ``evaluators`` that lacks them, in ``workers`` forked processes of
    ``threads`` torch threads each (``workers=1``: in this process, by ``evaluators`` themselves, with this
    process's threads); return how many archs were taken.

    ``make_evaluators()`` runs once in each worker and must build evaluators with the same names and settings as
    ``evaluators`` (no cache file: the calling process records; unused with one worker). An arch goes only to the
    evaluators that lack it, so adding a proxy to a scored space computes only the new proxy. After
    ``stop_after_s`` seconds (0: never) scoring stops; the archs taken so far are a prefix of ``archs``.
    """
    if workers < 1:
        raise ValueError("workers must be >= 1")
    todo = missing_jobs(evaluators, archs)
    if not todo:
        return 0
    if workers == 1:  # the evaluators compute and record (cache) the values themselves
        return _take((_score(job, evaluators) for job in todo), None, len(todo), stop_after_s, log_every)
    space = next(iter(evaluators.values())).space
    _worker["make"] = make_evaluators  # inherited by the forked workers
    try:
        with multiprocessing.get_context("fork").Pool(workers, initializer=_start_worker,
                                                      initargs=(threads,)) as pool:
            return _take(pool.imap(_score, todo), lambda native, scored: _record(evaluators, space, native, scored),
                         len(todo), stop_after_s, log_every)
    finally:
        _worker.pop("make", None)


def _record(evaluators: Mapping[str, ZeroCostEvaluator], space, native: str, scored: dict) -> None:
    arch = space.parse(native)
    for name, (values, seconds) in scored.items():
        evaluators[name].record(arch, values, seconds)


def _take(results: Iterator, record: Callable | None, total: int, stop_after_s: float, log_every: int) -> int:
    """Take the results in order (each recorded by ``record``, where given) until all are taken or the time is up;
    a stop closes ``results`` (a pool's iterator: the pool is terminated by its ``with`` block)."""
    started, taken = time.perf_counter(), 0
    for native, scored in results:
        if record is not None:
            record(native, scored)
        taken += 1
        if log_every and taken % log_every == 0:
            log.info("%d of %d archs scored in %.0f s", taken, total, time.perf_counter() - started)
        if stop_after_s and time.perf_counter() - started > stop_after_s:
            log.info("stopped after %.0f s with %d of %d archs taken; the same call continues",
                     stop_after_s, taken, total)
            break
    return taken

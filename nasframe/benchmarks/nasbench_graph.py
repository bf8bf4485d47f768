"""NAS-Bench-Graph ground truth, read through the ``nas-bench-graph`` package.

"NAS-Bench-Graph: Benchmarking Graph Neural Architecture Search" (Qin et al., NeurIPS 2022 Datasets and
Benchmarks) trained every GNN of its space on nine node-classification data sets and tabulates, per arch,
the validation and test accuracy, the inference latency and the parameter count.

An arch of that space is a pair ``(link, ops)``: 4 computing nodes, node ``i`` (1-based) reads node
``link[i-1]`` (0 is the input) and applies ``ops[i-1]``. The benchmark keys its table by
``nas_bench_graph.Arch(link, ops).valid_hash()``, an integer that merges node orderings and skip
placements it counts as the same model.

**Native string.** This module defines the arch string that the benchmark and the ``gnn_bench`` search space
share (benchmarks never import a space; the string is their contract). It is the package's own constructor
call, as its README writes archs::

    Arch([0, 1, 2, 3], ['gcn', 'gin', 'fc', 'cheb'])

:func:`parse_native` reads it (single or double quotes, any spacing) with one-line errors naming the
problem, :func:`format_native` writes it. The benchmark accepts any DAG link (``0 <= link[i] <= i``, the 24
the package can hash); the search space further requires one of the 9 canonical :data:`LINKS`.

**Metrics** (one data set per benchmark instance, ``dataset`` setting): ``<dataset>_valid`` and
``<dataset>_test`` (accuracy in percent, as nasframe's NAS-Bench-201 metrics), ``latency_ms`` (the
benchmark's inference latency, stored in seconds, here in ms) and ``params_M`` (millions of parameters).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from nasframe.benchmarks.base import BENCHMARKS, TabularBenchmark
from nasframe.core.settings import Configurable
from nasframe.errors import ConfigError, DataError, InvalidArchError

#: The 9 link patterns of the benchmark's space (the package's ``link_list``, in its order).
LINKS: tuple[tuple[int, ...], ...] = (
    (0, 0, 0, 0),
    (0, 0, 0, 1),
    (0, 0, 1, 1),
    (0, 0, 1, 2),
    (0, 0, 1, 3),
    (0, 1, 1, 1),
    (0, 1, 1, 2),
    (0, 1, 2, 2),
    (0, 1, 2, 3),
)
#: The 9 ops (the package's ``gnn_list``, in its order): GAT, GCN, GIN, Chebyshev (K=2), GraphSAGE, ARMA,
#: k-GNN ``GraphConv``, a fully connected layer that ignores the graph, and the identity.
OPS: tuple[str, ...] = ("gat", "gcn", "gin", "cheb", "sage", "arma", "graph", "fc", "skip")
#: The ops of the ogbn-proteins part of the benchmark (the package's ``gnn_list_proteins``).
PROTEINS_OPS: tuple[str, ...] = ("gcn", "sage", "arma", "fc", "skip")
SKIP = "skip"
NUM_NODES = 4
#: The data sets the package ships results for (its ``light_read`` names).
DATASETS: tuple[str, ...] = ("cora", "citeseer", "pubmed", "cs", "physics", "photo", "computers", "arxiv", "proteins")

_NATIVE_RE = re.compile(r"^Arch\s*\((.*)\)$", re.DOTALL)
_FORM = "Arch([l1, l2, l3, l4], ['op1', 'op2', 'op3', 'op4'])"


# --------------------------------------------------------------------------------------------------------
# The native string
# --------------------------------------------------------------------------------------------------------
def format_native(link: Sequence[int], ops: Sequence[str]) -> str:
    """``Arch([0, 1, 2, 3], ['gcn', 'gin', 'fc', 'cheb'])``."""
    return f"Arch({list(map(int, link))}, {[str(op) for op in ops]})"


def parse_native(text: str) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """``(link, ops)`` from a native string; :class:`InvalidArchError` naming the problem otherwise."""
    where = f"invalid NAS-Bench-Graph arch string {text!r}"
    match = _NATIVE_RE.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise InvalidArchError(f"{where}: expected {_FORM}")
    try:
        value = ast.literal_eval("(" + match.group(1) + ",)")  # literals only: nothing is executed
    except (ValueError, SyntaxError):
        raise InvalidArchError(f"{where}: cannot read a link list and an op list; expected {_FORM}") from None
    if len(value) != 2 or not all(isinstance(part, list) for part in value):
        raise InvalidArchError(f"{where}: expected two lists, the links and the ops: {_FORM}")
    link, ops = value
    check_link_and_ops(link, ops, where)
    return tuple(link), tuple(ops)


def check_link_and_ops(link: Sequence[Any], ops: Sequence[Any], where: str = "NAS-Bench-Graph arch") -> None:
    """Raise :class:`InvalidArchError` unless ``link`` / ``ops`` describe an arch the benchmark can hash:
    4 nodes, node ``i`` reading a node ``0 <= link[i-1] < i``, known op names, not every op ``skip``."""
    if len(link) != NUM_NODES or not all(isinstance(v, int) and not isinstance(v, bool) for v in link):
        raise InvalidArchError(
            f"{where}: the link list needs {NUM_NODES} integers (the input of each node), got {list(link)}"
        )
    for node, source in enumerate(link, start=1):
        if not 0 <= source < node:
            raise InvalidArchError(f"{where}: node {node} cannot read node {source} (it reads one of 0..{node - 1})")
    if len(ops) != NUM_NODES or not all(isinstance(op, str) for op in ops):
        raise InvalidArchError(f"{where}: the op list needs {NUM_NODES} op names, got {list(ops)}")
    for node, op in enumerate(ops, start=1):
        if op not in OPS:
            raise InvalidArchError(f"{where}: unknown op {op!r} at node {node}; ops: {', '.join(OPS)}")
    if all(op == SKIP for op in ops):
        raise InvalidArchError(f"{where}: every op is 'skip', so the arch has no GNN layer (the benchmark holds none)")


# --------------------------------------------------------------------------------------------------------
# Benchmark keys
# --------------------------------------------------------------------------------------------------------
def _package() -> Any:
    try:
        import nas_bench_graph
    except ImportError:
        raise ConfigError("NAS-Bench-Graph needs the nas-bench-graph package: pip install nas-bench-graph") from None
    return nas_bench_graph


def benchmark_key(link: Sequence[int], ops: Sequence[str]) -> int:
    """The benchmark's table key: ``nas_bench_graph.Arch(link, ops).valid_hash()``."""
    check_link_and_ops(link, ops)
    return int(_package().Arch(list(link), list(ops)).valid_hash())


def decode_key(key: int) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The canonical ``(link, ops)`` that a benchmark key stands for.

    ``valid_hash`` canonicalises an arch and writes it as a number in base ``len(OPS) + 1``: the index of
    its link pattern in :data:`LINKS`, then the index in :data:`OPS` of each node's op. Reading the digits
    back gives an arch whose own key is ``key`` (tested over every key of the table).
    """
    base = len(OPS) + 1
    digits = []
    rest = int(key)
    for _ in range(NUM_NODES):
        rest, digit = divmod(rest, base)
        digits.append(digit)
    if not 0 <= rest < len(LINKS) or any(d >= len(OPS) for d in digits):
        raise InvalidArchError(f"{key} is not a NAS-Bench-Graph key")
    return LINKS[rest], tuple(OPS[d] for d in reversed(digits))


# --------------------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------------------
@dataclass
class NASBenchGraphConfig:
    dataset: str = "cora"  # one of DATASETS


#: (metric suffix, key in the package's table, scale to nasframe's unit)
_FIELDS = (
    ("valid", "valid_perf", 100.0),
    ("test", "perf", 100.0),
    ("latency_ms", "latency", 1000.0),
    ("params_M", "para", 1.0),
)


class NASBenchGraph(Configurable, TabularBenchmark):
    """The NAS-Bench-Graph table of one data set, queried by native arch string."""

    name = "nasbench_graph"
    space_name = "gnn_bench"
    Config = NASBenchGraphConfig

    def __init__(self, table: dict[int, dict[str, Any]] | None = None, **settings: Any) -> None:
        """From config settings (``dataset``), or from an already read table (``light_read`` 's dict)."""
        self._init_config(settings, where="benchmark")
        dataset = self.config.dataset.lower()
        if dataset not in DATASETS:
            raise ConfigError(
                f"benchmark.dataset: unknown data set {self.config.dataset!r}; use one of {', '.join(DATASETS)}"
            )
        self.dataset = dataset
        if table is None:
            try:
                table = _package().light_read(dataset)
            except OSError as exc:
                raise DataError(f"cannot read the NAS-Bench-Graph table of {dataset}: {exc}") from None
        if not table:
            raise DataError(f"the NAS-Bench-Graph table of {dataset} is empty")
        self._rows: dict[int, dict[str, float]] = {
            int(key): {self._prefix(suffix): float(row[field]) * scale for suffix, field, scale in _FIELDS}
            for key, row in table.items()
        }
        self._metrics = tuple(self._prefix(suffix) for suffix, _, _ in _FIELDS)

    def _prefix(self, suffix: str) -> str:
        return f"{self.dataset}_{suffix}" if suffix in ("valid", "test") else suffix

    @property
    def metrics(self) -> tuple[str, ...]:
        return self._metrics

    def key(self, native: str) -> int:
        """The table key of an arch given by its native string."""
        return benchmark_key(*parse_native(native))

    def query(self, native: str) -> dict[str, float]:
        row = self._rows.get(self.key(native))
        if row is None:
            raise self._missing(native)
        return dict(row)

    def query_key(self, key: int) -> dict[str, float]:
        row = self._rows.get(int(key))
        if row is None:
            raise InvalidArchError(f"{self.name}: no entry with key {key} for {self.dataset}")
        return dict(row)

    def archs(self) -> Iterator[str]:
        """The native string of every arch the table holds, each in the benchmark's canonical form."""
        return (format_native(*decode_key(key)) for key in self._rows)

    def keys(self) -> Iterator[int]:
        return iter(self._rows)

    def optimum(self, metric: str) -> tuple[str, float]:
        """The best arch (native string) under ``metric`` and its value: highest accuracy, or lowest
        latency / parameter count."""
        self.check_metric(metric)
        pick = min if metric in ("latency_ms", "params_M") else max
        key = pick(self._rows, key=lambda k: self._rows[k][metric])
        return format_native(*decode_key(key)), self._rows[key][metric]

    def __len__(self) -> int:
        return len(self._rows)


BENCHMARKS.register("nasbench_graph")(NASBenchGraph)

"""NAS-Bench-201 ground truth, from a table or from the official benchmark file.

"NAS-Bench-201: Extending the Scope of Reproducible Neural Architecture Search" (Dong & Yang, ICLR 2020)
trained all 15,625 cells on CIFAR-10, CIFAR-100 and ImageNet16-120. Two sources:

* ``table``: a CSV with ``index, arch`` and one column per metric (``cifar10_test`` ...), such as
  ``$NASFRAME_DATA/nb201/accuracy.csv`` (200-epoch test accuracy averaged over seeds);
* ``api``: the official benchmark file read through the ``nas-bench-201`` package (``NASBench201API``), which
  adds validation accuracies and costs (params, FLOPs, latency). That package unpickles the ``.pth`` file with
  ``torch.load`` and its default ``weights_only``: restricted with torch >= 2.6, but unrestricted (the file can run
  code when loaded) with torch 2.4/2.5, which nasframe supports, or with ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``.
  So ``source=api`` (never the default) is for a file you trust, such as the official release; ``table`` reads CSV.

Metrics are named ``<dataset>_<split>``: ``cifar10_valid`` (the ``cifar10-valid`` protocol: trained on 25k,
evaluated on the other 25k), ``cifar10_test``, ``cifar100_valid``, ``cifar100_test``, ``imagenet16_120_valid``,
``imagenet16_120_test``, plus ``params_M``, ``flops_M``, ``latency_ms`` from the API.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from nasframe.benchmarks.base import BENCHMARKS, TabularBenchmark
from nasframe.core.settings import Configurable
from nasframe.data.paths import data_root
from nasframe.errors import ConfigError, DataError


@dataclass
class NB201BenchmarkConfig:
    source: str = "table"  # table | api
    path: Optional[str] = None  # table: default $NASFRAME_DATA/nb201/accuracy.csv; api: the benchmark .pth file


@BENCHMARKS.register("nb201")
class NB201Benchmark(Configurable, TabularBenchmark):
    name = "nb201"
    space_name = "nb201"
    Config = NB201BenchmarkConfig

    def __init__(self, api: Any = None, **settings: Any) -> None:
        """From config settings (``source``, ``path``), or from an already built ``NASBench201API`` object."""
        self._init_config(settings, where="benchmark")
        self._rows: dict[str, dict[str, float]] = {}
        self._api: Any = None
        self._api_index: dict[str, int] = {}
        if api is not None:
            self._load_api_rows(api)
        elif self.config.source == "table":
            self._load_table(self._path(default=data_root() / "nb201" / "accuracy.csv"))
        elif self.config.source == "api":
            self._load_api_rows(_open_api(self._path(default=None)))
        else:
            raise ConfigError(f"benchmark.source: unknown source {self.config.source!r}; use table or api")

    def _path(self, default: Path | None) -> Path:
        if self.config.path:
            return Path(self.config.path).expanduser()
        if default is None:
            raise ConfigError("benchmark.path is required with source=api (the NAS-Bench-201 .pth file)")
        return default

    # -- sources ----------------------------------------------------------------------------------------
    def _load_table(self, path: Path) -> None:
        if not path.is_file():
            raise DataError(f"NAS-Bench-201 table not found at {path}; set benchmark.path or $NASFRAME_DATA")
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or "arch" not in reader.fieldnames:
                raise DataError(f"{path}: a NAS-Bench-201 table needs an 'arch' column, got {reader.fieldnames}")
            columns = [c for c in reader.fieldnames if c not in ("index", "arch")]
            for row in reader:
                values = {c: float(row[c]) for c in columns if row[c] not in ("", None)}
                if "index" in row and row["index"] not in ("", None):
                    values["index"] = float(row["index"])
                self._rows[row["arch"]] = values
        if not self._rows:
            raise DataError(f"{path}: the table is empty")
        self._metrics = tuple(columns)

    def _load_api_rows(self, api: Any) -> None:
        """Index the API's evaluated archs; their metrics are read on first query (the real file is large)."""
        evaluated = set(api.evaluated_indexes)
        self._api_index = {native: i for i, native in enumerate(api.meta_archs) if i in evaluated}
        if not self._api_index:
            raise DataError("the NAS-Bench-201 API object holds no evaluated arch")
        self._api = api
        first = _api_metrics(api, next(iter(self._api_index.values())))
        self._metrics = tuple(first)

    # -- queries ----------------------------------------------------------------------------------------
    @property
    def metrics(self) -> tuple[str, ...]:
        return self._metrics

    def query(self, native: str) -> dict[str, float]:
        row = self._rows.get(native)
        if row is None and self._api is not None and native in self._api_index:
            index = self._api_index[native]
            row = self._rows[native] = {**_api_metrics(self._api, index), "index": float(index)}
        if row is None:
            raise self._missing(native)
        return dict(row)

    def archs(self) -> Iterator[str]:
        return iter(self._api_index if self._api is not None else self._rows)

    def __len__(self) -> int:
        return len(self._api_index) if self._api is not None else len(self._rows)


#: (metric, NAS-Bench-201 dataset, key of get_more_info): the benchmark's usual reading of its results.
_API_ACCURACIES = (
    ("cifar10_valid", "cifar10-valid", "valid-accuracy"),
    ("cifar10_test", "cifar10", "test-accuracy"),
    ("cifar100_valid", "cifar100", "valid-accuracy"),
    ("cifar100_test", "cifar100", "test-accuracy"),
    ("imagenet16_120_valid", "ImageNet16-120", "valid-accuracy"),
    ("imagenet16_120_test", "ImageNet16-120", "test-accuracy"),
)


def _api_metrics(api: Any, index: int) -> dict[str, float]:
    """200-epoch results averaged over seeds (``hp='200', is_random=False``) and costs of one arch."""
    values: dict[str, float] = {}
    infos: dict[str, dict[str, Any]] = {}
    for metric, dataset, key in _API_ACCURACIES:
        try:
            if dataset not in infos:
                infos[dataset] = api.get_more_info(index, dataset, iepoch=None, hp="200", is_random=False)
            values[metric] = float(infos[dataset][key])
        except (KeyError, ValueError):  # a trimmed benchmark file without this data set
            continue
    try:
        cost = api.get_cost_info(index, "cifar10-valid", hp="200")
        values["params_M"], values["flops_M"] = float(cost["params"]), float(cost["flops"])
        if cost.get("latency") is not None:
            values["latency_ms"] = 1000.0 * float(cost["latency"])
    except (KeyError, ValueError):
        pass
    return values


def _open_api(path: Path) -> Any:
    """The ``NASBench201API`` of the benchmark file at ``path``. The third-party package unpickles the file: only
    open a file you trust (see the module docstring)."""
    if not path.exists():
        raise DataError(f"NAS-Bench-201 benchmark file not found at {path}")
    try:
        from nas_201_api import NASBench201API
    except ImportError:
        raise ConfigError("benchmark.source=api needs the nas-bench-201 package: pip install nas-bench-201") from None
    return NASBench201API(str(path), verbose=False)

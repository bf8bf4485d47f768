"""The Planetoid citation graphs (Cora, CiteSeer, PubMed) with their public split, through PyG.

"Revisiting Semi-Supervised Learning with Graph Embeddings" (Yang et al., ICML 2016) released the three
graphs and the public split (20 labelled nodes per class for training, 500 validation and 1,000 test nodes)
that NAS-Bench-Graph trains on. ``torch_geometric.datasets.Planetoid(root, name)`` reads the raw files from
``root/<name>/raw`` (downloading them when missing and allowed) and writes ``root/<name>/processed`` beside
them. The default ``root`` is ``$NASFRAME_DATA/planetoid`` (this project's ``../shared/data/planetoid``);
when that folder is the shared data folder or is not writable, its ``raw`` files are first copied to
``$NASFRAME_CACHE/planetoid/<name>/raw`` and PyG works there, so nothing is ever written into shared data.

The whole graph is one :class:`~nasframe.data.graph.GraphData` (full-batch node classification): features,
``edge_index``, labels and the three boolean split masks. Registered as data set ``planetoid``: :meth:`load`
gives the splits as node ids with the graph attached (:func:`~nasframe.data.graph.node_splits`).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from nasframe.core.registry import DATASETS
from nasframe.core.settings import Configurable
from nasframe.data.base import DatasetSplits
from nasframe.data.graph import GraphData, node_splits
from nasframe.data.paths import cache_root, data_root
from nasframe.errors import ConfigError, DataError

#: Names PyG knows, by their lower-case spelling.
NAMES = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}


@dataclass
class PlanetoidConfig:
    graph: str = "Cora"  # Cora | CiteSeer | PubMed (any case); ``name`` is the registry's key in configs
    root: Optional[str] = None  # default: $NASFRAME_DATA/planetoid (../shared/data/planetoid here)
    download: bool = False  # let PyG download missing raw files (needs internet)
    normalize_features: bool = False  # divide each node's features by their sum (PyG's NormalizeFeatures)


@DATASETS.register("planetoid")
class Planetoid(Configurable):
    """A Planetoid graph with the public split, loaded by ``torch_geometric.datasets.Planetoid``."""

    Config = PlanetoidConfig

    def __init__(self, **settings) -> None:
        self._init_config(settings, where="dataset")
        key = self.config.graph.lower()
        if key not in NAMES:
            raise ConfigError(f"dataset.graph: unknown Planetoid graph {self.config.graph!r}; use {', '.join(NAMES.values())}")
        self.name = NAMES[key]

    def root(self) -> Path:
        return Path(self.config.root).expanduser() if self.config.root else data_root() / "planetoid"

    def working_root(self) -> Path:
        """The root PyG may write into: ``root`` itself, or a cache copy of its raw files when ``root`` is
        the shared data folder or not writable."""
        root = self.root()
        raw = root / self.name / "raw"
        if not raw.is_dir() or not any(raw.iterdir()):
            if self.config.download:
                root.mkdir(parents=True, exist_ok=True)
                return root
            raise DataError(
                f"Planetoid {self.name} not found: no raw files in {raw}; set dataset.root or $NASFRAME_DATA "
                f"(PyG's raw Planetoid layout), or dataset.download=true"
            )
        if not _is_shared(root) and _writable(root / self.name):
            return root
        cache = cache_root() / "planetoid"
        target = cache / self.name / "raw"
        if not _same_files(raw, target):
            shutil.rmtree(cache / self.name, ignore_errors=True)  # a stale copy and its processed/ go together
            tmp = cache / f".{self.name}.raw.{os.getpid()}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(raw, tmp)
            for path in [tmp, *tmp.iterdir()]:  # copies of read-only files stay read-only otherwise
                path.chmod(path.stat().st_mode | 0o200)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                tmp.rename(target)  # atomic: a reader sees no copy or a whole one
            except OSError:  # another process placed the copy first
                shutil.rmtree(tmp, ignore_errors=True)
                if not _same_files(raw, target):
                    raise DataError(f"cannot place a copy of {raw} at {target}") from None
        return cache

    def load(self) -> DatasetSplits:
        """The public split as node ids, with the graph in ``.graph``."""
        return node_splits(self.load_graph())

    def load_graph(self) -> GraphData:
        root = self.working_root()
        try:
            from torch_geometric.datasets import Planetoid as PyGPlanetoid
        except ImportError:
            raise ConfigError("Planetoid data sets are read with torch-geometric: pip install torch-geometric") from None
        try:
            dataset = PyGPlanetoid(str(root), self.name, split="public", force_reload=False)
        except Exception as exc:  # a damaged raw file or a failed download: one line, not a traceback
            raise DataError(f"cannot load Planetoid {self.name} from {root}: {type(exc).__name__}: {exc}") from None
        graph = dataset[0]
        x = graph.x.float()
        if self.config.normalize_features:
            x = x / x.sum(dim=1, keepdim=True).clamp(min=1.0)
        return GraphData(
            x=x,
            edge_index=graph.edge_index.long(),
            y=graph.y.long(),
            train_mask=graph.train_mask.bool(),
            val_mask=graph.val_mask.bool(),
            test_mask=graph.test_mask.bool(),
            num_features=int(x.shape[1]),
            num_classes=int(dataset.num_classes),
            name=self.name,
        )


def load_planetoid(graph: str = "Cora", root: str | Path | None = None, **settings) -> GraphData:
    """Shorthand for ``Planetoid(graph=graph, root=root, ...).load_graph()``."""
    return Planetoid(graph=graph, root=None if root is None else str(root), **settings).load_graph()


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK)


def _is_shared(root: Path) -> bool:
    """True when ``root`` lies in the data folder (``$NASFRAME_DATA``), which nothing may write into."""
    try:
        return root.resolve().is_relative_to(data_root().resolve())
    except OSError:
        return False


def _same_files(source: Path, target: Path) -> bool:
    if not target.is_dir():
        return False
    names = sorted(p.name for p in source.iterdir())
    if names != sorted(p.name for p in target.iterdir()):
        return False
    return all((source / n).stat().st_size == (target / n).stat().st_size for n in names)

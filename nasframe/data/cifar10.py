"""CIFAR-10, decoded once into a uint8 tensor cache, with the NAS-Bench-201 search split.

Sources (``source``):

* ``archive``: a ``.tar.gz`` of JPEGs in ImageFolder layout (``train/<class>/*.jpg``, ``test/<class>/*.jpg``),
  read straight from the archive, e.g. this project's ``$NASFRAME_DATA/cifar10/cifar10-jpeg.tar.gz``;
* ``imagefolder``: the same layout unpacked in a folder;
* ``torchvision``: ``torchvision.datasets.CIFAR10(root, download=download)`` for users with internet;
* ``auto`` (default): the first of these that ``root`` holds.

The decoded images are cached as one uint8 tensor file per source (``$NASFRAME_CACHE``), so later runs load
in about a second. Splits: ``nb201`` halves the 50k training images into 25k train / 25k valid, stratified and
fixed by ``split_seed`` (NAS-Bench-201's ``cifar10-valid`` protocol; its exact split file is not shipped, so the
halves differ from the benchmark's), with the 10k test images as test; ``full`` trains on all 50k and uses
the test images as both valid and test. Training batches get pad-4 random crops and flips on the device.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from nasframe.core.registry import DATASETS
from nasframe.core.settings import Configurable
from nasframe.core.space import DataSpec
from nasframe.data.augment import Normalize, RandomCropFlip
from nasframe.data.base import DatasetSplits, TensorSplit
from nasframe.data.paths import cache_root, data_root
from nasframe.errors import ConfigError, DataError
from nasframe.training.checkpoint import save_atomic

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


@dataclass
class Cifar10Config:
    root: Optional[str] = None  # default: $NASFRAME_DATA/cifar10 (../shared/data/cifar10 here)
    source: str = "auto"  # auto | archive | imagefolder | torchvision
    download: bool = False  # torchvision source only
    split: str = "nb201"  # nb201 (25k train / 25k valid / 10k test) | full (50k train, test as valid)
    split_seed: int = 0
    augment: bool = True  # pad-4 random crop + horizontal flip on training batches
    train_limit: int = 0  # use only the first N training images of the split (0: all), for CPU budgets
    valid_limit: int = 0  # likewise for the valid split
    cache: bool = True  # cache the decoded uint8 tensors under $NASFRAME_CACHE


@DATASETS.register("cifar10")
class Cifar10(Configurable):
    """CIFAR-10 from a local archive or folder, or through torchvision."""

    Config = Cifar10Config

    def __init__(self, **settings) -> None:
        self._init_config(settings, where="dataset")
        cfg = self.config
        if cfg.source not in ("auto", "archive", "imagefolder", "torchvision"):
            raise ConfigError(f"dataset.source: unknown source {cfg.source!r}; use auto, archive, imagefolder or torchvision")
        if cfg.split not in ("nb201", "full"):
            raise ConfigError(f"dataset.split: unknown split {cfg.split!r}; use nb201 or full")

    # -- raw images --------------------------------------------------------------------------------------
    def root(self) -> Path:
        return Path(self.config.root).expanduser() if self.config.root else data_root() / "cifar10"

    def locate(self) -> tuple[str, Path]:
        """The source kind and path that ``root`` holds."""
        cfg, root = self.config, self.root()
        archive = root if root.is_file() else next(iter(sorted(root.glob("*.tar.gz"))), None) if root.is_dir() else None
        candidates = {
            "archive": archive,
            "imagefolder": root if (root / "train").is_dir() and (root / "test").is_dir() else None,
            "torchvision": root if (root / "cifar-10-batches-py").is_dir() or cfg.download else None,
        }
        order = [cfg.source] if cfg.source != "auto" else ["archive", "imagefolder", "torchvision"]
        for kind in order:
            if candidates[kind] is not None:
                return kind, candidates[kind]
        raise DataError(
            f"CIFAR-10 not found at {root} (looked for a .tar.gz of JPEGs, train/ and test/ class folders, or "
            f"torchvision's cifar-10-batches-py); set dataset.root, $NASFRAME_DATA, or dataset.download=true"
        )

    def load_raw(self) -> dict[str, torch.Tensor]:
        """``{"train_x", "train_y", "test_x", "test_y"}`` as uint8 images (N, 3, 32, 32) and int64 labels."""
        kind, path = self.locate()
        cache_file = None
        if self.config.cache:
            digest = hashlib.sha1(f"pil-v1:{kind}:{path.resolve()}:{_stamp(path)}".encode()).hexdigest()[:16]
            cache_file = cache_root() / f"cifar10-{kind}-{digest}.pt"
            if cache_file.is_file():
                try:
                    return torch.load(cache_file, weights_only=True)
                except Exception:  # a damaged cache is rebuilt, never trusted
                    cache_file.unlink(missing_ok=True)
        raw = {"archive": _read_archive, "imagefolder": _read_folder, "torchvision": self._read_torchvision}[kind](path)
        for part in ("train", "test"):
            if len(raw[f"{part}_x"]) == 0:
                raise DataError(f"no CIFAR-10 {part} images in {path}")
        if cache_file is not None:
            save_atomic(raw, cache_file)
        return raw

    def _read_torchvision(self, root: Path) -> dict[str, torch.Tensor]:
        from torchvision.datasets import CIFAR10

        out = {}
        for part, train in (("train", True), ("test", False)):
            ds = CIFAR10(str(root), train=train, download=self.config.download)
            out[f"{part}_x"] = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
            out[f"{part}_y"] = torch.tensor(ds.targets, dtype=torch.int64)
        return out

    # -- splits ----------------------------------------------------------------------------------------
    def load(self) -> DatasetSplits:
        cfg = self.config
        raw = self.load_raw()
        train_x, train_y = raw["train_x"], raw["train_y"]
        if cfg.split == "nb201":
            first, second = stratified_halves(train_y, cfg.split_seed)
            train = TensorSplit(train_x[first], train_y[first])
            valid = TensorSplit(train_x[second], train_y[second])
        else:
            train = TensorSplit(train_x, train_y)
            valid = TensorSplit(raw["test_x"], raw["test_y"])
        if cfg.train_limit:
            train = TensorSplit(train.x[: cfg.train_limit], train.y[: cfg.train_limit])
        if cfg.valid_limit:
            valid = TensorSplit(valid.x[: cfg.valid_limit], valid.y[: cfg.valid_limit])
        normalize = Normalize(MEAN, STD)
        return DatasetSplits(
            train=train,
            valid=valid,
            test=TensorSplit(raw["test_x"], raw["test_y"]),
            spec=DataSpec(in_channels=3, input_size=(32, 32), num_classes=10),
            name=f"cifar10 ({cfg.split} split)",
            prepare=normalize,
            augment=RandomCropFlip(normalize) if cfg.augment else None,
        )


def stratified_halves(labels: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint index sets, each holding half of every class (in a seeded random order)."""
    generator = torch.Generator().manual_seed(seed)
    first, second = [], []
    for cls in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == cls).flatten()
        idx = idx[torch.randperm(len(idx), generator=generator)]
        first.append(idx[: len(idx) // 2])
        second.append(idx[len(idx) // 2 :])
    a, b = torch.cat(first), torch.cat(second)
    return a[torch.randperm(len(a), generator=generator)], b[torch.randperm(len(b), generator=generator)]


def _stamp(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{int(stat.st_mtime)}"


def _decode(blobs: list[bytes]) -> torch.Tensor:
    """JPEG/PNG bytes -> uint8 (N, 3, H, W) with Pillow (torchvision's decoders are deprecated since 0.29)."""
    from PIL import Image

    if not blobs:
        return torch.empty(0, 3, 32, 32, dtype=torch.uint8)
    arrays = []
    for blob in blobs:
        with Image.open(io.BytesIO(blob)) as image:
            arrays.append(np.asarray(image.convert("RGB")))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _collect(entries: list[tuple[str, str, bytes]]) -> dict[str, torch.Tensor]:
    """``entries`` of (split, class name, JPEG bytes) -> uint8 tensors, labels in CIFAR-10 class order."""
    out = {}
    for part in ("train", "test"):
        chosen = [e for e in entries if e[0] == part]
        unknown = {cls for _, cls, _ in chosen if cls not in CLASSES}
        if unknown:
            raise DataError(f"unexpected CIFAR-10 class folder(s): {sorted(unknown)}")
        out[f"{part}_x"] = _decode([blob for _, _, blob in chosen])
        out[f"{part}_y"] = torch.tensor([CLASSES.index(cls) for _, cls, _ in chosen], dtype=torch.int64)
    return out


def _read_archive(path: Path) -> dict[str, torch.Tensor]:
    entries = []
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                parts = Path(member.name).parts
                if member.isfile() and len(parts) >= 3 and parts[-3] in ("train", "test"):
                    entries.append((parts[-3], parts[-2], member.name, tar.extractfile(member).read()))
    except (tarfile.TarError, OSError) as exc:
        raise DataError(f"cannot read CIFAR-10 archive {path}: {exc}") from None
    entries.sort(key=lambda e: (e[0], e[1], e[2]))  # deterministic order: split, class, file name
    return _collect([(split, cls, blob) for split, cls, _, blob in entries])


def _read_folder(root: Path) -> dict[str, torch.Tensor]:
    entries = []
    for part in ("train", "test"):
        for file in sorted((root / part).glob("*/*")):
            if file.suffix.lower() in (".jpg", ".jpeg", ".png"):
                entries.append((part, file.parent.name, file.read_bytes()))
    return _collect(entries)

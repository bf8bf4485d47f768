"""CIFAR-10: archive/folder reading, the NB201 split, and device-side augmentation."""

from __future__ import annotations

import io
import tarfile
from collections import Counter

import pytest
import torch

from nasframe.data.augment import Normalize, RandomCropFlip
from nasframe.data.cifar10 import CLASSES, MEAN, STD, Cifar10, stratified_halves
from nasframe.data.paths import data_root
from nasframe.errors import ConfigError, DataError


def _jpeg(color: tuple[int, int, int]) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (32, 32), color).save(out, format="JPEG", quality=95)
    return out.getvalue()


@pytest.fixture
def tiny_archive(tmp_path):
    """A tar.gz in the ImageFolder layout with 4 train and 2 test images per class."""
    path = tmp_path / "tiny.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for split, count in (("train", 4), ("test", 2)):
            for c, cls in enumerate(CLASSES):
                for i in range(count):
                    blob = _jpeg((c * 25, i * 60, 128))
                    info = tarfile.TarInfo(f"{split}/{cls}/{i:04d}.jpg")
                    info.size = len(blob)
                    tar.addfile(info, io.BytesIO(blob))
    return path


def test_reads_an_archive_and_caches_the_decoded_tensors(tiny_archive, tmp_path, monkeypatch):
    monkeypatch.setenv("NASFRAME_CACHE", str(tmp_path / "cache"))
    data = Cifar10(root=str(tiny_archive)).load()
    assert len(data.train) == len(data.valid) == 20 and len(data.test) == 20  # nb201 split halves the 40
    assert data.train.x.dtype == torch.uint8 and data.train.x.shape[1:] == (3, 32, 32)
    assert Counter(data.train.y.tolist()) == Counter(data.valid.y.tolist()) == {c: 2 for c in range(10)}
    # the red channel encodes the class: labels follow CIFAR-10's class order
    reds = data.test.x[:, 0].float().mean(dim=(1, 2))
    assert all(abs(red.item() - 25 * label) < 4 for red, label in zip(reds, data.test.y))
    assert len(list((tmp_path / "cache").glob("cifar10-archive-*.pt"))) == 1
    again = Cifar10(root=str(tiny_archive)).load()
    assert torch.equal(again.train.x, data.train.x)


def test_reads_an_image_folder(tiny_archive, tmp_path, monkeypatch):
    monkeypatch.setenv("NASFRAME_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "folder"
    with tarfile.open(tiny_archive) as tar:
        tar.extractall(folder, filter="data")
    data = Cifar10(root=str(folder), source="imagefolder", split="full", cache=False).load()
    archived = Cifar10(root=str(tiny_archive), split="full", cache=False).load()
    assert torch.equal(data.train.x, archived.train.x) and torch.equal(data.test.y, archived.test.y)


def test_missing_or_bad_data_fails_clearly(tmp_path):
    with pytest.raises(DataError, match="CIFAR-10 not found at"):
        Cifar10(root=str(tmp_path / "nothing")).load()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError):
        Cifar10(root=str(tmp_path / "empty"), cache=False).load()
    with pytest.raises(ConfigError, match="dataset.split"):
        Cifar10(split="halves")
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"not gzip")
    with pytest.raises(DataError, match="cannot read CIFAR-10 archive"):
        Cifar10(root=str(broken), cache=False).load()


def test_stratified_halves_are_disjoint_balanced_and_seeded():
    labels = torch.arange(10).repeat(100)
    a, b = stratified_halves(labels, seed=0)
    assert len(set(a.tolist()) & set(b.tolist())) == 0 and len(a) + len(b) == 1000
    assert Counter(labels[a].tolist()) == {c: 50 for c in range(10)}
    a2, _ = stratified_halves(labels, seed=0)
    a3, _ = stratified_halves(labels, seed=1)
    assert torch.equal(a, a2) and not torch.equal(a, a3)


def test_normalize_matches_the_definition():
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    out = Normalize(MEAN, STD)(x)
    expected = (x.float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    assert torch.allclose(out, expected, atol=1e-5)


def test_crop_and_flip_equal_the_reference_per_image():
    identity = Normalize((0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255))  # leaves pixel values unchanged
    augment = RandomCropFlip(identity, padding=4)
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    g = torch.Generator().manual_seed(5)
    dy, dx, flips = augment.offsets(16, torch.Generator().manual_seed(5))
    out = augment(x, g)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(16):
        crop = padded[i, :, dy[i] : dy[i] + 32, dx[i] : dx[i] + 32]
        if flips[i]:
            crop = crop.flip(2)
        assert torch.equal(out[i], crop.float()), i


def test_crop_offsets_and_flips_have_the_right_distribution():
    augment = RandomCropFlip(Normalize(MEAN, STD), padding=4)
    n = 90_000
    dy, dx, flips = augment.offsets(n, torch.Generator().manual_seed(0))
    for offsets in (dy, dx):
        counts = torch.bincount(offsets, minlength=9)
        assert len(counts) == 9  # offsets 0..8 only
        # each of 9 offsets has probability 1/9: count ~ Binomial(n, 1/9), sd ~ 94; allow 5 sd
        assert ((counts - n / 9).abs() < 5 * (n * (1 / 9) * (8 / 9)) ** 0.5).all()
    assert abs(flips.float().mean().item() - 0.5) < 5 * (0.25 / n) ** 0.5
    assert abs(torch.corrcoef(torch.stack([dy.float(), dx.float()]))[0, 1].item()) < 0.02


@pytest.mark.skipif(not (data_root() / "cifar10").is_dir(), reason=f"real CIFAR-10 not found under {data_root()} (set NASFRAME_DATA)")
def test_real_cifar10_loads_with_the_nb201_split(tmp_path_factory):
    data = Cifar10().load()
    assert (len(data.train), len(data.valid), len(data.test)) == (25_000, 25_000, 10_000)
    assert Counter(data.test.y.tolist()) == {c: 1000 for c in range(10)}
    mean = data.train.x[:5000].float().mean(dim=(0, 2, 3)) / 255
    assert torch.allclose(mean, torch.tensor(MEAN), atol=0.02)

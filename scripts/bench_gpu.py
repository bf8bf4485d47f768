"""Training and scoring speed: nasframe's fast path against the same network run the plain way, side by side.

Times, in one run on one device:

* a supernet training epoch (NB201, uniform and PA&DA samplers) three ways:
  - ``fast``: data decoded once into a uint8 tensor on the device, crop/flip/normalise per batch on the device,
    and the trainer's speed options (on CUDA: bf16 autocast, channels-last, fused SGD, cuDNN autotuning, a
    finite-loss check every 50 steps; on CPU the exact fp32 defaults, which are already the fast path there);
  - ``exact``: the same device-side data, trainer defaults (fp32, a host sync per step for the finite check);
  - ``plain``: the way one-paper repositories do it: a ``DataLoader`` with worker processes augmenting per image
    on the host, host-to-device copies, eager fp32, ``loss.item()`` every step (uniform sampling only);
* scoring archs with supernet weights (archs/s), with and without BN recalibration: ``fast`` (the extracted path
  with BatchNorm folded into its convolutions, bf16 and channels-last on CUDA, held-out data on the device) and
  ``plain`` (a fresh ``DataLoader`` per arch, batch by batch, fp32 supernet path).

It then **projects** the full NAS-Bench-201 protocol (250 epochs of 50,000 images, then all 15,625 archs scored on
10,000 images with recalibration) from the measured rates, assuming time scales linearly with images: a
projection, labelled as such, not a measurement. ``--toy`` runs a tiny configuration on synthetic data (CI).

    python scripts/bench_gpu.py --device cuda                 # real CIFAR-10 if found, C=16 N=5, batch 256
    python scripts/bench_gpu.py --toy --out /tmp/bench        # seconds on a CPU
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from nasframe.core.space import DataSpec
from nasframe.data.augment import Normalize, RandomCropFlip
from nasframe.data.base import InMemoryLoader, TensorSplit
from nasframe.evaluation import EvaluatorConfig, SupernetEvaluator
from nasframe.hardware import describe_device
from nasframe.sampling.pada import PADASampler
from nasframe.sampling.uniform import UniformSampler
from nasframe.training import SupernetTrainer, TrainerConfig
from search_spaces.nb201 import NB201Space

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
FULL_EPOCHS, FULL_TRAIN_IMAGES, FULL_ARCHS, FULL_SCORE_IMAGES = 250, 50_000, 15_625, 10_000


def load_images(args: argparse.Namespace) -> tuple[TensorSplit, TensorSplit, str]:
    """uint8 CIFAR-10 (train, test) if found and not --toy, else synthetic uint8 images of the same shape."""
    if not args.toy:
        try:
            from nasframe.data.cifar10 import Cifar10

            data = Cifar10(split="full").load()
            return data.train, data.test, "CIFAR-10 (real)"
        except Exception as exc:  # noqa: BLE001 -- fall back to synthetic data, and say so
            print(f"CIFAR-10 not used ({str(exc).splitlines()[0]}); synthetic images instead", file=sys.stderr)
    g = torch.Generator().manual_seed(0)
    n_train, n_test = args.train_images, args.score_images
    make = lambda n: TensorSplit(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),  # noqa: E731
                                 torch.randint(0, 10, (n,), generator=g))
    return make(n_train), make(n_test), "synthetic uint8 32x32 (timing does not depend on content)"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- training ----------------------------------------------------------------------------------------------------
def fast_or_exact_epoch(space, train: TensorSplit, sampler_cls, args, device, fast: bool) -> float:
    """Seconds for one epoch after one warm-up epoch, with the trainer on device-side data."""
    cuda = device.type == "cuda"
    options = dict(precision="bf16", channels_last=True, sgd_impl="fused", cudnn_benchmark=True,
                   finite_check_every=50) if fast and cuda else {}
    torch.manual_seed(0)
    sampler = sampler_cls(space, seed=0)
    split = train.to(device)
    loader = InMemoryLoader(split, args.batch_size, seed=0, transform=RandomCropFlip(Normalize(MEAN, STD)),
                            data_order=sampler.data_order(len(split)))
    config = TrainerConfig(epochs=2, batch_size=args.batch_size, lr=0.05, progress=False, log_every=50, **options)
    trainer = SupernetTrainer(space.build_supernet().to(device), sampler, loader, config)
    trainer.fit(until_epoch=1)  # warm-up: allocator, cuDNN autotuning, PA&DA's first statistics
    sync(device)
    start = time.perf_counter()
    trainer.fit(until_epoch=2)
    sync(device)
    return time.perf_counter() - start


class HostAugmented(Dataset):
    """Per-image host-side augmentation, as torchvision transforms do it: pad 4, random 32x32 crop, flip, normalise."""

    def __init__(self, split: TensorSplit, augment: bool) -> None:
        self.x, self.y, self.augment = split.x, split.y, augment
        self.mean, self.std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = self.x[i].float() / 255
        if self.augment:
            padded = F.pad(img, (4, 4, 4, 4))
            dy, dx = np.random.randint(0, 9, size=2)
            img = padded[:, dy:dy + 32, dx:dx + 32]
            if np.random.rand() < 0.5:
                img = img.flip(2)
        return (img - self.mean) / self.std, self.y[i]


def plain_epoch(space, train: TensorSplit, args, device) -> float:
    """Seconds for one epoch the plain way (after a warm-up epoch): DataLoader workers, eager fp32, .item()."""
    torch.manual_seed(0)
    model = space.build_supernet().to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    loader = DataLoader(HostAugmented(train, augment=True), batch_size=args.batch_size, shuffle=True, drop_last=True,
                        num_workers=args.workers, pin_memory=device.type == "cuda", persistent_workers=False)
    rng = np.random.default_rng(0)
    seconds = 0.0
    for epoch in range(2):
        sync(device)
        start = time.perf_counter()
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            model.set_arch(space.sample(rng))
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            loss.item()
        sync(device)
        seconds = time.perf_counter() - start  # the second epoch counts
    return seconds


# -- scoring -----------------------------------------------------------------------------------------------------
def fast_scoring(space, supernet, train, test, archs, args, device, recalibrate: bool) -> float:
    """Archs per second with the fast scoring pass (after one warm-up arch)."""
    cuda = device.type == "cuda"
    config = EvaluatorConfig(batch_size=args.score_batch, fold_bn=True, precision="bf16" if cuda else "fp32",
                             channels_last=cuda, bn_batch_size=args.bn_batch,
                             bn_recalibration_batches=args.recal_images // args.bn_batch if recalibrate else 0)
    evaluator = SupernetEvaluator(supernet, test, train, config, prepare=Normalize(MEAN, STD), space=space)
    return archs_per_second(evaluator, archs, device)


def archs_per_second(score, archs, device: torch.device) -> float:
    """Rate of ``score(arch)`` over ``archs[1:]``, after ``archs[0]`` as a warm-up."""
    score(archs[0])
    sync(device)
    start = time.perf_counter()
    for arch in archs[1:]:
        score(arch)
    sync(device)
    return (len(archs) - 1) / (time.perf_counter() - start)


@torch.no_grad()
def plain_scoring(space, supernet, train, test, archs, args, device, recalibrate: bool) -> float:
    """Archs per second the plain way: per arch a fresh DataLoader (workers restarted), batch by batch, fp32."""
    from nasframe.evaluation.bn import batchnorm_layers

    def one(arch) -> float:
        supernet.set_arch(arch)
        if recalibrate:
            layers = batchnorm_layers(supernet)
            for layer in layers:
                layer.reset_running_stats()
                layer.momentum = None
            supernet.train()
            recal = DataLoader(HostAugmented(TensorSplit(train.x[:args.recal_images], train.y[:args.recal_images]), False),
                               batch_size=args.bn_batch, num_workers=args.workers)
            for x, _ in recal:
                supernet(x.to(device))
        supernet.eval()
        correct = 0
        for x, y in DataLoader(HostAugmented(test, False), batch_size=256, num_workers=args.workers):
            correct += (supernet(x.to(device)).argmax(1).cpu() == y).sum().item()
        return correct / len(test.y)

    return archs_per_second(one, archs, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--toy", action="store_true", help="tiny network and synthetic data (seconds on a CPU)")
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--cells", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--train-images", type=int, default=50_000, help="synthetic data only")
    parser.add_argument("--score-images", type=int, default=10_000, help="held-out images per scored arch")
    parser.add_argument("--score-archs", type=int, default=20)
    parser.add_argument("--score-batch", type=int, default=10_000)
    parser.add_argument("--recal-images", type=int, default=4_096)
    parser.add_argument("--bn-batch", type=int, default=512)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args()
    if args.toy:
        args.channels, args.cells, args.batch_size, args.train_images = 4, 1, 64, 256
        args.score_images, args.score_archs, args.score_batch, args.recal_images, args.bn_batch = 256, 3, 256, 128, 64
        args.workers = min(args.workers, 2)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    train, test, data_name = load_images(args)
    train = TensorSplit(train.x[:args.train_images], train.y[:args.train_images])
    test = TensorSplit(test.x[:args.score_images], test.y[:args.score_images])
    space = NB201Space(DataSpec(3, (32, 32), 10), channels=args.channels, cells_per_stage=args.cells)

    epochs: dict[str, float] = {}
    for sampler_name, cls in (("uniform", UniformSampler), ("pada", PADASampler)):
        for way in ("fast", "exact"):
            epochs[f"{way}/{sampler_name}"] = fast_or_exact_epoch(space, train, cls, args, device, fast=way == "fast")
    epochs["plain/uniform"] = plain_epoch(space, train, args, device)

    torch.manual_seed(0)
    supernet = space.build_supernet().to(device)
    archs = [space.sample(np.random.default_rng(i)) for i in range(args.score_archs + 1)]
    scoring = {
        f"{way}/{'recal' if recal else 'no_recal'}": fn(space, supernet, train.to(device) if way == "fast" else train,
                                                        test.to(device) if way == "fast" else test, archs, args, device,
                                                        recal)
        for way, fn in (("fast", fast_scoring), ("plain", plain_scoring)) for recal in (True, False)
    }
    per_image_epoch = {k: v / len(train.y) for k, v in epochs.items()}
    projection = {}
    for way, train_key in (("fast", "fast/uniform"), ("plain", "plain/uniform")):
        train_s = FULL_EPOCHS * per_image_epoch[train_key] * FULL_TRAIN_IMAGES
        score_s = FULL_ARCHS / scoring[f"{way}/recal"] * FULL_SCORE_IMAGES / len(test.y)
        projection[way] = {"train_s": train_s, "score_s": score_s, "total_s": train_s + score_s}
    write(args, data_name, device, len(train.y), len(test.y), epochs, scoring, projection)


def write(args, data_name, device, n_train, n_test, epochs, scoring, projection) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    tag = "toy_" if args.toy else ""
    stem = args.out / f"bench_gpu_{tag}{device.type}"
    meta = {"command": "python " + " ".join(sys.argv), "device": describe_device(device), "torch": torch.__version__,
            "python": platform.python_version(), "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "data": data_name, "space": f"NB201 C={args.channels} N={args.cells}", "batch_size": args.batch_size,
            "train_images": n_train, "score_images": n_test, "recal_images": args.recal_images,
            "workers": args.workers}
    Path(f"{stem}.json").write_text(json.dumps({"meta": meta, "epoch_seconds": epochs, "archs_per_second": scoring,
                                                "projection_seconds": projection}, indent=1) + "\n")
    lines = [f"# Training and scoring speed: nasframe fast path vs the plain way ({device.type})", "",
             *[f"- {k}: {v}" for k, v in meta.items()], "",
             f"| training epoch ({n_train} images, batch {args.batch_size}) | seconds | images/s |", "| --- | ---: | ---: |"]
    lines += [f"| {k} | {v:.2f} | {n_train / v:,.0f} |" for k, v in epochs.items()]
    lines += ["", f"| scoring ({n_test} held-out images per arch) | archs/s |", "| --- | ---: |"]
    lines += [f"| {k} | {v:.2f} |" for k, v in scoring.items()]
    lines += ["", f"**Projection** (not a measurement): {FULL_EPOCHS} epochs x {FULL_TRAIN_IMAGES:,} images, then "
              f"{FULL_ARCHS:,} archs x {FULL_SCORE_IMAGES:,} images with recalibration, scaled linearly from the rates above.",
              "", "| way | training | scoring | total |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {k} | {v['train_s'] / 60:.1f} min | {v['score_s'] / 60:.1f} min | {v['total_s'] / 3600:.2f} h |"
              for k, v in projection.items()]
    Path(f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""CIFAR-10 loader throughput: nasframe's in-memory loader vs a torchvision DataLoader, vs the supernet step.

Measures images/s for one pass over the 25k-image NB201 training split with pad-4 random crop, horizontal
flip and normalisation:

* nasframe: uint8 tensor in memory, augmentation per batch on the tensor's device (``InMemoryLoader`` +
  ``RandomCropFlip``);
* torchvision: the usual ``ImageFolder``-style pipeline on decoded PIL images (``RandomCrop(32, padding=4)``,
  ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``) through a ``DataLoader`` with ``--workers`` workers;

and, for scale, the images/s of a single-path NB201 supernet training step (C=16, N=5) on the same device.
The loader must be far faster than the step so that it is never the bottleneck.

    python scripts/bench_loader.py                  # CPU, 2 threads
    python scripts/bench_loader.py --device cuda
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

from nasframe.hardware import describe_device
from nasframe.data.base import InMemoryLoader
from nasframe.data.cifar10 import MEAN, STD, Cifar10
from nasframe.markdown import markdown_table
from search_spaces.nb201 import NB201Space


def nasframe_loader(data, batch: int, device: torch.device) -> float:
    loader = InMemoryLoader(data.train.to(device), batch, seed=0, transform=data.augment)
    start = time.perf_counter()
    seen = 0
    for x, _, _ in loader.epoch():
        seen += len(x)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def torchvision_loader(data, batch: int, workers: int, limit: int) -> float:
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    images = [Image.fromarray(x.permute(1, 2, 0).numpy()) for x in data.train.x[:limit]]
    labels = data.train.y[:limit].tolist()
    pipeline = transforms.Compose([
        transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
        transforms.Normalize(MEAN, STD),
    ])

    class Images(Dataset):
        def __len__(self) -> int:
            return len(images)

        def __getitem__(self, i):
            return pipeline(images[i]), labels[i]

    loader = DataLoader(Images(), batch_size=batch, shuffle=True, num_workers=workers, drop_last=True)
    start = time.perf_counter()
    seen = sum(len(x) for x, _ in loader)  # includes worker start-up, as every epoch of a real run does
    return seen / (time.perf_counter() - start)


def supernet_step(batch: int, device: torch.device, steps: int) -> float:
    space = NB201Space()
    supernet = space.build_supernet().to(device)
    opt = torch.optim.SGD(supernet.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    times = []
    for i in range(steps + 2):
        supernet.set_arch(space.sample(rng))
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(supernet(x), y).backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return batch / float(np.mean(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--torchvision-images", type=int, default=10_000, help="images in the torchvision pass")
    parser.add_argument("--step-samples", type=int, default=10, help="random paths timed for the supernet step")
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    start = time.perf_counter()
    data = Cifar10().load()
    load_seconds = time.perf_counter() - start
    rows = []
    for batch in (64, 256):
        row = {
            "batch": batch,
            "nasframe_images_per_s": nasframe_loader(data, batch, device),
            "torchvision_images_per_s": torchvision_loader(data, batch, args.workers, args.torchvision_images),
            "supernet_step_images_per_s": supernet_step(batch, device, args.step_samples),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    meta = {
        "command": "python " + " ".join(sys.argv),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "device": describe_device(device),
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "cache_load_seconds": load_seconds,
        "workers": args.workers,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"loader_cifar10_{device.type}"
    Path(f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = [
        "# CIFAR-10 loader throughput (pad-4 crop + flip + normalise)",
        "",
        f"- device: {meta['device']}; python {meta['versions']['python']}, torch {meta['versions']['torch']}",
        f"- command: `{meta['command']}` ({meta['date']})",
        f"- loading the decoded uint8 cache: {load_seconds:.1f} s (60k images)",
        f"- torchvision: PIL transforms in a DataLoader with {args.workers} workers over {args.torchvision_images:,} images "
        "(worker start-up included, as in every epoch of a run)",
        "- supernet step: NB201 C=16 N=5 single-path training step (forward, backward, SGD), mean over random paths",
        "",
        markdown_table(
            ["batch", "nasframe loader (img/s)", "torchvision DataLoader (img/s)", "supernet training step (img/s)",
             "loader / step"],
            [[r["batch"], r["nasframe_images_per_s"], r["torchvision_images_per_s"], r["supernet_step_images_per_s"],
              f"{r['nasframe_images_per_s'] / r['supernet_step_images_per_s']:,.0f}x"] for r in rows],
            "rrrrr", formats=[None, ",.0f", ",.0f", ",.0f", None]),
        "",
    ]
    Path(f"{stem}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Training and scoring speed: nasframe's fast path against the same network run the plain way, side by side.

Times, in one run on one device:

* a supernet training epoch (NB201, uniform and PA&DA samplers) four ways:
  - ``fast``: data decoded once into a uint8 tensor on the device, crop/flip/normalise per batch on the device,
    and the trainer's speed options (on CUDA: bf16 autocast, channels-last, fused SGD, cuDNN autotuning, a
    finite-loss check every 50 steps; on CPU the exact fp32 defaults, which are already the fast path there);
  - ``compiled``: ``fast`` plus ``trainer.compile`` (``--compile``): the stem, the reductions, the head and each
    candidate op compiled, the routing eager (:mod:`nasframe.training.compile`);
  - ``exact``: the same device-side data, trainer defaults (fp32, a host sync per step for the finite check);
  - ``plain``: the way one-paper repositories do it: a ``DataLoader`` with worker processes augmenting per image
    on the host, host-to-device copies, eager fp32, ``loss.item()`` every step (uniform sampling only);
* several fast trainings at once on the one device (``--concurrent``, one process each), against one alone:
  an eager step leaves a GPU mostly idle, so seeds or few-shot sub-supernets can share it;
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
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from nasframe.core.arch import Arch
from nasframe.core.space import DataSpec
from nasframe.data.augment import Normalize, RandomCropFlip
from nasframe.data.base import InMemoryLoader, TensorSplit
from nasframe.evaluation import EvaluatorConfig, SupernetEvaluator
from nasframe.hardware import describe_device
from nasframe.markdown import markdown_table
from nasframe.sampling.pada import PADASampler
from nasframe.sampling.uniform import UniformSampler
from nasframe.training import SupernetTrainer, TrainerConfig
from nasframe.training.compile import COMPILE_MODES
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
def speed_options(way: str, device: torch.device, compile_mode: str) -> dict:
    """Trainer settings of a way: ``exact`` the defaults; ``fast`` the speed options (on CUDA; on the CPU the
    defaults are the fast path); ``compiled`` the fast options plus ``trainer.compile``."""
    options = dict(precision="bf16", channels_last=True, sgd_impl="fused", cudnn_benchmark=True,
                   finite_check_every=50) if way != "exact" and device.type == "cuda" else {}
    if way == "compiled":
        options["compile"] = compile_mode
    return options


def timed_epoch(space, train: TensorSplit, sampler_cls, args, device, options: dict, seed: int = 0,
                before_timing: Callable[[], object] | None = None) -> tuple[float, float]:
    """Seconds of a warm-up epoch (allocator, cuDNN autotuning, compilation, PA&DA's first statistics) and of the
    epoch after it, with the trainer on device-side data; ``before_timing`` runs between the two."""
    torch.manual_seed(seed)
    sampler = sampler_cls(space, seed=seed)
    split = train.to(device)
    loader = InMemoryLoader(split, args.batch_size, seed=seed, transform=RandomCropFlip(Normalize(MEAN, STD)),
                            data_order=sampler.data_order(len(split)))
    config = TrainerConfig(epochs=2, batch_size=args.batch_size, lr=0.05, progress=False, log_every=50, **options)
    trainer = SupernetTrainer(space.build_supernet().to(device), sampler, loader, config)
    start = time.perf_counter()
    trainer.fit(until_epoch=1)
    if trainer.compiled_parts:  # a short warm-up epoch may miss an op: compile every op before the timed epoch
        run_every_option(trainer, space)
    sync(device)
    warmup = time.perf_counter() - start
    if before_timing is not None:
        before_timing()
    start = time.perf_counter()
    trainer.fit(until_epoch=2)
    sync(device)
    return warmup, time.perf_counter() - start


def run_every_option(trainer: SupernetTrainer, space) -> None:
    """Training steps on archs that together take every option of every choice (arch k takes option k of each)."""
    widest = max(len(choice) for choice in space.choices)
    covering = iter([Arch({c.name: c.options[k % len(c)] for c in space.choices}) for k in range(widest)])
    x, y, _ = next(trainer.loader.epoch())
    trainer.sampler.sample = lambda: next(covering)  # shadows the sampler's method for these steps only
    try:
        for _ in range(widest):
            trainer.train_step(x.to(trainer.device), y.to(trainer.device))
    finally:
        del trainer.sampler.sample


# -- several trainings at once -----------------------------------------------------------------------------------
def concurrent_epochs(args, device: torch.device, count: int) -> float:
    """Wall seconds for ``count`` trainings (fast way, uniform sampler, seeds 0..count-1) to run one epoch each at
    the same time on the device, in separate processes, timed from the moment all have warmed up to the last one
    done. On the CPU the threads are split between them."""
    context = torch.multiprocessing.get_context("spawn")
    ready, results = context.Barrier(count + 1), context.Queue()
    workers = [context.Process(target=_one_of_concurrent, args=(vars(args), str(device), seed, count, ready, results))
               for seed in range(count)]
    for worker in workers:
        worker.start()
    try:
        ready.wait()
    except threading.BrokenBarrierError:  # a worker failed while warming up: its message is in the queue
        pass
    start = time.perf_counter()
    finished = [results.get(timeout=3600) for _ in workers]
    wall = time.perf_counter() - start
    for worker in workers:
        worker.join()
    failed = [message for message in finished if isinstance(message, str)]
    if failed:
        raise RuntimeError(f"a concurrent training failed: {failed[0]}")
    return wall


def _one_of_concurrent(arg_values: dict, device_name: str, seed: int, count: int, ready, results) -> None:
    args, device = argparse.Namespace(**arg_values), torch.device(device_name)
    if device.type == "cpu":
        torch.set_num_threads(max(1, (args.threads or torch.get_num_threads()) // count))
    try:
        train, _, _ = load_images(args)
        train = TensorSplit(train.x[:args.train_images], train.y[:args.train_images])
        _, seconds = timed_epoch(make_space(args), train, UniformSampler, args, device,
                                 speed_options("fast", device, args.compile), seed=seed, before_timing=ready.wait)
        results.put(seconds)
    except Exception as exc:  # noqa: BLE001 -- reported by the parent, which must not wait forever
        ready.abort()
        results.put(f"{type(exc).__name__}: {exc}")


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
    parser.add_argument("--compile", default="default", choices=COMPILE_MODES,
                        help="trainer.compile of the 'compiled' rows (off: no such rows)")
    parser.add_argument("--concurrent", type=int, default=2, help="trainings at once for the concurrency row (<2: none)")
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
    space = make_space(args)

    timings = Timings()
    torch.manual_seed(0)
    scored_supernet = space.build_supernet().to(device)  # scoring speed does not depend on the weights
    archs = [space.sample(np.random.default_rng(i)) for i in range(args.score_archs + 1)]
    on_device = {"fast": (train.to(device), test.to(device)), "plain": (train, test)}
    samplers = {"uniform": UniformSampler, "pada": PADASampler}

    def epoch(way: str, sampler: str) -> None:
        key = f"{way}/{sampler}"
        timings.warmups[key], timings.epochs[key] = timed_epoch(space, train, samplers[sampler], args, device,
                                                                speed_options(way, device, args.compile))

    def plain() -> None:
        timings.epochs["plain/uniform"] = plain_epoch(space, train, args, device)

    def score(way: str, recal: bool) -> None:
        fn = fast_scoring if way == "fast" else plain_scoring
        timings.scoring[f"{way}/{'recal' if recal else 'no_recal'}"] = fn(space, scored_supernet, *on_device[way],
                                                                          archs, args, device, recal)

    def concurrent() -> None:
        wall = concurrent_epochs(args, device, args.concurrent)
        single = len(train.y) / timings.epochs["fast/uniform"]
        timings.concurrent = {"trainings": args.concurrent, "wall_s": wall,
                              "images_per_s": args.concurrent * len(train.y) / wall, "single_images_per_s": single,
                              "gain": args.concurrent * len(train.y) / wall / single}

    # most wanted first, and the table rewritten after each: a run stopped early (a device session's time limit)
    # still leaves what it measured; compilation's long warm-up comes last
    plan: list[Callable[[], None]] = [
        lambda: epoch("fast", "uniform"), lambda: score("fast", True), lambda: score("fast", False),
        lambda: epoch("fast", "pada"), plain, lambda: score("plain", True), lambda: score("plain", False),
        lambda: epoch("exact", "uniform"), lambda: epoch("exact", "pada"),
    ]
    if args.concurrent > 1:
        plan.append(concurrent)
    if args.compile != "off":
        plan += [lambda: epoch("compiled", "uniform"), lambda: epoch("compiled", "pada")]
    for done, measure in enumerate(plan, 1):
        measure()
        timings.project(len(train.y), len(test.y))
        write(args, data_name, device, len(train.y), len(test.y), timings, complete=done == len(plan))


def make_space(args: argparse.Namespace) -> NB201Space:
    return NB201Space(DataSpec(3, (32, 32), 10), channels=args.channels, cells_per_stage=args.cells)


@dataclass
class Timings:
    """What one run measured so far (and projected)."""

    epochs: dict[str, float] = field(default_factory=dict)  # seconds of the timed epoch per way/sampler
    warmups: dict[str, float] = field(default_factory=dict)  # seconds of the warm-up epoch (compilation included)
    concurrent: dict[str, float] = field(default_factory=dict)  # several fast trainings at once
    scoring: dict[str, float] = field(default_factory=dict)  # archs/s per way/recalibration
    projection: dict[str, dict[str, float]] = field(default_factory=dict)  # the full protocol, projected

    def project(self, train_images: int, score_images: int) -> None:
        """The full protocol's time for each way whose epoch and scoring with recalibration are measured."""
        for way, train_key in (("fast", "fast/uniform"), ("plain", "plain/uniform")):
            if train_key in self.epochs and f"{way}/recal" in self.scoring:
                train_s = FULL_EPOCHS * self.epochs[train_key] / train_images * FULL_TRAIN_IMAGES
                score_s = FULL_ARCHS / self.scoring[f"{way}/recal"] * FULL_SCORE_IMAGES / score_images
                self.projection[way] = {"train_s": train_s, "score_s": score_s, "total_s": train_s + score_s}


def write(args, data_name, device, n_train, n_test, timings: Timings, complete: bool = True) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    tag = "toy_" if args.toy else ""
    stem = args.out / f"bench_gpu_{tag}{device.type}"
    meta = {"command": "python " + " ".join(sys.argv), "device": describe_device(device), "torch": torch.__version__,
            "python": platform.python_version(), "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "data": data_name, "space": f"NB201 C={args.channels} N={args.cells}", "batch_size": args.batch_size,
            "train_images": n_train, "score_images": n_test, "recal_images": args.recal_images,
            "workers": args.workers, "compile": args.compile, "complete": complete}
    t = timings
    Path(f"{stem}.json").write_text(json.dumps({
        "meta": meta, "epoch_seconds": t.epochs, "warmup_seconds": t.warmups, "concurrent": t.concurrent,
        "archs_per_second": t.scoring, "projection_seconds": t.projection}, indent=1) + "\n")
    lines = [f"# Training and scoring speed: nasframe fast path vs the plain way ({device.type})", "",
             *([] if complete else ["**Partial:** the run stopped before every measurement was taken; the table "
                                    "holds those taken.", ""]),
             *[f"- {k}: {v}" for k, v in meta.items()], "",
             markdown_table(
                 [f"training epoch ({n_train} images, batch {args.batch_size})", "seconds", "images/s", "warm-up epoch s"],
                 [[k, v, n_train / v, t.warmups.get(k)] for k, v in t.epochs.items()],
                 "lrrr", formats=[None, ".2f", ",.0f", ".2f"], missing="")]
    lines += ["", "`compiled`: the fast options plus `trainer.compile` (the parts that do not change with the arch); "
              "its warm-up epoch includes the compilation."]
    if t.concurrent:
        c = t.concurrent
        lines += ["", f"**{c['trainings']} trainings at once** (fast way, uniform, one process each, seeds "
                  f"0..{c['trainings'] - 1}): one epoch each in {c['wall_s']:.2f} s, {c['images_per_s']:,.0f} images/s "
                  f"together against {c['single_images_per_s']:,.0f} for one: {c['gain']:.2f}x."]
    lines += ["", markdown_table([f"scoring ({n_test} held-out images per arch)", "archs/s"],
                                 [[k, v] for k, v in t.scoring.items()], "lr", formats=[None, ".2f"])]
    if t.projection:
        lines += ["", f"**Projection** (not a measurement): {FULL_EPOCHS} epochs x {FULL_TRAIN_IMAGES:,} images, then "
                  f"{FULL_ARCHS:,} archs x {FULL_SCORE_IMAGES:,} images with recalibration, scaled linearly from the "
                  "rates above.", "", markdown_table(
                      ["way", "training", "scoring", "total"],
                      [[k, f"{v['train_s'] / 60:.1f} min", f"{v['score_s'] / 60:.1f} min", f"{v['total_s'] / 3600:.2f} h"]
                       for k, v in t.projection.items()], "lrrr")]
    Path(f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines) if complete else f"bench_gpu: partial table written to {stem}.md", flush=True)


if __name__ == "__main__":
    main()

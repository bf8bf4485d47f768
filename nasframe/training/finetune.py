"""Fine-tuning a trained supernet between a selector's decisions.

Perturbation-based selection ("Rethinking Architecture Selection in Differentiable NAS", Wang et al., DARTS-PT)
trains the supernet a few more steps after each decision, at a constant learning rate, with a fresh optimiser,
on freshly shuffled training batches. :func:`finetune` does that with any sampler (the trained one, which keeps
training a differentiable method's undecided choices, or a uniform one over the space still open); the run's
own optimiser, schedule, data order and checkpoints are left alone.
"""

from __future__ import annotations

import torch

from nasframe.data.base import CyclingBatches, InMemoryLoader
from nasframe.sampling.base import PathSampler
from nasframe.training.trainer import SupernetTrainer


def finetune(trainer: SupernetTrainer, sampler: PathSampler, steps: int, lr: float, seed: int = 0) -> float:
    """``steps`` training steps of ``trainer``'s supernet with ``sampler``'s paths at a constant ``lr`` (a fresh
    optimiser), on training batches drawn with ``seed``; returns the mean loss."""
    optimizer = trainer.build_optimizer(lr)
    loader = trainer.loader
    batches = CyclingBatches(InMemoryLoader(loader.split, loader.batch_size, seed=seed, transform=loader.transform))
    sampler.to(trainer.device)
    trainer.supernet.train()
    total = torch.zeros((), device=trainer.device)
    for _ in range(steps):
        x, y = next(batches)
        total += trainer.apply_step(sampler, optimizer, x.to(trainer.device), y.to(trainer.device)).loss
    trainer.step.raise_if_nonfinite("while fine-tuning")
    return total.item() / max(steps, 1)

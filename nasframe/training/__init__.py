"""Supernet training: the loop, the optimiser, checkpoints and logging."""

from nasframe.training.trainer import SupernetTrainer, TrainerConfig

__all__ = ["SupernetTrainer", "TrainerConfig"]

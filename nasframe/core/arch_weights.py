"""ArchitectureWeights: what a differentiable method's architecture parameters give a selector.

A differentiable sampler (DARTS, "DARTS: Differentiable Architecture Search", Liu et al.) keeps one weight
vector per choice. Magnitude selection reads the weights (``softmax(alpha)``); perturbation selection
("Rethinking Architecture Selection in Differentiable NAS", Wang et al.) reads the current mixture and fixes
choices one at a time while the rest keeps training. Selectors that need this declare
``needs_architecture_weights`` and receive an object of this type; the training method behind it is unknown to
them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

import torch

from nasframe.core.modules import Mixture


class ArchitectureWeights(ABC):
    """Architecture parameters: per-choice weights, the mixture they define, and choices fixed to one option."""

    @abstractmethod
    def weights(self) -> dict[str, torch.Tensor]:
        """Each choice's weights over its options (``softmax(alpha_c)``, detached), in the choice's option order."""

    @abstractmethod
    def mixture(self, differentiable: bool = False) -> Mixture:
        """The current mixture: fixed choices by option name, the others by their weights."""

    @property
    @abstractmethod
    def fixed(self) -> Mapping[str, str]:
        """The choices fixed to one option so far (choice -> option)."""

    @abstractmethod
    def fix(self, decisions: Mapping[str, str]) -> None:
        """Run these choices as their single given option from now on (their weights are no longer trained)."""

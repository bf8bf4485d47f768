"""The evaluation network: the larger network a space trains a found arch as (``nasframe train train.network=eval``).

DARTS ("DARTS: Differentiable Architecture Search", Liu et al., ICLR 2019) searches on a small stack of cells and
evaluates the found genotype on a deeper, wider one (20 cells, C=36 on CIFAR-10) with two regularisers the
training loop must drive: drop path, whose probability rises over training, and an auxiliary classifier at 2/3
depth whose loss is added with a weight. A space that has such a network sets ``SearchSpace.has_eval_network``
and returns a subclass of :class:`EvaluationNetwork` from ``build_eval_network``.
"""

from __future__ import annotations

from torch import nn


class EvaluationNetwork(nn.Module):
    """Base of evaluation networks.

    - ``drop_path_prob``: settable at any time; :meth:`apply_drop_path_prob` passes it to the cells.
    - ``auxiliary_head``: a module, or None; with one, ``forward`` returns ``(logits, auxiliary_logits)`` in
      training mode and ``logits`` in eval mode.
    """

    def __init__(self) -> None:
        super().__init__()
        self.auxiliary_head: nn.Module | None = None
        self._drop_path_prob = 0.0

    @property
    def drop_path_prob(self) -> float:
        return self._drop_path_prob

    @drop_path_prob.setter
    def drop_path_prob(self, value: float) -> None:
        self._drop_path_prob = float(value)
        self.apply_drop_path_prob(self._drop_path_prob)

    def apply_drop_path_prob(self, probability: float) -> None:
        """Set the drop-path probability of every cell."""
        raise NotImplementedError

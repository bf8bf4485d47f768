"""jacov (``jacob_cov``): how uncorrelated the input gradients of different examples are.

From "Neural Architecture Search without Training" (Mellor et al., arXiv:2006.04647 v1, 2020), the score that
"Zero-Cost Proxies for Lightweight NAS" (Abdelfattah et al., ICLR 2021) evaluates as ``jacob_cov``. For one batch
``x_1 .. x_N`` the Jacobian ``J`` has one row per example, ``J_i = d(sum of the network's outputs on the
batch)/dx_i`` flattened; with ``C`` the correlation matrix of the rows (N x N) and ``v`` its eigenvalues,

    jacob_cov = -sum_j ( log(v_j + k) + 1 / (v_j + k) ),   k = 1e-5

Each term ``-(log v + 1/v)`` is largest at ``v = 1`` and the eigenvalues of ``C`` sum to ``N``, so the score is
highest when the examples' gradients are uncorrelated (``C`` the identity): the paper's sign of a network
that tells its inputs apart at initialisation. In BatchNorm's
training mode the outputs of one example depend on the others, so ``J_i`` includes those terms, as in the
papers' code. A row with zero variance has no correlation: the score is then NaN (the evaluator ranks it last);
so is a network whose output does not depend on its input at all (NB201's all-``none`` cell: ``J = 0``).
The correlation and its eigenvalues are computed in float64 (``C`` is symmetric: real eigenvalues).

Defaults from the proxy paper's code (SamsungLabs/zero-cost-nas, ``foresight/pruners/measures/jacob_cov.py``
and ``nasbench2_pred.py``): one batch of 64 real training images, PyTorch's default initialisation, BatchNorm in
training mode. Image networks only: a graph network's input is node ids, not a differentiable input.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nasframe.evaluation.zero_cost.base import PROXIES, Proxy, ProxyBatch, ProxySettings

#: the regulariser of the eigenvalues in the score (the papers' value)
K = 1e-5


def jacob_cov_score(jacobian: torch.Tensor, k: float = K) -> float:
    """The score of a Jacobian with one (flattened) row per example; NaN when a row has zero variance."""
    corr = torch.atleast_2d(torch.corrcoef(jacobian.reshape(len(jacobian), -1).double()))  # 1 x 1 for one row
    if not torch.isfinite(corr).all():
        return math.nan
    eigenvalues = torch.linalg.eigvalsh(corr)
    return -(torch.log(eigenvalues + k) + 1.0 / (eigenvalues + k)).sum().item()


@PROXIES.register("jacov")
class JacobCov(Proxy):
    name = "jacov"
    components = ("jacov",)
    paper = "Neural Architecture Search without Training"
    settings = ProxySettings(init="default", bn="train", input="real", batch_size=64)
    supports_graphs = False

    def compute(self, net: nn.Module, batch: ProxyBatch) -> dict[str, float]:
        if batch.is_graph:
            raise ValueError("jacob_cov is defined for image networks, not graph networks")
        x = batch.inputs[0].detach().clone().requires_grad_(True)
        net.zero_grad(set_to_none=True)
        out = net(x).sum()
        if not out.requires_grad:  # nothing depends on the input or on a parameter
            return {"jacov": math.nan}
        (jacobian,) = torch.autograd.grad(out, x, allow_unused=True)
        if jacobian is None:  # the output ignores the input: J = 0, every row of zero variance
            return {"jacov": math.nan}
        return {"jacov": jacob_cov_score(jacobian)}

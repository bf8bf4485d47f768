"""AZ-NAS: four complementary zero-cost proxies from one forward and backward pass.

From "AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search" (Lee & Ham, CVPR 2024). The
network is read at its *stage features* ``f_0, ..., f_L`` (see below). With ``p_l`` the eigenvalues of the
covariance of ``f_l`` 's channel vectors normalised to sum to one, and ``H(p) = -sum_i p_i log p_i``:

- **expressivity** ``s_e = sum_l H(p_l)``: how isotropic (evenly spread over channels) each feature space is;
  a stage of ``d`` channels contributes at most ``log d`` (isotropic features) and 0 for rank-1 features;
- **progressivity** ``s_p = min_l (H(p_l) - H(p_{l-1}))``: the smallest gain in isotropy from one stage to
  the next (deeper stages should spread features further);
- **trainability** ``s_t = 1/L sum_l (2 - sigma_l - 1/sigma_l)``, ``sigma_l`` the spectral norm of the
  Jacobian of ``f_l`` with respect to ``f_{l-1}``, estimated as in the paper from one vector-Jacobian product:
  a Rademacher vector ``g_l`` (entries +-1) on ``f_l`` is pulled back to ``g_{l-1} = J_l^T g_l`` and
  ``M_l = mean over positions of g_{l-1} g_l^T`` (channels x channels; where ``f_{l-1}`` has ``s`` times the
  resolution of ``f_l``, ``s x s`` patches of it are folded into channels first), ``sigma_l = ||M_l||_2``.
  The term is 0 at ``sigma = 1`` and negative otherwise; an identity stage (``g_{l-1} == g_l``) scores
  ``-inf``, and ``sigma_l`` gets ``+1e-6`` in the reciprocal, as in the authors' code;
- **complexity**: FLOPs, the multiply-accumulates of one example (:func:`~.flops.count_macs`).

All four are oriented higher-is-better as in the paper, which ranks an arch by the sum over the four of
``log(rank / m)`` (:mod:`.combine`; the evaluator applies it when the four components are configured).

**Stage features.** The authors' NAS-Bench-201 code reads the stem's output and the output of every cell
and residual reduction block (1 + 3N + 2 maps). Generically, for any image network: the *block container*
is the longest ``nn.Sequential`` / ``nn.ModuleList`` among the network's direct children (the first on
ties; NB201's ``cells``, DARTS's ``cells``, MobileNet's ``stages``); the stage features are the input of
its first block (captured by a forward pre-hook: the first tensor argument) followed by the output of each
block (forward hooks), in call order. On NB201 this is exactly the authors' choice. Features must be
``(B, C, H, W)`` maps (or ``(B, C)`` vectors).

**Deviations from the authors' code** (none changes a finite value beyond rounding): the covariance and its
eigenvalues are computed in float64, tiny negative eigenvalues are clamped to zero and ``0 log 0 = 0`` is
used instead of ``log(p + 1e-8)``; a stage with no variance at all (a dead cell: every eigenvalue zero)
has an undefined spectrum and makes expressivity and progressivity NaN, which the evaluator ranks last
(the authors' code maps the same NaN to ``-inf``); a stage that does not depend on its predecessor (a dead
cell again) has a zero Jacobian, ``sigma = 0``. FLOPs are counted on (at most) two examples of the batch and
divided by their number, which equals one example's MACs (convolutions and matrix products scale with the
batch) and avoids BatchNorm's refusal of a single value per channel in train mode.

Paper settings (the authors' code): Kaiming-normal fan-in initialisation, BatchNorm with batch statistics,
a batch of 64 standard Gaussian images.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nasframe.evaluation.zero_cost.base import PROXIES, Proxy, ProxyBatch, ProxySettings
from nasframe.evaluation.zero_cost.flops import count_macs

#: added to sigma in the reciprocal of the trainability term, as in the authors' code
SIGMA_EPS = 1e-6


def block_container(net: nn.Module) -> nn.Module:
    """The longest ``nn.Sequential`` / ``nn.ModuleList`` among ``net`` 's direct children (first on ties)."""
    best: nn.Module | None = None
    for child in net.children():
        if isinstance(child, (nn.Sequential, nn.ModuleList)) and (best is None or len(child) > len(best)):
            best = child
    if best is None or len(best) < 1:
        raise ValueError(f"AZ-NAS reads the stage features of a network's blocks: {type(net).__name__} has no "
                         "direct child that is an nn.Sequential or nn.ModuleList of blocks")
    return best


def stage_features(net: nn.Module, inputs: torch.Tensor) -> list[torch.Tensor]:
    """Run ``net(inputs)`` and return its stage features: the input of the block container's first block and
    the output of each of its blocks (see the module docstring), with their autograd graph."""
    blocks = list(block_container(net))
    features: list[torch.Tensor] = []

    def take_input(module: nn.Module, args: tuple) -> None:
        if not features:
            features.extend(a for a in args[:1] if isinstance(a, torch.Tensor))

    def take_output(module: nn.Module, args: tuple, output: object) -> None:
        if not isinstance(output, torch.Tensor):
            raise ValueError(f"AZ-NAS: block {type(module).__name__} returned {type(output).__name__}, not a tensor")
        features.append(output)

    handles = [blocks[0].register_forward_pre_hook(take_input)]
    handles += [block.register_forward_hook(take_output) for block in blocks]
    try:
        net(inputs)
    finally:
        for handle in handles:
            handle.remove()
    if len(features) < 2:
        raise ValueError("AZ-NAS needs at least two stage features (a block container that the forward pass uses)")
    return features


def channel_rows(feature: torch.Tensor) -> torch.Tensor:
    """A feature as rows of channel vectors: ``(B, C, H, W) -> (B*H*W, C)``, ``(B, C)`` as it is."""
    if feature.dim() == 4:
        return feature.permute(0, 2, 3, 1).reshape(-1, feature.shape[1])
    if feature.dim() == 2:
        return feature
    raise ValueError(f"AZ-NAS stage features are (B, C, H, W) or (B, C), got shape {tuple(feature.shape)}")


def spectral_entropy(feature: torch.Tensor) -> float:
    """``H(p)`` of the normalised eigenvalues ``p`` of the channel covariance of ``feature`` (natural log);
    NaN when the feature has no variance."""
    rows = channel_rows(feature.detach()).double()
    rows = rows - rows.mean(dim=0, keepdim=True)
    covariance = rows.T @ rows / rows.shape[0]
    eigenvalues = torch.linalg.eigvalsh(covariance).clamp(min=0)
    total = eigenvalues.sum()
    if total <= 0:
        return math.nan
    return float(torch.special.entr(eigenvalues / total).sum())


def fold_resolution(grad_in: torch.Tensor, out_shape: torch.Size) -> torch.Tensor:
    """Fold ``s x s`` patches of a higher-resolution map into channels so that it has ``out_shape`` 's resolution
    (zero-padded to a multiple of ``s`` when the sizes do not divide)."""
    if grad_in.dim() != 4 or len(out_shape) != 4 or grad_in.shape[2:] == out_shape[2:]:
        return grad_in
    (h_in, w_in), (h_out, w_out) = grad_in.shape[2:], out_shape[2:]
    stride = -(-h_in // h_out)
    if h_in < h_out or w_in < w_out or -(-w_in // w_out) != stride:
        raise ValueError(f"AZ-NAS: cannot match a {h_in}x{w_in} map to a {h_out}x{w_out} map by strided folding")
    grad_in = F.pad(grad_in, (0, w_out * stride - w_in, 0, h_out * stride - h_in))
    return F.pixel_unshuffle(grad_in, stride)


def jacobian_score(f_in: torch.Tensor, f_out: torch.Tensor) -> float:
    """``2 - sigma - 1/(sigma + 1e-6)`` for the stage ``f_in -> f_out`` (``-inf`` for an identity stage)."""
    grad_out = torch.empty_like(f_out).bernoulli_(0.5).mul_(2).sub_(1)
    grad_in = None
    if f_in.requires_grad and f_out.requires_grad:
        (grad_in,) = torch.autograd.grad(f_out, f_in, grad_out, retain_graph=True, allow_unused=True)
    if grad_in is None:  # f_out does not depend on f_in: a zero Jacobian
        grad_in = torch.zeros_like(f_in)
    if grad_in.shape == grad_out.shape and torch.equal(grad_in, grad_out):
        return -math.inf
    grad_in = fold_resolution(grad_in, grad_out.shape)
    rows_in, rows_out = channel_rows(grad_in), channel_rows(grad_out)
    if rows_in.shape[0] != rows_out.shape[0]:
        raise ValueError(f"AZ-NAS: stage features {tuple(f_in.shape)} -> {tuple(f_out.shape)} do not align")
    sigma = float(torch.linalg.matrix_norm(rows_in.T @ rows_out / rows_out.shape[0], ord=2))
    return 2.0 - sigma - 1.0 / (sigma + SIGMA_EPS)


def az_nas_components(net: nn.Module, inputs: torch.Tensor) -> dict[str, float]:
    """Expressivity, progressivity and trainability of ``net`` on ``inputs`` (as prepared: init, BN mode)."""
    with torch.enable_grad():
        features = stage_features(net, inputs)
        entropies = torch.tensor([spectral_entropy(f) for f in features], dtype=torch.float64)
        # the authors draw the Rademacher vectors from the last stage backwards
        stages = [jacobian_score(features[i - 1], features[i]) for i in reversed(range(1, len(features)))]
    return {
        "az_expressivity": float(entropies.sum()),
        "az_progressivity": float(torch.diff(entropies).min()),
        "az_trainability": float(torch.tensor(stages, dtype=torch.float64).mean()),
    }


@PROXIES.register("az_nas")
class AZNAS(Proxy):
    name = "az_nas"
    components = ("az_expressivity", "az_progressivity", "az_trainability", "az_complexity")
    paper = "AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search (Lee & Ham, CVPR 2024)"
    settings = ProxySettings(init="kaiming_fan_in", bn="train", input="noise", batch_size=64)
    supports_graphs = False

    def compute(self, net: nn.Module, batch: ProxyBatch) -> dict[str, float]:
        if batch.is_graph:
            raise ValueError("AZ-NAS reads convolutional feature maps: it is defined for image networks")
        inputs = batch.inputs[0]
        values = az_nas_components(net, inputs)
        sample = inputs[:2]
        values["az_complexity"] = count_macs(net, sample) / len(sample)
        return values

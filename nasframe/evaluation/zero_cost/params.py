"""#params: the number of trainable parameters of the network.

The trivial baseline that every training-free proxy must beat: on NAS-Bench-201 CIFAR-10 it ranks all 15,625
cells at Kendall tau 0.578 (as re-run in "Training-free Neural Architecture Search through Variance of
Knowledge of Deep Network Weights", CVPR 2025, Table 1, and measured here). It reads the structure only: the
network is built on the meta device (no memory, no initialisation).
"""

from __future__ import annotations

from torch import nn

from nasframe.evaluation.zero_cost.base import PROXIES, Proxy, ProxyBatch, ProxySettings


@PROXIES.register("params")
class Params(Proxy):
    name = "params"
    components = ("params",)
    paper = "baseline: parameter count"
    settings = ProxySettings(input="none")
    structural = True

    def compute(self, net: nn.Module, batch: ProxyBatch) -> dict[str, float]:
        return {"params": float(sum(p.numel() for p in net.parameters() if p.requires_grad))}

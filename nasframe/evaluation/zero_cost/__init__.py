"""Training-free (zero-cost) proxies and the evaluator that scores archs with them."""

from nasframe.evaluation.zero_cost.base import PROXIES, Proxy, ProxyBatch, ProxySettings
from nasframe.evaluation.zero_cost.evaluator import ZeroCostConfig, ZeroCostEvaluator

__all__ = ["PROXIES", "Proxy", "ProxyBatch", "ProxySettings", "ZeroCostConfig", "ZeroCostEvaluator"]

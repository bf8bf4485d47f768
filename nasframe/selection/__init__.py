"""Selectors: pick an arch from a space given an evaluator (supernet or benchmark)."""

from nasframe.selection.base import Evaluation, SelectionResult, Selector, build_selector
from nasframe.selection.constraints import Constraint, ParamBudget

__all__ = ["Constraint", "Evaluation", "ParamBudget", "SelectionResult", "Selector", "build_selector"]

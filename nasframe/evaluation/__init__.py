"""Scoring archs with inherited supernet weights."""

from nasframe.evaluation.bn import recalibrate_batchnorm
from nasframe.evaluation.evaluator import EvaluatorConfig, SupernetEvaluator, accuracy

__all__ = ["EvaluatorConfig", "SupernetEvaluator", "accuracy", "recalibrate_batchnorm"]

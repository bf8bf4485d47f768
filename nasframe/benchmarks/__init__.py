"""Tabular benchmarks: ground truth for archs, keyed by their native strings."""

from nasframe.benchmarks.base import TabularBenchmark, build_benchmark

__all__ = ["TabularBenchmark", "build_benchmark"]

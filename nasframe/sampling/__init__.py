"""Path samplers: which arch the supernet trains at each step."""

from nasframe.sampling.base import PathSampler, build_sampler

__all__ = ["PathSampler", "build_sampler"]

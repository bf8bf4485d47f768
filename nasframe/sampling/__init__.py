"""Path samplers: which arch the supernet trains at each step."""

from nasframe.sampling.base import PathGroup, PathSampler, build_sampler

__all__ = ["PathGroup", "PathSampler", "build_sampler"]

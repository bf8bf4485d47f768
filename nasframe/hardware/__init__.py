"""Hardware: describing the device that a measurement ran on (latency measurement and prediction follow)."""

from nasframe.hardware.device import describe_device

__all__ = ["describe_device"]

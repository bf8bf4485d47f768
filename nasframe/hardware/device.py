"""A one-line description of a device, for the header of every committed measurement."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def describe_device(device: torch.device | str = "cpu") -> str:
    """``"NVIDIA H100 80GB HBM3"`` for a GPU; CPU model, visible cores and torch threads for the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {model}, {os.cpu_count()} logical cores visible, {torch.get_num_threads()} torch threads"

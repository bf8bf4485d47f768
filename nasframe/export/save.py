"""Save an exported subnet: state dict, arch (JSON + native string) and a ``torch.export`` program.

The ``.pt2`` file is a ``torch.export`` ExportedProgram in eval mode with a dynamic batch dimension (graph
networks: any number of nodes and edges); it loads with plain torch and no nasframe import::

    import torch
    model = torch.export.load("subnet.pt2").module()
    logits = model(images)              # image spaces
    logits = model(x, edge_index)       # graph spaces (PyG's node features and edge_index)
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasframe.core.arch import Arch
from nasframe.core.space import SearchSpace
from nasframe.training.checkpoint import save_atomic


@dataclass
class ExportPaths:
    state_dict: Path
    arch_json: Path
    program: Path | None


def arch_record(space: SearchSpace, arch: Arch, **extra: Any) -> dict[str, Any]:
    """What ``arch.json`` holds: the space (name, settings, data spec), the arch, its native string."""
    return {"space": space.describe(), "arch": arch.to_dict(), "native": space.format(arch), **extra}


def save_export(
    out_dir: str | Path,
    space: SearchSpace,
    arch: Arch,
    subnet: nn.Module,
    *,
    torch_export: bool = True,
    extra: dict[str, Any] | None = None,
) -> ExportPaths:
    """Write ``subnet_state_dict.pt``, ``arch.json`` and (optionally) ``subnet.pt2`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_path = save_atomic({k: v.detach().cpu() for k, v in subnet.state_dict().items()}, out / "subnet_state_dict.pt")
    arch_path = out / "arch.json"
    arch_path.write_text(json.dumps(arch_record(space, arch, **(extra or {})), indent=2) + "\n")
    program_path = None
    if torch_export:
        program_path = out / "subnet.pt2"
        export_program(subnet, *space.example_inputs(), program_path)
    return ExportPaths(state_path, arch_path, program_path)


def export_program(subnet: nn.Module, example: tuple[torch.Tensor, ...], dynamic_shapes: tuple[dict[int, Any], ...],
                   path: Path) -> Path:
    """``torch.export`` the subnet in eval mode on CPU with the dynamic dimensions of ``dynamic_shapes`` (as
    :meth:`~nasframe.core.space.SearchSpace.example_inputs` gives them), and save it."""
    was_training = subnet.training
    device = next(subnet.parameters()).device
    model = subnet.eval().cpu()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.export.export(model, tuple(example), dynamic_shapes=tuple(dynamic_shapes))
        torch.export.save(program, str(path))
    finally:
        subnet.to(device).train(was_training)
    return path

"""Load an exported subnet back as a torch module, without unpickling anything.

``arch.json`` (plain JSON) names the space, its settings, the data spec and the arch; the space rebuilds the
standalone network and ``subnet_state_dict.pt`` is read with ``torch.load(weights_only=True)`` (tensors only).
The space named in ``arch.json`` resolves only to a registered or entry-point space: a ``module:attr`` path there is
refused without importing the module (``allow_import=True`` lifts this for an export you trust). An export from an
untrusted source can therefore not run code when loaded, beyond the installed spaces it names. (``subnet.pt2``
programs are loaded with ``torch.export.load``, which also does not unpickle arbitrary objects.)
"""

from __future__ import annotations

import json
import pickle
import struct
import zipfile
from pathlib import Path

import torch
from torch import nn

from nasframe.core.space import space_from_description
from nasframe.errors import CheckpointError, UnknownNameError


def load_export(export_dir: str | Path, map_location: str | torch.device = "cpu", *,
                allow_import: bool = False) -> nn.Module:
    """The subnet saved by :func:`~nasframe.export.save.save_export` in ``export_dir``, in eval mode.

    ``allow_import=True`` also resolves a ``module:attr`` space name in ``arch.json`` by importing the module: only
    for an export you trust, since importing runs the module's code."""
    out = Path(export_dir)
    record_path, state_path = out / "arch.json", out / "subnet_state_dict.pt"
    for path in (record_path, state_path):
        if not path.is_file():
            raise CheckpointError(f"no export at {out}: {path.name} is missing")
    try:
        record = json.loads(record_path.read_text())
        space = space_from_description(record["space"], source=str(record_path), allow_import=allow_import)
        arch = space.validate(record["arch"])
    except UnknownNameError:
        raise  # an unknown or refused space name: its message names it (and the file)
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{record_path} is not a nasframe arch record ({type(exc).__name__}: {exc})") from None
    try:
        state = torch.load(state_path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refusing to load {state_path}: it holds objects other than tensors ({exc})".splitlines()[0]
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, struct.error, ValueError) as exc:
        raise CheckpointError(f"cannot read {state_path}: corrupt or not a torch file ({exc})".splitlines()[0]) from None
    subnet = space.build_subnet(arch)
    try:
        subnet.load_state_dict(state, strict=True)
    except (RuntimeError, AttributeError) as exc:
        raise CheckpointError(f"{state_path} does not fit the network of {record_path}: {str(exc).splitlines()[0]}") from None
    return subnet.to(map_location).eval()

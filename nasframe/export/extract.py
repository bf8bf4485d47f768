"""``extract``: the standalone subnet of an arch with the supernet's weights (OFA's ``get_active_subnet``).

The space builds the standalone network of the arch; the supernet's path state dict (every choice module
replaced by its active op, see :func:`~nasframe.core.modules.path_state_dict`) is loaded into it strictly,
so a key that does not match is an error rather than a silently random weight. The subnet computes the same
function as the supernet with the arch active.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from nasframe.core.modules import Supernet, path_state_dict
from nasframe.core.space import SearchSpace


def extract(space: SearchSpace, supernet: Supernet, arch: Mapping[str, str]) -> nn.Module:
    """A standalone module for ``arch`` holding copies of the supernet's weights (same device, same mode)."""
    arch = space.validate(arch)
    supernet.set_arch(arch)
    device = next(supernet.parameters()).device
    subnet = space.build_subnet(arch).to(device)
    with torch.no_grad():
        subnet.load_state_dict({k: v.detach() for k, v in path_state_dict(supernet).items()}, strict=True)
    subnet.train(supernet.training)
    return subnet

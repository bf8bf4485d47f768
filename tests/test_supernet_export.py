"""NAS-Bench-201 exports beyond the conformance suite (tests/test_space_conformance.py, which checks that the
subnet equals the supernet path, that the zero op never runs in either, and routing): the fast scoring network
skips ``none`` edges too, the exported program runs in an interpreter without nasframe, and ``load_export``
unpickles nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from nasframe.export import extract, save_export
from test_space_conformance import NB201_SPECIAL as SPECIAL


def _trained_supernet(space, rng, steps=3):
    """A supernet whose BN statistics and weights moved off their init (so equality is not trivial)."""
    supernet = space.build_supernet()
    opt = torch.optim.SGD(supernet.parameters(), lr=0.1)
    x = torch.randn(16, *space.data.input_shape)
    y = torch.randint(0, space.data.num_classes, (16,))
    supernet.train()
    for _ in range(steps):
        supernet.set_arch(space.sample(rng))
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(supernet(x), y).backward()
        opt.step()
    return supernet


def test_the_fast_scoring_network_skips_none_edges(cifar_like_space, rng):
    """The ``none`` op does not run in the fast scoring pass (BN folded) either, on an arch with zero nodes that
    feed other ops (the supernet and the plain subnet: the conformance suite)."""
    from nasframe.core.modules import is_zero_op
    from nasframe.evaluation.scoring import scoring_network

    space = cifar_like_space
    supernet = _trained_supernet(space, rng)
    arch = space.parse(SPECIAL[1])
    folded = scoring_network(extract(space, supernet, arch), fold_bn=True, dtype=torch.float32, channels_last=False)
    zeros = [module for module in folded.modules() if is_zero_op(module)]
    calls = []
    for module in zeros:
        module.register_forward_hook(lambda *_: calls.append(1))
    assert zeros  # there are none ops to skip
    with torch.no_grad():
        folded(torch.randn(4, *space.data.input_shape))
    assert calls == []


def test_exported_program_runs_in_a_fresh_interpreter_without_nasframe(cifar_like_space, rng, tmp_path):
    space = cifar_like_space
    supernet = _trained_supernet(space, rng).eval()
    arch = space.parse(SPECIAL[1])
    subnet = extract(space, supernet, arch)
    paths = save_export(tmp_path, space, arch, subnet)
    x = torch.randn(5, *space.data.input_shape)
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        torch.save(supernet(x), tmp_path / "expected.pt")
    script = textwrap.dedent(
        f"""
        import sys, torch
        model = torch.export.load({str(paths.program)!r}).module()
        x = torch.load({str(tmp_path / 'x.pt')!r})
        diff = (model(x) - torch.load({str(tmp_path / 'expected.pt')!r})).abs().max().item()
        one = model(x[:1]).shape
        assert not any(m == 'nasframe' or m.startswith('nasframe.') or m.startswith('search_spaces') for m in sys.modules)
        print(diff, tuple(one))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=True)
    diff, shape = out.stdout.split(maxsplit=1)
    assert float(diff) <= 1e-6 and shape.strip() == "(1, 10)"
    record = json.loads(paths.arch_json.read_text())
    assert record["native"] == SPECIAL[1] and record["space"]["name"] == "nb201"
    state = torch.load(paths.state_dict, weights_only=True)
    reloaded = space.build_subnet(space.parse(record["native"]))
    reloaded.load_state_dict(state)
    with torch.no_grad():
        assert (reloaded.eval()(x) - subnet.eval()(x)).abs().max().item() == 0.0


def test_load_export_rebuilds_the_subnet_from_json_and_tensors_only(cifar_like_space, rng, tmp_path):
    from nasframe.errors import CheckpointError
    from nasframe.export import load_export

    space = cifar_like_space
    supernet = _trained_supernet(space, rng).eval()
    arch = space.parse(SPECIAL[3])
    subnet = extract(space, supernet, arch)
    save_export(tmp_path, space, arch, subnet, torch_export=False)
    x = torch.randn(4, *space.data.input_shape)
    with torch.no_grad():
        assert torch.equal(load_export(tmp_path)(x), subnet.eval()(x))

    marker = tmp_path / "payload_ran"

    class Payload:  # unpickling this would run a shell command
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    torch.save({"cells.0.weight": Payload()}, tmp_path / "subnet_state_dict.pt")
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_export(tmp_path)
    assert not marker.exists()
    (tmp_path / "arch.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not a nasframe arch record"):
        load_export(tmp_path)

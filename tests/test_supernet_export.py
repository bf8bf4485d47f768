"""Supernet path == standalone subnet; single-path training touches only the active path; export runs without nasframe."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from nasframe.core.modules import OpChoice, path_state_dict
from nasframe.export import extract, save_export
from nasframe.errors import InvalidArchError

SPECIAL = [
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # every node zero
    "|none~0|+|none~0|none~1|+|nor_conv_3x3~0|avg_pool_3x3~1|skip_connect~2|",  # zero nodes feeding ops
    "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
]


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


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_subnet_equals_supernet_path(cifar_like_space, rng, mode):
    space = cifar_like_space
    supernet = _trained_supernet(space, rng)
    archs = [space.parse(s) for s in SPECIAL] + [space.sample(rng) for _ in range(6)]
    x = torch.randn(8, *space.data.input_shape)
    for arch in archs:
        supernet.train(mode == "train")
        subnet = extract(space, supernet, arch)
        assert subnet.training == (mode == "train")
        with torch.no_grad():
            diff = (supernet(x) - subnet(x)).abs().max().item()
        assert diff <= 1e-6, (space.format(arch), diff)


def test_extract_copies_weights_and_counts_only_the_path(cifar_like_space, rng):
    space = cifar_like_space
    supernet = _trained_supernet(space, rng)
    arch = space.parse(SPECIAL[3])
    subnet = extract(space, supernet, arch)
    path = path_state_dict(supernet)
    for name, value in subnet.state_dict().items():
        assert torch.equal(value, path[name]) and value.data_ptr() != path[name].data_ptr()
    assert sum(p.numel() for p in subnet.parameters()) == space.count_params(arch)
    assert sum(p.numel() for p in subnet.parameters()) < sum(p.numel() for p in supernet.parameters())


def test_none_edges_are_skipped_not_multiplied_by_zero(cifar_like_space, rng):
    """The ``none`` op never runs: not in the supernet path, not in the extracted subnet, not in the fast scoring
    pass (BN folded), on an arch with zero nodes that feed other ops."""
    from nasframe.core.modules import is_zero_op
    from nasframe.evaluation.scoring import scoring_network

    space = cifar_like_space
    supernet = _trained_supernet(space, rng)
    arch = space.parse(SPECIAL[1])
    subnet = extract(space, supernet, arch)
    folded = scoring_network(extract(space, supernet, arch), fold_bn=True, dtype=torch.float32, channels_last=False)
    calls = []
    for net in (supernet, subnet, folded):
        for module in net.modules():
            if is_zero_op(module):
                module.register_forward_hook(lambda *_: calls.append(1))
    assert sum(is_zero_op(m) for m in supernet.modules()) > 0  # there are none ops to skip
    x = torch.randn(4, *space.data.input_shape)
    supernet.set_arch(arch)
    supernet.eval()
    with torch.no_grad():
        supernet(x), subnet.eval()(x), folded(x)
    supernet.train()
    supernet(x).sum().backward()
    assert calls == []


def test_single_path_step_only_touches_the_active_ops(cifar_like_space, rng):
    space = cifar_like_space
    supernet = space.build_supernet()
    arch = space.parse(SPECIAL[1])
    supernet.set_arch(arch)
    supernet.zero_grad(set_to_none=True)
    supernet(torch.randn(4, *space.data.input_shape)).sum().backward()
    for module in supernet.modules():
        if isinstance(module, OpChoice):
            for option, op in module.candidates.items():
                for p in op.parameters():
                    assert (p.grad is not None) == (option == arch[module.choice_name])


def test_set_arch_rejects_incomplete_archs(cifar_like_space):
    supernet = cifar_like_space.build_supernet()
    with pytest.raises(InvalidArchError, match="no option for choice 'edge_1_0'"):
        supernet.set_arch({})
    with pytest.raises(InvalidArchError, match="has no option 'conv'"):
        supernet.set_arch({name: "conv" for name in supernet.choice_names})


def test_failed_routing_never_leaves_a_stale_path(cifar_like_space, rng):
    space = cifar_like_space
    supernet = space.build_supernet()
    good = space.parse(SPECIAL[3])
    supernet.set_arch(good)
    half_bad = good.to_dict() | {"edge_3_2": "conv", "edge_1_0": "avg_pool_3x3"}
    with pytest.raises(InvalidArchError):
        supernet.set_arch(half_bad)  # edge_1_0 was routed before edge_3_2 failed
    assert supernet.active_arch is None
    supernet.set_arch(good)
    subnet = extract(space, supernet, good).eval()
    x = torch.randn(2, *space.data.input_shape)
    with torch.no_grad():
        assert torch.equal(supernet.eval()(x), subnet(x))


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

"""``trainer.compile``: the parts of a supernet that do not change with the arch are compiled, the routing and the
elastic layers are not, and training takes the same steps as eager training (also across a few-shot split and a
resume, where the supernet is deep-copied)."""

from __future__ import annotations

import copy
import logging

import pytest
import torch

from nasframe.core.elastic import ElasticLayer
from nasframe.core.modules import ChoiceModule
from nasframe.errors import ConfigError
from nasframe.training.compile import _RECOMPILE_LIMIT, _call_for, compile_fixed_parts, fixed_parts, is_arch_dependent
from nasframe.training.trainer import TrainerConfig
from test_fewshot import make_fewshot_trainer
from test_speed_options import max_weight_diff, two_steps
from test_trainer import make_trainer


def test_nb201_fixed_parts_are_the_stem_reductions_head_and_every_candidate_op(tiny_space):
    supernet = tiny_space.build_supernet()
    parts = dict(fixed_parts(supernet))
    assert {"stem", "head", "classifier", "cells.1", "cells.3"} <= set(parts)  # cells.1 / .3: the reductions
    candidates = {name.rsplit(".", 1)[1] for name in parts if ".candidates." in name}
    assert candidates == {"nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"}  # none and skip compute nothing
    assert not any(is_arch_dependent(module) for module in parts.values())
    # every weight of the supernet is in exactly one compiled part: all of the network's compute is compiled
    owned = [id(p) for module in parts.values() for p in module.parameters()]
    assert len(owned) == len(set(owned)) and set(owned) == {id(p) for p in supernet.parameters()}


def test_mobilenet_elastic_layers_and_choices_stay_eager():
    from search_spaces.mobilenet import MobileNetSpace
    from test_mobilenet import DIGITS, TINY

    supernet = MobileNetSpace(DIGITS, **TINY).build_supernet()
    parts = fixed_parts(supernet)
    assert parts  # the classifier at least
    for _, module in parts:
        assert not any(isinstance(m, (ChoiceModule, ElasticLayer)) for m in module.modules())


def test_compiling_keeps_the_state_dict_and_a_deep_copy_is_not_compiled(tiny_space):
    supernet = tiny_space.build_supernet()
    keys = list(supernet.state_dict())
    names = compile_fixed_parts(supernet, "default", backend="eager")
    assert names and list(supernet.state_dict()) == keys
    assert all(dict(supernet.named_modules())[n]._compiled_call_impl is not None for n in names)
    copied = copy.deepcopy(supernet)  # as a few-shot split copies it: the trainer compiles the copies again
    assert all(m._compiled_call_impl is None for m in copied.modules())
    assert compile_fixed_parts(supernet, "off") == []


def test_parts_of_one_structure_share_a_code_object_and_others_do_not(tiny_space):
    parts = dict(fixed_parts(tiny_space.build_supernet()))
    conv3 = [module for name, module in parts.items() if name.startswith("cells.0.") and name.endswith("nor_conv_3x3")]
    conv1 = [module for name, module in parts.items() if name.startswith("cells.0.") and name.endswith("nor_conv_1x1")]
    assert len(conv3) > 1 and len({_call_for(m).__code__ for m in conv3}) == 1  # one list of graphs for these
    assert _call_for(conv1[0]).__code__ is not _call_for(conv3[0]).__code__
    deeper = [module for name, module in parts.items() if name.startswith("cells.2.") and name.endswith("nor_conv_3x3")]
    assert _call_for(deeper[0]).__code__ is not _call_for(conv3[0]).__code__  # more channels: other shapes


class _LimitWatch(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_darts_search_never_reaches_dynamos_recompile_limit():
    """Training, recalibrating and scoring every option of a (small) DARTS supernet takes more graphs than one
    code object may hold: nn.Module.compile's shared code object runs the later parts eager, with a warning. With
    a code object per part structure none gets near the limit."""
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list

    from nasframe.core.arch import Arch
    from nasframe.core.space import DataSpec
    from search_spaces.darts import DARTSSpace

    space = DARTSSpace(DataSpec(3, (16, 16), 10), channels=4, layers=3)
    supernet = space.build_supernet()
    names = compile_fixed_parts(supernet, "default", backend="eager")
    modules = dict(supernet.named_modules())
    codes = {_call_for(modules[name]).__code__ for name in names}
    widest = max(len(choice) for choice in space.choices)
    covering = [Arch({c.name: c.options[k % len(c)] for c in space.choices}) for k in range(widest)]
    watch = _LimitWatch()
    logging.getLogger("torch._dynamo").addHandler(watch)
    try:
        x = torch.randn(2, 3, 16, 16)
        for mode in ("train", "recalibrate", "score"):
            supernet.train(mode != "score")
            for arch in covering:
                supernet.set_arch(arch)
                if mode == "train":
                    supernet(x).sum().backward()
                else:
                    with torch.no_grad():
                        supernet(x)
    finally:
        logging.getLogger("torch._dynamo").removeHandler(watch)
    graphs = [len(_debug_get_cache_entry_list(code)) for code in codes]
    assert not [m for m in watch.messages if "limit" in m]
    assert sum(graphs) > _RECOMPILE_LIMIT  # one shared list would have overflowed
    assert max(graphs) <= _RECOMPILE_LIMIT // 4


@pytest.mark.parametrize("space_name", ["darts", "mobilenet"])
def test_compiled_cell_and_elastic_supernets_compute_the_eager_outputs_and_gradients(space_name):
    """Every option of the DARTS and elastic MobileNet spaces through compiled parts (``aot_eager``: dynamo's
    capture and AOTAutograd's backward, with torch's kernels; inductor's kernels are what the NB201 and graph
    tests train with) gives eager's logits and gradients, on the same parameters."""
    from nasframe.core.arch import Arch
    from nasframe.core.space import DataSpec
    from search_spaces.darts import DARTSSpace
    from search_spaces.mobilenet import MobileNetSpace
    from test_mobilenet import TINY

    spec = DataSpec(3, (16, 16), 10)
    space = DARTSSpace(spec, channels=4, layers=3) if space_name == "darts" else MobileNetSpace(spec, **TINY)
    torch.manual_seed(0)
    eager = space.build_supernet()
    compiled = copy.deepcopy(eager)
    assert compile_fixed_parts(compiled, "default", backend="aot_eager")
    widest = max(len(choice) for choice in space.choices)
    x = torch.randn(4, 3, 16, 16)
    for k in range(widest):  # arch k takes option k of every choice: together, every option
        arch = Arch({c.name: c.options[k % len(c)] for c in space.choices})
        results = []
        for net in (eager, compiled):
            net.set_arch(arch)
            net.zero_grad(set_to_none=True)
            out = net(x)
            out.square().mean().backward()
            results.append((out.detach(), {n: p.grad for n, p in net.named_parameters() if p.grad is not None}))
        (out_e, grads_e), (out_c, grads_c) = results
        assert torch.allclose(out_c, out_e, atol=1e-5) and grads_c.keys() == grads_e.keys()
        assert all(torch.allclose(grads_c[n], grads_e[n], atol=1e-5) for n in grads_e), str(arch)


def test_compiled_training_takes_the_eager_steps(tiny_space, digits):
    eager, compiled = make_trainer(tiny_space, digits), make_trainer(tiny_space, digits, compile="default")
    assert compiled.compiled_parts and not eager.compiled_parts
    assert two_steps(compiled) == pytest.approx(two_steps(eager), abs=1e-4)
    assert max_weight_diff(eager, compiled) < 1e-4


def test_compiled_fewshot_training_trains_each_sub_supernet_itself(tiny_space, digits, tmp_path):
    """The split deep-copies the supernet (dropping compilation): the sub-supernets are compiled again and
    train as eager ones do."""
    settings = dict(epochs=2, choice="edge_1_0", warmup_fraction=0.5)
    eager = make_fewshot_trainer(tiny_space, digits, **settings)
    compiled = make_fewshot_trainer(tiny_space, digits, run_dir=tmp_path, trainer_settings={"compile": "default"},
                                    **settings)
    for trainer in (eager, compiled):
        trainer.fit(until_epoch=1)
    warm_start = {k: v.clone() for k, v in eager.supernet.state_dict().items()}
    for trainer in (eager, compiled):
        trainer.fit()
    assert any(name.startswith("supernets.4.") for name in compiled.compiled_parts)
    moved_eager, moved_compiled = sub_supernet_moves(eager, warm_start), sub_supernet_moves(compiled, warm_start)
    assert max(moved_eager) > 0.1  # the sub-supernets trained
    # fp32 compiled kernels sum in another order than eager ones: equal up to rounding, not bit for bit
    assert moved_compiled == pytest.approx(moved_eager, rel=0.02, abs=2e-3)
    assert max_weight_diff(eager, compiled) < 1e-2
    resumed = make_fewshot_trainer(tiny_space, digits, trainer_settings={"compile": "default"}, **settings)
    resumed.resume(tmp_path)
    assert any(name.startswith("supernets.4.") for name in resumed.compiled_parts)
    assert max_weight_diff(resumed, compiled) == 0.0


def sub_supernet_moves(trainer, warm_start: dict) -> list[float]:
    """For each sub-supernet, the largest change of a weight from the one-shot weights it was copied from."""
    state, moves = trainer.supernet.state_dict(), []
    for k in range(len(trainer.supernet.supernets)):
        prefix = f"supernets.{k}."
        moves.append(max((state[name] - warm_start[name[len(prefix):]]).abs().max().item()
                         for name in state if name.startswith(prefix) and state[name].is_floating_point()))
    return moves


def test_bad_compile_settings():
    with pytest.raises(ConfigError, match="trainer.compile: 'fast' is not one of off, default"):
        TrainerConfig(compile="fast").check()

"""Compile the parts of a supernet that do not change with the sampled arch.

A single-path step runs a different network every step, so compiling the whole supernet would recompile for every
path. Its pieces, though, are fixed networks: the stem, the reduction blocks, the head, and each candidate op of a
choice. :func:`compile_fixed_parts` compiles each maximal such piece in place (as ``nn.Module.compile`` does: the
module keeps its parameters and its state-dict keys, so checkpoints, export and path state dicts are unchanged),
and leaves the routing (cells, choice modules) and anything sized by the arch (elastic layers) eager. A compiled
piece needs a few graphs (one per input shape, mode, and whether its input needs a gradient: the input of a node
whose edges are all ``none`` does not), however many paths are sampled; on a GPU, fusing its ReLU / convolution /
BatchNorm kernels cuts the kernel launches that bound an eager step. Whether that saves more than the compiled
calls' guard checks cost is measured by ``scripts/bench_gpu.py`` (on the CPU it does not:
``results/bench_gpu_cpu.md``).

**One code object per part structure.** Dynamo keeps a code object's graphs in one list, checks a call's guards
against them, and past a limit of graphs runs the code eager, with one warning. ``nn.Module.compile`` gives every
module the same code object (its wrapper of ``Module._call_impl``), so all parts share one list: training,
recalibrating and scoring every option of the DARTS space (C=16, 8 cells) needs 133 graphs, past dynamo's limit,
and the parts met after it run eager. Here parts of one structure (module types, parameter and buffer shapes) share
a code object of their own, hence their graphs, and a call checks only those. ``scripts/bench_compile_dispatch.py``
measures both ways' host cost per step (``results/compile_dispatch_cpu.md``).

A piece is *fixed* when no module in it is a :class:`~nasframe.core.modules.ChoiceModule` or an elastic layer (a
module with ``active_state_dict``, :mod:`nasframe.core.elastic`). Modules that compute nothing worth a graph (the
``none`` op, identities, dropout, a parameter-free activation on its own: one kernel, nothing to fuse) and
containers without a forward of their own (``ModuleDict``, ``ModuleList``) are not compiled; the latter's members
are.

Random ops keep eager training's numbers: compiling sets inductor's ``fallback_random``, so a dropout inside a
compiled piece (a graph space's op block) draws its mask from torch's generator as eager dropout does, and a seed
trains the same supernet compiled or not (inductor's own generator would draw other masks). The cost is that the
dropout kernel is not fused with its neighbours.
"""

from __future__ import annotations

import logging
import types
from itertools import chain
from typing import Any, Callable, Hashable

import torch
from torch import nn

from nasframe.core.elastic import ElasticLayer
from nasframe.core.modules import ChoiceModule, is_zero_op
from nasframe.errors import ConfigError

log = logging.getLogger("nasframe.training")

#: ``trainer.compile`` values: ``off`` (eager), else the mode given to ``torch.compile``
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

#: modules that compute nothing worth compiling on their own
_TRIVIAL = (nn.Identity, nn.Dropout)


def _worth_compiling(module: nn.Module) -> bool:
    """False for the ``none`` op, identities, dropout, and a parameter-free activation module on its own."""
    if is_zero_op(module) or isinstance(module, _TRIVIAL):
        return False
    lone_activation = type(module).__module__ == nn.modules.activation.__name__ and not any(module.parameters())
    return not lone_activation


#: graphs one part structure may hold (dynamo's default is 8): input shapes times train / eval / no-grad modes
_RECOMPILE_LIMIT = 64


def check_compile_mode(mode: str) -> None:
    if mode not in COMPILE_MODES:
        raise ConfigError(f"trainer.compile: {mode!r} is not one of {', '.join(COMPILE_MODES)}")


def is_arch_dependent(module: nn.Module) -> bool:
    """True when what ``module`` computes depends on the active path: it holds a choice or an elastic layer."""
    return any(isinstance(m, (ChoiceModule, ElasticLayer)) for m in module.modules())


def fixed_parts(root: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """The maximal fixed pieces below ``root`` that are worth compiling, as ``(qualified name, module)``."""
    parts: list[tuple[str, nn.Module]] = []
    for name, child in root._modules.items():
        if child is None:
            continue
        qualified = f"{prefix}{name}"
        if is_arch_dependent(child) or isinstance(child, (nn.ModuleDict, nn.ModuleList)):
            parts.extend(fixed_parts(child, qualified + "."))
        elif _worth_compiling(child):
            parts.append((qualified, child))
    return parts


def _structure(module: nn.Module) -> Hashable:
    """Parts with equal structure (module types, parameter and buffer shapes) may share graphs; what else tells
    them apart (a stride, say) the graphs' guards check."""
    tensors = chain(module.named_parameters(), module.named_buffers())
    return (tuple((name, type(m)) for name, m in module.named_modules()),
            tuple((name, tuple(t.shape), t.dtype) for name, t in tensors))


def _call_part(module: nn.Module, *args: Any, **kwargs: Any) -> Any:
    """A compiled part's call: the template of every structure's function (:func:`_call_for`)."""
    return module._call_impl(*args, **kwargs)


#: the function each part structure's compiled calls run, each with a code object of its own
_CALLS: dict[Hashable, Callable[..., Any]] = {}


def _call_for(module: nn.Module, key: Hashable | None = None) -> Callable[..., Any]:
    """The function for ``module``'s structure (``key``, else computed): :func:`_call_part` with a code object of
    its own, made once."""
    key = _structure(module) if key is None else key
    if key not in _CALLS:
        code = _call_part.__code__.replace(co_name=f"compiled_{type(module).__name__}_{len(_CALLS)}")
        _CALLS[key] = types.FunctionType(code, _call_part.__globals__, code.co_name)
    return _CALLS[key]


def compile_fixed_parts(root: nn.Module, mode: str = "default", backend: str = "inductor") -> list[str]:
    """Compile every maximal fixed piece of ``root`` in place with ``torch.compile(mode=..., backend=...)``;
    returns their names. ``mode="off"`` compiles nothing. Compiling again replaces the earlier compilation; a deep
    copy of a compiled module is not compiled (torch drops the compiled call), so compile copies again."""
    check_compile_mode(mode)
    if mode == "off":
        return []
    from torch import _dynamo  # imported only when compiling: it is slow to import
    from torch._inductor import config as inductor_config

    inductor_config.fallback_random = True  # dropout masks from torch's generator, as in eager training

    # per code object, hence per part structure; past it a part would run eager
    limit_name = "recompile_limit" if hasattr(_dynamo.config, "recompile_limit") else "cache_size_limit"
    setattr(_dynamo.config, limit_name, max(getattr(_dynamo.config, limit_name), _RECOMPILE_LIMIT))
    parts = fixed_parts(root)
    options = {"backend": backend} if backend != "inductor" else {"mode": None if mode == "default" else mode}
    structures = set()
    for _, module in parts:  # what nn.Module.compile sets, with a code object per structure (module docstring)
        key = _structure(module)
        structures.add(key)
        module._compiled_call_impl = torch.compile(types.MethodType(_call_for(module, key), module), **options)
    log.info("trainer.compile=%s: %d parts of %d structures marked; each structure compiles on its first calls, "
             "so the first steps are slow", mode, len(parts), len(structures))
    return [name for name, _ in parts]

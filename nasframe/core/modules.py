"""Choice modules, the Supernet mixin, and the path state dict that export is built on.

A choice module holds the candidates of one decision and runs only the active one: single-path mode costs
what the standalone subnet costs (no masks over inactive ops, no multiplications by zero). In differentiable
mode (DARTS) an :class:`OpChoice` computes the weighted sum of its candidates instead (:class:`Mixture`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Union

import torch
from torch import nn

from nasframe.core.arch import Arch
from nasframe.errors import ConfigError, InvalidArchError


class Zero(nn.Module):
    """The ``none`` op: contributes nothing. Cells skip it (``is_zero``) instead of adding zeros."""

    is_zero = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def is_zero_op(module: nn.Module) -> bool:
    """True when ``module`` (an op or a choice module's active op) contributes nothing."""
    return bool(getattr(module, "is_zero", False))


def path_op(module: nn.Module) -> nn.Module:
    """The module to call for ``module`` on the active path: a single-path OpChoice's active candidate,
    else the module itself. Cells call it so that single-path forward costs no extra module call per edge
    (forward hooks on an OpChoice itself therefore do not fire)."""
    return module.__dict__.get("active_op") or module


#: What a choice does in a :class:`Mixture`: one option (as in single-path mode) or a weight per option.
MixtureEntry = Union[str, torch.Tensor]


class Mixture(dict):
    """Differentiable-mode routing: choice name -> a 1-D tensor of weights over the choice's options (in the
    supernet's candidate order), or an option name for a choice that is decided (a one-hot weight, run as
    the single op). A weighted choice computes ``sum_o w_o * op_o(x)`` over its options whose weight is not
    masked out, skipping ``none`` ops, whose term is zero ("DARTS: Differentiable Architecture Search")."""

    def describe(self) -> str:
        return "mixture(" + ", ".join(
            f"{k}={v if isinstance(v, str) else [round(float(w), 3) for w in v.detach().flatten()]}"
            for k, v in self.items()
        ) + ")"


def node_sum(edges: "Iterable[tuple[nn.Module, torch.Tensor]]") -> torch.Tensor | None:
    """The sum of ``path_op(edge)(input)`` over a node's incoming ``(edge, input)`` pairs, skipping edges whose
    active op is zero (never multiplied by zero); ``None`` when every edge is zero. Cells build nodes with it."""
    total = None
    for edge, x in edges:
        op = path_op(edge)
        if is_zero_op(op):
            continue
        out = op(x)
        total = out if total is None else total + out
    return total


class ChoiceModule(nn.Module):
    """A module controlled by one choice of the space (``choice_name``)."""

    choice_name: str

    def set_option(self, option: str) -> None:
        raise NotImplementedError

    def active_module(self) -> nn.Module:
        """The module that the active option runs, as a standalone module would hold it."""
        raise NotImplementedError

    def option_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters that the active option trains (PA&DA's path importance is their gradient norm)."""
        return self.active_module().parameters()


class OpChoice(ChoiceModule):
    """A categorical choice among candidate ops; only the active op runs (single-path mode).

    Its parameters are ``candidates.<option>.*``; in the standalone subnet the chosen op sits where the
    OpChoice was, so its parameters are ``*`` under the same prefix (see :func:`path_state_dict`).
    """

    def __init__(self, choice_name: str, candidates: Mapping[str, nn.Module]) -> None:
        super().__init__()
        self.choice_name = choice_name
        self.candidates = nn.ModuleDict(candidates)
        self.active = ""
        self.set_option(next(iter(candidates)))

    def set_option(self, option: str) -> None:
        if option == self.active:
            return
        op = self.candidates._modules.get(option)
        if op is None:
            raise InvalidArchError(f"choice '{self.choice_name}' has no option '{option}'")
        self.active = option
        self.__dict__["active_op"] = op  # a plain reference, not a second registration of the submodule
        self.__dict__["mixture"] = None

    def set_weights(self, weights: torch.Tensor, include: torch.Tensor | None = None) -> None:
        """Differentiable mode: the output is ``sum_o weights[o] * candidate_o(x)`` over the candidates (in
        order) whose weight is included (``include``, a bool mask; default all), ``none`` candidates skipped."""
        if weights.shape != (len(self.candidates),):
            raise InvalidArchError(
                f"choice '{self.choice_name}': mixture weights need shape ({len(self.candidates)},), got {tuple(weights.shape)}"
            )
        keep = [True] * len(self.candidates) if include is None else [bool(v) for v in include]
        terms = [
            (k, op) for k, (op, use) in enumerate(zip(self.candidates.values(), keep)) if use and not is_zero_op(op)
        ]
        self.active = ""
        self.__dict__["active_op"] = None
        self.__dict__["mixture"] = (weights, terms)

    def active_module(self) -> nn.Module:
        op = self.__dict__["active_op"]
        if op is None:
            raise InvalidArchError(f"choice '{self.choice_name}' is in differentiable mode: no single active op")
        return op

    @property
    def is_zero(self) -> bool:
        op = self.__dict__["active_op"]
        return op is not None and is_zero_op(op)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        op = self.__dict__["active_op"]
        if op is not None:
            return op(x)
        weights, terms = self.__dict__["mixture"]
        if not terms:  # every included candidate is zero: the zero op gives the output shape
            zero = next(c for c in self.candidates.values() if is_zero_op(c))
            return zero(x)
        total = None
        for k, candidate in terms:
            out = weights[k] * candidate(x)
            total = out if total is None else total + out
        return total

    def extra_repr(self) -> str:
        return f"choice={self.choice_name!r}, active={self.active or 'mixture'!r}"


class Supernet(nn.Module):
    """Mixin for weight-sharing supernets: routes an arch to the choice modules it contains.

    Several modules may share one choice (NAS-Bench-201 repeats one cell in every position).
    """

    def _choice_index(self) -> dict[str, list[ChoiceModule]]:
        index = self.__dict__.get("_nasframe_choice_index")
        if index is None:
            index = {}
            for module in self.modules():
                if isinstance(module, ChoiceModule):
                    index.setdefault(module.choice_name, []).append(module)
            self.__dict__["_nasframe_choice_index"] = index
        return index

    @property
    def choice_names(self) -> list[str]:
        return list(self._choice_index())

    def set_arch(self, arch: Mapping[str, str]) -> None:
        """Make ``arch`` the active path. Every choice of the supernet must be assigned.

        Only the choices whose option changed are routed again (training calls this every step).
        """
        index = self._choice_index()
        previous = self.__dict__.pop("_nasframe_active_arch", None)  # unknown until routing succeeds
        for name, modules in index.items():
            option = arch.get(name)
            if option is None:
                raise InvalidArchError(f"arch has no option for choice '{name}'")
            if previous is None or previous[name] != option:
                for module in modules:
                    module.set_option(option)
        if not isinstance(arch, Arch) or len(arch) != len(index):
            arch = Arch({name: arch[name] for name in index})
        self.__dict__["_nasframe_active_arch"] = arch

    def set_mixture(self, mixture: Mapping[str, MixtureEntry], include: Mapping[str, torch.Tensor] | None = None) -> None:
        """Differentiable mode: each choice runs the weighted sum of its options (or one option where the
        mixture names it); ``include`` optionally masks options out of a choice's sum (perturbation)."""
        index = self._choice_index()
        self.__dict__.pop("_nasframe_active_arch", None)
        include = include or {}
        for name, modules in index.items():
            entry = mixture.get(name)
            if entry is None:
                raise InvalidArchError(f"mixture has no entry for choice '{name}'")
            for module in modules:
                if isinstance(entry, str):
                    module.set_option(entry)
                elif isinstance(module, OpChoice):
                    module.set_weights(entry, include.get(name))
                else:
                    raise InvalidArchError(f"choice '{name}' ({type(module).__name__}) has no differentiable mode")

    def set_path(self, path: Mapping[str, MixtureEntry]) -> None:
        """Route a sampler's proposal: a :class:`Mixture` (differentiable mode) or an arch (single path)."""
        if isinstance(path, Mixture):
            self.set_mixture(path)
        else:
            self.set_arch(path)

    @property
    def active_arch(self) -> Arch | None:
        return self.__dict__.get("_nasframe_active_arch")

    #: True for supernets whose narrower widths keep the first channels and that can reorder them by importance
    #: (:meth:`sort_channels`; Once-for-All's preparation of each width phase)
    supports_channel_sorting = False

    def sort_channels(self) -> None:
        """Reorder the elastic channels so that every narrower width keeps the most important ones, leaving the
        full-width network's function unchanged. Supernets without elastic widths cannot."""
        raise ConfigError(f"{type(self).__name__} has no elastic channels to sort")

    @torch.no_grad()
    def path_grad_norms(self) -> dict[str, torch.Tensor | None]:
        """For each choice, the L2 norm of the gradient of its active option's parameters
        (:meth:`ChoiceModule.option_parameters`), averaged over the modules that share the choice; ``None`` where
        the active option has no parameter with a gradient.
        Stays on the device (no host synchronisation)."""
        out: dict[str, torch.Tensor | None] = {}
        for name, modules in self._choice_index().items():
            norms = []
            for module in modules:
                grads = [p.grad for p in module.option_parameters() if p.grad is not None]
                if grads:
                    norms.append(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))))
            out[name] = torch.stack(norms).mean() if norms else None
        return out


def path_state_dict(module: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """The state dict of the active path, keyed as in the standalone subnet.

    Every :class:`ChoiceModule` is replaced by its :meth:`~ChoiceModule.active_module` under its own prefix
    (recursively: a few-shot supernet's active module is a whole sub-supernet); an elastic layer (a module with
    an ``active_state_dict(prefix)`` method, :mod:`nasframe.core.elastic`) contributes the active slices of its
    weights, keyed as its standalone counterpart; every other module contributes its parameters and persistent
    buffers. Tensors are shared, not copied (slices are views where the slice is one).
    """
    active_state_dict = getattr(type(module), "active_state_dict", None)
    if active_state_dict is not None:
        return active_state_dict(module, prefix)
    if isinstance(module, ChoiceModule):
        return path_state_dict(module.active_module(), prefix)  # the active module may hold choices itself
    state: dict[str, torch.Tensor] = {}
    for name, param in module._parameters.items():
        if param is not None:
            state[prefix + name] = param
    for name, buf in module._buffers.items():
        if buf is not None and name not in module._non_persistent_buffers_set:
            state[prefix + name] = buf
    for name, child in module._modules.items():
        if child is not None:
            state.update(path_state_dict(child, prefix + name + "."))
    return state

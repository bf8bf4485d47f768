"""The SearchSpace protocol: the choices of a space plus the rules that make an arch valid."""

from __future__ import annotations

import copy
import itertools
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from nasframe.core.arch import Arch
from nasframe.core.choice import Choice
from nasframe.core.settings import Configurable
from nasframe.errors import ConfigError, InvalidArchError


@dataclass(frozen=True)
class DataSpec:
    """What a space needs to know about the data: input shape (C, H, W) and number of classes."""

    in_channels: int = 3
    input_size: tuple[int, int] = (32, 32)
    num_classes: int = 10

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, *self.input_size)


@dataclass(frozen=True)
class EdgeGroup:
    """A topology rule: of the ``choices`` (the incoming edges of one node), exactly ``keep`` are not the
    space's ``zero_option`` (DARTS: each intermediate node keeps 2 edges)."""

    name: str
    choices: tuple[str, ...]
    keep: int


class SearchSpace(Configurable, ABC):
    """A search space: ordered :class:`Choice` s and the rules over them.

    Subclasses set ``name``, a ``Config`` dataclass with their settings, implement :meth:`_make_choices`,
    :meth:`build_supernet` and :meth:`build_subnet`, and usually override :meth:`parse` / :meth:`format`
    (the community's native arch string) and :meth:`canonical` (isomorphism).
    """

    name: ClassVar[str] = "space"
    #: the option that removes an edge (``none``), if the space has one
    zero_option: ClassVar[str | None] = None
    #: True when every choice lists its options from the smallest network to the largest (elastic spaces:
    #: kernel sizes, expand ratios, depths in increasing order), which gives the space a :meth:`smallest` and a
    #: :meth:`largest` arch, as the sandwich rule needs
    options_ordered_by_size: ClassVar[bool] = False
    #: True for spaces of graph networks (:class:`~nasframe.core.graph.GraphNetwork`: node classification on a
    #: graph, called as ``model(x, edge_index)``); False for networks of image batches
    takes_graphs: ClassVar[bool] = False

    def __init__(self, data: DataSpec | None = None, **settings: Any) -> None:
        self._init_config(settings, where=self.name)
        self.data = data or DataSpec()
        self._choices: tuple[Choice, ...] = tuple(self._make_choices())
        self._full_choices = self._choices

    # -- choices ---------------------------------------------------------------------------------------
    @abstractmethod
    def _make_choices(self) -> Sequence[Choice]:
        """The space's choices, in a fixed order."""

    @property
    def choices(self) -> tuple[Choice, ...]:
        return self._choices

    def choice(self, name: str) -> Choice:
        for choice in self._choices:
            if choice.name == name:
                return choice
        raise InvalidArchError(f"{self.name}: no choice named '{name}'; choices: {[c.name for c in self._choices]}")

    @property
    def size(self) -> int:
        """Number of archs (before removing isomorphic duplicates)."""
        return math.prod(len(c) for c in self._choices)

    def edge_groups(self) -> list[EdgeGroup]:
        """Topology rules over the choices (none by default: every choice is free)."""
        return []

    @property
    def independent_choices(self) -> bool:
        """True when any combination of options is an arch (no topology rule ties choices together)."""
        return not self.edge_groups()

    @property
    def is_restricted(self) -> bool:
        return self._choices != self._full_choices

    # -- membership ------------------------------------------------------------------------------------
    def validate(self, arch: Mapping[str, str]) -> Arch:
        """Return ``arch`` as an :class:`Arch` in choice order, or raise naming the bad choice/option."""
        if not isinstance(arch, Mapping):
            raise InvalidArchError(f"{self.name}: an arch is a mapping choice -> option, got {type(arch).__name__}")
        names = [c.name for c in self._choices]
        extra = [k for k in arch if k not in names]  # a misspelt name first: it usually explains a missing one
        if extra:
            raise InvalidArchError(f"{self.name}: arch names unknown choice '{extra[0]}'; choices: {names}")
        missing = [n for n in names if n not in arch]
        if missing:
            raise InvalidArchError(f"{self.name}: arch has no option for choice '{missing[0]}'")
        for choice, full in zip(self._choices, self._full_choices):
            option = arch[choice.name]
            if option not in choice.options:
                if option in full.options:
                    raise InvalidArchError(
                        f"{self.name}: option '{option}' of choice '{choice.name}' is outside this restricted "
                        f"sub-space (allowed: {list(choice.options)})"
                    )
                raise InvalidArchError(
                    f"{self.name}: unknown option '{option}' for choice '{choice.name}'; options: {list(full.options)}"
                )
        return arch if isinstance(arch, Arch) and list(arch) == names else Arch({n: arch[n] for n in names})

    def contains(self, arch: Mapping[str, str]) -> bool:
        try:
            self.validate(arch)
        except InvalidArchError:
            return False
        return True

    def canonical(self, arch: Mapping[str, str]) -> Arch:
        """The representative of ``arch`` 's isomorphism class; the identity unless a space knows better."""
        return self.validate(arch)

    # -- extremes (the sandwich rule) ------------------------------------------------------------------
    def smallest(self) -> Arch:
        """The smallest arch: every choice at its first option (spaces with :attr:`options_ordered_by_size`)."""
        return self._extreme(0, "smallest")

    def largest(self) -> Arch:
        """The largest arch: every choice at its last option (spaces with :attr:`options_ordered_by_size`)."""
        return self._extreme(-1, "largest")

    def _extreme(self, position: int, word: str) -> Arch:
        if not self.options_ordered_by_size:
            raise ConfigError(
                f"space '{self.name}' does not order its options by size, so it has no {word} arch (the sandwich "
                "rule trains the largest and the smallest arch); a space that does sets options_ordered_by_size = "
                "True or overrides smallest() and largest()"
            )
        return self.canonical(Arch({c.name: c.options[position] for c in self._choices}))

    # -- sampling and variation ------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Arch:
        """An arch with every option of every choice drawn uniformly and independently."""
        return Arch({c.name: c.options[int(rng.integers(len(c)))] for c in self._choices})

    def mutate(self, arch: Mapping[str, str], rng: np.random.Generator, prob: float = 0.1) -> Arch:
        """Each choice independently, with probability ``prob``, takes a different option, drawn uniformly."""
        arch = self.validate(arch)
        out = {}
        for c in self._choices:
            option = arch[c.name]
            if len(c) > 1 and rng.random() < prob:
                others = [o for o in c.options if o != option]
                option = others[int(rng.integers(len(others)))]
            out[c.name] = option
        return Arch(out)

    def crossover(self, first: Mapping[str, str], second: Mapping[str, str], rng: np.random.Generator) -> Arch:
        """Uniform crossover: each choice's option comes from either parent with probability 1/2."""
        first, second = self.validate(first), self.validate(second)
        return Arch({c.name: (first if rng.random() < 0.5 else second)[c.name] for c in self._choices})

    def enumerate(self) -> Iterator[Arch]:
        """Every arch of the space, in lexicographic order of option indices."""
        names = [c.name for c in self._choices]
        for options in itertools.product(*(c.options for c in self._choices)):
            yield Arch(dict(zip(names, options)))

    def restrict(self, allowed: Mapping[str, Sequence[str]]) -> SearchSpace:
        """A sub-space in which each named choice keeps only the ``allowed`` options (few-shot splits).

        The sub-space builds the same supernet as the full space; it only narrows sampling, enumeration and
        validation.
        """
        narrowed = []
        for c in self._choices:
            if c.name not in allowed:
                narrowed.append(c)
                continue
            keep = tuple(allowed[c.name])
            bad = [o for o in keep if o not in c.options]
            if bad or not keep:
                raise InvalidArchError(f"{self.name}: cannot restrict choice '{c.name}' to {list(keep)}")
            narrowed.append(Choice(c.name, tuple(o for o in c.options if o in keep)))
        unknown = set(allowed) - {c.name for c in self._choices}
        if unknown:
            raise InvalidArchError(f"{self.name}: cannot restrict unknown choice '{sorted(unknown)[0]}'")
        sub = copy.copy(self)
        sub._choices = tuple(narrowed)
        return sub

    # -- strings ---------------------------------------------------------------------------------------
    def parse(self, text: str) -> Arch:
        """An arch from its string form: a JSON object ``{"choice": "option", ...}``, or the space's native
        string (:meth:`parse_native`)."""
        if not isinstance(text, str):
            raise InvalidArchError(f"{self.name}: an arch string must be a str, got {type(text).__name__}")
        text = text.strip()
        return self.parse_json(text) if text.startswith("{") or not self.has_native_string else self.parse_native(text)

    #: True when the space overrides :meth:`parse_native` (and :meth:`format`)
    has_native_string: ClassVar[bool] = False
    #: the space builds an evaluation network (``build_eval_network(arch, channels=, layers=, auxiliary=,
    #: drop_path_prob=)`` returning a :class:`nasframe.core.eval_network.EvaluationNetwork`), e.g. DARTS
    has_eval_network: ClassVar[bool] = False

    def parse_native(self, text: str) -> Arch:
        """An arch from the community's native string (spaces that have one override this)."""
        return self.parse_json(text)

    def parse_json(self, text: str) -> Arch:
        """An arch from a JSON object ``{"choice": "option", ...}``."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise InvalidArchError(f"{self.name}: cannot parse arch string {text!r} (expected a JSON object)") from None
        if not isinstance(data, dict):
            raise InvalidArchError(f"{self.name}: arch JSON must be an object, got {text!r}")
        return self.validate(Arch.from_json(data))

    def format(self, arch: Mapping[str, str]) -> str:
        """The arch's string form (the community's native string where the space has one)."""
        return self.validate(arch).to_json()

    # -- networks --------------------------------------------------------------------------------------
    @abstractmethod
    def build_supernet(self) -> nn.Module:
        """The weight-sharing supernet (a :class:`~nasframe.core.modules.Supernet`)."""

    @abstractmethod
    def build_subnet(self, arch: Mapping[str, str]) -> nn.Module:
        """The standalone network of ``arch``, whose state dict keys match the supernet's path."""

    def example_inputs(self) -> tuple[tuple[torch.Tensor, ...], tuple[dict[int, Any], ...]]:
        """Example inputs of a network of this space, and which of their dimensions may vary (``torch.export``
        dynamic shapes): by default a batch of 2 images of the data spec's shape, with a dynamic batch size;
        graph spaces give a small random graph with any number of nodes and edges."""
        if self.takes_graphs:
            nodes, edges = 16, 48
            x = torch.randn(nodes, self.data.in_channels)
            edge_index = torch.randint(0, nodes, (2, edges), generator=torch.Generator().manual_seed(0))
            return (x, edge_index), ({0: torch.export.Dim("nodes", min=2, max=1 << 30)},
                                     {1: torch.export.Dim("edges", min=2, max=1 << 34)})
        return (torch.randn(2, *self.data.input_shape),), ({0: torch.export.Dim("batch", min=1, max=1 << 16)},)

    def count_params(self, arch: Mapping[str, str]) -> int:
        """Parameters of the standalone subnet of ``arch`` (built on the meta device: no memory, no init)."""
        with torch.device("meta"):
            subnet = self.build_subnet(arch)
        return sum(p.numel() for p in subnet.parameters())

    # -- training-free description, for learned models -------------------------------------------------
    @property
    def structure_feature_scales(self) -> dict[str, float]:
        """The names of :meth:`structure_features` and the largest value each takes (empty: the space
        describes none)."""
        return {}

    def structure_features(self, arch: Mapping[str, str]) -> dict[str, float]:
        """Numbers that describe the computation graph ``arch`` wires (ops on the paths to the output, depth,
        ...), computed without a network or data, for a learned model to fit on; keyed as
        :attr:`structure_feature_scales`."""
        raise NotImplementedError(f"space {self.name} describes no structure features")

    def describe(self) -> dict[str, Any]:
        """Name, settings and data spec: enough to rebuild this space."""
        return {"name": self.name, "config": asdict(self.config), "data": asdict(self.data)}


def space_from_description(described: Mapping[str, Any], *, source: str | None = None, allow_import: bool = False) -> SearchSpace:
    """The space a :meth:`SearchSpace.describe` record (of an export, a checkpoint) names, rebuilt with its settings
    and data spec. The name resolves to a registered or entry-point space (``allow_import`` also imports a
    ``module:attr`` name); a malformed record raises ``KeyError`` or ``TypeError`` for the caller to name."""
    from nasframe.core.registry import SPACES

    data = described["data"]
    spec = DataSpec(data["in_channels"], tuple(data["input_size"]), data["num_classes"])
    return SPACES.get(described["name"], allow_import=allow_import, source=source)(spec, **described["config"])


def with_later_defaults(recorded: Mapping[str, Any]) -> dict[str, Any]:
    """A space description recorded in a file (a checkpoint, a latency table), with the settings its space gained
    since then added at their defaults, so that a file written before a new setting existed still matches a space
    that leaves it at its default. An unknown or unregistered space name is returned as recorded."""
    from nasframe.core.registry import SPACES
    from nasframe.errors import NasframeError

    recorded = dict(recorded)
    try:
        config_class = SPACES.get(recorded["name"]).Config
        defaults = asdict(config_class())
    except (NasframeError, KeyError, TypeError, AttributeError):
        return recorded
    if isinstance(recorded.get("config"), Mapping):
        recorded["config"] = {**defaults, **recorded["config"]}
    return recorded


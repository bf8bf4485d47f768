"""Core abstractions: Choice, Arch, SearchSpace, choice modules and registries."""

from nasframe.core.arch import Arch
from nasframe.core.choice import Choice
from nasframe.core.modules import ChoiceModule, OpChoice, Supernet, Zero, path_state_dict
from nasframe.core.space import DataSpec, SearchSpace

__all__ = ["Arch", "Choice", "ChoiceModule", "DataSpec", "OpChoice", "SearchSpace", "Supernet", "Zero", "path_state_dict"]

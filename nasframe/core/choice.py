"""A single categorical decision of a search space."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Choice:
    """One named categorical decision with a tuple of option names.

    Example: ``Choice("edge_1_0", ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"))``.
    """

    name: str
    options: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", tuple(self.options))
        if not self.name:
            raise ValueError("a Choice needs a non-empty name")
        if not self.options:
            raise ValueError(f"choice '{self.name}' has no options")
        if len(set(self.options)) != len(self.options):
            raise ValueError(f"choice '{self.name}' lists an option twice: {self.options}")

    def __len__(self) -> int:
        return len(self.options)

    def index(self, option: str) -> int:
        """Position of ``option`` in :attr:`options`."""
        return self.options.index(option)

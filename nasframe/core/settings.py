"""Typed settings for pluggable components.

Every pluggable class (space, sampler, selector, data set) declares its settings as a dataclass in its
``Config`` class attribute. :func:`settings_from` checks a config node (from Hydra or a plain dict) against
that schema *before any work starts*: an unknown key or a value of the wrong type raises a
:class:`~nasframe.errors.ConfigError` that names the key and lists the valid ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nasframe.errors import ConfigError

C = TypeVar("C")


def settings_from(schema: type[C], node: Mapping[str, Any] | DictConfig | None, where: str) -> C:
    """Validate ``node`` against the dataclass ``schema`` and return a schema instance.

    ``where`` names the config node in messages, e.g. ``"space"`` gives ``space.chanels: unknown key``.
    """
    if node is None:
        node = {}
    raw = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    valid = [f.name for f in dataclasses.fields(schema)]
    unknown = sorted(set(raw) - set(valid))
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown key for {schema.__name__}; valid keys: {', '.join(valid) or 'none'}"
        )
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), raw)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        raise ConfigError(f"{where}.{key}: {getattr(exc, 'msg', exc)}") from None


class Configurable:
    """Mixin: ``cls(**settings)`` stores ``self.config = cls.Config(**settings)`` with a clear error on bad keys."""

    @dataclasses.dataclass
    class Config:
        pass

    config: Any

    def _init_config(self, settings: Mapping[str, Any], where: str) -> None:
        self.config = settings_from(self.Config, settings, where)

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | DictConfig | None, where: str, **extra: Any):
        """Build from a config node that may carry a ``name`` key (the registry name), which is dropped."""
        settings = dict(OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else (node or {}))
        settings.pop("name", None)
        settings_from(cls.Config, settings, where)  # fail on bad keys before building anything
        return cls(**settings, **extra)

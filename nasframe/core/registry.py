"""Name -> class registries, so configs name spaces, samplers, selectors and data sets by string.

A registry resolves a name in this order:

1. names registered in code with :meth:`Registry.register`;
2. entry points of the registry's group (``nasframe.spaces``, ...) declared by any installed package:
   this is how the ``search_spaces`` package plugs its spaces in without ``nasframe`` importing it;
3. a ``"package.module:ClassName"`` path, for classes in code that is not installed: only for names that come
   from the command line or a library call. Importing a module runs its code, so a name read from a file (the space
   of an export's ``arch.json``, the components of a run's ``config.yaml``) is resolved with
   ``allow_import=False``: a module path is then refused before anything is imported, and only registered and
   entry-point names resolve. Readers of files take the same flag (``load_export(..., allow_import=True)``,
   ``load_run_config(..., allow_import=True)``) for a caller who trusts the file.

Unknown names raise :class:`~nasframe.errors.UnknownNameError` listing the known ones.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Generic, TypeVar

from nasframe.errors import ConfigError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A registry of classes (or factories) of one kind."""

    def __init__(self, kind: str, entry_point_group: str, builtin_modules: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._builtin_modules = builtin_modules
        self._registered: dict[str, T] = {}

    def _import_builtins(self) -> None:
        """Import nasframe's own modules of this kind, whose classes register themselves on import. A name ending
        in ``.*`` stands for every module of that package, so a new sampler (say) is one new file there."""
        while self._builtin_modules:
            module, *rest = self._builtin_modules
            self._builtin_modules = tuple(rest)
            if module.endswith(".*"):
                package = importlib.import_module(module[:-2])
                self._builtin_modules += tuple(f"{package.__name__}.{info.name}"
                                               for info in pkgutil.iter_modules(package.__path__))
            else:
                importlib.import_module(module)

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator: ``@SAMPLERS.register("uniform")``."""

        def decorate(obj: T) -> T:
            existing = self._registered.get(name)
            if existing is not None and existing is not obj:
                raise ValueError(f"{self.kind} '{name}' is already registered as {existing!r}")
            self._registered[name] = obj
            return obj

        return decorate

    def _entry_points(self) -> dict[str, Any]:
        """The installed entry points of this registry's group, over those a source checkout declares."""
        installed = {ep.name: ep for ep in entry_points(group=self.entry_point_group)}
        return {**_checkout_entry_points(self.entry_point_group), **installed}

    def names(self) -> list[str]:
        """All names this registry can resolve without a module path."""
        self._import_builtins()
        return sorted(set(self._registered) | set(self._entry_points()))

    def get(self, name: str, *, allow_import: bool = True, source: str | None = None) -> T:
        """The class registered as ``name``. ``allow_import=False`` (for names read from a file, ``source`` naming
        where) resolves registered and entry-point names only: a ``module:attr`` path is refused without importing
        the module. The default, for names from the command line or code, imports it."""
        self._import_builtins()
        if name in self._registered:
            return self._registered[name]
        entry = self._entry_points().get(name)
        if entry is not None:
            return entry.load()
        if ":" in name and not allow_import:
            raise UnknownNameError(
                f"refusing {self.kind} '{name}'{f' read from {source}' if source else ''}: a module path from a file "
                f"is not imported (importing runs its code); known: {', '.join(self.names()) or 'none'}. To allow it, "
                f"declare it as an entry point of group '{self.entry_point_group}' or load with allow_import=True if "
                f"you trust the file")
        if ":" in name:
            module_name, _, attr = name.partition(":")
            try:
                return getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError) as exc:
                raise UnknownNameError(f"cannot load {self.kind} '{name}': {exc}") from None
        known = ", ".join(self.names()) or "none"
        raise UnknownNameError(f"unknown {self.kind} '{name}'; known: {known}")

    def build(self, node: Any, where: str, **extra: Any) -> Any:
        """Instantiate the class named by ``node["name"]`` with the rest of ``node`` as its settings, checked
        against the class's ``Config`` (see :class:`~nasframe.core.settings.Configurable`). ``where`` names the
        config node in error messages; ``extra`` are constructor arguments that do not come from the config."""
        name = node.get("name") if node is not None else None
        if not name:
            raise ConfigError(f"{where}.name is required; known: {', '.join(self.names()) or 'none'}")
        return self.get(name).from_config(node, where=where, **extra)

    def __contains__(self, name: str) -> bool:
        self._import_builtins()
        return name in self._registered or name in self._entry_points()


@functools.lru_cache(maxsize=None)
def _checkout_entry_points(group: str) -> dict[str, EntryPoint]:
    """The entry points of ``group`` declared in the ``pyproject.toml`` of the checkout that holds this package, so
    that a source checkout on ``PYTHONPATH`` (not pip-installed: no installed entry points) still finds its spaces."""
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    if not pyproject.is_file():
        return {}
    try:
        import tomllib
    except ImportError:  # Python 3.10: only installed entry points
        return {}
    project = tomllib.loads(pyproject.read_text()).get("project", {})
    if project.get("name") != "nasframe":
        return {}
    declared = project.get("entry-points", {}).get(group, {})
    return {name: EntryPoint(name, path, group) for name, path in declared.items()}


SPACES: Registry[Any] = Registry("search space", "nasframe.spaces")
DATASETS: Registry[Any] = Registry("dataset", "nasframe.datasets", ("nasframe.data.digits", "nasframe.data.cifar10", "nasframe.data.planetoid"))
SAMPLERS: Registry[Any] = Registry("path sampler", "nasframe.samplers", ("nasframe.sampling.*",))
SELECTORS: Registry[Any] = Registry("selector", "nasframe.selectors", ("nasframe.selection.*",))

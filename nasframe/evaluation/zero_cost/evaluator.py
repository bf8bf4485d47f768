"""The training-free evaluator: scores archs with zero-cost proxies of their untrained networks.

``ZeroCostEvaluator(arch) -> score`` has the interface of the supernet evaluator, so every selector and
``nasframe rank`` take it (``evaluator=zero_cost evaluator.proxy=...``). For each arch it builds the standalone
network, initialises it with a fixed seed (the same weights stream for every arch), prepares the input and the
BatchNorm mode from each proxy's paper defaults (or the config's overrides), and computes the proxies.

- One proxy (or one component of a proxy) scores an arch by its value.
- Several (a list, or a proxy with several components such as ``az_nas``) are combined by their ranks
  (:mod:`.combine`): among the ranked archs in ``nasframe rank``, among a fixed reference sample of
  ``reference_archs`` archs for a selector.
- Isomorphic archs (``space.canonical``) are one network: each class is scored once (``canonical``).
- Components are cached in memory and, with ``cache_file``, in a JSON-lines file keyed by the canonical arch
  string and a digest of :meth:`ZeroCostEvaluator.describe` (proxies, settings, seed, space), so a long scoring
  resumes where it stopped and never mixes values computed another way. A gzipped file (``.gz``, a committed
  snapshot such as ``results/zero_cost_assembly_nb201/values.jsonl.gz``) is read and never written.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from torch import nn

from nasframe.core.arch import Arch
from nasframe.core.space import SearchSpace
from nasframe.data.base import TensorSplit, Transform
from nasframe.errors import ConfigError, NasframeError
from nasframe.evaluation.zero_cost.base import PROXIES, Proxy, ProxyBatch, ProxySettings
from nasframe.evaluation.zero_cost.combine import COMBINATIONS, RankCombination
from nasframe.evaluation.zero_cost.prepare import check_settings, initialise, make_batch, seeded, set_batchnorm_mode

log = logging.getLogger("nasframe.zero_cost")


@dataclass
class ZeroCostConfig:
    name: str = "zero_cost"
    proxy: Any = "synflow"  # a proxy or component name, or a list of them (rank-combined); see `PROXIES.names()`
    # -- overrides of every proxy's paper settings (null: each proxy's own default, recorded in results) --------
    init: Optional[str] = None  # default | kaiming_fan_in | kaiming_fan_out
    bn: Optional[str] = None  # train | eval | calibrated
    input: Optional[str] = None  # real | noise
    batch_size: Optional[int] = None
    # per proxy (its registered name): overrides of the same four settings for that proxy only, applied after the
    # ones above, e.g. {synflow: {bn: calibrated, input: real}} (see configs/evaluator/zero_cost_assembly.yaml)
    per_proxy: Dict[str, Any] = field(default_factory=dict)
    seed: int = 0  # the weights' and the batch's seed, the same for every arch
    combine: str = "log_rank"  # log_rank (AZ-NAS) | rank: how several components make one score
    reference_archs: int = 256  # selectors: the sample (seeded) that ranks a combination's components
    canonical: bool = True  # score each isomorphism class once
    cache_file: Optional[str] = None  # JSON lines of computed components, reused when settings match (.gz: read)

    def proxy_names(self, key: str = "evaluator") -> list[str]:
        """The configured proxy names; ``key``: the config key these settings sit under, for the error."""
        names = [self.proxy] if isinstance(self.proxy, str) else list(self.proxy or [])
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ConfigError(f"{key}.proxy: name one proxy or a list of them, got {self.proxy!r}")
        return names


def component_owners() -> dict[str, str]:
    """Every registered component's proxy: component name -> the name of the proxy that computes it."""
    owner: dict[str, str] = {}
    for proxy_name in PROXIES.names():
        cls = PROXIES.get(proxy_name)
        for component in cls.components or (cls.name,):
            owner.setdefault(component, proxy_name)
    return owner


def resolve_components(names: Sequence[str], key: str = "evaluator") -> tuple[list[Proxy], list[str]]:
    """The proxies to run and the components to score for config names: a proxy name gives all its components,
    a component name its proxy. ``key``: the config key the names sit under, for the error about an unknown one."""
    owner = component_owners()
    proxies: dict[str, Proxy] = {}
    components: list[str] = []
    for name in names:
        if name in PROXIES:
            cls = PROXIES.get(name)
            proxies.setdefault(name, cls())
            components += [c for c in cls.components or (cls.name,) if c not in components]
        elif name in owner:
            proxies.setdefault(owner[name], PROXIES.get(owner[name])())
            if name not in components:
                components.append(name)
        else:
            known = sorted(set(PROXIES.names()) | set(owner))
            raise ConfigError(f"{key}.proxy: unknown proxy {name!r}; known: {', '.join(known)}")
    return list(proxies.values()), components


class ZeroCostEvaluator:
    """Scores archs by training-free proxies (see the module docstring)."""

    def __init__(self, space: SearchSpace, build_network: Callable[[Arch], nn.Module], config: ZeroCostConfig,
                 train: TensorSplit | None = None, prepare: Transform | None = None,
                 device: torch.device | str = "cpu", config_key: str = "evaluator",
                 proxies: Sequence[Proxy] = ()) -> None:
        """``build_network(arch)`` returns the arch's standalone network on ``device`` (a graph network with its
        graph bound); ``train`` and ``prepare`` give the real input batches. ``config_key``: where ``config`` sits
        in the user's config, which errors about it name (``selector`` for a selector's proxies). ``proxies``:
        instances to run in place of the registered proxies of the same name that ``config.proxy`` names (another
        way to compute a proxy, e.g. ZiCo with accumulated gradients in ``scripts/zero_cost_gaps.py``); their
        :meth:`~.base.Proxy.describe` enters the cache key, so their values never mix with the registered ones'."""
        self.space, self.build_network, self.config = space, build_network, config
        self.device = torch.device(device)
        self.config_key = key = config_key
        if config.combine not in COMBINATIONS:
            raise ConfigError(f"{key}.combine: {config.combine!r} is not one of {', '.join(COMBINATIONS)}")
        if config.reference_archs < 1:
            raise ConfigError(f"{key}.reference_archs must be >= 1")
        self.proxies, self.components = resolve_components(config.proxy_names(key), key)
        replacing = {p.name: p for p in proxies}
        unknown = sorted(set(replacing) - {p.name for p in self.proxies})
        if unknown:
            raise ConfigError(f"{key}.proxy: a replacement for {unknown[0]} was given, but it runs only "
                              f"{', '.join(p.name for p in self.proxies)}")
        self.proxies = [replacing.get(p.name, p) for p in self.proxies]
        is_graph = space.takes_graphs
        for proxy in self.proxies:
            if is_graph and not proxy.supports_graphs:
                raise ConfigError(f"{key}.proxy: {proxy.name} is defined for image networks, not for the graph "
                                  f"space '{space.name}'")
            if not is_graph and not proxy.supports_images:
                raise ConfigError(f"{key}.proxy: {proxy.name} is defined for graph networks, not for the image "
                                  f"space '{space.name}'")
        self._check_per_proxy()
        self.settings = {p.name: check_settings(self._settings_for(p), self._where(p))
                         for p in self.proxies}
        self.train, self.prepare = train, prepare
        self.input_shape = None if is_graph else tuple(space.data.input_shape)
        self._batches: dict[ProxySettings, ProxyBatch] = {}
        self.values: dict[Arch, dict[str, float]] = {}
        self._told_read_only = False  # a gzipped cache_file was said to take no new values
        self.seconds: dict[Arch, float] = {}
        self.combination: RankCombination | None = None
        self.cache_path = Path(config.cache_file).expanduser() if config.cache_file else None
        self._fingerprint = hashlib.sha256(json.dumps(self.describe(), sort_keys=True).encode()).hexdigest()[:16]
        if self.cache_path is not None:
            self._read_cache()

    # -- settings -------------------------------------------------------------------------------------------
    def _settings_for(self, proxy: Proxy) -> ProxySettings:
        cfg, paper = self.config, proxy.settings
        overrides = {k: v for k, v in (("init", cfg.init), ("bn", cfg.bn), ("input", cfg.input),
                                       ("batch_size", cfg.batch_size)) if v is not None}
        if proxy.structural:
            return paper
        overrides.update({k: v for k, v in dict(cfg.per_proxy.get(proxy.name) or {}).items() if v is not None})
        # for a proxy that makes its own input (synflow's ones), input and batch_size give the batch that a
        # bn=calibrated preparation sets the BatchNorm statistics from
        return replace(paper, **overrides)

    def _check_per_proxy(self) -> None:
        """``per_proxy`` may name only proxies this evaluator runs (not structural ones) and only the settings."""
        running, key = {p.name: p for p in self.proxies}, self.config_key
        for name, overrides in dict(self.config.per_proxy or {}).items():
            proxy = running.get(name)
            if proxy is None:
                raise ConfigError(f"{key}.per_proxy.{name}: not a proxy of this evaluator; it runs "
                                  f"{', '.join(running)}")
            if proxy.structural:
                raise ConfigError(f"{key}.per_proxy.{name}: {name} reads no data and no weights: it has no "
                                  "settings to override")
            unknown = sorted(set(dict(overrides or {})) - set(_OVERRIDABLE))
            if unknown:
                raise ConfigError(f"{key}.per_proxy.{name}.{unknown[0]}: unknown setting; valid: "
                                  f"{', '.join(_OVERRIDABLE)}")

    def _where(self, proxy: Proxy) -> str:
        key = self.config_key
        return f"{key}.per_proxy.{proxy.name}" if proxy.name in (self.config.per_proxy or {}) else key

    def describe(self) -> dict[str, Any]:
        """Everything that determines the scores: proxies, components, each proxy's settings, seed, combination."""
        return {
            "evaluator": "zero_cost",
            "components": list(self.components),
            "proxies": {p.name: {**p.describe(), "settings": asdict(self.settings[p.name])} for p in self.proxies},
            "seed": self.config.seed,
            "combine": self.config.combine if len(self.components) > 1 else None,
            "canonical": self.config.canonical,
            "space": self.space.describe(),
        }

    def summary(self) -> str:
        """One line for reports: the components and how they are combined."""
        cfg = self.config
        combined = (f", combined by {cfg.combine} over {cfg.reference_archs} reference archs (in a ranking: the "
                    "ranked archs)" if self.combined else "")
        return f"zero-cost proxies {', '.join(self.components)}{combined}; seed {cfg.seed}"

    @property
    def combined(self) -> bool:
        return len(self.components) > 1

    # -- scoring ----------------------------------------------------------------------------------------------
    def key(self, arch: Mapping[str, str]) -> Arch:
        arch = self.space.validate(arch)
        return self.space.canonical(arch) if self.config.canonical else arch

    def component_values(self, arch: Mapping[str, str]) -> dict[str, float]:
        """Every configured component of ``arch`` (computed once per isomorphism class)."""
        key = self.key(arch)
        values = self.values.get(key)
        if values is None:
            began = time.perf_counter()
            values = {}
            for proxy in self.proxies:
                values.update(self._run(proxy, key))
            values = {c: _finite_or_worst(values[c]) for c in self.components}
            self.record(key, values, time.perf_counter() - began)
        return values

    def record(self, arch: Mapping[str, str], values: Mapping[str, float], seconds: float) -> None:
        """Keep (and append to the cache file) ``values`` computed for ``arch`` elsewhere with these same settings,
        e.g. by a worker process running an evaluator built from the same config."""
        missing = [c for c in self.components if c not in values]
        if missing:
            raise NasframeError(f"record: no value for component {missing[0]} of {self.space.format(arch)}")
        key = self.key(arch)
        self.values[key] = {c: float(values[c]) for c in self.components}
        self.seconds[key] = float(seconds)
        self._append_cache(key, self.values[key], self.seconds[key])

    def seconds_for(self, archs: Iterable[Mapping[str, str]]) -> float:
        """The seconds that computing the values of ``archs`` took: each isomorphism class once, as measured when it
        was computed (also for values read back from the cache file); 0 for a class not computed yet."""
        return float(sum(self.seconds.get(key, 0.0) for key in {self.key(arch) for arch in archs}))

    def __call__(self, arch: Mapping[str, str]) -> float:
        values = self.component_values(arch)
        if not self.combined:
            return values[self.components[0]]
        if self.combination is None:
            self.set_reference(self._reference_sample())
        return self.combination(values)  # type: ignore[misc]

    def set_reference(self, archs: Iterable[Mapping[str, str]]) -> None:
        """Rank a combination's components among ``archs`` (``nasframe rank`` passes the ranked archs)."""
        archs = list(archs)
        self.combination = RankCombination([self.component_values(a) for a in archs], self.components,
                                           self.config.combine)

    def _reference_sample(self) -> list[Arch]:
        from nasframe.evaluation.ranking import sample_archs

        log.info("ranking %d proxy components among a reference sample of %d archs (seed %d)",
                 len(self.components), min(self.config.reference_archs, self.space.size), self.config.seed)
        return sample_archs(self.space, self.config.reference_archs, self.config.seed)

    def _batch(self, settings: ProxySettings) -> ProxyBatch:
        batch = self._batches.get(settings)
        if batch is None:
            batch = make_batch(settings, self.train, self.prepare, self.space.data.num_classes, self.input_shape,
                               self.config.seed, self.device, where=self.config_key)
            self._batches[settings] = batch
        return batch

    def _run(self, proxy: Proxy, arch: Arch) -> dict[str, float]:
        settings = self.settings[proxy.name]
        batch = self._batch(settings)
        with seeded(self.config.seed):
            if proxy.structural and not self.space.takes_graphs:
                with torch.device("meta"):
                    net = self.space.build_subnet(arch)
            else:
                net = self.build_network(arch)
                initialise(net, settings.init)
                set_batchnorm_mode(net, settings.bn, batch.inputs[0] if batch.inputs else None)
            try:
                values = proxy.compute(net, batch)
            except (RuntimeError, ValueError, torch.linalg.LinAlgError) as exc:
                raise NasframeError(f"proxy {proxy.name} failed on {self.space.format(arch)}: {exc}") from exc
        missing = [c for c in proxy.components or (proxy.name,) if c not in values]
        if missing:
            raise NasframeError(f"proxy {proxy.name} returned no value for {missing[0]}")
        return {k: float(v) for k, v in values.items()}

    # -- the cache file ---------------------------------------------------------------------------------------
    def _read_cache(self) -> None:
        path = self.cache_path
        if path is None or not path.is_file():
            return
        kept = 0
        text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
        for line in text.splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a stop: computed again
            if row.get("fingerprint") != self._fingerprint:
                continue
            key = self.key(self.space.parse(row["arch"]))
            self.values[key] = {c: float(row["values"][c]) for c in self.components}
            self.seconds[key] = float(row["seconds"])
            kept += 1
        log.info("%d archs' proxy values reused from %s", kept, path)

    def _append_cache(self, arch: Arch, values: dict[str, float], seconds: float) -> None:
        if self.cache_path is None:
            return
        if self.cache_path.suffix == ".gz":  # a gzipped snapshot is read, never appended to
            if not self._told_read_only:
                log.info("%s is a gzipped snapshot: newly computed values are kept in memory only", self.cache_path)
                self._told_read_only = True
            return
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        row = {"arch": self.space.format(arch), "values": values, "seconds": seconds, "device": self.device.type,
               "fingerprint": self._fingerprint}
        with self.cache_path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")


#: the settings ``per_proxy`` may override (ProxySettings' fields a config sets)
_OVERRIDABLE = ("init", "bn", "input", "batch_size")


def _finite_or_worst(value: float) -> float:
    """A proxy value that is NaN (e.g. a log-determinant of a singular matrix) ranks last: ``-inf``."""
    return value if not math.isnan(value) else -math.inf

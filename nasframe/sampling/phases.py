"""Phased training: a schedule of phases, each training a sub-space with its own method and learning rate.

Progressive shrinking ("Once-for-All: Train One Network and Specialize it for Efficient Deployment", Cai et al.,
ICLR 2020) trains the largest network first, then releases the elastic dimensions one after another (kernel
size, then depth in two phases, then expand ratio in two phases), each phase starting from the weights the
previous one left, with a fresh optimiser, its own learning rate, warm-up and number of subnets per step.
``sampler=phased`` runs such a schedule in one run. Each phase has:

* ``restrict``: the sub-space it samples, as ``{pattern: [options]}`` where ``pattern`` is a shell-style pattern
  of choice names (``"*_kernel": ["7"]`` keeps kernel 7 in every block); choices no pattern matches keep all
  their options;
* ``epochs``, ``lr`` (None: ``trainer.lr``) and ``warmup_epochs``: the phase's schedule, linear warm-up then
  cosine to ``trainer.min_lr`` over the phase (:class:`~nasframe.sampling.base.ScheduleSegment`; the trainer
  starts a fresh optimiser at each phase);
* ``sampler``: the method of its steps, any path sampler with its settings (``{name: uniform, paths_per_step: 2}``,
  ``{name: sandwich, num_random: 2, inplace_distillation: true}``), run on the phase's sub-space;
* ``sort_channels``: reorder the supernet's elastic channels by importance before the phase starts (Once-for-All
  does before each width phase; the supernet must support it, e.g. the elastic MobileNet), then the phase's fresh
  optimiser starts (sorting permutes weights, so stale momentum would no longer match them);
* ``kd_ratio``: > 0 adds ``kd_ratio`` times the soft cross-entropy to a fixed teacher's predictions to every
  path's loss on the labels (label-smoothed by ``trainer.label_smoothing``), Once-for-All's loss.

The teacher is fixed, runs in eval mode (its BatchNorm statistics fixed) on each step's batch, and is one of
``phase:<name>``, the network a phase trained, frozen when the phase ends (that phase's sub-space must be one
arch, Once-for-All's full network, or the largest arch of its sub-space in a space ordered by size (the full
network at the largest resolution when the resolution stays elastic), and come before every phase with
``kd_ratio``; its weights go into the checkpoint); ``export:<dir>``, a network nasframe exported (a search's or ``nasframe train`` run's ``export/``,
loaded without unpickling); ``checkpoint:<checkpoint.pt or run dir>[@<arch>]``, a path of a supernet another run
trained (its largest arch unless a native arch string follows ``@``; its space is rebuilt from the checkpoint,
with the BatchNorm statistics the checkpoint holds), e.g. the full network of a run that trained only
Once-for-All's first phase; or ``torchvision:<model>:<state_dict.pt>``, a torchvision classifier built with the
data's number of classes and loaded from a tensors-only state dict.

The phases' epochs must add up to ``trainer.epochs``. The sampler's state (the epoch it is in, every phase's
random stream) is in the checkpoint, so a run resumed mid-phase continues exactly.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import torch

from nasframe.core.arch import Arch
from nasframe.core.modules import Supernet
from nasframe.core.registry import SAMPLERS
from nasframe.core.space import SearchSpace
from nasframe.errors import ConfigError, InvalidArchError
from nasframe.sampling.base import PathSampler, ScheduleSegment, build_sampler

if TYPE_CHECKING:
    from nasframe.training.step import StepContext, StepResult


@dataclass
class PhaseConfig:
    name: str = ""  # for logs and reports, e.g. "kernel"
    epochs: int = 1
    lr: Optional[float] = None  # the phase's peak learning rate; None: trainer.lr
    warmup_epochs: int = 0  # linear warm-up epochs at the start of the phase
    restrict: Dict[str, List[str]] = field(default_factory=dict)  # choice-name pattern -> allowed options
    sampler: Dict[str, Any] = field(default_factory=lambda: {"name": "uniform"})  # the phase's method
    sort_channels: bool = False  # reorder elastic channels by importance at the phase's start (OFA's width phases)
    kd_ratio: float = 0.0  # > 0: weight of the distillation loss from the fixed teacher (sampler.teacher)


@dataclass
class PhasedConfig:
    phases: List[PhaseConfig] = field(default_factory=list)
    teacher: Optional[str] = None  # phase:<name> | export:<dir> | checkpoint:<path>[@<arch>] |
    # torchvision:<model>:<state_dict.pt> (module doc)

TEACHER_PREFIX = "phase:"


def restrict_by_patterns(space: SearchSpace, patterns: dict[str, list[str]], where: str) -> SearchSpace:
    """``space`` with every choice whose name matches a pattern narrowed to that pattern's options."""
    allowed: dict[str, list[str]] = {}
    for pattern, options in patterns.items():
        names = [c.name for c in space.choices if fnmatch.fnmatchcase(c.name, pattern)]
        if not names:
            raise ConfigError(f"{where}.restrict: pattern {pattern!r} matches no choice of {space.name} "
                              f"(choices such as {', '.join(c.name for c in space.choices[:3])})")
        for name in names:
            allowed[name] = [str(o) for o in options]
    try:
        return space.restrict(allowed)
    except InvalidArchError as exc:
        raise ConfigError(f"{where}.restrict: {exc}") from None


@SAMPLERS.register("phased")
class PhasedSampler(PathSampler):
    """The phases of :class:`PhasedConfig` one after another; each step is the current phase's sampler's step."""

    name = "phased"
    Config = PhasedConfig

    def __init__(self, space: SearchSpace, seed: int = 0, **settings: Any) -> None:
        super().__init__(space, seed, **settings)
        phases = self.config.phases
        if not phases:
            raise ConfigError("sampler.phases: a phased run needs at least one phase")
        self.samplers: list[PathSampler] = []
        self.starts: list[int] = []
        start = 0
        for index, phase in enumerate(phases):
            where = f"sampler.phases[{index}]"
            if phase.epochs < 1 or not 0 <= phase.warmup_epochs < phase.epochs:
                raise ConfigError(f"{where}: need epochs >= 1 and 0 <= warmup_epochs < epochs "
                                  f"(got {phase.epochs}, {phase.warmup_epochs})")
            if phase.lr is not None and phase.lr <= 0:
                raise ConfigError(f"{where}.lr must be > 0 (or null: trainer.lr)")
            if phase.kd_ratio < 0:
                raise ConfigError(f"{where}.kd_ratio must be >= 0")
            inner = build_sampler(phase.sampler, restrict_by_patterns(space, phase.restrict, where), seed + index)
            if isinstance(inner, PhasedSampler) or inner.needs_arch_batches or inner.data_order(1) is not None \
                    or type(inner).restructure is not PathSampler.restructure:
                raise ConfigError(f"{where}.sampler: '{inner.name}' cannot run inside a phase (it restructures the "
                                  "supernet, orders the data or needs architecture batches)")
            self.samplers.append(inner)
            self.starts.append(start)
            start += phase.epochs
        self.total_epochs = start
        self.epoch = 0  # the epoch being trained (the trainer reports each one's end)
        self.teacher: torch.nn.Module | None = None  # a file's network, or frozen at the end of the teacher phase
        self._teacher_state: dict[str, torch.Tensor] | None = None  # a resumed phase teacher, rebuilt at the next step
        self.teacher_phase = self._check_teacher()

    def _check_teacher(self) -> int | None:
        """The index of the teacher's phase; checks that it has one network (one arch, or a largest arch) and
        precedes every distilling phase."""
        cfg = self.config
        distilling = [i for i, phase in enumerate(cfg.phases) if phase.kd_ratio > 0]
        if cfg.teacher is None:
            if distilling:
                raise ConfigError(f"sampler.phases[{distilling[0]}].kd_ratio > 0 needs a teacher: sampler.teacher="
                                  "phase:<name of the phase that trains it>, export:<dir> or torchvision:<model>:<file>")
            return None
        if not cfg.teacher.startswith(TEACHER_PREFIX):
            self.teacher = load_teacher(cfg.teacher, self.space.data.num_classes)
            return None
        names = [phase.name for phase in cfg.phases]
        name = cfg.teacher[len(TEACHER_PREFIX):]
        if name not in names:
            raise ConfigError(f"sampler.teacher={cfg.teacher!r}: give phase:<name> with one of the phases' names "
                              f"({', '.join(n or '(unnamed)' for n in names)})")
        index = names.index(name)
        sub_space = self.samplers[index].space
        if sub_space.size != 1 and not sub_space.options_ordered_by_size:
            raise ConfigError(f"sampler.teacher={cfg.teacher}: phase '{name}' trains {sub_space.size:,} archs; a "
                              "teacher is the one network of a phase restricted to one arch (or, in a space whose "
                              "options are ordered by size, its largest)")
        if any(i <= index for i in distilling):
            raise ConfigError(f"sampler.teacher={cfg.teacher}: phase {min(distilling)} distils from it before it is trained")
        return index

    # -- where we are ----------------------------------------------------------------------------------
    def phase_of(self, epoch: int) -> int:
        """The index of the phase that trains ``epoch`` (the last phase past the end)."""
        return max(i for i, start in enumerate(self.starts) if start <= epoch)

    @property
    def current(self) -> PathSampler:
        return self.samplers[self.phase_of(self.epoch)]

    def schedule_segment(self, epoch: int, epochs: int) -> ScheduleSegment:
        if epochs != self.total_epochs:
            raise ConfigError(f"sampler.phases add up to {self.total_epochs} epochs, but trainer.epochs={epochs}: "
                              "set trainer.epochs to the sum of the phases' epochs")
        index = self.phase_of(epoch)
        phase = self.config.phases[index]
        start = self.starts[index]
        return ScheduleSegment(start, start + phase.epochs, phase.lr, phase.warmup_epochs)

    def restructure(self, supernet: torch.nn.Module, epoch: int, epochs: int, probe_batches: Any) -> None:
        """At the start of a phase with ``sort_channels``: sort the supernet's channels in place (the trainer
        then starts the phase's fresh optimiser). At epoch 0, check that the supernet can sort if any phase asks."""
        sorting = [i for i, phase in enumerate(self.config.phases) if phase.sort_channels]
        if epoch == 0 and sorting and not (isinstance(supernet, Supernet) and supernet.supports_channel_sorting):
            raise ConfigError(f"sampler.phases[{sorting[0]}].sort_channels: {type(supernet).__name__} has no elastic "
                              "channels to sort (space=mobilenet has)")
        index = self.phase_of(epoch)
        teacher = self.teacher_phase
        if teacher is not None and epoch == self.starts[teacher] + self.config.phases[teacher].epochs:
            self.teacher = self._frozen_path(supernet)  # before any sorting changes the weights' order
            self._teacher_state = None
        if self.starts[index] == epoch and self.config.phases[index].sort_channels:
            supernet.sort_channels()
        return None

    def _frozen_path(self, supernet: torch.nn.Module, state: dict[str, torch.Tensor] | None = None) -> torch.nn.Module:
        """The teacher phase's arch extracted from ``supernet`` as a standalone network, frozen in eval mode
        (with the weights ``state`` instead, for a resumed run)."""
        from nasframe.export.extract import extract

        space = self.samplers[self.teacher_phase].space
        arch = next(iter(space.enumerate())) if space.size == 1 else space.largest()
        network = extract(space, supernet, arch)  # on the supernet's device
        if state is not None:
            network.load_state_dict(state)
        return frozen(network)

    # -- the step: the current phase's method --------------------------------------------------------------
    def sample(self) -> Arch:
        return self.current.sample()

    def train_step(self, step: StepContext, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        weight = self.config.phases[self.phase_of(self.epoch)].kd_ratio
        if weight == 0:
            return self.current.train_step(step, x, y)
        if self.teacher is None:
            if self._teacher_state is None:
                raise ConfigError("sampler.teacher: the teacher's phase has not been trained in this run")
            self.teacher = self._frozen_path(step.supernet, self._teacher_state)
        with torch.no_grad(), step.autocast():
            teacher_logits = self.teacher(x)
        with step.distilling(teacher_logits, weight):
            return self.current.train_step(step, x, y)

    def before_update(self, supernet: torch.nn.Module) -> None:
        self.current.before_update(supernet)

    def observe(self, trained: Any, stats: dict[str, Any]) -> None:
        self.current.observe(trained, stats)

    def to(self, device: torch.device | str) -> PhasedSampler:
        """The phases' samplers and a teacher read from a file go to the supernet's device (a phase's teacher is
        extracted from the supernet, on its device)."""
        for inner in self.samplers:
            inner.to(device)
        if self.teacher is not None:
            self.teacher.to(device)
        return self

    def end_epoch(self, epoch: int, epochs: int) -> None:
        index = self.phase_of(epoch)
        self.samplers[index].end_epoch(epoch - self.starts[index], self.config.phases[index].epochs)
        self.epoch = epoch + 1

    def log_to(self, writer: Any, epoch: int) -> None:
        writer.add_scalar("sampler/phase", self.phase_of(min(self.epoch, self.total_epochs - 1)), epoch)
        self.current.log_to(writer, epoch)

    def _phase_text(self, index: int) -> str:
        """One phase in a line: name, epochs, lr, warm-up, its sub-space's size, method, distillation, sorting."""
        phase, inner = self.config.phases[index], self.samplers[index]
        extras = [f"{inner.space.size:,} archs", phase.sampler.get("name", "uniform")]
        extras += [f"{phase.sampler['paths_per_step']} paths/step"] if phase.sampler.get("paths_per_step", 1) > 1 else []
        extras += [f"kd {phase.kd_ratio}"] if phase.kd_ratio else []
        extras += ["channels sorted"] if phase.sort_channels else []
        lr = phase.lr if phase.lr is not None else "trainer.lr"
        return (f"{phase.name or 'phase'} {phase.epochs} ep, lr {lr}"
                + (f" (warm-up {phase.warmup_epochs})" if phase.warmup_epochs else "") + f" [{', '.join(extras)}]")

    def describe_structure(self) -> str:
        index = self.phase_of(self.epoch)
        start = self.starts[index]
        return (f"phase {index + 1} of {len(self.starts)}, epochs {start + 1}-{start + self.config.phases[index].epochs}: "
                f"{self._phase_text(index)}, restrict {json.dumps(self.config.phases[index].restrict)}")

    def describe_schedule(self) -> str:
        teacher = f"; teacher {self.config.teacher}" if self.config.teacher else ""
        return (f"{len(self.starts)} phases: " + "; ".join(self._phase_text(i) for i in range(len(self.starts)))
                + teacher)

    def state_dict(self) -> dict[str, Any]:
        teacher = None
        if self.teacher_phase is not None:  # a file's teacher is read from its file again on resume
            teacher = self.teacher.state_dict() if self.teacher is not None else self._teacher_state
        return {**super().state_dict(), "epoch": self.epoch,
                "phases": {str(i): inner.state_dict() for i, inner in enumerate(self.samplers)},
                **({"teacher": teacher} if teacher is not None else {})}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if len(state["phases"]) != len(self.samplers):
            raise ConfigError(f"the checkpoint has {len(state['phases'])} phases, this run {len(self.samplers)}: "
                              "resume with the same sampler.phases")
        self.epoch = int(state["epoch"])
        for i, inner in enumerate(self.samplers):
            inner.load_state_dict(state["phases"][str(i)])
        if self.teacher_phase is not None:  # rebuilt on the supernet at the next step
            self.teacher, self._teacher_state = None, state.get("teacher")


def load_teacher(source: str, num_classes: int) -> torch.nn.Module:
    """A fixed teacher from a file (``export:<dir>``, ``checkpoint:<path>[@<arch>]`` or
    ``torchvision:<model>:<state_dict.pt>``), frozen in eval mode on the CPU (the sampler's ``to`` moves it to the
    supernet's device); raises :class:`ConfigError` naming what is wrong."""
    from nasframe.errors import NasframeError

    kind, _, rest = source.partition(":")
    try:
        if kind == "export":
            from nasframe.export.load import load_export

            network = load_export(rest)
        elif kind == "checkpoint":
            path, _, native = rest.partition("@")
            network = checkpoint_path_network(path, native or None)
        elif kind == "torchvision":
            import torchvision

            name, _, path = rest.partition(":")
            if name not in torchvision.models.list_models():
                raise ConfigError(f"sampler.teacher: torchvision has no model {name!r}")
            network = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
            network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        else:
            raise ConfigError(f"sampler.teacher={source!r}: give phase:<name>, export:<dir>, "
                              "checkpoint:<path>[@<arch>] or torchvision:<model>:<state_dict.pt>")
    except ConfigError:
        raise
    except (NasframeError, OSError, RuntimeError) as exc:  # a missing or unreadable export, a state dict that does not fit
        raise ConfigError(f"sampler.teacher={source}: {str(exc).splitlines()[0]}") from None
    return frozen(network)


def checkpoint_path_network(path: str, native: str | None = None) -> torch.nn.Module:
    """The standalone network of ``native`` (default: the largest arch) with the weights of the supernet in the
    nasframe checkpoint at ``path`` (a file or a run directory); the space is rebuilt from the checkpoint's record."""
    from nasframe.core.space import space_from_description
    from nasframe.export.extract import extract
    from nasframe.training.checkpoint import load_checkpoint

    state = load_checkpoint(path, mmap=True)  # the weights are copied into the supernet; the rest is not read
    try:
        space = space_from_description(json.loads(state["space"]), source=f"{path} (space)")
    except (KeyError, TypeError, json.JSONDecodeError):
        raise ConfigError(f"{path}: the checkpoint does not record its space (written by an older nasframe?)") from None
    supernet = space.build_supernet()
    try:
        supernet.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise ConfigError(f"{path}: its weights do not fit a supernet of its space (a few-shot checkpoint? "
                          f"merge it first): {str(exc).splitlines()[0]}") from None
    arch = space.parse(native) if native else space.largest()
    return extract(space, supernet, arch)


def frozen(network: torch.nn.Module) -> torch.nn.Module:
    """``network`` in eval mode with no parameter requiring a gradient: a fixed teacher."""
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return network.eval()

"""Build and check everything ``nasframe train`` needs before the first step: one line per bad input.

Inputs: ``arch=<native string>`` with ``space=`` and ``dataset=``, or ``run=<search run dir>`` (its
``export/arch.json``, its space settings and, unless ``dataset=`` is given, its data set). ``init=inherited``
starts from that run's exported subnet weights (``export/subnet_state_dict.pt``), loaded strictly into the
network trained here: a network that differs (DARTS's evaluation network is not its search network) is refused.
Names read from the run's files resolve only to registered components (``allow_import=False``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from nasframe.core.arch import Arch
from nasframe.core.settings import settings_from
from nasframe.core.space import SearchSpace
from nasframe.data.base import DatasetSplits, build_dataset
from nasframe.errors import CheckpointError, ConfigError, DataError
from nasframe.evaluation_phase.settings import TrainSettings
from nasframe.search import attach_data, build_space, check_data_fits_space, training_context
from nasframe.training.checkpoint import CHECKPOINT_NAME, load_checkpoint, resolve_resume
from nasframe.training.distributed import DistributedContext
from nasframe.training.trainer import TrainerConfig

INITS = ("scratch", "inherited")


@dataclass
class TrainSetup:
    """Every component of a ``nasframe train`` run, built and checked."""

    cfg: DictConfig
    device: torch.device
    data: DatasetSplits
    space: SearchSpace
    arch: Arch
    network: nn.Module  # on the device, seeded, inherited weights loaded; a graph data set's graph bound to it
    settings: TrainSettings
    trainer: TrainerConfig
    source_run: Path | None
    resume_from: Path | None
    distributed: DistributedContext
    teacher: nn.Module | None = None
    predicted_latency_ms: float | None = None  # from train.latency_table

    @property
    def description(self) -> dict[str, Any]:
        """What a checkpoint of this run must match: the space, the arch, the network built from it."""
        network = {"network": self.settings.network}
        if self.settings.network == "eval":
            network.update(channels=self.settings.channels, layers=self.settings.layers,
                           auxiliary=self.settings.auxiliary_weight > 0)
        return {"space": self.space.describe(), "arch": self.space.format(self.arch), **network}


def read_export(run_dir: Path) -> dict[str, Any]:
    """The run's ``export/arch.json``; a DataError naming what is missing."""
    path = run_dir / "export" / "arch.json"
    if not path.is_file():
        raise DataError(f"run={run_dir} has no export (export/arch.json): its search stopped before selection "
                        "(resume it) or is not finished")
    try:
        record = json.loads(path.read_text())
        record["space"]["name"], record["arch"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{path} is not a nasframe arch record ({type(exc).__name__}: {exc})") from None
    return record


def _merged(node: Any, extra: Any, where: str) -> Any:
    if not extra:
        return node
    try:
        return OmegaConf.merge(node, extra)
    except Exception as exc:
        raise ConfigError(f"{where}: {str(exc).splitlines()[0]}") from None


def setup_train(cfg: Any, run_dir: Path | None = None) -> TrainSetup:
    """Build and check all components of a train config; raises a NasframeError on bad input, before training."""
    from nasframe.rank import load_run_config

    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.structured(cfg)
    distributed, device, trainer_cfg = training_context(cfg)
    if trainer_cfg.epochs < 1:
        raise ConfigError("nasframe train: trainer.epochs must be >= 1")
    settings = settings_from(TrainSettings, cfg.train, "train")
    settings.check()
    if cfg.init not in INITS:
        raise ConfigError(f"init: {cfg.init!r} is not one of {', '.join(INITS)}")
    if cfg.run and cfg.arch:
        raise ConfigError("give arch=<native string> or run=<search run dir>, not both")
    source_run, record = None, None
    if cfg.run:
        source_run = Path(cfg.run).expanduser()
        search_cfg = load_run_config(source_run)  # "not a search run directory" when it has no config.yaml
        record = read_export(source_run)
        if cfg.space is not None:
            raise ConfigError(f"run={source_run} names its own space ({search_cfg.space.name}): drop space=")
        space_node = search_cfg.space
        dataset_node = cfg.dataset if cfg.dataset is not None else search_cfg.dataset
    else:
        if not cfg.arch:
            raise ConfigError("nasframe train needs arch=<native string> (with space=... dataset=...) or "
                              "run=<search run dir>")
        if cfg.init == "inherited":
            raise ConfigError("init=inherited needs run=<search run dir> (its exported subnet's weights); "
                              "arch= alone has no weights: use init=scratch")
        if cfg.space is None or cfg.dataset is None:
            raise ConfigError("arch= needs the space and data set it belongs to: space=... dataset=...")
        space_node, dataset_node = cfg.space, cfg.dataset
    if settings.distill_weight > 0 and source_run is None:
        raise ConfigError("train.distill_weight > 0 distils from a search run's supernet: give run=<search run dir>")
    space_node = _merged(space_node, settings.space_settings, "train.space_settings")
    dataset_node = _merged(dataset_node, settings.dataset_settings, "train.dataset_settings")
    protocol = f"+protocol={settings.protocol}" if settings.protocol else "this protocol"
    if settings.spaces and space_node.name not in settings.spaces:
        raise ConfigError(f"{protocol} is for space {' or '.join(settings.spaces)}, but this run's space is "
                          f"{space_node.name}")
    if settings.datasets and dataset_node.name not in settings.datasets:
        raise ConfigError(f"{protocol} is for data set {' or '.join(settings.datasets)}, but this run's data set is "
                          f"{dataset_node.name}")
    data = build_dataset(dataset_node)
    space = build_space(space_node, data.spec)
    check_data_fits_space(data, space, None)
    if data.is_graph and settings.cutout:
        raise ConfigError(f"train.cutout is an image augmentation; the data set '{data.name}' is a graph")
    if record is not None:
        if record["space"]["name"] != space.name:
            raise ConfigError(f"run={source_run}: its export is of space {record['space']['name']}, its config of "
                              f"{space.name}")
        arch = space.validate(record["arch"])
    else:
        arch = space.parse(cfg.arch)
    resume_from = resolve_resume(cfg.resume, run_dir)
    torch.manual_seed(cfg.seed)
    network = build_network(space, arch, settings)
    if cfg.init == "inherited":
        load_inherited(network, source_run, settings)
    setup = TrainSetup(cfg, device, data, space, arch, network, settings, trainer_cfg, source_run, resume_from,
                       distributed)
    setup.network = attach_data(network.to(device), setup)
    if settings.latency_table:
        from nasframe.selection.constraints import load_latency_budget

        setup.predicted_latency_ms = load_latency_budget(space, settings.latency_table, None).latency(arch)
    if settings.distill_weight > 0:
        setup.teacher = attach_data(build_teacher(space, search_cfg, source_run, data, device), setup)
    return setup


def build_network(space: SearchSpace, arch: Arch, settings: TrainSettings) -> nn.Module:
    """The network trained: the space's standalone subnet, or (``train.network=eval``) its evaluation network."""
    if settings.network == "subnet":
        return space.build_subnet(arch)
    if not space.has_eval_network:
        raise ConfigError(f"train.network=eval: space '{space.name}' has no evaluation network (darts has one); "
                          "use train.network=subnet")
    return space.build_eval_network(arch, channels=settings.channels, layers=settings.layers,
                   auxiliary=settings.auxiliary_weight > 0, drop_path_prob=0.0)


def load_inherited(network: nn.Module, run_dir: Path, settings: TrainSettings) -> None:
    """Load the run's exported subnet weights strictly; a one-line ConfigError when they do not fit."""
    path = run_dir / "export" / "subnet_state_dict.pt"
    if not path.is_file():
        raise DataError(f"init=inherited: run={run_dir} has no exported weights (export/subnet_state_dict.pt)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"init=inherited: cannot read {path} ({str(exc).splitlines()[0]})") from None
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        hint = (f" (train.network=eval builds the evaluation network, {settings.layers} cells of {settings.channels} "
                "channels, not the search network the weights were trained in: use init=scratch)"
                if settings.network == "eval" else "")
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        first = "; ".join(lines[:2]).replace(":;", ":")
        raise ConfigError(f"init=inherited: the weights in {path} do not fit the network trained here{hint}: "
                          f"{first}") from None


def build_teacher(space: SearchSpace, search_cfg: DictConfig, run_dir: Path, data: DatasetSplits,
                  device: torch.device) -> nn.Module:
    """The supernet's largest path with its trained weights (OFA distils fine-tuned subnets from it), its
    BatchNorm statistics recalibrated on training batches, frozen, in eval mode."""
    from nasframe.evaluation.bn import recalibrate_batchnorm
    from nasframe.export.extract import extract
    from nasframe.sampling.base import build_sampler
    from nasframe.training.restore import restore_supernet

    checkpoint = run_dir / CHECKPOINT_NAME
    if not checkpoint.is_file():
        raise DataError(f"train.distill_weight > 0: run={run_dir} has no supernet checkpoint ({CHECKPOINT_NAME})")
    state = load_checkpoint(checkpoint, map_location="cpu")
    supernet = space.build_supernet()
    sampler = build_sampler(search_cfg.sampler, space, seed=0)
    supernet = restore_supernet(supernet, sampler, state, json.dumps(space.describe(), sort_keys=True), str(checkpoint))
    teacher = extract(space, supernet, space.largest()).to(device)
    if not data.is_graph:
        train = data.train
        batches = [(data.prepare(train.x[i:i + 256].to(device), None) if data.prepare else train.x[i:i + 256].to(device))
                   for i in range(0, min(len(train), 256 * 8), 256)]
        recalibrate_batchnorm(teacher, batches)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher.eval()

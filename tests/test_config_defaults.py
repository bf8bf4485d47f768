"""Each default lives once: a group option's YAML file extends its settings dataclass (stored in Hydra's ConfigStore
by :func:`nasframe.config.register_configs`) and restates none of its values, so the CLI and the library cannot drift
apart; Hydra refuses a misspelt key when it composes the config, and the CLI reports it on one line."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from nasframe.cli import CONFIG_DIR
from nasframe.config import option_schemas, register_configs, schema_name
from nasframe.training import TrainerConfig

GROUPS = ("space", "dataset", "sampler", "selector", "evaluator", "benchmark", "trainer")
OPTION_FILES = sorted(path for group in GROUPS for path in (CONFIG_DIR / group).glob("*.yaml"))
COMMANDS = {"search": "SearchConfig", "rank": "RankConfig", "tabular": "TabularConfig"}


@pytest.fixture(scope="module")
def schemas() -> dict[str, dict[str, type]]:
    register_configs()
    return option_schemas()


def _compose(*overrides: str, config_dir: Path = CONFIG_DIR, command: str = "search"):
    register_configs()
    with initialize_config_dir(str(config_dir), version_base="1.3"):
        return compose(command, overrides=list(overrides))


def _defaults(schema: type) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(schema))


def _extended_schema(raw, group: str) -> str | None:
    """The option whose schema the YAML file names in its defaults (``/<group>_<name>_schema``), if any."""
    for entry in raw.get("defaults", []):
        if isinstance(entry, str) and entry.startswith(f"/{group}_") and entry.endswith("_schema"):
            return entry[len(f"/{group}_"):-len("_schema")]
    return None


@pytest.mark.parametrize("path", OPTION_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_option_yaml_extends_its_dataclass_and_restates_no_default(path, schemas):
    group, stem = path.parent.name, path.stem
    raw = OmegaConf.load(path)
    if group == "trainer":  # typed by SearchConfig.trainer: every option is a TrainerConfig
        name, schema = stem, TrainerConfig
    else:
        name = _extended_schema(raw, group) or raw.get("name")
        schema = schemas[group].get(name)
        assert schema is not None or _extended_schema(raw, group) is None, (
            f"configs/{group}/{stem}.yaml extends '/{schema_name(group, name)}', but no registered {group} '{name}' has "
            f"a settings dataclass: register the class (for nasframe's own, its module in nasframe/core/registry.py)")
        if schema is None:
            pytest.skip(f"{group}/{stem}: option '{name}' has no settings dataclass (a plugin's node stays open)")
        assert _extended_schema(raw, group) == name, (
            f"configs/{group}/{stem}.yaml: the option '{name}' has a settings dataclass ({schema.__name__}): name "
            f"'/{schema_name(group, name)}' first in the file's defaults, so that Hydra checks its keys")
    fields = {f.name for f in dataclasses.fields(schema)} | ({"name"} if group != "trainer" else set())
    keys = set(raw) - {"defaults"}
    assert keys <= fields, f"configs/{group}/{stem}.yaml: {sorted(keys - fields)} not fields of {schema.__name__}"
    defaults = {"name": name, **_defaults(schema)} if group != "trainer" else _defaults(schema)
    if stem == name:  # the option itself (not a preset of another name): its defaults are the dataclass's
        disagree = {k: (raw[k], defaults[k]) for k in keys if raw[k] != defaults[k]}
        assert not disagree, f"configs/{group}/{stem}.yaml disagrees with {schema.__name__} (yaml, dataclass): {disagree}"
        assert not keys, f"configs/{group}/{stem}.yaml restates {sorted(keys)}: the defaults live in {schema.__name__}"
        composed = OmegaConf.to_container(_compose(f"{group}={stem}")[group])
        assert composed == defaults


def test_every_option_with_settings_has_its_yaml(schemas):
    """A new sampler (space, selector, ...) of this repository is its module plus one YAML file extending its schema."""
    for group, options in schemas.items():
        for name, schema in options.items():
            if schema.__module__.split(".")[0] in ("nasframe", "search_spaces"):
                assert (CONFIG_DIR / group / f"{name}.yaml").is_file(), f"configs/{group}/{name}.yaml is missing"


@pytest.mark.parametrize("command", COMMANDS)
def test_command_yaml_restates_no_default(command):
    raw = OmegaConf.load(CONFIG_DIR / f"{command}.yaml")
    assert set(raw) <= {"defaults", "hydra"}, (
        f"configs/{command}.yaml restates {sorted(set(raw) - {'defaults', 'hydra'})}: defaults live in "
        f"{COMMANDS[command]} (nasframe/config.py)")


@pytest.mark.parametrize("path", [p for p in OPTION_FILES if p.parent.name != "trainer"],
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_misspelt_key_of_a_group_option_is_refused_at_compose_time(path, schemas):
    group, stem = path.parent.name, path.stem
    if stem not in schemas[group]:
        pytest.skip(f"{group}/{stem} has no settings dataclass")
    with pytest.raises(ConfigCompositionException) as refused:
        _compose(f"{group}={stem}", f"{group}.not_a_key=3")
    assert "not_a_key" in str(refused.value.__cause__)


def test_cli_override_keeps_working_and_misspelt_key_and_wrong_type_fail_at_compose():
    cfg = _compose("sampler=sandwich", "sampler.num_random=3")
    assert cfg.sampler.name == "sandwich" and cfg.sampler.num_random == 3
    with pytest.raises(ConfigCompositionException, match="sampler.num_rndom"):
        _compose("sampler=sandwich", "sampler.num_rndom=3")
    with pytest.raises(ConfigCompositionException, match="space.channels"):
        _compose("space.channels=many")
    for command, group in (("rank", "benchmark"), ("tabular", "space")):  # the groups of the other commands too
        with pytest.raises(ConfigCompositionException):
            _compose(f"{group}.not_a_key=1", command=command)


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml")))
def test_experiments_compose(experiment, schemas):
    from nasframe.core.settings import settings_from

    cfg = _compose(f"+experiment={experiment}")
    for group in ("space", "dataset", "sampler", "selector"):
        node = OmegaConf.to_container(cfg[group])
        settings_from(schemas[group][node.pop("name")], node, group)


def test_misspelt_key_in_a_yaml_file_is_refused_and_a_new_option_is_one_module_plus_one_yaml(tmp_path, monkeypatch):
    from nasframe.core.registry import SAMPLERS
    from nasframe.core.settings import Configurable

    @dataclasses.dataclass
    class StrictConfig:
        paths: int = 4  # a new sampler's settings

    class StrictSampler(Configurable):
        Config = StrictConfig

    class PluginSampler:  # a plugin without a settings dataclass: its node stays open
        pass

    monkeypatch.setitem(SAMPLERS._registered, "strict_test", StrictSampler)
    monkeypatch.setitem(SAMPLERS._registered, "plugin_test", PluginSampler)
    configs = tmp_path / "configs"
    shutil.copytree(CONFIG_DIR, configs)
    sampler_dir = configs / "sampler"
    (sampler_dir / "strict_test.yaml").write_text("defaults:\n  - /sampler_strict_test_schema\n  - _self_\n")
    (sampler_dir / "strict_typo.yaml").write_text("defaults:\n  - /sampler_strict_test_schema\n  - _self_\npahts: 2\n")
    (sampler_dir / "strict_preset.yaml").write_text("defaults:\n  - /sampler_strict_test_schema\n  - _self_\npaths: 8\n")
    (sampler_dir / "plugin_test.yaml").write_text("name: plugin_test\nanything: 1\n")

    assert OmegaConf.to_container(_compose("sampler=strict_test", config_dir=configs).sampler) == {
        "name": "strict_test", "paths": 4}
    assert _compose("sampler=strict_preset", config_dir=configs).sampler.paths == 8
    with pytest.raises(ConfigCompositionException, match="pahts"):
        _compose("sampler=strict_typo", config_dir=configs)
    with pytest.raises(ConfigCompositionException, match="pahts"):
        _compose("sampler=strict_test", "sampler.pahts=2", config_dir=configs)
    assert _compose("sampler=plugin_test", "+sampler.more=2", config_dir=configs).sampler.anything == 1


def _nasframe(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("nasframe")
    cmd = [exe] if exe else [sys.executable, "-m", "nasframe.cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_cli_reports_a_misspelt_key_on_one_line_before_any_run(tmp_path):
    proc = _nasframe("search", "sampler=sandwich", "sampler.num_rndom=3", f"hydra.run.dir={tmp_path / 'run'}",
                     cwd=tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert proc.stderr.startswith("nasframe search: error: ") and "'num_rndom' not in 'SandwichConfig'" in proc.stderr
    assert "num_random" in proc.stderr  # the valid keys
    assert not (tmp_path / "run").exists()
    shown = _nasframe("search", "sampler=sandwich", "sampler.num_random=3", "--cfg", "job", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    sandwich = option_schemas()["sampler"]["sandwich"]
    assert OmegaConf.create(shown.stdout).sampler == {"name": "sandwich", **_defaults(sandwich), "num_random": 3}

"""Once-for-All's accuracy predictor as an evaluator (evaluator=predictor): measured subnets, an MLP on the one-hot
encoding, the selector querying the MLP; the selected arch's accuracy stays measured."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from scipy import stats

from nasframe.errors import ConfigError
from nasframe.evaluation.ranking import sample_archs
from nasframe.evaluation.predictor import PredictorConfig, PredictorEvaluator


def conv_count(arch) -> float:
    return 10.0 * sum("conv" in option for option in arch.values()) + 2.0 * sum(o == "skip_connect" for o in arch.values())


def make(space, digits, **settings):
    supernet = space.build_supernet()
    config = PredictorConfig(bn_recalibration_batches=0, hidden=[64, 64], max_iter=3000, **settings)
    return PredictorEvaluator(supernet, digits.valid, digits.train, config, space=space)


def test_the_predictor_learns_measured_accuracies_from_the_encoding_and_is_scored_on_held_out_archs(
        tiny_space, digits, monkeypatch) -> None:
    evaluator = make(tiny_space, digits, num_measured=120)
    measured = []
    monkeypatch.setattr(PredictorEvaluator, "accuracy_of", lambda self, arch: measured.append(arch) or conv_count(arch))
    unseen = [a for a in sample_archs(tiny_space, 300, seed=5) if a not in set(sample_archs(tiny_space, 120, 0))][:60]
    predicted = [evaluator(a) for a in unseen]
    assert len(measured) == 120 and evaluator.fit_report["measured"] == 120 and evaluator.fit_report["held_out"] == 24
    assert evaluator.fit_report["kendall_tau"] > 0.7  # the held-out check of a first fit on the other 96
    assert stats.kendalltau(predicted, [conv_count(a) for a in unseen]).statistic > 0.7
    assert len(measured) == 120  # queries after the fit measure nothing
    evaluator.clear_cache()  # new weights: the next query measures and fits again
    evaluator(unseen[0])
    assert len(measured) == 240


@pytest.mark.parametrize("settings, message", [({"num_measured": 5}, "num_measured must be >= 10"),
                                               ({"holdout_fraction": 1.0}, "holdout_fraction"),
                                               ({"hidden": []}, "hidden")])
def test_bad_predictor_settings_are_named(settings, message) -> None:
    with pytest.raises(ConfigError, match=message):
        PredictorConfig(**settings).check()


def test_a_search_with_the_predictor_reports_its_fit_and_measures_the_pick(tmp_path) -> None:
    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "nasframe.cli", "search", "space.channels=4", "space.cells_per_stage=1",
         "trainer.epochs=1", "trainer.batch_size=128", "evaluator=predictor", "evaluator.num_measured=20",
         "evaluator.hidden=[16]", "evaluator.max_iter=200", "evaluator.bn_recalibration_batches=1",
         "selector.population_size=8", "selector.generations=2", "baselines.enabled=false",
         "export.torch_export=false", "threads=1", "device=cpu", "trainer.progress=false", f"hydra.run.dir={run}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcome = json.loads((run / "outcome.json").read_text())
    assert outcome["predictor"]["fit"]["measured"] == 20 and "kendall_tau" in outcome["predictor"]["fit"]

"""Differentiable NAS: mixed-op maths, the DARTS sampler (first-order alpha steps, checkpointed state), magnitude
and perturbation selection on small supernets where the right answer is known by construction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytest
import torch
from torch import nn

from nasframe.core.arch import Arch
from nasframe.core.choice import Choice
from nasframe.core.modules import Mixture, OpChoice, Supernet, Zero, is_zero_op, path_op
from nasframe.core.space import DataSpec, EdgeGroup, SearchSpace
from nasframe.data.base import CyclingBatches, InMemoryLoader, TensorSplit
from nasframe.errors import ConfigError, InvalidArchError
from nasframe.evaluation.evaluator import EvaluatorConfig, SupernetEvaluator
from nasframe.sampling.darts import DARTSSampler
from nasframe.selection.base import SelectorInputs
from nasframe.selection.magnitude import MagnitudeSelector, magnitude_arch
from nasframe.selection.perturbation import PerturbationSelector
from nasframe.training import SupernetTrainer, TrainerConfig
from search_spaces.darts import DARTSSpace


# -- mixed ops ---------------------------------------------------------------------------------------------
def test_mixed_op_is_the_weighted_sum_of_its_candidates_with_none_skipped():
    torch.manual_seed(0)
    ops = {"none": Zero(), "a": nn.Linear(3, 3), "b": nn.Linear(3, 3), "c": nn.Tanh()}
    choice = OpChoice("edge", ops)
    x = torch.randn(5, 3)
    w = torch.softmax(torch.randn(4), 0)
    choice.set_weights(w)
    expected = w[1] * ops["a"](x) + w[2] * ops["b"](x) + w[3] * ops["c"](x)
    assert torch.allclose(choice(x), expected)
    choice.set_weights(w, include=torch.tensor([True, True, False, True]))  # 'b' masked out, others unchanged
    assert torch.allclose(choice(x), w[1] * ops["a"](x) + w[3] * ops["c"](x))
    assert not choice.is_zero
    choice.set_option("b")  # back to single path
    assert torch.equal(choice(x), ops["b"](x))


def test_mixture_gradient_reaches_alpha_as_the_softmax_chain_rule_says():
    torch.manual_seed(0)
    ops = {"none": Zero(), "a": nn.Linear(3, 3), "b": nn.Identity()}
    choice = OpChoice("edge", ops)
    alpha = torch.randn(3, requires_grad=True)
    x = torch.randn(4, 3)
    choice.set_weights(torch.softmax(alpha, 0))
    choice(x).sum().backward()
    # d/d alpha_k of sum_o p_o s_o = p_k (s_k - sum_o p_o s_o), with s_o = sum(op_o(x)) and s_none = 0
    p = torch.softmax(alpha.detach(), 0)
    with torch.no_grad():
        s = torch.stack([torch.zeros(()), ops["a"](x).sum(), x.sum()])
    assert torch.allclose(alpha.grad, p * (s - (p * s).sum()), atol=1e-5)


def test_one_hot_mixture_equals_the_single_path(tiny_space, rng):
    supernet = tiny_space.build_supernet().eval()
    x = torch.randn(3, 1, 8, 8)
    arch = tiny_space.sample(rng)
    supernet.set_mixture(Mixture({c.name: torch.tensor([float(o == arch[c.name]) for o in c.options]) for c in tiny_space.choices}))
    mixed = supernet(x)
    supernet.set_arch(arch)
    assert torch.allclose(mixed, supernet(x), atol=1e-6)
    supernet.set_mixture(Mixture(arch))  # choices given by name run their single op
    assert torch.allclose(mixed, supernet(x), atol=1e-6)


# -- the DARTS sampler ----------------------------------------------------------------------------------------
def darts_trainer(space, digits, seed=0, epochs=2, run_dir=None, **sampler_settings):
    torch.manual_seed(seed)
    supernet = space.build_supernet()
    cfg = TrainerConfig(epochs=epochs, batch_size=128, lr=0.05, progress=False)
    loader = InMemoryLoader(digits.train, 128, seed=seed)
    arch_loader = InMemoryLoader(digits.valid, 128, seed=seed + 1)
    sampler = DARTSSampler(space, seed=seed, **sampler_settings)
    return SupernetTrainer(supernet, sampler, loader, cfg, run_dir=run_dir, space_description=space.describe(),
                           arch_loader=arch_loader)


def test_arch_step_is_one_adam_step_on_alpha_from_the_valid_batch_only(tiny_space, digits):
    trainer = darts_trainer(tiny_space, digits, init_scale=0.0)
    sampler, supernet = trainer.sampler, trainer.supernet
    weights_before = {k: v.clone() for k, v in supernet.state_dict().items()}
    x, y = digits.valid.x[:64], digits.valid.y[:64]
    # the gradient the step should use: d CE(mixed supernet(x_valid)) / d alpha
    alpha = {k: a.detach().clone().requires_grad_() for k, a in sampler.alpha.items()}
    supernet.set_mixture(Mixture({k: torch.softmax(a, 0) for k, a in alpha.items()}))
    torch.nn.functional.cross_entropy(supernet(x), y).backward()
    supernet.zero_grad(set_to_none=True)
    sampler.arch_step(supernet, x, y)
    for name, a in sampler.alpha.items():
        # Adam's first step moves each coordinate by lr * g / (|g| + eps): -lr * sign(g) where g is not tiny
        g = alpha[name].grad
        big = g.abs() > 1e-5
        assert torch.allclose(a.detach()[big], -sampler.config.arch_lr * torch.sign(g[big]), rtol=1e-3)
    for key, value in supernet.state_dict().items():  # weights untouched (BN statistics may move)
        if "running" not in key and "num_batches" not in key:
            assert torch.equal(value, weights_before[key]), key
    assert all(p.grad is None for p in supernet.parameters())  # no weight gradients were computed


def test_darts_training_trains_alpha_and_resumes_exactly(tiny_space, digits, tmp_path):
    straight = darts_trainer(tiny_space, digits, epochs=2)
    straight.fit()
    first = darts_trainer(tiny_space, digits, epochs=2, run_dir=tmp_path)
    first.fit(until_epoch=1)
    resumed = darts_trainer(tiny_space, digits, seed=7, epochs=2)  # other init and streams: all from the checkpoint
    resumed.resume(tmp_path)
    resumed.fit()
    for name in straight.sampler.alpha:
        assert torch.equal(straight.sampler.alpha[name], resumed.sampler.alpha[name])
        assert not torch.equal(straight.sampler.alpha[name], darts_trainer(tiny_space, digits).sampler.alpha[name])
    for key, value in straight.supernet.state_dict().items():
        assert torch.equal(value, resumed.supernet.state_dict()[key]), key
    assert straight.history == resumed.history


def test_fixed_choices_run_their_op_and_keep_their_alpha(tiny_space, digits):
    trainer = darts_trainer(tiny_space, digits)
    sampler = trainer.sampler
    sampler.fix({"edge_1_0": "nor_conv_3x3"})
    before = sampler.alpha["edge_1_0"].detach().clone()
    x, y = digits.valid.x[:64], digits.valid.y[:64]
    sampler.arch_step(trainer.supernet, x, y)
    assert torch.equal(sampler.alpha["edge_1_0"].detach(), before)
    assert sampler.mixture()["edge_1_0"] == "nor_conv_3x3"
    assert not torch.equal(sampler.alpha["edge_2_0"].detach(), torch.zeros(5))


def test_cycling_batches_resume_mid_pass(digits):
    stream = CyclingBatches(InMemoryLoader(digits.valid, 100, seed=3))
    for _ in range(5):  # past the end of the first pass (3 batches)
        next(stream)
    state = stream.state_dict()
    expected = [next(stream)[1] for _ in range(4)]
    again = CyclingBatches(InMemoryLoader(digits.valid, 100, seed=99))
    again.load_state_dict(state)
    assert all(torch.equal(a, next(again)[1]) for a in expected)


def test_darts_needs_an_arch_loader_and_pada_refuses_tied_choices(tiny_space, digits):
    with pytest.raises(ConfigError, match="needs an arch_loader"):
        SupernetTrainer(tiny_space.build_supernet(), DARTSSampler(tiny_space), InMemoryLoader(digits.train, 64),
                        TrainerConfig(progress=False))
    from nasframe.sampling.pada import PADASampler

    darts = DARTSSpace(DataSpec(3, (16, 16), 10), channels=4, layers=3)
    with pytest.raises(ConfigError, match="ties choices together"):
        PADASampler(darts)
    assert darts.contains(PADASampler(darts, path=False).sample())


# -- magnitude ---------------------------------------------------------------------------------------------
def test_magnitude_rule_argmax_per_choice_on_nb201(tiny_space):
    weights = {c.name: torch.tensor([0.1, 0.2, 0.3, 0.15, 0.25]) for c in tiny_space.choices}
    weights["edge_3_2"] = torch.tensor([0.5, 0.1, 0.1, 0.2, 0.1])  # none wins: NB201 read-out keeps it
    arch = magnitude_arch(tiny_space, weights)
    assert arch["edge_1_0"] == "nor_conv_1x1" and arch["edge_3_2"] == "none"


def test_magnitude_rule_keeps_the_two_strongest_edges_per_darts_node():
    space = DARTSSpace(DataSpec(3, (16, 16), 10), channels=4, layers=3)
    # uniform weights except where stated; ops: none, max, avg, skip, sep3, sep5, dil3, dil5
    weights = {c.name: torch.full((8,), 1 / 8) for c in space.choices}
    weights["normal_4_0"] = torch.tensor([0.9, 0.01, 0.01, 0.01, 0.03, 0.01, 0.02, 0.01])  # strong none: ignored
    weights["normal_4_1"] = torch.tensor([0.1, 0.1, 0.1, 0.4, 0.1, 0.1, 0.05, 0.05])  # skip 0.4
    weights["normal_4_2"] = torch.tensor([0.1, 0.05, 0.05, 0.05, 0.05, 0.3, 0.2, 0.2])  # sep5 0.3
    weights["normal_4_3"] = torch.tensor([0.1, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2])  # max 0.2 (tie with dil5)
    arch = magnitude_arch(space, weights)
    assert [arch[f"normal_4_{j}"] for j in range(4)] == ["none", "skip_connect", "sep_conv_5x5", "none"]


def test_magnitude_selector_needs_a_differentiable_sampler(tiny_space):
    from nasframe.sampling.uniform import UniformSampler
    from nasframe.selection.base import check_architecture_weights

    with pytest.raises(ConfigError, match="sampler=darts"):
        MagnitudeSelector().select(tiny_space, lambda a: 0.0)
    with pytest.raises(ConfigError, match="not sampler=uniform"):  # refused before training starts
        check_architecture_weights(MagnitudeSelector(), UniformSampler(tiny_space))


# -- perturbation on a supernet whose answer is known by construction ---------------------------------------
class ToyZero(Zero):
    """``none`` with the edge's output shape (3 features), for nodes whose included options are all zero."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :3].mul(0.0)


class ToySpace(SearchSpace):
    """Three edges into one node (keep 2) plus a free choice 'gate', on 6-d inputs with 3 classes.

    The label is argmax of ``x[:, :3] + x[:, 3:]`` (two halves of the signal). Edge ``e0``'s op ``half_a``
    carries ``x[:, :3]``, ``e1``'s op ``half_b`` carries ``x[:, 3:]``; every other op is a large fixed noise
    projection. So the right cell is ``e0=half_a, e1=half_b, e2=none`` and ``gate=pass``. Architecture weights
    that favour noise make the magnitude rule pick wrong, while removing the signal hurts most."""

    name = "toy"
    zero_option = "none"

    def _make_choices(self) -> Sequence[Choice]:
        return [Choice("e0", ("none", "half_a", "noise")), Choice("e1", ("none", "half_b", "noise")),
                Choice("e2", ("none", "noise")), Choice("gate", ("pass", "noise"))]

    def edge_groups(self) -> list[EdgeGroup]:
        return [EdgeGroup("node", ("e0", "e1", "e2"), 2)]

    def validate(self, arch: Mapping[str, str]) -> Arch:
        arch = super().validate(arch)
        if sum(arch[e] != "none" for e in ("e0", "e1", "e2")) != 2:
            raise InvalidArchError("toy: the node keeps exactly 2 edges")
        return arch

    def sample(self, rng: np.random.Generator) -> Arch:
        for _ in range(1000):  # rejection sampling: uniform over the valid archs
            arch = super().sample(rng)
            if self.contains(arch):
                return arch
        raise InvalidArchError("toy: no valid arch in this sub-space")

    def _ops(self, seed: int) -> dict[str, dict[str, nn.Module]]:
        def select(cols: slice) -> nn.Module:
            layer = nn.Linear(6, 3, bias=False)
            with torch.no_grad():
                layer.weight.zero_()
                layer.weight[:, cols] = torch.eye(3)
            return layer

        def noise(k: int) -> nn.Module:
            layer = nn.Linear(6, 3, bias=False)
            with torch.no_grad():
                layer.weight.copy_(torch.randn(3, 6, generator=torch.Generator().manual_seed(seed + k)) * 3)
            return layer

        return {
            "e0": {"none": ToyZero(), "half_a": select(slice(0, 3)), "noise": noise(1)},
            "e1": {"none": ToyZero(), "half_b": select(slice(3, 6)), "noise": noise(2)},
            "e2": {"none": ToyZero(), "noise": noise(3)},
            "gate": {"pass": nn.Identity(), "noise": nn.Sequential(nn.Linear(3, 3, bias=False), nn.Tanh())},
        }

    def build_supernet(self) -> "ToyNet":
        return ToyNet({name: OpChoice(name, ops) for name, ops in self._ops(0).items()})

    def build_subnet(self, arch: Mapping[str, str]) -> nn.Module:
        return ToyNet({name: ops[arch[name]] for name, ops in self._ops(0).items()})


class ToyNet(Supernet):
    def __init__(self, edges: Mapping[str, nn.Module]) -> None:
        super().__init__()
        self.edges = nn.ModuleDict(edges)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ops = [path_op(self.edges[n]) for n in ("e0", "e1", "e2")]
        total = sum(op(x) for op in ops if not is_zero_op(op))  # none edges skipped, as real cells do
        return self.edges["gate"](total)


@pytest.fixture
def toy():
    space = ToySpace(DataSpec(6, (1, 1), 3))
    supernet = space.build_supernet()
    x = torch.randn(600, 6, generator=torch.Generator().manual_seed(5))
    y = (x[:, :3] + x[:, 3:]).argmax(dim=1)
    evaluator = SupernetEvaluator(supernet, TensorSplit(x, y), None, EvaluatorConfig(bn_recalibration_batches=0))
    sampler = DARTSSampler(space, init_scale=0.0)
    with torch.no_grad():  # architecture weights that favour the noise ops
        sampler.alpha["e0"].copy_(torch.tensor([0.0, 0.0, 2.0]))
        sampler.alpha["e1"].copy_(torch.tensor([0.0, 0.0, 2.0]))
        sampler.alpha["e2"].copy_(torch.tensor([0.0, 3.0]))
        sampler.alpha["gate"].copy_(torch.tensor([0.0, 1.0]))
    return space, supernet, evaluator, sampler


RIGHT = Arch(e0="half_a", e1="half_b", e2="none", gate="pass")


def differentiable(evaluator, sampler):
    """What a search gives selectors on a DARTS supernet: the architecture weights and the mixture's accuracy."""
    return SelectorInputs(architecture=sampler, mixture_accuracy=evaluator.mixture_accuracy)


def test_perturbation_finds_the_known_cell_where_magnitude_does_not(toy):
    space, supernet, evaluator, sampler = toy
    assert evaluator(RIGHT) == 100.0
    wrong = MagnitudeSelector().select(space, evaluator, inputs=SelectorInputs(architecture=sampler))
    assert wrong.arch["e2"] == "noise" and wrong.arch["e0"] == "noise"
    result = PerturbationSelector().select(space, evaluator, seed=0, inputs=differentiable(evaluator, sampler))
    assert result.arch == RIGHT and result.score == 100.0
    decisions = result.details["decisions"]
    assert [d["step"] for d in decisions] == ["operation"] * 4 + ["topology"]
    e0 = next(d for d in decisions if d.get("choice") == "e0")
    assert e0["kept"] == "half_a" and "none" not in e0["accuracy_without"]  # grouped edge: none is the topology's call
    assert decisions[-1]["removed"] == "e2"
    assert sampler.fixed == dict(RIGHT)


def test_perturbation_on_a_single_path_supernet_uses_sampled_completions(toy):
    space, supernet, evaluator, _ = toy
    result = PerturbationSelector(completions=4).select(space, evaluator, seed=1)
    assert result.arch == RIGHT
    assert result.details["mode"] == "single-path"


def test_perturbation_fine_tunes_between_decisions(toy):
    space, supernet, evaluator, sampler = toy
    calls = []
    tuned = SelectorInputs(sampler, lambda steps, sub: calls.append((steps, sub)), evaluator.mixture_accuracy)
    PerturbationSelector(tune_steps=3).select(space, evaluator, inputs=tuned)
    assert calls == [(3, None)] * 5  # 4 operation decisions and 1 topology group
    with pytest.raises(ConfigError, match="fine-tuning hook"):
        PerturbationSelector(tune_steps=3).select(space, evaluator, inputs=differentiable(evaluator, sampler))

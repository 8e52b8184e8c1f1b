"""Built-in samplers against known answers: ULA's exact stationary bias, and annealing on mixtures."""

from __future__ import annotations

import math

import pytest
import torch

from scorelab.chain import run_chain
from scorelab.oracle import ScoreOracle
from scorelab.sources import ExactScore
from scorelab_builtins.samplers import AnnealedLangevin, Langevin
from scorelab_builtins.targets import GMM, Gaussian


def _run(sampler, target, x0, budget, seed=0):
    oracle = ScoreOracle(ExactScore(target))
    result = run_chain(sampler, oracle, x0, budget, torch.Generator().manual_seed(seed))
    return result, oracle


@pytest.mark.parametrize("h", [0.2, 0.6, 1.2])
def test_langevin_stationary_variance_is_the_known_biased_one(h):
    # ULA on N(0, v): x' = (1 - h/v) x + sqrt(2h) z has stationary variance v / (1 - h / (2v)).
    v, n = 1.0, 40_000
    target = Gaussian(dim=1, scale=math.sqrt(v))
    x0 = torch.randn(n, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    # Contraction |1 - h/v| <= 0.8 per step: after 200 steps the start is forgotten to 1e-19.
    result, _ = _run(Langevin(step_size=h), target, x0, budget=200)
    var = float(result.state.x.var())
    biased = v / (1 - h / (2 * v))
    # Independent chains: the sample variance has standard error biased * sqrt(2 / n) (<= 0.017 here).
    tol = 5 * biased * math.sqrt(2 / n)
    assert abs(var - biased) < tol
    assert abs(var - v) > tol  # the unbiased variance v lies outside that band
    assert abs(float(result.state.x.mean())) < 5 * math.sqrt(biased / n)


def test_langevin_costs_one_score_per_step():
    target = Gaussian(dim=3)
    result, oracle = _run(Langevin(step_size=0.1), target, torch.zeros(10, 3, dtype=torch.float64), budget=25)
    assert oracle.counts.nfe == 25 and result.steps == 24  # init evaluates the first score
    assert oracle.cost == 25


def _mixture():
    return GMM(weights=[0.8, 0.2], means=[[-5.0, -5.0], [5.0, 5.0]], stds=[1.0, 1.0])


def _mode_weights(target, x):
    k = target.component_log_probs(x).argmax(-1)
    return torch.bincount(k, minlength=2).double() / len(x)


@pytest.mark.slow
def test_annealing_recovers_mixture_weights_where_plain_langevin_cannot():
    target = _mixture()
    n = 3000
    x0 = 16 * torch.rand(n, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64) - 8
    annealed, _ = _run(AnnealedLangevin(sigma_max=20, sigma_min=0.1, levels=10, epsilon=0.005), target, x0, 1000)
    plain, _ = _run(Langevin(step_size=0.2), target, x0, 1000)
    w_annealed = _mode_weights(target, annealed.state.x)
    w_plain = _mode_weights(target, plain.state.x)
    # Binomial standard error of a weight at n = 3000 is sqrt(0.16 / 3000) = 0.007. Annealed Langevin
    # with a finite schedule is itself slightly biased; 0.05 allows that and 7 standard errors.
    assert abs(float(w_annealed[0]) - 0.8) < 0.05
    # Plain Langevin keeps the basin split of its uniform start: about half in each mode.
    assert abs(float(w_plain[0]) - 0.5) < 0.05


def test_annealed_schedule_splits_budget_and_finishes():
    target = _mixture()
    sampler = AnnealedLangevin(sigma_max=10, sigma_min=0.1, levels=5, epsilon=0.01, denoise=True)
    result, oracle = _run(sampler, target, torch.zeros(8, 2, dtype=torch.float64), budget=103)
    assert result.state.finished
    assert oracle.counts.nfe == 5 * 20 + 1  # floor((103 - 1) / 5) = 20 steps per level, then one denoising step


def test_annealed_needs_a_big_enough_budget():
    with pytest.raises(ValueError, match="too small"):
        _run(AnnealedLangevin(levels=10), _mixture(), torch.zeros(4, 2, dtype=torch.float64), budget=5)


def test_langevin_rejects_non_positive_step():
    with pytest.raises(ValueError, match="step_size"):
        Langevin(step_size=0.0)

"""MALA: the target is exactly invariant, and dual averaging lands the acceptance on its target.

Two-sample test. Chains start at n exact draws; after 50 MALA steps they are compared with n other
exact draws by a Kolmogorov-Smirnov test on four projections (the axes and the diagonals). Under
invariance each p-value is uniform; we fail below 1e-4 / 4 (Bonferroni: a false alarm with
probability <= 1e-4). The same test on unadjusted Langevin at the same step rejects with p < 1e-9,
so it has the power to see a bias of that size.
"""

from __future__ import annotations

import pytest
import torch
from scipy.stats import ks_2samp

from scorelab.oracle import ScoreOracle
from scorelab.sources import ExactScore
from scorelab_builtins.samplers import Langevin, Mala
from scorelab_builtins.targets import GMM, Gaussian

N = 5000
DIRECTIONS = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0]], dtype=torch.float64)
DIRECTIONS = DIRECTIONS / DIRECTIONS.norm(dim=1, keepdim=True)



def _mixture():
    """Non-Gaussian, so that invariance is not an accident of a linear map."""
    return GMM(weights=[0.3, 0.7], means=[[-1.5, 0.0], [1.5, 0.5]], stds=[0.5, 1.0])


def _run(sampler, target, x0, steps, seed=0):
    oracle = ScoreOracle(ExactScore(target))
    state, g, infos = sampler.init(x0, oracle, float("inf")), torch.Generator().manual_seed(seed), []
    for _ in range(steps):
        state, info = sampler.step(state, oracle, g)
        infos.append(info)
    return state, infos, oracle


def _p_values(x, y):
    return [ks_2samp((x @ d).numpy(), (y @ d).numpy()).pvalue for d in DIRECTIONS]


def test_started_at_exact_samples_mala_stays_exact_where_langevin_drifts():
    target = _mixture()
    x0 = target.sample(N, torch.Generator().manual_seed(1))
    fresh = target.sample(N, torch.Generator().manual_seed(2))
    mala, infos, _ = _run(Mala(step_size=0.3, warmup=0), target, x0, 50)
    ula, _, _ = _run(Langevin(step_size=0.3), target, x0, 50)
    assert min(_p_values(mala.x, fresh)) > 1e-4 / 4
    assert min(_p_values(ula.x, fresh)) < 1e-9
    moved = (mala.x != x0).any(1).double().mean()
    assert moved > 0.99  # the chains did move: invariance, not a frozen sampler
    assert 0.5 < torch.stack([i.accepted.mean() for i in infos]).mean() < 0.95


@pytest.mark.parametrize("target_accept,initial_step", [(0.574, 2.0), (0.574, 1e-3), (0.8, 0.5)])
def test_acceptance_after_warmup_is_on_target(target_accept, initial_step):
    # d = 10, rotated, condition number 10: the step has to find its scale from far too large or too small.
    target = Gaussian(dim=10, condition_number=10.0, rotate=True)
    x0 = target.sample(2000, torch.Generator().manual_seed(1))
    sampler = Mala(step_size=initial_step, warmup=100, target_accept=target_accept)
    state, infos, _ = _run(sampler, target, x0, 130)
    after = infos[100:]
    # Over 2000 chains x 30 steps the mean acceptance has a standard error well under 0.01 (measured
    # 0.562, 0.581 and 0.789 for the three cases); the issue asks for 0.05.
    acceptance = torch.stack([i.acceptance.mean() for i in after]).mean()
    assert abs(float(acceptance) - target_accept) < 0.05
    assert all(i.adapting == 0.0 for i in after)
    assert len({float(i.step_size) for i in after}) == 1  # frozen after warm-up


def test_a_far_too_large_step_is_rejected_not_diverged():
    target = Gaussian(dim=2)
    state, infos, _ = _run(Mala(step_size=1e6, warmup=0), target, torch.zeros(100, 2, dtype=torch.float64), 5)
    assert torch.isfinite(state.x).all()
    assert float(infos[-1].accepted.mean()) == 0.0


def test_bad_hyperparameters_are_clear_errors():
    with pytest.raises(ValueError, match="target_accept"):
        Mala(target_accept=1.5)
    with pytest.raises(ValueError, match="warmup"):
        Mala(warmup=-1)

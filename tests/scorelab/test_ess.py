"""Bulk ESS against chains whose ESS is known, and the tracer that records them without syncing.

M = 8 chains of N = 4000 draws throughout. The tolerances come from the estimator's spread over 200
seeds (measured when this file was written): the ESS / target ratio had standard deviation 0.017
for independent draws, 0.033 for AR(1) with rho = 0.5 and 0.065 with rho = 0.9, in line with
Sokal's var(tau) / tau^2 ~ 2 (2K + 1) / (M N) for a summation window of K lags. Each test averages
10 seeds (standard error sd / sqrt(10)) and allows 5 to 6 standard errors, which covers the estimator's
small downward bias (under 1 %).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import lfilter

from scorelab.ess import Tracer, bulk_ess, min_bulk_ess
from scorelab.testing._watch import HostSyncWatch

M, N = 8, 4000
SEEDS = range(10)


def ar1(rho: float, seed: int, chains: int = M, draws: int = N) -> np.ndarray:
    """x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t, started at stationarity: N(0, 1) marginals,
    integrated autocorrelation time (1 + rho) / (1 - rho)."""
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((chains, draws)) * math.sqrt(1 - rho**2)
    e[:, 0] = rng.standard_normal(chains)
    return lfilter([1.0], [1.0, -rho], e, axis=1)


def mean_ratio(make, target: float) -> float:
    return float(np.mean([bulk_ess(make(seed)) / target for seed in SEEDS]))


def test_independent_draws_count_in_full():
    ratio = mean_ratio(lambda s: np.random.default_rng(s).standard_normal((M, N)), M * N)
    assert abs(ratio - 1) < 0.03  # sd of the mean 0.017 / sqrt(10) = 0.005


@pytest.mark.parametrize("rho, tolerance", [(0.5, 0.06), (0.9, 0.11)])  # sd of the mean 0.010, 0.021
def test_ar1_chains_give_the_known_ess(rho, tolerance):
    ratio = mean_ratio(lambda s: ar1(rho, s), M * N * (1 - rho) / (1 + rho))
    assert abs(ratio - 1) < tolerance


def test_rank_normalisation_makes_a_cauchy_sample_count_in_full():
    ratio = mean_ratio(lambda s: np.random.default_rng(s).standard_cauchy((M, N)), M * N)
    assert abs(ratio - 1) < 0.03


def test_chains_stuck_in_different_places_count_as_few_draws():
    rng = np.random.default_rng(0)
    draws = rng.standard_normal((M, N)) + 3.0 * np.arange(M)[:, None]  # each mixes well, where it is
    assert sum(bulk_ess(chain[None]) for chain in draws) > 0.9 * M * N  # per chain, nothing is wrong
    assert bulk_ess(draws) < 0.01 * M * N


def test_splitting_catches_a_chain_that_moves_halfway():
    rng = np.random.default_rng(0)
    chain = rng.standard_normal((1, N)) + 3.0 * (np.arange(N) >= N // 2)
    assert bulk_ess(chain) < 0.01 * N


def test_min_over_projections_is_the_worst_mixed_one():
    trace = np.stack([np.random.default_rng(1).standard_normal((M, N)), ar1(0.9, 2)], axis=2)
    assert min_bulk_ess(trace) == bulk_ess(trace[:, :, 1]) < 0.2 * M * N


def test_constant_draws_have_no_ess_and_short_ones_are_refused():
    assert math.isnan(bulk_ess(np.ones((4, 100))))
    with pytest.raises(ValueError, match="at least 4"):
        bulk_ess(np.zeros((4, 3)))


def test_tracer_records_fixed_unit_projections_of_the_first_chains():
    tracer = Tracer(dim=6, projections=3, chains=5, seed=7)
    P = tracer.projection
    assert P.shape == (6, 3)
    torch.testing.assert_close(P.norm(dim=0), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(Tracer(dim=6, projections=3, chains=5, seed=7).projection, P)
    xs = [torch.randn(20, 2, 3, dtype=torch.float64) for _ in range(10)]
    for x in xs:
        tracer.record(x)
    trace = tracer.trace(start_fraction=0.4)
    assert trace.shape == (5, 6, 3) and trace.dtype == np.float64
    np.testing.assert_allclose(trace[:, 0], (xs[4][:5].reshape(5, 6) @ P).numpy())


def test_tracer_ess_of_independent_draws():
    tracer = Tracer(dim=3, projections=4, chains=16, seed=0)
    g = torch.Generator().manual_seed(0)
    for _ in range(1000):
        tracer.record(torch.randn(32, 3, generator=g))
    assert 0.85 * 16 * 500 < tracer.ess() < 1.15 * 16 * 500  # the second half: 500 draws of 16 chains


def test_tracer_record_never_syncs():
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tracer = Tracer(dim=4, chains=8, device=device, dtype=torch.float32)
    x = torch.randn(16, 4, device=device)
    with HostSyncWatch(device) as watch:
        for _ in range(3):
            tracer.record(x)
    assert watch.events == []
    assert len(tracer) == 3 and tracer.trace(0.0).shape == (8, 3, 4)

"""The chains' own spread as preconditioner: ensemble_langevin (ALDI) and ensemble_mala.

Target: the rotated ill-conditioned Gaussian N(mu, Sigma), d = 5, condition number 100, mean 0.5,
with Sigma = A A^T (A its Cholesky factor). Moments are read in its whitened frame u = A^-1 (x - mu),
where the exact law is N(0, I), pooled over steps after a burn-in: E[u] = 0 and E[u u^T] = I under
the exact law. Every sample size, standard error and tolerance is stated where it is used; seeds are
fixed and everything runs in float64.
"""

from __future__ import annotations

import doctest
import math

import pytest
import torch

from scorelab.chain import run_chain
from scorelab.oracle import ScoreOracle
from scorelab.sources import ExactScore
from scorelab.testing import check_sampler
from scorelab_builtins.kernels import dual_averaging as _dual_averaging
from scorelab_builtins.samplers import EnsembleLangevin, EnsembleMala, Langevin, Mala
from scorelab_builtins.targets import Gaussian

D = 5


def _target() -> Gaussian:
    return Gaussian(dim=D, condition_number=100, rotate=True, mean_value=0.5)


def _whitener(target):
    A = torch.linalg.cholesky(target.covariance)
    mu = target.mean.reshape(-1)
    return lambda x: torch.linalg.solve_triangular(A, (x - mu).T, upper=False).T


def _run(sampler, target, x0, steps, seed=0, on_step=None):
    oracle = ScoreOracle(ExactScore(target))
    state, g, infos = sampler.init(x0, oracle, math.inf), torch.Generator().manual_seed(seed), []
    for k in range(1, steps + 1):
        state, info = sampler.step(state, oracle, g)
        infos.append(info)
        if on_step is not None:
            on_step(k, state)
    return state, infos, oracle


class _Pooled:
    """Whitened first and second moments E[u], E[u u^T] pooled over chains and steps after ``burn``;
    ``per_step`` keeps each step's mean of u_i^2 over chains and coordinates."""

    def __init__(self, whiten, burn):
        self.whiten, self.burn = whiten, burn
        self.s1, self.s2, self.n, self.per_step = 0.0, 0.0, 0, []

    def __call__(self, k, state):
        if k > self.burn:
            u = self.whiten(state.x)
            self.s1, self.s2, self.n = self.s1 + u.sum(0), self.s2 + u.T @ u, self.n + len(u)
            self.per_step.append(float(u.square().mean()))

    @property
    def mean(self):
        return self.s1 / self.n

    @property
    def second(self):
        return self.s2 / self.n


def aldi_variance(h: float) -> float:
    """ALDI's stationary variance in the whitened frame, for many chains (ensemble_langevin's docstring)."""
    return 2 / (1 + math.sqrt(1 - 2 * h))


# -- ensemble_langevin: its bias, in closed form -----------------------------------------------------

@pytest.mark.slow
def test_ensemble_langevin_stationary_law_is_the_derived_one():
    h, n, burn, pooled_steps = 0.3, 4000, 100, 300
    target = _target()
    pooled = _Pooled(_whitener(target), burn)
    x0 = target.sample(n, torch.Generator().manual_seed(1))  # C = Sigma up to sampling from the start
    _run(EnsembleLangevin(step_size=h), target, x0, burn + pooled_steps, on_step=pooled)
    w = aldi_variance(h)  # 1.2251; ULA at the fixed preconditioner Sigma would give 1 / (1 - h/2) = 1.1765
    # One step's E[u_i^2] over 4000 chains has sd w sqrt(2 / 4000) = 0.027 per coordinate; its
    # autocorrelation decays by (1 - h w)^2 = 0.40 a step (integrated time 2.3 steps), so 300 steps
    # give 0.027 sqrt(2.3 / 300) = 0.0024 per coordinate, 0.0011 averaged over the 5 (batch means
    # over 20 batches, measured: 0.0008 at 1000 steps, 0.0013 at 300, C couples the coordinates).
    diag = pooled.second.diagonal()
    assert (diag - w).abs().max() < 5 * 0.0024 * 1.5
    assert abs(float(diag.mean()) - w) < 5 * 0.0013
    assert abs(float(diag.mean()) - 1 / (1 - h / 2)) > 20 * 0.0013  # the first-order formula is rejected
    off = pooled.second - torch.diag(diag)
    assert off.abs().max() < 5 * 0.0024 * 1.5  # the whitened covariance is w I: no direction left over
    # E[u_i] per step has sd sqrt(w / 4000) = 0.0175 and decays by 1 - h w = 0.63 a step (integrated
    # time 4.4): over 300 steps, SE 0.0175 sqrt(4.4 / 300) = 0.0021. The mean is unbiased.
    assert pooled.mean.abs().max() < 5 * 0.0021


def _small_ensemble_spread(correction: bool) -> torch.Tensor:
    """E[u^2] per independent ensemble: N = 20 chains, d = 5, h = 0.05, from exact draws, 1000 steps
    pooled after 100."""
    target, estimates = _target(), []
    whiten = _whitener(target)
    for seed in range(6):
        pooled = _Pooled(whiten, 100)
        x0 = target.sample(20, torch.Generator().manual_seed(100 + seed))
        sampler = EnsembleLangevin(step_size=0.05, jitter=0.0, correction=correction)
        _run(sampler, target, x0, 1100, seed=seed, on_step=pooled)
        estimates.append(float(pooled.second.diagonal().mean()))
    return torch.tensor(estimates, dtype=torch.float64)


@pytest.mark.slow
def test_the_finite_ensemble_correction_keeps_a_small_ensemble_at_the_exact_spread():
    # N = 20 > d + 1 chains, no jitter: with the (d + 1)/N term the product of the target is invariant
    # in continuous time, so the whitened spread is 1 up to the step's O(h) bias (measured 1.013 at
    # h = 0.05; for many chains it would be aldi_variance(0.05) - 1 = 0.026). Without it, E tr C
    # <= d (N - 1)/N at stationarity, about (N - 1)/(N + d) = 0.76 of it (docstring; measured 0.72).
    with_term, without = _small_ensemble_spread(True), _small_ensemble_spread(False)
    # Standard errors from the 6 independent ensembles (measured: 0.004 each).
    se_with = float(with_term.std() / math.sqrt(len(with_term)))
    se_without = float(without.std() / math.sqrt(len(without)))
    assert se_with < 0.01 and se_without < 0.01
    assert abs(float(with_term.mean()) - 1) < (aldi_variance(0.05) - 1) + 5 * se_with
    assert float(without.mean()) < 0.8
    assert float(with_term.mean() - without.mean()) > 0.2  # > 20 standard errors of the difference


# -- ensemble_langevin: affine invariance, draw for draw ---------------------------------------------

def _mapped_runs(make, base, mapped, A, b, steps=20):
    x0 = 1.5 * torch.randn(30, D, generator=torch.Generator().manual_seed(3), dtype=torch.float64) + 0.3
    x, _, _ = _run(make(), base, x0, steps, seed=7)
    y, _, _ = _run(make(), mapped, x0 @ A.T + b, steps, seed=7)
    return x.x @ A.T + b, y.x


@pytest.mark.parametrize("covariance", ["dense", "diagonal"])
def test_ensemble_langevin_is_affine_invariant_step_by_step(covariance):
    # N(0, I) mapped by y = A x + b is N(b, A A^T). With A the Cholesky factor of the rotated Gaussian's
    # covariance (dense), or the square root of an axis-aligned one's (diagonal), the Cholesky root of
    # the mapped ensemble's covariance is A times the root of the original's, so with the same draws the
    # chains map exactly: any misplaced C (s instead of C s, C^-1, a symmetric root) breaks this.
    if covariance == "dense":
        mapped = _target()
        A = torch.linalg.cholesky(mapped.covariance)
    else:
        mapped = Gaussian(dim=D, condition_number=100, mean_value=0.5)
        A = torch.diag(mapped.covariance.diagonal().sqrt())
    b = mapped.mean.reshape(-1)
    mapped_x, y = _mapped_runs(lambda: EnsembleLangevin(step_size=0.2, covariance=covariance, jitter=0.0),
                               Gaussian(dim=D), mapped, A, b)
    assert torch.allclose(y, mapped_x, rtol=0, atol=1e-9)
    # The same check rejects plain Langevin, which is not affine invariant: it has the power to see it.
    mapped_x, y = _mapped_runs(lambda: Langevin(step_size=0.005), Gaussian(dim=D), mapped, A, b)
    assert (y - mapped_x).abs().max() > 0.01


# -- ensemble_mala: exact after warm-up, and a step far beyond plain MALA's --------------------------

@pytest.fixture(scope="module")
def mala_runs():
    """ensemble_mala and plain mala, 4000 chains from N(0, I) (whitened, as wide as 100 sd along the
    stiff axis), both with a 200-step warm-up; ensemble_mala pooled over the 400 steps after it."""
    target, n, warmup = _target(), 4000, 200
    x0 = torch.randn(n, D, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    pooled = _Pooled(_whitener(target), warmup)
    state, infos, _ = _run(EnsembleMala(warmup=warmup), target, x0, warmup + 400, on_step=pooled)
    _, plain_infos, _ = _run(Mala(step_size=0.01, warmup=warmup), target, x0, warmup + 1)
    return state, infos, pooled, plain_infos[-1]


@pytest.mark.slow
def test_ensemble_mala_samples_the_exact_law_after_warmup(mala_runs):
    state, infos, pooled, _ = mala_runs
    h = float(infos[-1].step_size)
    # One step's E[u_i u_j] over 4000 chains has sd sqrt(2 / 4000) = 0.022 on the diagonal (0.016 off
    # it); the measured autocorrelation of the chains' mean square is 0.49, 0.25, 0.15 at lags 1, 2, 5
    # (integrated time under 4), so 400 steps give SE 0.022 sqrt(4 / 400) = 0.0022.
    second = pooled.second
    assert (second - torch.eye(D, dtype=second.dtype)).abs().max() < 5 * 0.0022
    # The unadjusted step with the same M and h would settle at 1 / (1 - h/2) (1.7 at h = 0.84).
    assert abs(float(second.diagonal().mean()) - 1 / (1 - h / 2)) > 0.2
    # E[u_i]: sd sqrt(1 / 4000) = 0.016 a step, integrated time under 6: SE 0.016 sqrt(6 / 400) = 0.0019.
    assert pooled.mean.abs().max() < 5 * 0.0019


def test_ensemble_mala_accepts_on_target_with_a_frozen_step(mala_runs):
    _, infos, _, _ = mala_runs
    after = infos[200:]
    # 4000 chains x 400 steps: the mean acceptance has an SE well under 0.01 (measured 0.563 and
    # 0.566 on two seeds); dual averaging's averaged step lands a little below the target, as mala's.
    acceptance = torch.stack([i.acceptance.mean() for i in after]).mean()
    assert abs(float(acceptance) - 0.574) < 0.05
    assert all(i.adapting == 0.0 for i in after) and all(i.adapting == 1.0 for i in infos[:200])
    assert len({float(i.step_size) for i in after}) == 1  # M and h frozen after warm-up
    assert len({float(i.preconditioner) for i in after}) == 1


def test_ensemble_mala_step_is_far_larger_than_plain_malas(mala_runs):
    state, infos, _, plain = mala_runs
    h_ensemble, h_plain = float(infos[-1].step_size), float(plain.step_size)
    # Plain MALA's step is bounded by the stiffest variance (0.01): measured h = 0.017. With M close to
    # Sigma, whose largest eigenvalue is 1, ensemble_mala's h is its step along the widest axis as well:
    # measured 0.84, a factor of about 50 where the condition number is 100.
    assert h_ensemble > 20 * h_plain
    top = torch.linalg.eigvalsh(state.metric.basis @ torch.diag(state.metric.scale) @ state.metric.basis.T)[-1]
    assert 0.8 < float(top) < 1.25  # the frozen M's largest eigenvalue is Sigma's (1), up to sampling


# -- cost, hyperparameters, contract -----------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: EnsembleLangevin(), lambda: EnsembleLangevin(covariance="diagonal"),
    lambda: EnsembleMala(warmup=10, adapt_every=3), lambda: EnsembleMala(covariance="diagonal", warmup=10),
], ids=["langevin-dense", "langevin-diagonal", "mala-dense", "mala-diagonal"])
def test_one_score_per_step_and_nothing_else(make):
    oracle = ScoreOracle(ExactScore(_target()))
    x0 = torch.randn(16, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    result = run_chain(make(), oracle, x0, 40, torch.Generator().manual_seed(1))
    c = oracle.counts
    assert (c.nfe, c.vjp, c.jvp, c.curvature) == (40, 0, 0, 0) and result.steps == 39  # init: 1 NFE
    assert oracle.cost == 40


@pytest.mark.parametrize("make,field", [
    (lambda: EnsembleLangevin(step_size=0.0), "step_size"),
    (lambda: EnsembleLangevin(step_size=0.5), "step_size"),
    (lambda: EnsembleLangevin(covariance="full"), "covariance"),
    (lambda: EnsembleLangevin(jitter=-1e-3), "jitter"),
    (lambda: EnsembleMala(step_size=-1.0), "step_size"),
    (lambda: EnsembleMala(target_accept=1.0), "target_accept"),
    (lambda: EnsembleMala(warmup=-1), "warmup"),
    (lambda: EnsembleMala(adapt_every=0), "adapt_every"),
    (lambda: EnsembleMala(covariance="low_rank"), "covariance"),
    (lambda: EnsembleMala(jitter=math.nan), "jitter"),
    (lambda: EnsembleMala(kappa=0.5), "kappa"),
])
def test_bad_hyperparameters_name_the_field(make, field):
    with pytest.raises(ValueError, match=field):
        make()


@pytest.mark.parametrize("cls", [EnsembleLangevin, EnsembleMala])
def test_too_few_chains_without_jitter_is_refused(cls):
    oracle = ScoreOracle(ExactScore(_target()))
    with pytest.raises(ValueError, match="jitter"):
        cls(jitter=0.0).init(torch.zeros(D, D, dtype=torch.float64), oracle, 10.0)  # N = d chains


@pytest.mark.slow
@pytest.mark.parametrize("cls", [EnsembleLangevin, EnsembleMala])
@pytest.mark.parametrize("covariance", ["dense", "diagonal"])
def test_conformance_kit_passes(cls, covariance):
    check_sampler(cls, params={**cls.example_params, "covariance": covariance}).assert_ok()


def test_dual_averaging_docstring_runs():
    assert doctest.testmod(_dual_averaging, raise_on_error=True).attempted >= 1
    with pytest.raises(ValueError, match="t must be"):
        _dual_averaging.dual_averaging_update(torch.tensor(0.0), torch.tensor(0.0), torch.tensor(0.5), 0,
                                              mu=0.0, target=0.5)

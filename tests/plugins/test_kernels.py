"""The kernels the built-in samplers are composed of, each against an identity it must satisfy.

Statistical checks start chains exactly in the target and allow Z standard errors computed from the
number of chains; each is shown to reject a kernel that is wrong (the same proposal uncorrected).
"""

from __future__ import annotations

import doctest
import math

import pytest
import torch

from scorelab.oracle import ScoreOracle
from scorelab.sources import ExactScore
from scorelab_builtins import kernels
from scorelab_builtins.kernels import (
    DiagonalCurvature,
    DiagonalMetric,
    DualAveraging,
    EigenMetric,
    box_muller,
    error_controlled_move,
    euler_maruyama,
    local_linearisation,
    log_proposal,
    metropolis_hastings,
    next_step,
    normal_draws,
    normal_from,
    normal_like,
    power_curvature,
    power_start,
    secant_curvature,
    smooth,
    uniform_pairs,
)
from scorelab_builtins.targets import Gaussian

Z = 4.5  # standard errors allowed per statistic: a false alarm about once in 10^5 per statistic
VARIANCES = torch.tensor([0.25, 1.0, 4.0], dtype=torch.float64)  # N(0, diag(VARIANCES))


def _gaussian(x):
    """(log p, s) of N(0, diag(VARIANCES)) for chains (n, 3)."""
    return -0.5 * (x * x / VARIANCES).sum(1), -x / VARIANCES


def _rotation(d, seed):
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q


def _moments_agree(x, variances) -> bool:
    """Mean and variance of each coordinate within Z standard errors of N(0, variances)."""
    n = len(x)
    mean_ok = (x.mean(0).abs() <= Z * (variances / n).sqrt()).all()
    var_ok = ((x.var(0) / variances - 1).abs() <= Z * math.sqrt(2 / (n - 1))).all()
    return bool(mean_ok and var_ok)


def _chain(x, h, metric, steps, seed, correct=True):
    generator = torch.Generator().manual_seed(seed)
    log_p, s = _gaussian(x)
    accepted = torch.zeros(())
    for _ in range(steps):
        y = euler_maruyama(x, s, h, normal_like(x, generator), metric)
        log_p_y, s_y = _gaussian(y)
        if not correct:
            x, log_p, s = y, log_p_y, s_y
            continue
        moved = metropolis_hastings(x, y, log_p, log_p_y, s, s_y, h, generator, metric)
        x, log_p, s = moved.x, moved.log_prob, moved.score
        accepted = accepted + moved.accepted.double().mean() / steps
    return x, float(accepted)


METRICS = {
    "identity": None,
    "diagonal, mismatched": DiagonalMetric(torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)),
    "dense, rotated": EigenMetric(_rotation(3, 1), torch.tensor([0.3, 1.0, 3.0], dtype=torch.float64)),
    "low rank plus isotropic": EigenMetric(_rotation(3, 2)[:, :1], torch.tensor([2.0], dtype=torch.float64),
                                           torch.tensor(0.4, dtype=torch.float64)),
}


@pytest.mark.parametrize("name", list(METRICS))
def test_the_metropolis_correction_leaves_the_target_exactly_invariant(name):
    # A large step (h = 0.6 against the smallest variance 0.25: ULA there is unstable) and a preconditioner
    # that is not the target's covariance: only an exact correction keeps chains that start in the target there.
    n, metric = 20000, METRICS[name]
    x0 = torch.randn(n, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * VARIANCES.sqrt()
    x, accepted = _chain(x0, 0.6, metric, steps=15, seed=1)
    assert 0.05 < accepted < 0.95, "the proposals must move the chains for the check to mean anything"
    assert _moments_agree(x, VARIANCES)


def test_the_invariance_check_rejects_the_uncorrected_proposal():
    n, metric = 20000, METRICS["diagonal, mismatched"]
    x0 = torch.randn(n, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * VARIANCES.sqrt()
    x, _ = _chain(x0, 0.05, metric, steps=15, seed=1, correct=False)  # stable, biased by O(h)
    assert not _moments_agree(x, VARIANCES)


def test_broken_proposals_are_rejected_and_the_chain_keeps_its_point():
    x, y = torch.zeros(4, 2), torch.ones(4, 2)
    log_p_y = torch.tensor([0.0, math.nan, math.inf, 0.0])
    s_y = torch.tensor([[-1.0, -1.0], [-1.0, -1.0], [-1.0, -1.0], [math.nan, 0.0]])
    out = metropolis_hastings(x, y, torch.zeros(4), log_p_y, -x, s_y, 1.0, torch.Generator().manual_seed(0))
    assert out.accepted.tolist() == [True, False, False, False]
    assert out.acceptance[1:].tolist() == [0.0, 0.0, 0.0]
    assert torch.equal(out.x[1:], x[1:]) and torch.equal(out.log_prob[1:], torch.zeros(3))


def test_the_finite_score_check_holds_compiled_too():
    from scorelab_builtins.kernels.metropolis import _all_finite

    v = torch.ones(4, 3, dtype=torch.float64)
    v[1, 2], v[2, 0], v[3, 1] = math.nan, -math.inf, math.inf
    expected = [True, False, False, False]
    assert _all_finite(v).tolist() == expected
    assert torch.compile(_all_finite)(v).tolist() == expected  # an algebraic shortcut would say all True


def test_every_form_of_the_preconditioner_is_the_same_proposal():
    generator = torch.Generator().manual_seed(0)
    x, s, z = (torch.randn(5, 3, generator=generator, dtype=torch.float64) for _ in range(3))
    m = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64)
    as_tensor = euler_maruyama(x, s, 0.1, z, m)
    torch.testing.assert_close(euler_maruyama(x, s, 0.1, z, DiagonalMetric(m)), as_tensor)
    torch.testing.assert_close(euler_maruyama(x, s, 0.1, z, EigenMetric(eye, m)), as_tensor)
    torch.testing.assert_close(euler_maruyama(x, s, 0.1 * m, z), as_tensor)  # the effective step h M
    torch.testing.assert_close(euler_maruyama(x, s, 0.1, z, fused=True), euler_maruyama(x, s, 0.1, z))
    torch.testing.assert_close(euler_maruyama(x, s, 0.1, z, m, divergence=torch.zeros_like(x)), as_tensor)
    torch.testing.assert_close(log_proposal(x, s, z, 0.1, EigenMetric(eye, torch.ones(3, dtype=torch.float64))),
                               log_proposal(x, s, z, 0.1))


def test_the_local_linearisation_is_the_exact_ornstein_uhlenbeck_step_on_a_gaussian():
    generator = torch.Generator().manual_seed(0)
    x, z = (torch.randn(6, 3, generator=generator, dtype=torch.float64) for _ in range(2))
    h, v = 0.7, VARIANCES
    stepped = local_linearisation(x, -x / v, 1 / v, h, z)
    torch.testing.assert_close(stepped, torch.exp(-h / v) * x + (v * -torch.expm1(-2 * h / v)).sqrt() * z)


def test_secant_and_power_estimates_find_the_largest_curvature():
    target = Gaussian(dim=4, condition_number=10.0, rotate=True)
    precision = torch.linalg.inv(target.covariance.double())
    oracle = ScoreOracle(ExactScore(target))
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    _, lam, _ = power_curvature(oracle, x, power_start(x), 60)
    torch.testing.assert_close(lam.flatten(), torch.linalg.eigvalsh(precision)[-1].expand(3))
    assert oracle.counts.jvp == 60
    # Along an eigenvector the secant is that eigenvalue; a chain that did not move keeps its estimate.
    lam_all, vectors = torch.linalg.eigh(precision)
    dx = torch.stack([vectors[:, 0], vectors[:, 3], torch.zeros(4, dtype=torch.float64)])
    estimate = secant_curvature(dx, dx @ precision, torch.full((3, 1), 7.0, dtype=torch.float64))
    torch.testing.assert_close(estimate.flatten(), torch.stack([lam_all[0], lam_all[3], torch.tensor(7.0).double()]))


def test_the_diagonal_curvature_is_refreshed_on_schedule_and_smoothed():
    target = Gaussian(dim=3, condition_number=4.0)
    oracle = ScoreOracle(ExactScore(target))
    estimator = DiagonalCurvature("exact", refresh_every=3, ema=0.25)
    x, generator = torch.zeros(2, 3, dtype=torch.float64), torch.Generator().manual_seed(0)
    c = None
    for t in range(1, 7):
        _, c = estimator.update(oracle, x, c, t, generator)
        assert (c is None) == (t < 3)
    assert (oracle.counts.nfe, oracle.counts.curvature) == (6, 2)  # a score every step, the curvature at t = 3, 6
    exact = -target.hess_diag(x)
    torch.testing.assert_close(c, exact)  # the same curvature twice: the average is that curvature
    torch.testing.assert_close(smooth(exact, 3 * exact, 0.25), 0.25 * exact + 0.75 * 3 * exact)


def test_the_error_control_accepts_small_errors_and_steps_at_the_floor():
    x = torch.zeros(3, 2, dtype=torch.float64)
    score_at = lambda y: -4.0 * y  # noqa: E731  a stiff Gaussian: the Heun correction grows with the step
    step = torch.tensor([1e-3, 0.5, 0.5], dtype=torch.float64)
    noise = torch.ones(3, 2, dtype=torch.float64)
    h = step.clone()
    x_new, accept, err = error_controlled_move(x, torch.zeros_like(x), step[:, None], noise, score_at, h,
                                               torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), 0.1, 0.0)
    assert accept.tolist() == [True, False, True] and bool(err[1] > 1)  # the third: at its floor
    assert torch.equal(x_new[1], x[1])
    nxt = next_step(h, torch.tensor([0.0, 4.0, math.nan], dtype=torch.float64), 0.9, 0.5, 1e-4, 1.0, 2.0)
    torch.testing.assert_close(nxt, torch.tensor([2e-3, 0.5 * 0.9 / 2, 1e-4], dtype=torch.float64))


def test_dual_averaging_freezes_its_average_and_restarts_from_it():
    adaptation = DualAveraging(target_accept=0.6)
    state = adaptation.init(torch.tensor(math.log(0.1)), mu=math.log(1.0))
    for k in range(1, 4):
        state, adapting = adaptation.warmup(state, torch.tensor(0.9), k, warmup=3)
        assert adapting
    assert state.t == 3 and torch.equal(state.log_step, state.log_step_avg)
    after, adapting = adaptation.warmup(state, torch.tensor(0.0), 4, warmup=3)
    assert after is state and not adapting
    restarted = adaptation.restart(state)
    assert restarted.t == 0 and float(restarted.accept_error) == 0.0
    torch.testing.assert_close(restarted.mu, state.log_step_avg + math.log(10))
    with pytest.raises(ValueError, match="target_accept"):
        DualAveraging(target_accept=1.0)


def _mala_acceptance(log_h, adaptation, state, x, steps, warmup, generator, k0=0):
    """MALA on N(0, I) composed from the kernels; the per-step mean acceptance."""
    log_p, s = -0.5 * (x * x).sum(1), -x
    means = []
    for k in range(k0 + 1, k0 + steps + 1):
        h = state.log_step.exp() if state is not None else log_h.exp()
        y = euler_maruyama(x, s, h, normal_like(x, generator))
        moved = metropolis_hastings(x, y, log_p, -0.5 * (y * y).sum(1), s, -y, h, generator)
        x, log_p, s = moved.x, moved.log_prob, moved.score
        if state is not None:
            state, _ = adaptation.warmup(state, moved.acceptance.mean(), k, warmup)
        means.append(moved.acceptance.mean())
    return torch.stack(means), state, x


def test_dual_averaging_reaches_its_target_acceptance_on_a_gaussian():
    n, d, warmup, after = 1000, 10, 300, 200
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=generator, dtype=torch.float64)
    adaptation = DualAveraging(target_accept=0.574)
    log_h0 = torch.tensor(math.log(0.02), dtype=torch.float64)  # far too small: acceptance near 1
    state = adaptation.init(log_h0, mu=math.log(10 * 0.02))
    during, state, x = _mala_acceptance(log_h0, adaptation, state, x, warmup, warmup, generator)
    frozen, _, _ = _mala_acceptance(state.log_step, adaptation, None, x, after, warmup, generator)
    # The error of the frozen step's acceptance: its measurement over `after` steps, and the noise of the
    # warm-up's last ~100 iterations, which the averaged step is mostly made of (weights t^-0.75).
    tail = during[-100:]
    tolerance = Z * math.sqrt(frozen.var() / after + tail.var() / len(tail))
    assert abs(float(frozen.mean()) - 0.574) <= tolerance
    start, _, _ = _mala_acceptance(log_h0, adaptation, None, x, 20, 0, generator)
    assert abs(float(start.mean()) - 0.574) > 10 * tolerance  # where it started, the check fails


def test_float64_noise_on_the_cpu_is_standard_normal_and_independent():
    """Box–Muller's numbers against N(0, 1): the first four moments (Z standard errors of each,
    from n), the distribution function (Kolmogorov–Smirnov) and the independence of the pair drawn
    from one (u, v) (their correlation is 0 and so is that of their squares)."""
    from scipy import stats

    n = 200_000
    z = box_muller(uniform_pairs(n, torch.Generator().manual_seed(0)), (n,)).numpy()
    se = {1: 1.0, 2: math.sqrt(2.0), 3: math.sqrt(15.0), 4: math.sqrt(96.0)}  # sd of z^k - E z^k
    for k, exact in {1: 0.0, 2: 1.0, 3: 0.0, 4: 3.0}.items():
        assert abs((z**k).mean() - exact) < Z * se[k] / math.sqrt(n), k
    assert stats.kstest(z, "norm").pvalue > 1e-4
    cos_part, sin_part = z[: n // 2], z[n // 2:]  # r cos t and r sin t of the same (u, v)
    for a, b in ((cos_part, sin_part), (cos_part**2 - 1, sin_part**2 - 1)):
        assert abs(stats.pearsonr(a, b)[0]) < Z / math.sqrt(n // 2)
    odd = box_muller(uniform_pairs(15, torch.Generator().manual_seed(1)), (3, 5))
    assert odd.shape == (3, 5) and odd.dtype == torch.float64 and bool(odd.isfinite().all())


def test_noise_is_torchs_own_except_in_float64_on_the_cpu():
    x32, x64 = torch.zeros(4, 3), torch.zeros(4, 3, dtype=torch.float64)
    expected = [(x32, torch.randn(4, 3, generator=torch.Generator().manual_seed(0))),
                (x64, box_muller(uniform_pairs(12, torch.Generator().manual_seed(0)), (4, 3)))]
    for x, z in expected:  # whole, and in two parts as a sampler that draws first takes them
        assert torch.equal(normal_like(x, torch.Generator().manual_seed(0)), z)
        assert torch.equal(normal_from(normal_draws(x, torch.Generator().manual_seed(0)), x), z)


def test_the_kernels_docstring_examples_run():
    modules = [getattr(kernels, name) for name in ("integrators", "metropolis", "dual_averaging")]
    assert sum(doctest.testmod(m, raise_on_error=True).attempted for m in modules) >= 3

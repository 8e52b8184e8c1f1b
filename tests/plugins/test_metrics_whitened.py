"""The whitened moment metrics: floors on exact samples, what they see that the relative errors miss,
the Gaussian KL against its closed form, and nan for diverged chains.

Exact samples of N(m, Sigma), whitened by Sigma, are n independent N(0, I_d) points y, so with
nu = n - 1: the whitened mean is N(0, I / n); nu W ~ Wishart(I, nu), independent of it; the diagonal
entries nu W_ii ~ chi^2_nu are independent of each other and of the mean's coordinates. The
expectations below follow exactly from that, whatever the conditioning or rotation of Sigma.
"""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats
import torch

from scorelab_builtins.metrics import CovarianceError, MeanError
from scorelab_builtins.metrics.whitened import (
    GaussianKL,
    MaxMomentError,
    MaxVarianceError,
    WhitenedCovarianceError,
    WhitenedMeanError,
)
from scorelab_builtins.targets import Gaussian

WHITENED = [WhitenedCovarianceError, MaxVarianceError, WhitenedMeanError, MaxMomentError, GaussianKL]
NO_MOMENTS = types.SimpleNamespace(provides=frozenset())  # a data set: moments come from the reference
FAR = torch.full((10, 20), 100.0, dtype=torch.float64)  # a reference that is ignored: the targets have moments


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def stiff(rotate: bool, dim: int = 20) -> Gaussian:
    return Gaussian(dim=dim, condition_number=1000.0, rotate=rotate, mean_value=1.0)


def stiffest_axis(target: Gaussian) -> tuple[torch.Tensor, float]:
    """The principal axis of smallest variance, and that variance."""
    lam, U = torch.linalg.eigh(target.covariance)
    return U[:, 0], float(lam[0])


# -- floors on exact samples -------------------------------------------------------------------


def expected_max(d: int, cdf) -> float:
    """E[max of d independent copies of a variable >= 0 with distribution function ``cdf``]."""
    return scipy.integrate.quad(lambda t: 1 - cdf(t) ** d, 0, np.inf, limit=200)[0]


@pytest.mark.slow
def test_exact_samples_read_the_stated_floors():
    # Exact expectations (module docstring), with nu = n - 1:
    #   E wce^2 = sum_ij Var W_ij / d = d (d + 1) / (nu d) = (d + 1) / nu;   E wme^2 = E chi^2_d / (n d) = 1 / n;
    #   max_variance_error = max_i T_i, T_i = |chi^2_nu / nu - 1| independent, P(T <= t) = F(nu (1 + t)) -
    #   F(nu (1 - t)); max_moment_error = max_i max(|N(0, 1/n)|, T_i), the two independent (Cochran);
    #   E KL = 1/2 [d / n - E ln det W] with E ln det(nu W) = sum_{i=1..d} digamma((nu - i + 1) / 2) + d ln 2.
    # Each mean over R repeats is required within 4 of its standard errors (P(|t_{R-1}| > 4) < 1e-4), and
    # those must be fine enough to see a 10% error in the expectation.
    target, n, d, R = stiff(rotate=True), 1000, 20, 200
    nu = n - 1
    chi2 = scipy.stats.chi2(nu)

    def var_cdf(t):
        return chi2.cdf(nu * (1 + t)) - chi2.cdf(nu * (1 - t))

    expected = {
        "whitened_covariance_error": (d + 1) / nu,  # of the square
        "whitened_mean_error": 1 / n,  # of the square
        "max_variance_error": expected_max(d, var_cdf),
        "max_moment_error": expected_max(d, lambda t: (2 * scipy.stats.norm.cdf(t * math.sqrt(n)) - 1) * var_cdf(t)),
        "gaussian_kl": 0.5 * (d / n - sum(scipy.special.digamma((nu - i + 1) / 2) + math.log(2 / nu)
                                           for i in range(1, d + 1))),
    }
    squared = {"whitened_covariance_error", "whitened_mean_error"}
    # the leading-order floors the docstrings state are within 5% of these at this size
    leading = {
        "whitened_covariance_error": (d + 1) / n,
        "whitened_mean_error": 1 / n,
        "max_variance_error": math.sqrt(2 / n) * expected_max(d, lambda t: 2 * scipy.stats.norm.cdf(t) - 1),
        "gaussian_kl": d * (d + 3) / (4 * n),
    }
    for name, value in leading.items():
        assert value == pytest.approx(expected[name], rel=0.05), name

    metrics = [cls() for cls in WHITENED]
    values = {m.name: [] for m in metrics}
    for r in range(R):
        x = target.sample(n, gen(1000 + r))
        for m in metrics:
            values[m.name].append(m(x, FAR, target) ** (2 if m.name in squared else 1))
    for name, v in values.items():
        v = np.array(v)
        se = v.std(ddof=1) / math.sqrt(R)
        assert abs(v.mean() - expected[name]) < 4 * se, (name, v.mean(), expected[name], se)
        assert 4 * se < 0.1 * expected[name], name


def test_floors_do_not_depend_on_the_rotation():
    # An axis-aligned and a rotated target whiten the same standard normal draws to the same points up
    # to a signed permutation of the axes, which none of the metrics sees.
    n = 500
    for cls in WHITENED:
        aligned, rotated = stiff(rotate=False), stiff(rotate=True)
        a = cls()(aligned.sample(n, gen(5)), FAR, aligned)
        b = cls()(rotated.sample(n, gen(5)), FAR, rotated)
        assert a == pytest.approx(b, rel=1e-9), cls.name


# -- what they see that the relative errors miss -----------------------------------------------


@pytest.mark.parametrize("rotate", [False, True], ids=["aligned", "rotated"])
def test_a_variance_wrong_along_the_stiffest_axis_only(rotate):
    # Stretch exact samples by s = sqrt(1 + eps) along the stiffest axis u (variance lam_min = 1e-3):
    # u^T C_hat u / lam_min = (1 + eps) chi^2_nu / nu, so that axis reads eps + (1 + eps) sqrt(2 / n) z.
    # The other axes read at most sqrt(2 / n) times the largest of d |N(0, 1)| (about 0.045 here) and the
    # mean terms of max_moment_error at most ~4.5 / sqrt(n) = 0.03, both far below eps: both metrics read
    # eps within (1 + eps) 4 sqrt(2 / n) (a 4-sigma bound).
    target, n, eps = stiff(rotate), 20_000, 0.25
    u, lam_min = stiffest_axis(target)
    x = target.sample(n, gen(21))
    m = target.mean
    s = math.sqrt(1 + eps)
    bad = x + (s - 1) * ((x - m) @ u)[:, None] * u
    tol = (1 + eps) * 4 * math.sqrt(2 / n)
    assert MaxVarianceError()(bad, FAR, target) == pytest.approx(eps, abs=tol)
    assert MaxMomentError()(bad, FAR, target) == pytest.approx(eps, abs=tol)
    assert MaxVarianceError()(x, FAR, target) < 0.1  # the exact samples read their floor, ~0.045
    # The relative Frobenius error barely moves: C_hat_bad - C_hat = (s - 1)(u u^T C_hat + C_hat u u^T)
    # + (s - 1)^2 u u^T C_hat u u^T has norm <= (2 (s - 1) + (s - 1)^2) |C_hat u|, and |C_hat u|^2 is about
    # lam_min^2 + lam_min tr(Sigma) / n: a change under 1e-3 of its value, a fraction of its own floor
    # (~0.02 at this n). It reads the stretched samples as exact ones.
    before, after = CovarianceError()(x, FAR, target), CovarianceError()(bad, FAR, target)
    assert abs(after - before) < 1e-3
    assert after < 2 * before
    # So does the per-coordinate form on the rotated target, where each coordinate's variance is
    # dominated by the wide directions; on the aligned one it is max_variance_error itself.
    per_coordinate = float(((bad - bad.mean(0)).pow(2).sum(0) / (n - 1) / target.covariance.diagonal() - 1).abs().max())
    if rotate:
        assert per_coordinate < 0.1
    else:
        assert per_coordinate == pytest.approx(MaxVarianceError()(bad, FAR, target), rel=1e-9)


@pytest.mark.parametrize("rotate", [False, True], ids=["aligned", "rotated"])
def test_a_mean_shifted_along_the_stiffest_axis(rotate):
    # Shift exact samples by delta sqrt(lam_min) u: the whitened mean becomes ybar + delta e, ybar ~
    # N(0, I / n). max_moment_error reads |delta + ybar_u| on that axis, within 4 / sqrt(n) = 0.028 of
    # delta; every other term is below ~0.045 < delta, so that axis is the maximum. whitened_mean_error
    # * sqrt(d) = |ybar + delta e| is within |ybar| of delta (triangle inequality), and |ybar|^2 ~
    # chi^2_d / n is below (d + 4 sqrt(2 d)) / n at 4 sigma. mean_error, relative to sqrt(tr Sigma),
    # reads delta sqrt(lam_min / tr Sigma) = 0.005, under its own floor of 1 / sqrt(n) = 0.007.
    target, n, d, delta = stiff(rotate), 20_000, 20, 0.3
    u, lam_min = stiffest_axis(target)
    x = target.sample(n, gen(22))
    shifted = x + delta * math.sqrt(lam_min) * u
    assert MaxMomentError()(shifted, FAR, target) == pytest.approx(delta, abs=4 / math.sqrt(n))
    ybar_bound = math.sqrt((d + 4 * math.sqrt(2 * d)) / n)
    assert WhitenedMeanError()(shifted, FAR, target) * math.sqrt(d) == pytest.approx(delta, abs=ybar_bound)
    assert WhitenedMeanError()(x, FAR, target) * math.sqrt(d) < ybar_bound
    assert MeanError()(shifted, FAR, target) < 3 / math.sqrt(n)


# -- gaussian_kl against the closed form --------------------------------------------------------


def with_moments(z: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """Points whose sample mean and (unbiased) sample covariance are exactly ``mean`` and ``cov``: ``z``
    centred, whitened by its own sample covariance, then coloured by a square root of ``cov``."""
    zc = z - z.mean(0)
    L = torch.linalg.cholesky(zc.T @ zc / (len(z) - 1))
    white = torch.linalg.solve_triangular(L, zc.T, upper=False).T
    return mean + white @ torch.linalg.cholesky(cov).T


def closed_form_kl(m_hat, C_hat, m, S) -> float:
    """KL(N(m_hat, C_hat) || N(m, S)) straight from the formula, in numpy."""
    m_hat, C_hat, m, S = (np.asarray(v, dtype=np.float64) for v in (m_hat, C_hat, m, S))
    A = np.linalg.solve(S, C_hat)
    dm = m_hat - m
    sign, logdet = np.linalg.slogdet(A)
    assert sign > 0
    return 0.5 * (np.trace(A) - len(m) + dm @ np.linalg.solve(S, dm) - logdet)


@pytest.mark.parametrize("rotate", [False, True], ids=["aligned", "rotated"])
def test_gaussian_kl_matches_the_closed_form(rotate):
    target, d = stiff(rotate), 20
    S, m = target.covariance, target.mean
    z = target.sample(300, gen(31))
    # a sample covariance off in every direction: S^1/2 (I + G) (I + G)^T S^1/2 with a small random G
    G = 0.2 * torch.randn(d, d, generator=gen(32), dtype=torch.float64)
    root = torch.linalg.cholesky(S)
    C_hat = root @ (torch.eye(d, dtype=torch.float64) + G) @ (torch.eye(d, dtype=torch.float64) + G).T @ root.T
    m_hat = m + root @ torch.randn(d, generator=gen(33), dtype=torch.float64) * 0.3
    x = with_moments(z, m_hat, C_hat)
    assert torch.allclose(x.mean(0), m_hat) and torch.allclose(torch.cov(x.T), C_hat, rtol=1e-9, atol=1e-12)
    expected = closed_form_kl(m_hat, C_hat, m, S)
    assert GaussianKL()(x, FAR, target) == pytest.approx(expected, rel=1e-8)
    # c Sigma with the right mean: KL = d/2 (c - 1 - ln c); every whitened eigenvalue is c
    for c in (0.5, 1.0, 2.0):
        x = with_moments(z, m, c * S)
        assert GaussianKL()(x, FAR, target) == pytest.approx(d / 2 * (c - 1 - math.log(c)), rel=1e-8, abs=1e-10)
        assert WhitenedCovarianceError()(x, FAR, target) == pytest.approx(abs(c - 1), rel=1e-8, abs=1e-10)
        assert MaxVarianceError()(x, FAR, target) == pytest.approx(abs(c - 1), rel=1e-8, abs=1e-10)


def test_gaussian_kl_is_infinite_for_a_singular_sample_covariance():
    target = stiff(rotate=True)
    assert GaussianKL()(target.sample(20, gen(34)), FAR, target) == math.inf  # d = 20 points: rank 19
    x = target.sample(200, gen(35))
    u, _ = stiffest_axis(target)
    flat = x - ((x - target.mean) @ u)[:, None] * u  # no spread at all along one axis
    assert GaussianKL()(flat, FAR, target) == math.inf
    assert math.isfinite(GaussianKL()(x, FAR, target))


# -- the reference fallback, and what is refused ------------------------------------------------


def test_without_exact_moments_the_reference_is_the_truth():
    # The reference's own sample moments are the truth, so a scaled and shifted copy of it is off by
    # exactly the scale: W = 1.21 I, and a shift c sqrt(lam_i) along each principal axis.
    scales = torch.tensor([1.0, 5.0, 0.02], dtype=torch.float64)
    y = torch.randn(3000, 3, generator=gen(41), dtype=torch.float64) * scales
    lam, U = torch.linalg.eigh(torch.cov(y.T))
    shift = U @ (lam.sqrt() * torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64))
    x = y.mean(0) + 1.1 * (y - y.mean(0)) + shift
    assert WhitenedCovarianceError()(x, y, NO_MOMENTS) == pytest.approx(0.21, rel=1e-9)
    assert MaxVarianceError()(x, y, NO_MOMENTS) == pytest.approx(0.21, rel=1e-9)
    assert WhitenedMeanError()(x, y, NO_MOMENTS) == pytest.approx(math.sqrt(0.14 / 3), rel=1e-9)
    assert MaxMomentError()(x, y, NO_MOMENTS) == pytest.approx(0.3, rel=1e-9)
    expected_kl = 0.5 * (3 * (1.21 - 1 - math.log(1.21)) + 0.14)
    assert GaussianKL()(x, y, NO_MOMENTS) == pytest.approx(expected_kl, rel=1e-9)
    for cls in WHITENED:
        assert cls()(y, y, NO_MOMENTS) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("cls", WHITENED, ids=lambda c: c.name)
def test_a_singular_truth_is_refused(cls):
    y = torch.randn(100, 3, generator=gen(42), dtype=torch.float64)
    y[:, 1] = 0.0  # a constant pixel
    with pytest.raises(ValueError, match="singular"):
        cls()(y, y, NO_MOMENTS)


@pytest.mark.parametrize("cls", WHITENED, ids=lambda c: c.name)
def test_diverged_samples_give_nan(cls):
    target = stiff(rotate=True)
    x = target.sample(100, gen(43))
    x[3, 0] = float("inf")
    assert math.isnan(cls()(x, FAR, target))
    x[3, 0] = float("nan")
    assert math.isnan(cls()(x, FAR, target))


@pytest.mark.parametrize("cls", WHITENED, ids=lambda c: c.name)
def test_the_eigendecomposition_is_kept_between_calls_and_renewed_for_a_new_truth(cls):
    # One metric instance across two targets of different covariance reads what fresh instances read.
    a, b = stiff(rotate=True), Gaussian(dim=20, condition_number=10.0, rotate=True, rotation_seed=1)
    xa, xb = a.sample(400, gen(44)), b.sample(400, gen(45))
    metric = cls()
    assert [metric(xa, FAR, a), metric(xb, FAR, b), metric(xa, FAR, a)] == [
        cls()(xa, FAR, a), cls()(xb, FAR, b), cls()(xa, FAR, a)
    ]

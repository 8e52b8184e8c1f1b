"""The banana and the funnel: exact quantities against autograd, independent formulas, quadrature and
their own samples; and what a target that is not noise-conditional provides and refuses.

Statistical tolerances are 6 standard errors (a false alarm with probability 2e-9 per comparison
for a Gaussian estimate), each standard error computed from the exact law and the sample size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from torch.distributions import Normal

from scorelab.errors import ScorelabError
from scorelab.oracle import ScoreOracle
from scorelab.sources import ExactScore
from scorelab.testing import check_target
from scorelab_builtins.targets import TARGETS, Banana, Funnel, Gaussian

Z = 6.0
N = 200_000  # samples for the moment tests

CASES = {
    "banana": Banana,
    "banana-strong": lambda: Banana(curvature=0.25, scale=2.0),
    "funnel": Funnel,
    "funnel-3d": lambda: Funnel(dim=3, scale=1.5),
}


def _normal(loc, scale) -> Normal:
    """A float64 normal (Normal(0.0, 3.0) would hold float32 parameters)."""
    return Normal(torch.as_tensor(loc, dtype=torch.float64), torch.as_tensor(scale, dtype=torch.float64))


def _points(target, n=48, seed=0) -> torch.Tensor:
    """The target's samples, moved off them by N(0, 1), plus a few far points (deep in the funnel's
    neck and mouth, far out along the banana's arms)."""
    g = torch.Generator().manual_seed(seed)
    x = target.sample(n, g) + torch.randn(n, target.dim, generator=g, dtype=torch.float64)
    far = torch.randn(4, target.dim, generator=g, dtype=torch.float64)
    far[:, 0] = torch.tensor([-7.0, -3.0, 4.0, 8.0]) * getattr(target, "scale", 1.0)
    return torch.cat([x, far])


@pytest.mark.parametrize("name", CASES)
def test_score_is_the_gradient_of_log_prob(name):
    target = CASES[name]()
    x = _points(target).requires_grad_(True)
    (grad,) = torch.autograd.grad(target.log_prob(x).sum(), x)
    torch.testing.assert_close(target.score(x.detach()), grad, rtol=1e-10, atol=1e-10)
    lp, s = target.log_prob_and_score(x.detach())
    torch.testing.assert_close(lp, target.log_prob(x.detach()), rtol=0, atol=0)
    torch.testing.assert_close(s, target.score(x.detach()), rtol=0, atol=0)


@pytest.mark.parametrize("name", CASES)
def test_hess_diag_is_the_diagonal_of_the_autograd_hessian(name):
    target = CASES[name]()
    x = _points(target, n=16)
    hessians = torch.func.vmap(torch.func.hessian(lambda y: target.log_prob(y[None])[0]))(x)
    torch.testing.assert_close(target.hess_diag(x), torch.diagonal(hessians, dim1=-2, dim2=-1),
                               rtol=1e-10, atol=1e-10)
    jacobians = torch.func.vmap(torch.func.jacrev(lambda y: target.score(y[None])[0]))(x)
    torch.testing.assert_close(target.hess_diag(x), torch.diagonal(jacobians, dim1=-2, dim2=-1),
                               rtol=1e-10, atol=1e-10)


def test_banana_log_prob_is_the_product_of_its_two_normals():
    b, s = 0.03, 10.0
    target = Banana(curvature=b, scale=s)
    x = _points(target)
    x1, x2 = x[:, 0], x[:, 1]
    expected = _normal(0.0, s).log_prob(x1) + _normal(b * (x1**2 - s**2), 1.0).log_prob(x2)
    torch.testing.assert_close(target.log_prob(x), expected, rtol=1e-12, atol=1e-12)


def test_banana_is_normalised():
    # A Riemann sum over a grid around the ridge: x1 within 6 standard deviations (mass outside 2e-9),
    # x2 from 8 below the ridge's lowest point (x1 = 0) to 8 above its highest (x1 = 60). The steps
    # are small against the widths (10 and 1), where a Riemann sum of a Gaussian is exact to far below
    # 1e-6; a density off by any constant factor (a missing 1/s, a missing 2 pi) fails by far.
    target = Banana()
    x1 = torch.arange(-60.0, 60.0, 0.1, dtype=torch.float64)
    x2 = torch.arange(-3.0 - 8.0, 0.03 * (3600 - 100) + 8.0, 0.05, dtype=torch.float64)
    g1, g2 = torch.meshgrid(x1, x2, indexing="ij")
    p = target.log_prob(torch.stack([g1.ravel(), g2.ravel()], -1)).exp()
    assert float(p.sum() * 0.1 * 0.05) == pytest.approx(1.0, abs=1e-6)


def test_funnel_log_prob_is_the_sum_of_its_normals():
    target = Funnel(dim=10, scale=3.0)
    x = _points(target)
    v, xs = x[:, 0], x[:, 1:]
    expected = _normal(0.0, 3.0).log_prob(v) + _normal(0.0, (0.5 * v).exp()[:, None]).log_prob(xs).sum(-1)
    torch.testing.assert_close(target.log_prob(x), expected, rtol=1e-12, atol=1e-10)


def test_the_funnels_variance_formula_by_quadrature():
    # Var x_k = E e^v for v ~ N(0, s^2): e^v N(v; 0, s^2) = e^{s^2/2} N(v; s^2, s^2), so integrate
    # over s^2 +- 12 s (a trapezoid rule on a fine grid: exact to far below the tolerance).
    for s in (1.0, 3.0):
        target = Funnel(dim=3, scale=s)
        v = torch.linspace(s * s - 12 * s, s * s + 12 * s, 20_001, dtype=torch.float64)
        e_ev = torch.trapezoid(v.exp() * _normal(0.0, s).log_prob(v).exp(), v)
        expected = torch.tensor([s * s, float(e_ev), float(e_ev)], dtype=torch.float64)
        torch.testing.assert_close(torch.diagonal(target.covariance), expected, rtol=1e-9, atol=0)
        assert torch.count_nonzero(target.covariance - torch.diag(torch.diagonal(target.covariance))) == 0
        assert torch.count_nonzero(target.mean) == 0


def test_banana_samples_have_the_exact_moments():
    # b = 0.03, s = 10, c = b s^2 = 3; x1 = s g, x2 = w + z with w = c (g^2 - 1), g, z ~ N(0, 1).
    # Mean 0 and covariance diag(s^2, 1 + 2 c^2) = diag(100, 19). Standard errors over N = 2e5:
    #   mean:        sqrt(100 / N) = 0.022,  sqrt(19 / N) = 0.0097
    #   Cov[0, 0]:   Var(x1^2) = 2 s^4 = 2e4, se 0.32
    #   Cov[1, 1]:   Var(x2^2) = E x2^4 - 19^2 = (60 c^4 + 12 c^2 + 3) - (1 + 2 c^2)^2 = 56 c^4 + 8 c^2 + 2
    #                = 4610, se 0.15 (6 se = 0.9: far below the 9 a forgotten factor 2 in 2 c^2 gives)
    #   Cov[0, 1]:   Var(x1 x2) = s^2 (c^2 E[g^2 (g^2 - 1)^2] + 1) = s^2 (10 c^2 + 1) = 9100, se 0.21
    b, s = 0.03, 10.0
    c = b * s * s
    target = Banana(curvature=b, scale=s)
    torch.testing.assert_close(target.mean, torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(target.covariance, torch.tensor([[s**2, 0.0], [0.0, 1 + 2 * c * c]],
                                                               dtype=torch.float64))
    x = target.sample(N, torch.Generator().manual_seed(1))
    se_mean = (torch.diagonal(target.covariance) / N).sqrt()
    assert ((x.mean(0) - target.mean).abs() < Z * se_mean).all(), x.mean(0)
    var_prod = torch.tensor([[2 * s**4, s * s * (10 * c * c + 1)],
                             [s * s * (10 * c * c + 1), 56 * c**4 + 8 * c * c + 2]], dtype=torch.float64)
    se_cov = (var_prod / N).sqrt()
    assert ((torch.cov(x.T) - target.covariance).abs() < Z * se_cov).all(), torch.cov(x.T)
    # The ridge: u = x2 - b (x1^2 - s^2) is N(0, 1); mean se 1 / sqrt(N), variance se sqrt(2 / N).
    u = x[:, 1] - b * (x[:, 0] ** 2 - s * s)
    assert abs(float(u.mean())) < Z / math.sqrt(N)
    assert abs(float(u.var()) - 1) < Z * math.sqrt(2 / N)


def test_funnel_samples_have_the_right_law():
    # The x_k have variance e^{s^2/2} = 90 but kurtosis 3 e^{s^2} = 2.4e4: their sample variance
    # converges far too slowly for a standard-error test. So test v and y_k = x_k e^{-v/2} instead,
    # which must be N(0, s^2) and N(0, 1), all independent:
    #   v:  mean se s / sqrt(N) = 0.0067, variance se s^2 sqrt(2 / N) = 0.028;
    #   y (9 N values pooled): mean se 1 / sqrt(9 N) = 7.5e-4, variance se sqrt(2 / (9 N)) = 1.1e-3;
    #   Cov(y_k^2, v) = 0 with se sqrt(Var(y^2) Var(v) / N) = sqrt(2 s^2 / N) = 0.0095 (per k);
    #   the Kolmogorov-Smirnov distance of the pooled y from N(0, 1): P(D > t) <= 2 exp(-2 n t^2), so
    #   t = sqrt(log(2 / 1e-9) / (2 n)) bounds a false alarm by 1e-9 (t = 1.7e-3 for n = 9 N).
    s, d = 3.0, 10
    target = Funnel(dim=d, scale=s)
    x = target.sample(N, torch.Generator().manual_seed(2))
    v = x[:, 0]
    y = x[:, 1:] * (-0.5 * v).exp()[:, None]
    assert abs(float(v.mean())) < Z * s / math.sqrt(N)
    assert abs(float(v.var()) - s * s) < Z * s * s * math.sqrt(2 / N)
    n = y.numel()
    assert abs(float(y.mean())) < Z / math.sqrt(n)
    assert abs(float(y.var()) - 1) < Z * math.sqrt(2 / n)
    cov_y2_v = ((y**2 - 1) * (v - v.mean())[:, None]).mean(0)
    assert (cov_y2_v.abs() < Z * math.sqrt(2 * s * s / N)).all(), cov_y2_v
    ys = y.reshape(-1).sort().values
    cdf = torch.special.ndtr(ys)
    grid = torch.arange(n + 1, dtype=torch.float64) / n
    ks = float(torch.maximum(grid[1:] - cdf, cdf - grid[:-1]).max())
    assert ks < math.sqrt(math.log(2 / 1e-9) / (2 * n)), ks


# -- not noise-conditional --------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [Banana, Funnel])
def test_provides_everything_but_a_noise_level(cls):
    assert cls in TARGETS  # registered with the built-ins
    target = cls()
    assert target.noise_conditional is False
    assert target.provides == {"exact_score", "log_prob", "exact_hess_diag", "moments"}
    assert "noise_conditional" not in ExactScore(target).provides


@pytest.mark.parametrize("cls", [Banana, Funnel])
def test_a_noise_level_is_refused_clearly(cls):
    target = cls()
    x = target.sample(5, torch.Generator().manual_seed(0))
    for method in ("score", "log_prob", "log_prob_and_score", "hess_diag"):
        with pytest.raises(ValueError, match=f"'{target.name}' is not noise-conditional.*sigma must be 0"):
            getattr(target, method)(x, 0.5)
        getattr(target, method)(x, 0.0)  # sigma = 0 is the target itself
        getattr(target, method)(x, torch.zeros(()))
    oracle = ScoreOracle(ExactScore(target))
    torch.testing.assert_close(oracle.score(x), target.score(x), rtol=0, atol=0)
    torch.testing.assert_close(oracle.exact_hess_diag(x), target.hess_diag(x), rtol=0, atol=0)
    lp, s = oracle.log_prob_and_score(x)
    torch.testing.assert_close(lp, target.log_prob(x), rtol=0, atol=0)
    for call in (lambda: oracle.score(x, 0.5), lambda: oracle.exact_hess_diag(x, 0.5),
                 lambda: oracle.vjp(x, torch.ones_like(x), 0.5)):
        with pytest.raises(ScorelabError, match="not noise-conditional"):
            call()


def test_the_gaussian_is_still_noise_conditional():
    gaussian = Gaussian()
    assert gaussian.noise_conditional and "noise_conditional" in gaussian.provides


# -- the conformance kit --------------------------------------------------------------------------

def test_both_pass_the_kit():
    # check_target as `scorelab check-plugin` runs it: the funnel at its example_params (scale 1,
    # see the class), the banana at its defaults. Both get the refusal check, not the noisy score.
    for cls in (Banana, Funnel):
        report = check_target(cls)
        report.assert_ok()
        assert "refuses a noise level (not noise-conditional)" in report.passed
        assert "noisy score s(x, sigma)" not in report.passed


def test_the_funnel_at_its_defaults_passes_the_kit_but_the_moments():
    # The moment check estimates its standard error from 4,000 samples, too few for x_k's tails at
    # scale 3 (see Funnel.example_params); every other check holds at the defaults.
    report = check_target(Funnel, params={"dim": 10, "scale": 3.0})
    assert not [f for f in report.failures if f.check != "mean and covariance match the samples"], str(report)
    assert "refuses a noise level (not noise-conditional)" in report.passed


def test_the_kit_fails_a_target_that_answers_at_a_noise_level_it_cannot_know():
    @dataclass
    class SilentBanana(Banana):
        def score(self, x, sigma=0.0):
            return super().score(x)  # the sigma = 0 score, passed off as the noisy one

    report = check_target(SilentBanana)
    messages = {f.check: f.message for f in report.failures}
    assert "score(x, sigma=0.7) returned a value" in messages["refuses a noise level (not noise-conditional)"]


# -- hyperparameters --------------------------------------------------------------------------------

@pytest.mark.parametrize(("cls", "params", "message"), [
    (Banana, {"curvature": -0.1}, "curvature must be >= 0"),
    (Banana, {"scale": 0.0}, "scale must be > 0"),
    (Funnel, {"dim": 1}, "dim must be >= 2"),
    (Funnel, {"scale": -1.0}, "scale must be > 0"),
])
def test_bad_hyperparameters_name_the_field_and_the_range(cls, params, message):
    with pytest.raises(ValueError, match=message):
        cls(**params)


@pytest.mark.parametrize("cls", [Banana, Funnel])
def test_float32_after_to(cls):
    target = cls().to("cpu", torch.float32)
    x = target.sample(7, torch.Generator().manual_seed(0))
    assert x.dtype == torch.float32 and target.mean.dtype == torch.float32
    assert target.score(x).dtype == torch.float32 and target.hess_diag(x).dtype == torch.float32

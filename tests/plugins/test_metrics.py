"""The built-in metrics: contract, exact identities, and statistical checks against known answers.

Tolerances come from the sampling distribution of each estimate at the sample size used (derived
next to each test); seeds are fixed, so the tests are deterministic.
"""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch

import scorelab_builtins
from scorelab.contracts import CAPABILITIES
from scorelab.plugins import PluginHost
from scorelab_builtins.metrics import (
    METRICS,
    MMD,
    CovarianceError,
    MeanError,
    ModeWeightError,
    SlicedWasserstein,
)
from scorelab_builtins.metrics.sliced_wasserstein import directions
from scorelab_builtins.targets import GMM, Gaussian

NO_MOMENTS = types.SimpleNamespace(provides=frozenset())  # a data set: moments come from the reference


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def normal(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=gen(seed), dtype=torch.float64)


def two_modes(w0: float = 0.8) -> GMM:
    # Modes 8 apart with std 0.5: a sample lands nearer the wrong mode with probability ~Phi(-8).
    return GMM(weights=[w0, 1 - w0], means=[[-4.0, 0.0], [4.0, 0.0]], stds=[0.5, 0.5])


# The metrics the mixture above can feed (the data-set metrics have their own contract tests in
# test_metrics_digits.py).
ON_MIXTURES = [cls for cls in METRICS if set(getattr(cls, "requires", ())) <= two_modes().provides]


# -- contract ----------------------------------------------------------------------------------


def test_builtins_register_every_metric_under_its_name():
    host = PluginHost()
    info = host.add(scorelab_builtins, "builtins")
    assert not info.errors
    assert set(info.registered["metric"]) == {
        "sliced_wasserstein",
        "mmd",
        "energy_distance",
        "ksd",
        "nll",
        "mean_error",
        "covariance_error",
        "mode_weight_error",
        "digits_fd",
        "digits_nn_copy",
        "whitened_covariance_error",
        "max_variance_error",
        "whitened_mean_error",
        "max_moment_error",
        "gaussian_kl",
        "max_marginal_ks",
    }
    for cls in METRICS:
        assert set(getattr(cls, "requires", ())) <= CAPABILITIES.keys()
    assert ModeWeightError.requires == ("mixture",)


@pytest.mark.parametrize("cls", ON_MIXTURES, ids=lambda c: c.name)
def test_float32_inputs_give_a_repeatable_python_float(cls):
    target = two_modes().to(dtype=torch.float32)
    x, y = target.sample(600, gen(1)), target.sample(500, gen(2))
    metric = cls()
    value = metric(x, y, target)
    assert type(value) is float and math.isfinite(value)
    assert metric(x, y, target) == value  # fixed directions / subsets: same inputs, same number


@pytest.mark.parametrize("cls", ON_MIXTURES, ids=lambda c: c.name)
def test_diverged_samples_give_nan(cls):
    target = two_modes()
    x, y = target.sample(100, gen(1)), target.sample(100, gen(2))
    x[3, 0] = float("nan")
    assert math.isnan(cls()(x, y, target))


@pytest.mark.parametrize(
    "cls, bad",
    [
        (SlicedWasserstein, {"projections": 0}),
        (SlicedWasserstein, {"p": 0.5}),
        (MMD, {"bandwidth": 0.0}),
        (MMD, {"max_points": 1}),
    ],
)
def test_bad_hyperparameters_are_refused(cls, bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        cls(**bad)


# -- sliced_wasserstein ------------------------------------------------------------------------


def test_swd_of_unequal_sizes_is_the_exact_wasserstein_distance():
    # {0, 1} against {0, 1/2, 1}: the quantile functions differ by 1/2 on (1/3, 2/3), so
    # W1 = 1/2 * 1/3 = 1/6 and W2^2 = 1/4 * 1/3 = 1/12. In 1-D every direction is +-1: SW_p = W_p.
    x = torch.tensor([[0.0], [1.0]])
    y = torch.tensor([[0.0], [0.5], [1.0]])
    assert SlicedWasserstein(p=1)(x, y) == pytest.approx(1 / 6, rel=1e-12)
    assert SlicedWasserstein(p=2)(x, y) == pytest.approx(math.sqrt(1 / 12), rel=1e-12)
    assert SlicedWasserstein(p=2)(y, x) == pytest.approx(math.sqrt(1 / 12), rel=1e-12)


def test_swd_of_a_pure_shift_is_the_shift():
    # Projected on theta, x + delta*e is x shifted by delta*<theta, e>, so W_p = |delta <theta, e>|
    # exactly. In 1-D that is |delta| for any p; in d dimensions the squares summed over the d axes
    # give delta^2 * mean |theta|^2 = delta^2, whatever the directions drawn.
    x = normal(700, 1, 0)
    for p in (1.0, 2.0, 3.0):
        assert SlicedWasserstein(p=p)(x + 0.3, x) == pytest.approx(0.3, rel=1e-12)
    x = normal(700, 3, 1)
    swd = SlicedWasserstein()
    total = sum(swd(x + 0.7 * torch.eye(3, dtype=torch.float64)[i], x) ** 2 for i in range(3))
    assert total == pytest.approx(0.49, rel=1e-12)


def test_swd_identity_for_a_shift_of_independent_sets_of_unequal_sizes():
    # Per direction, W2^2(x, y + c) = int (F^-1 - G^-1 - c)^2 = W2^2(x, y) - 2c(mean x - mean y) + c^2
    # exactly (the quantile functions integrate to the means). Averaged over the metric's directions,
    # with c = delta <theta, e>: a check of the unequal-size quantile computation to rounding error.
    x, y = normal(600, 3, 2), normal(900, 3, 3)
    e, delta = torch.tensor([1.0, 2.0, -1.0], dtype=torch.float64) / math.sqrt(6), 1.5
    theta = directions(3, 128, 0, x.device)
    c = delta * theta @ e
    dm = theta @ (x.mean(0) - y.mean(0))
    swd = SlicedWasserstein()
    expected = swd(x, y) ** 2 + (c * c - 2 * c * dm).mean()
    assert swd(x, y + delta * e) ** 2 == pytest.approx(float(expected), rel=1e-10)
    # and the distance grows with the shift
    values = [swd(x, y + s * e) for s in (0.25, 0.5, 1.0, 2.0)]
    assert values == sorted(values)


def test_swd_of_independent_exact_samples_is_small_and_shrinks_with_n():
    # Every 1-D projection of N(0, I) is N(0, 1). For two independent n-samples, sqrt(n)(F_n - G_n)
    # tends to sqrt(2) times a Brownian bridge B(F), so E W1 = int E|F_n - G_n| dx
    # ~ (2 / sqrt(pi)) J / sqrt(n), J = int sqrt(F (1 - F)) dx (Bobkov & Ledoux 2019, sec. 3).
    # Over 200 seeds at n = 500 the largest SW_1 was 1.73 times this mean: allow 2 times.
    norm = scipy.stats.norm
    J = scipy.integrate.quad(lambda t: np.sqrt(norm.cdf(t) * norm.sf(t)), -np.inf, np.inf)[0]
    n = 500
    expected = 2 / math.sqrt(math.pi) * J / math.sqrt(n)
    assert SlicedWasserstein(p=1)(normal(n, 2, 4), normal(n, 2, 5)) < 2 * expected
    # SW_2 shrinks like 1/sqrt(n) up to a slowly growing log factor: from n = 500 to 8000 the
    # expected ratio is about sqrt(1/16) * 1.1 = 0.28 (largest over 30 seeds: 0.44); a ratio near 1
    # would mean no convergence.
    swd = SlicedWasserstein()
    small, large = swd(normal(500, 2, 6), normal(500, 2, 7)), swd(normal(8000, 2, 8), normal(8000, 2, 9))
    assert large < 0.6 * small


# -- mmd ---------------------------------------------------------------------------------------


def test_mmd_matches_the_closed_form_for_two_shifted_gaussians():
    # X ~ N(0, I_d), Y ~ N(delta e, I_d), k = exp(-|x - y|^2 / (2 l^2)): X - X' ~ N(0, 2I) and
    # X - Y ~ N(-delta e, 2I), so E k(X, X') = a := (l^2 / (l^2 + 2))^(d/2) and
    # E k(X, Y) = a exp(-delta^2 / (2 (l^2 + 2))), giving MMD^2 = 2a (1 - exp(-delta^2 / (2 (l^2 + 2)))).
    # The U-statistic is unbiased; its spread is measured over R independent pairs and the mean is
    # required within 4 standard errors (P(|t_9| > 4) = 0.3%).
    d, l, delta, n, R = 2, 1.0, 1.0, 1000, 10
    a = (l**2 / (l**2 + 2)) ** (d / 2)
    exact = 2 * a * (1 - math.exp(-(delta**2) / (2 * (l**2 + 2))))
    shift = torch.tensor([delta, 0.0], dtype=torch.float64)
    mmd = MMD(bandwidth=l)
    v = np.array([mmd(normal(n, d, 100 + r), normal(n, d, 200 + r) + shift) for r in range(R)])
    se = v.std(ddof=1) / math.sqrt(R)
    assert abs(v.mean() - exact) < 4 * se
    assert 4 * se < 0.1 * exact  # fine enough to see a 10% error in the estimator


def test_mmd_is_unbiased_and_shrinks_under_equal_distributions():
    # Equal distributions: given the pooled points (which fix the median bandwidth), the split into
    # the two sets is uniformly random, so every kernel block has the same expectation and
    # E MMD^2_u = 0 exactly. The mean over R pairs is required within 4 standard errors; the spread
    # of a degenerate U-statistic falls like 1/n, so from n = 50 to 200 it should fall about 4-fold
    # (each spread is itself estimated to about 1 / sqrt(2 (R - 1)) = 9%).
    target, mmd, R = two_modes(), MMD(), 60
    spread = {}
    for n in (50, 200):
        pairs = [(target.sample(n, gen(2 * r)), target.sample(n, gen(2 * r + 1))) for r in range(R)]
        v = np.array([mmd(x, y, target) for x, y in pairs])
        assert abs(v.mean()) < 4 * v.std(ddof=1) / math.sqrt(R)
        assert (v < 0).any()  # the estimate is not clipped at zero
        spread[n] = v.std(ddof=1)
    assert spread[200] < 0.5 * spread[50]


def test_mmd_grows_with_a_mean_shift():
    # Under the median heuristic the bandwidth grows with the shift too, but MMD^2 still increases
    # (closed form above with l^2 ~ median |X - Y|^2). Equal distributions at n = 1000 give a
    # spread under 1e-3 (previous test's spread, scaled by 1/n), far below the gaps checked here.
    x, y = normal(1000, 2, 10), normal(1000, 2, 11)
    values = [MMD()(x, y + torch.tensor([s, 0.0], dtype=torch.float64)) for s in (0.0, 0.5, 1.0, 2.0)]
    assert abs(values[0]) < 2e-3
    assert values[1] > 10 * abs(values[0])
    assert values == sorted(values)


# -- mean_error and covariance_error -----------------------------------------------------------


def ill_conditioned(mean_value: float = 1.0) -> Gaussian:
    return Gaussian(dim=4, condition_number=10.0, rotate=True, mean_value=mean_value)


def test_mean_error_of_exact_samples_is_within_three_over_root_n():
    # mean(x) - mu ~ N(0, C / n), so n * err^2 = sum_i lam_i z_i^2 / sum_i lam_i: a weighted chi^2
    # with mean 1 (E err^2 = 1/n in any dimension), at worst (all variance in one direction) a
    # chi^2_1. err < 3 / sqrt(n) is then a three-sigma bound, P(fail) <= P(|z| > 3) = 0.3%.
    target, n = ill_conditioned(), 4000
    x = target.sample(n, gen(12))
    far_reference = torch.full((10, 4), 100.0, dtype=torch.float64)  # ignored: the target has moments
    assert MeanError()(x, far_reference, target) < 3 / math.sqrt(n)
    # A known shift u: |err - |u| / sqrt(tr C)| <= |mean(x) - mu| / sqrt(tr C) < 3 / sqrt(n).
    u = torch.tensor([0.5, -0.5, 0.5, -0.5], dtype=torch.float64)
    expected = float(u.norm() / target.covariance.trace().sqrt())
    assert abs(MeanError()(x + u, far_reference, target) - expected) < 3 / math.sqrt(n)


def test_moment_errors_fall_back_to_the_reference_moments():
    # Without exact moments, the reference's sample mean and covariance are the truth, so a shifted
    # or scaled copy of the reference gives its error exactly.
    y = normal(3000, 3, 13) * torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    c = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    cov = torch.cov(y.T)
    assert MeanError()(y + c, y, NO_MOMENTS) == pytest.approx(float(c.norm() / cov.trace().sqrt()), rel=1e-12)
    assert CovarianceError()(1.1 * y + c, y, NO_MOMENTS) == pytest.approx(0.21, rel=1e-10)
    assert CovarianceError()(y, y, NO_MOMENTS) == pytest.approx(0.0, abs=1e-12)


def test_covariance_error_of_exact_and_scaled_samples():
    # For Gaussian data the unbiased sample covariance has Var(C_ij) = (C_ij^2 + C_ii C_jj) / (n - 1),
    # so E |C_hat - C|_F^2 = (|C|_F^2 + (tr C)^2) / (n - 1) =: (rms |C|_F)^2. Samples scaled by 1.1
    # around the (zero) mean have C_hat = 1.21 C_hat0, so |C_hat - C| = |0.21 C + 1.21 (C_hat0 - C)|
    # and |err - 0.21| <= 1.21 |C_hat0 - C|_F / |C|_F. Both are checked at 3 rms (a sum of many
    # squared, nearly Gaussian entries is tightly concentrated around its mean).
    target, n = ill_conditioned(mean_value=0.0), 50_000
    C = target.covariance
    rms = math.sqrt((C.norm() ** 2 + C.trace() ** 2) / (n - 1)) / float(C.norm())
    x = target.sample(n, gen(14))
    assert CovarianceError()(x, x[:10], target) < 3 * rms
    assert CovarianceError()(1.1 * x, x[:10], target) == pytest.approx(0.21, abs=1.21 * 3 * rms)


# -- mode_weight_error -------------------------------------------------------------------------


def test_mode_weight_error_of_exact_samples_is_binomial_noise():
    # With two well separated modes, TV = |w_hat_0 - 0.8| with n w_hat_0 ~ Binomial(n, 0.8):
    # standard deviation sqrt(0.8 * 0.2 / n) = 0.0063 at n = 4000; allowed 4 of them.
    target, n = two_modes(0.8), 4000
    sd = math.sqrt(0.8 * 0.2 / n)
    assert ModeWeightError()(target.sample(n, gen(15)), None, target) < 4 * sd


def test_mode_weight_error_of_wrongly_weighted_samples():
    # Samples of a 0.5 / 0.5 mixture of the same modes: TV = |w_hat_0 - 0.8| with n w_hat_0 ~
    # Binomial(n, 0.5), i.e. 0.3 with standard deviation sqrt(0.25 / n) = 0.0079; allowed 4 of them.
    target, n = two_modes(0.8), 4000
    x = two_modes(0.5).sample(n, gen(16))
    assert ModeWeightError()(x, None, target) == pytest.approx(0.3, abs=4 * math.sqrt(0.25 / n))
    # Every chain stuck in the first mode: exactly the weight of the mode it missed.
    stuck = torch.tensor([[-4.0, 0.0]], dtype=torch.float64).expand(100, 2)
    assert ModeWeightError()(stuck, None, target) == pytest.approx(0.2, abs=1e-12)


# -- device ------------------------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("cls", ON_MIXTURES, ids=lambda c: c.name)
def test_cuda_matches_cpu(cls):
    target = two_modes()
    x, y = target.sample(3000, gen(17)), target.sample(2500, gen(18))
    on_cpu = cls()(x, y, target)
    on_gpu = cls()(x.cuda().float(), y.cuda().float(), two_modes().to("cuda", torch.float32))
    # float32 inputs: values agree to float32 rounding of the data, not to float64 precision
    assert on_gpu == pytest.approx(on_cpu, rel=1e-4, abs=1e-5)

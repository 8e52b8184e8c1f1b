"""``ksd``, ``energy_distance`` and ``nll``: brute-force identities and expectations known in closed form.

Statistical checks compare the mean of R independent replicates with its exact expectation, within 4
standard errors estimated from the replicates (P(|t_{R-1}| > 4) < 0.3% for R >= 10); seeds are
fixed, so the tests are deterministic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch

from scorelab_builtins.metrics import KSD, NLL, EnergyDistance
from scorelab_builtins.metrics import energy as energy_module
from scorelab_builtins.metrics import ksd as ksd_module
from scorelab_builtins.targets import GMM, Gaussian


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def normal(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=gen(seed), dtype=torch.float64)


def within_4_se(values, expected) -> bool:
    v = np.asarray(values)
    return abs(v.mean() - expected) < 4 * v.std(ddof=1) / math.sqrt(len(v))


# -- ksd ---------------------------------------------------------------------------------------


def brute_force_ksd2(x: torch.Tensor, target, c: float, beta: float) -> float:
    """1/n^2 sum_ij k_p(x_i, x_j), every derivative of k taken by autograd, one pair at a time: an
    independent check of the closed-form Stein kernel."""
    n, d = x.shape
    s = target.score(x, 0.0)
    total = 0.0
    for i in range(n):
        for j in range(n):
            a, b = x[i].clone().requires_grad_(True), x[j].clone().requires_grad_(True)
            k = (c**2 + ((a - b) ** 2).sum()) ** beta
            grad_a, grad_b = torch.autograd.grad(k, (a, b), create_graph=True)
            trace = sum(torch.autograd.grad(grad_b[t], a, retain_graph=True)[0][t] for t in range(d))
            total += float((s[i] @ s[j] * k + s[i] @ grad_b + s[j] @ grad_a + trace).detach())
    return total / n**2


def skewed_mixture() -> GMM:
    # full, unequal covariances: a score that is neither linear nor axis-aligned
    return GMM(weights=[0.3, 0.7], means=[[0.0, 1.0, -1.0], [1.5, -0.5, 0.5]],
               covariances=[[[1.0, 0.3, 0.0], [0.3, 0.5, 0.1], [0.0, 0.1, 2.0]],
                            [[0.7, -0.2, 0.1], [-0.2, 1.2, 0.0], [0.1, 0.0, 0.4]]])


def test_ksd_matches_a_brute_force_double_loop(monkeypatch):
    target = skewed_mixture()
    x = target.sample(7, gen(0)) * 1.5  # not exact samples, so the value is not near zero
    for c, beta in ((1.0, -0.5), (0.7, -0.3)):
        expected = brute_force_ksd2(x, target, c, beta)
        assert KSD(c=c, beta=beta)(x, None, target) ** 2 == pytest.approx(expected, rel=1e-10)
    # in row blocks of one: the same sum to rounding
    monkeypatch.setattr(ksd_module, "_CHUNK", 1)
    assert KSD(c=0.7, beta=-0.3)(x, None, target) ** 2 == pytest.approx(expected, rel=1e-10)


def test_ksd_of_exact_samples_has_its_exact_expectation():
    # Under p, E k_p(X, Y) = 0 for independent X, Y (Stein's identity), so only the n diagonal terms
    # of the V-statistic have a mean: k_p(x, x) = c^(2 beta) |s|^2 - 2 beta d c^(2 beta - 2) =
    # |x|^2 + d for N(0, I) with c = 1, beta = -1/2, so E KSD^2 = 2d / n exactly.
    d, n, R = 2, 400, 12
    target = Gaussian(dim=d)
    v = [KSD()(normal(n, d, 10 + r), None, target) ** 2 for r in range(R)]
    assert within_4_se(v, 2 * d / n)
    assert max(v) < 3 * 2 * d / n  # near zero: a few times its 1/n bias at most


def test_ksd_of_a_shifted_gaussian_has_its_exact_expectation_and_grows_with_the_shift():
    # Samples q = N(delta e, I) against p = N(0, I): s_p - s_q = -delta e, so the population KSD^2 is
    # delta^2 E_q k(X, X') (Liu, Lee & Jordan 2016, eq. 6), with X - X' ~ N(0, 2I): in d = 2,
    # |X - X'|^2 ~ Exp(mean 4) and E (1 + W)^(-1/2) = (sqrt(pi) / 2) e^(1/4) erfc(1/2) =: kappa.
    # The V-statistic adds the diagonal: E KSD^2 = (2d + delta^2) / n + (1 - 1/n) kappa delta^2.
    d, n, R = 2, 400, 10
    kappa = math.sqrt(math.pi) / 2 * math.exp(0.25) * scipy.special.erfc(0.5)
    target, e = Gaussian(dim=d), torch.tensor([1.0, 0.0], dtype=torch.float64)
    for delta in (0.25, 0.5, 1.0, 2.0):
        v = [KSD()(normal(n, d, 30 + r) + delta * e, None, target) ** 2 for r in range(R)]
        assert within_4_se(v, (2 * d + delta**2) / n + (1 - 1 / n) * kappa * delta**2)
    # one sample, growing shifts: monotone
    x = normal(600, d, 50)
    values = [KSD()(x + delta * e, None, target) for delta in (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)]
    assert values == sorted(values)
    assert values[3] > 3 * values[0]  # a shift of half a standard deviation stands well clear of the floor


def test_ksd_uses_float32_targets_and_subsamples():
    target = skewed_mixture().to(dtype=torch.float32)
    x = target.sample(500, gen(60))
    small = KSD(max_points=100)
    value = small(x, None, target)
    assert value == small(x, None, target)  # the same subset every call
    assert value != KSD()(x, None, target)  # and it is a subset
    x[0, 0] = float("inf")
    assert math.isnan(KSD()(x, None, target))


@pytest.mark.parametrize("bad", [{"c": 0.0}, {"beta": -1.0}, {"beta": 0.0}, {"max_points": 0}])
def test_ksd_refuses_bad_hyperparameters(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        KSD(**bad)


# -- energy_distance ---------------------------------------------------------------------------


def brute_force_energy(x: np.ndarray, y: np.ndarray) -> float:
    n, m = len(x), len(y)
    xy = sum(math.dist(a, b) for a in x for b in y) / (n * m)
    xx = sum(math.dist(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(math.dist(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    return 2 * xy - xx - yy


def test_energy_distance_equals_a_brute_force_computation(monkeypatch):
    # float64 throughout: only the order of the sums differs, so agreement to ~1e-14 relative
    x, y = normal(9, 3, 70), 1.3 * normal(7, 3, 71) + 0.4
    expected = brute_force_energy(x.numpy(), y.numpy())
    assert EnergyDistance()(x, y) == pytest.approx(expected, rel=1e-12)
    assert EnergyDistance()(y, x) == pytest.approx(expected, rel=1e-12)  # symmetric
    monkeypatch.setattr(energy_module, "_CHUNK", 5)  # rows in blocks of one
    assert EnergyDistance()(x, y) == pytest.approx(expected, rel=1e-12)


def test_energy_distance_is_unbiased_for_a_shift_and_grows_with_it():
    # 1-D, X ~ N(0, 1), Y ~ N(delta, 1): X - Y ~ N(-delta, 2) and E|N(mu, s^2)| = s sqrt(2/pi)
    # exp(-mu^2 / 2s^2) + mu (1 - 2 Phi(-mu / s)); X - X' ~ N(0, 2), so
    # E = 2 E|X - Y| - 2 * 2 / sqrt(pi). The estimator is unbiased at every delta, 0 included.
    def exact(delta):
        s = math.sqrt(2)
        abs_mean = s * math.sqrt(2 / math.pi) * math.exp(-(delta**2) / 4)
        abs_mean += delta * (1 - 2 * scipy.stats.norm.cdf(-delta / s))
        return 2 * abs_mean - 4 / math.sqrt(math.pi)

    n, R = 300, 12
    for delta in (0.0, 0.5, 1.0):
        v = [EnergyDistance()(normal(n, 1, 80 + r), normal(n, 1, 120 + r) + delta) for r in range(R)]
        assert within_4_se(v, exact(delta))
        if delta == 0.0:
            assert min(v) < 0  # not clipped at zero
    x, y = normal(1000, 2, 160), normal(1000, 2, 161)
    e = torch.tensor([1.0, 0.0], dtype=torch.float64)
    values = [EnergyDistance()(x, y + s * e) for s in (0.0, 0.25, 0.5, 1.0, 2.0)]
    assert values == sorted(values)


def test_energy_distance_inputs():
    x, y = normal(50, 2, 170), normal(40, 2, 171)
    x[4, 1] = float("nan")
    assert math.isnan(EnergyDistance()(x, y))
    with pytest.raises(ValueError, match="dimension"):
        EnergyDistance()(normal(5, 2, 0), normal(5, 3, 1))
    with pytest.raises(ValueError, match="max_points"):
        EnergyDistance(max_points=1)


# -- nll ---------------------------------------------------------------------------------------


def test_nll_of_exact_gaussian_samples_is_the_entropy():
    # -log p(X) = d/2 log(2 pi) + 1/2 log det S + 1/2 chi^2_d, so E NLL = H = d/2 log(2 pi e) +
    # 1/2 log det S and Var(-log p(X)) = Var(chi^2_d) / 4 = d / 2: the mean of n has standard error
    # sqrt(d / (2n)) (0.016 at d = 4, n = 8000); allowed 4 of them.
    d, n = 4, 8000
    target = Gaussian(dim=d, condition_number=10.0, rotate=True, mean_value=1.0)
    entropy = d / 2 * math.log(2 * math.pi * math.e) + 0.5 * float(torch.logdet(target.covariance))
    nll = NLL()(target.sample(n, gen(180)), None, target)
    assert nll == pytest.approx(entropy, abs=4 * math.sqrt(d / (2 * n)))


def test_nll_is_not_a_quality_score_on_its_own():
    # Collapse lowers it: every sample at the mode reads -log p(mode) = H - d/2, below the entropy.
    d = 3
    target = Gaussian(dim=d)
    entropy = d / 2 * math.log(2 * math.pi * math.e)
    at_mode = torch.zeros(100, d, dtype=torch.float64)
    assert NLL()(at_mode, None, target) == pytest.approx(entropy - d / 2, rel=1e-12)
    too_wide = 3 * target.sample(2000, gen(190))  # while too wide a sample raises it
    assert NLL()(too_wide, None, target) > entropy + 1
    x = target.sample(10, gen(191))
    x[2, 0] = float("nan")
    assert math.isnan(NLL()(x, None, target))
    assert NLL.discrepancy is False  # so its quality floor is a mean (scorelab.floors)

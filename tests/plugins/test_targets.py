"""The analytic targets' exact quantities against autograd and against their own samples."""

from __future__ import annotations

import math

import pytest
import torch

from scorelab_builtins.targets import GMM, Gaussian
from tests.helpers import assert_moments

TARGETS = {
    "gaussian-rotated": lambda: Gaussian(dim=4, condition_number=30.0, rotate=True, mean_value=0.5),
    "gaussian-axis": lambda: Gaussian(dim=3, condition_number=10.0),
    "gmm-isotropic": lambda: GMM(weights=[0.8, 0.2], means=[[-2.0, 0.0], [2.0, 1.0]], stds=[1.0, 0.5]),
    "gmm-full": lambda: GMM(
        weights=[0.3, 0.7], means=[[0.0, 0.0, 1.0], [1.0, -1.0, 0.0]],
        covariances=[
            [[1.0, 0.3, 0.0], [0.3, 0.5, 0.1], [0.0, 0.1, 2.0]],
            [[0.4, 0.0, 0.0], [0.0, 1.0, -0.2], [0.0, -0.2, 0.3]],
        ],
    ),
}


def _points(target, n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return target.sample(n, g) + 0.5 * torch.randn(n, target.dim, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("name", TARGETS)
@pytest.mark.parametrize("sigma", [0.0, 0.3, 2.0])
def test_score_is_gradient_of_noisy_log_density(name, sigma):
    target = TARGETS[name]()
    x = _points(target).requires_grad_(True)
    (grad,) = torch.autograd.grad(target.log_prob(x, sigma).sum(), x)
    torch.testing.assert_close(target.score(x.detach(), sigma), grad, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", TARGETS)
@pytest.mark.parametrize("sigma", [0.0, 0.7])
def test_hessian_diagonal_matches_autograd(name, sigma):
    target = TARGETS[name]()
    x = _points(target, n=16).requires_grad_(True)
    s = target.score(x, sigma)
    rows = [torch.autograd.grad(s[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(target.dim)]
    diag = torch.stack(rows, -1)
    torch.testing.assert_close(target.hess_diag(x.detach(), sigma), diag, rtol=1e-10, atol=1e-10)


def test_log_prob_is_normalised_in_2d():
    target = TARGETS["gmm-isotropic"]()
    grid = torch.linspace(-9, 9, 601, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    p = target.log_prob(torch.stack([xx.ravel(), yy.ravel()], -1)).exp()
    assert float(p.sum() * (grid[1] - grid[0]) ** 2) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("name", TARGETS)
def test_samples_have_the_exact_moments(name):
    # 200k samples: the sample mean's standard error is sqrt(var / n) <= sqrt(2.5 / 2e5) = 0.0035 per
    # coordinate; 6 standard errors keep the test from flaking while catching any real error.
    target = TARGETS[name]()
    n = 200_000
    x = target.sample(n, torch.Generator().manual_seed(1))
    # Covariance entries: se of a sample covariance is about sqrt((C_ii C_jj + C_ij^2) / n).
    assert_moments(x, target.mean, target.covariance, z=6.0)


def test_condition_number_and_rotation():
    axis = Gaussian(dim=50, condition_number=1000.0)
    rotated = Gaussian(dim=50, condition_number=1000.0, rotate=True)
    for t in (axis, rotated):
        eig = torch.linalg.eigvalsh(t.covariance)
        assert float(eig.max() / eig.min()) == pytest.approx(1000.0, rel=1e-9)
    off = rotated.covariance - torch.diag(torch.diagonal(rotated.covariance))
    assert float(off.abs().max()) > 0.01  # rotated: not diagonal
    assert torch.count_nonzero(axis.covariance - torch.diag(torch.diagonal(axis.covariance))) == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"weights": [0.5, 0.6], "means": [[0.0], [1.0]], "stds": [1.0, 1.0]}, "sum to 1"),
        ({"weights": [1.0], "means": [[0.0], [1.0]], "stds": [1.0]}, "one per weight"),
        ({"weights": [1.0], "means": [[0.0]]}, "exactly one of"),
        ({"weights": [1.0], "means": [[0.0]], "stds": [-1.0]}, "positive"),
        ({"weights": [1.0], "means": [[0.0, 0.0]], "covariances": [[[1.0, 2.0], [2.0, 1.0]]]}, "positive definite"),
    ],
)
def test_gmm_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GMM(**kwargs)


def test_float32_cast_keeps_values():
    t = TARGETS["gmm-full"]()
    x = _points(t)
    ref = t.score(x, 0.1)
    t.to(dtype=torch.float32)
    assert t.score(x.float(), 0.1).dtype == torch.float32
    torch.testing.assert_close(t.score(x.float(), 0.1).double(), ref, rtol=1e-4, atol=1e-4)
    assert math.isclose(float(t.mixture_weights.sum()), 1.0, rel_tol=1e-6)

"""The score-matching identities, checked on a Gaussian with a known score.

Notation: x ~ N(mu, S), s*(x) = -S^-1 (x - mu); every objective here uses the 1/2 convention
(ESM = 1/2 E|s - s*|^2, ISM = E[1/2 |s|^2 + tr J_s]), so ESM - ISM = 1/2 E|s*|^2.

Monte Carlo tolerances. Each loss is a mean of n i.i.d. per-sample values, so its standard error is
sd / sqrt(n). For a linear model every per-sample value is a quadratic form in a Gaussian vector w:
f(w) = w^T Q w + q^T w + c with w ~ N(0, C), whose variance is exactly 2 tr(QCQC) + q^T C q. The tests
compute that variance in closed form (``_quad_var``) and allow 5 standard errors (two-sided
p < 6e-7 per check), so a test fails by chance essentially never, while any error in an objective
(a missing 1/2, a wrong sign, a transposed Jacobian) moves the value by many standard errors.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from scorelab_builtins.objectives import DSM, ESM, ISM, SSM, SSMVR, DSMMulti
from scorelab_builtins.targets import Gaussian

D = 3


@pytest.fixture(autouse=True)
def float64():
    """Every value here is compared in float64."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


class LinearScore(nn.Module):
    """s(x) = A x + b, with A and b given as tensors (so a loss is a function of them)."""

    noise_conditional = False

    def __init__(self, A, b):
        super().__init__()
        self.A, self.b = A, b

    def forward(self, x, sigma=None):
        return x @ self.A.T + self.b


class LevelLinearScore(nn.Module):
    """s(x, sigma_l) = A_l x + b_l, one linear map per noise level (exact family for dsm_multi)."""

    noise_conditional = True

    def __init__(self, A, b, sigmas):
        super().__init__()
        self.A, self.b, self.log_sigmas = A, b, torch.tensor(sigmas).log()

    def forward(self, x, sigma):
        level = (torch.as_tensor(sigma).log()[:, None] - self.log_sigmas).abs().argmin(-1)
        return torch.einsum("nij,nj->ni", self.A[level], x) + self.b[level]


def _target():
    return Gaussian(dim=D, condition_number=4.0, rotate=True, mean_value=0.5)  # S has eigenvalues 1, 1/2, 1/4


def _wrong_models():
    g = torch.Generator().manual_seed(7)
    return [(0.5 * torch.randn(D, D, generator=g) - torch.eye(D) * k, 0.3 * torch.randn(D, generator=g))
            for k in (0.0, 1.0, 3.0)]


def _quad_var(P, R, b_p, b_r, C):
    """Var of 1/2|P w + b_p|^2 - 1/2|R w + b_r|^2 for w ~ N(0, C)."""
    Q = 0.5 * (P.T @ P - R.T @ R)
    q = P.T @ b_p - R.T @ b_r
    return float(2 * torch.trace(Q @ C @ Q @ C) + q @ C @ q)


def _centred(target, n, seed):
    """(x, w) with x ~ target and w = x - mu (the Gaussian vector the quadratic forms are written in)."""
    x = target.sample(n, torch.Generator().manual_seed(seed))
    return x, x - target.mean


def test_esm_minus_ism_is_half_the_expected_squared_true_score():
    target = _target()
    S, mu = target.covariance, target.mean
    P_inv = torch.linalg.inv(S)
    n = 40_000
    x, _ = _centred(target, n, 0)
    expected = 0.5 * float(torch.trace(P_inv))  # E|S^-1 (x - mu)|^2 = tr S^-1
    esm = ESM()
    esm.bind(target)
    for A, b in _wrong_models():
        model = LinearScore(A, b)
        g = torch.Generator().manual_seed(1)
        diff = float((esm.loss(model, x, g) - ISM().loss(model, x, g)).detach())
        # In w = x - mu: s - s* = (A + S^-1) w + (A mu + b) and s = A w + (A mu + b), and tr J = tr A is constant,
        # so the per-sample difference is a quadratic form in w.
        c = A @ mu + b
        se = math.sqrt(_quad_var(A + P_inv, A, c, c, S) / n)
        assert abs(diff - expected) < 5 * se, (diff, expected, se)


def _jacobians(model, x):
    return torch.func.vmap(torch.func.jacrev(lambda y: model(y[None])[0]))(x)


class _MLP(nn.Module):
    """A fixed random nonlinear score model: the Jacobian varies with x."""

    noise_conditional = False

    def __init__(self):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(3)
            self.net = nn.Sequential(nn.Linear(D, 16), nn.Tanh(), nn.Linear(16, D))

    def forward(self, x, sigma=None):
        return self.net(x) - x


@pytest.mark.parametrize("model_kind", ["linear", "mlp"])
@pytest.mark.parametrize("objective", ["ssm", "ssm_vr"])
@pytest.mark.parametrize("distribution", ["gaussian", "rademacher"])
def test_sliced_objectives_are_unbiased_estimates_of_ism(model_kind, objective, distribution):
    target = _target()
    n, M = 200, 2000  # a fixed batch; M projections per point
    x = target.sample(n, torch.Generator().manual_seed(2))
    A, b = _wrong_models()[1]
    model = LinearScore(A, b) if model_kind == "linear" else _MLP()
    ism = float(ISM().loss(model, x, None).detach())
    cls = SSM if objective == "ssm" else SSMVR
    sliced = cls(projections=M, distribution=distribution)
    value = float(sliced.loss(model, x, torch.Generator().manual_seed(3)).detach())
    # Given x, each projection's term is v^T B v (+ 1/2|s|^2 for ssm_vr) with B = sym(J) (+ 1/2 s s^T for ssm).
    # Var_v(v^T B v) = 2 |B|_F^2 for Gaussian v and 2 sum_{i != j} B_ij^2 for Rademacher v (v_i^2 = 1). The
    # estimate averages n * M such terms, independent given x.
    with torch.no_grad():
        s = model(x)
        J = _jacobians(model, x)
        B = 0.5 * (J + J.transpose(1, 2))
        if objective == "ssm":
            B = B + 0.5 * s[:, :, None] * s[:, None, :]
        if distribution == "rademacher":
            B = B - torch.diag_embed(torch.diagonal(B, dim1=1, dim2=2))
        var = 2 * B.pow(2).sum((1, 2))
    se = math.sqrt(float(var.sum()) / (n**2 * M))
    assert abs(value - ism) < 5 * se, (value, ism, se)
    assert se < 0.01 * abs(ism)  # sharp: a bias of 1% would show


def test_dsm_minus_esm_of_the_noised_score_is_the_same_for_every_model():
    target = _target()
    S, mu = target.covariance, target.mean
    sigma, n = 0.5, 100_000
    K = torch.linalg.inv(S + sigma**2 * torch.eye(D))  # the noised score is -K (x~ - mu)
    expected = D / (2 * sigma**2) - 0.5 * float(torch.trace(K))  # 1/2 E|z/sigma|^2 - 1/2 E|s*_sigma|^2
    x1, _ = _centred(target, n, 10)
    x2, _ = _centred(target, n, 11)
    esm = ESM(sigma=sigma)
    esm.bind(target)
    I, Z = torch.eye(D), torch.zeros(D, D)
    C = torch.block_diag(S, I)  # w = (x - mu, z), independent
    dsm_values = []
    for A, b in _wrong_models():
        model = LinearScore(A, b)
        dsm = float(DSM(sigma=sigma).loss(model, x1, torch.Generator().manual_seed(20)))
        esm_value = float(esm.loss(model, x2, torch.Generator().manual_seed(21)))
        dsm_values.append(dsm)
        # Independent batches and noise, so the variances add. In w: x~ - mu = [I, sigma I] w,
        # DSM: s + z/sigma = [A, sigma A + I/sigma] w + c;  ESM: s - s*_sigma = (A + K) [I, sigma I] w + c.
        c = A @ mu + b
        var_dsm = _quad_var(torch.cat([A, sigma * A + I / sigma], 1), torch.cat([Z, Z], 1), c, 0 * c, C)
        var_esm = _quad_var((A + K) @ torch.cat([I, sigma * I], 1), torch.cat([Z, Z], 1), c, 0 * c, C)
        se = math.sqrt((var_dsm + var_esm) / n)
        assert abs(dsm - esm_value - expected) < 5 * se, (dsm - esm_value, expected, se)
    assert max(dsm_values) - min(dsm_values) > 1.0  # the models do differ; only the difference is constant


# -- minimisers ------------------------------------------------------------------------------------

def _newton_minimiser(loss_of, theta0):
    """Each loss here is an exact quadratic in theta (noise drawn from a fixed seed), so one Newton step
    from anywhere lands on its minimiser. Returns (minimiser, Hessian)."""
    theta0 = theta0.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss_of(theta0), theta0)
    H = torch.autograd.functional.hessian(loss_of, theta0.detach())
    return theta0.detach() - torch.linalg.solve(H, g), H


def _sandwich_se(loss_on, theta, H, chunks):
    """Standard errors of the empirical minimiser: theta^ - theta* ~ -H^-1 grad L_n(theta*), and the mean
    gradient's covariance is estimated from the gradients on ``chunks`` disjoint parts of the batch
    (covariance of a part's gradient / number of parts)."""
    grads = []
    for k in range(chunks):
        t = theta.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(loss_on(t, k), t)
        grads.append(g)
    G = torch.stack(grads)
    cov = torch.cov(G.T) / chunks
    Hinv = torch.linalg.inv(H)
    return torch.diagonal(Hinv @ cov @ Hinv.T).sqrt()


OBJECTIVES = {
    "esm": lambda: ESM(),
    "ism": lambda: ISM(),
    "ssm-gaussian": lambda: SSM(distribution="gaussian"),
    "ssm-rademacher": lambda: SSM(distribution="rademacher"),
    "ssm_vr": lambda: SSMVR(),
    "dsm": lambda: DSM(sigma=0.7),
    "dsm_multi": lambda: DSMMulti(sigma_max=1.0, sigma_min=0.25, levels=3),
}


@pytest.mark.parametrize("name", OBJECTIVES)
def test_linear_minimiser_is_the_closed_form_optimum(name):
    """Over s(x) = A x + b on N(mu, S): the minimiser is the score of the data (A = -S^-1, b = S^-1 mu),
    of the noised data for denoising objectives (S + sigma^2 I in place of S), per level for dsm_multi."""
    target = _target()
    S, mu = target.covariance, target.mean
    objective = OBJECTIVES[name]()
    if name == "esm":
        objective.bind(target)
    levels = objective.noise_levels()
    L = len(levels) if name == "dsm_multi" else 1
    n, chunks = 24_000, 60
    x = target.sample(n, torch.Generator().manual_seed(4))

    def unpack(theta):
        A, b = theta[: L * D * D].reshape(L, D, D), theta[L * D * D:].reshape(L, D)
        return LevelLinearScore(A, b, levels) if name == "dsm_multi" else LinearScore(A[0], b[0])

    def loss_on(theta, part=None):
        batch = x if part is None else x.reshape(chunks, -1, D)[part]
        seed = 5 if part is None else 100 + part
        return objective.loss(unpack(theta), batch, torch.Generator().manual_seed(seed))

    sig2 = [s**2 if name.startswith("dsm") else 0.0 for s in levels[:L]]
    exact = [torch.linalg.inv(S + v * torch.eye(D)) for v in sig2]
    theta_star = torch.cat([-torch.stack(exact).flatten(), torch.stack([P @ mu for P in exact]).flatten()])
    theta_hat, H = _newton_minimiser(loss_on, torch.zeros_like(theta_star))

    if name == "esm":  # s* is linear in x, so the regression is exact on any sample
        torch.testing.assert_close(theta_hat, theta_star, rtol=1e-8, atol=1e-8)
        return
    if name == "ism":  # the empirical minimiser is the sample's own Gaussian fit: -C^-1, C^-1 xbar
        xbar = x.mean(0)
        C_inv = torch.linalg.inv((x - xbar).T @ (x - xbar) / n)
        torch.testing.assert_close(theta_hat, torch.cat([-C_inv.flatten(), C_inv @ xbar]), rtol=1e-8, atol=1e-8)
    se = _sandwich_se(loss_on, theta_star, H, chunks)
    z = (theta_hat - theta_star) / se
    assert z.abs().max() < 5, (z, se)
    assert se.max() < 0.1  # sharp: a few percent of entries of order 1
    if name.startswith("dsm"):  # and distinguishable from the un-noised score's parameters
        plain = torch.linalg.inv(S)
        wrong = torch.cat([-plain.flatten().repeat(L), (plain @ mu).repeat(L)])
        assert ((theta_hat - wrong) / se).abs().max() > 20

"""Curvature on an ill-conditioned Gaussian (d = 50, condition number 1000): how many steps to reach
a 10 % covariance error, against plain Langevin at its largest stable step.

Setting. Variances log-spaced from 1 down to 1e-3; every chain starts at the mode (x = 0), so the
covariance has to grow to the target's C, and the wide directions (variance ~1) are the slow ones.

Exact laws. With the exact score -P x and exact curvature, each sampler here is linear: one step maps
x to A x + (noise of covariance diag(q)), with A = I - diag(g) P for a per-coordinate gain g. ULA:
g = h, q = 2h. hessian_diag_langevin: M = 1 / (diag P + damping), g = h M, q = 2 h M. ozaki_langevin:
c = diag P + damping, g = (1 - e^{-hc}) / c, q = (1 - e^{-2hc}) / c. From x = 0 the law after k
steps is exactly N(0, S_k), S_k = A S_{k-1} A^T + diag(q), S_0 = 0; nothing in it is measured.

Steps to reach. The error is the ``covariance_error`` metric, |C_hat - C|_F / |C|_F, with C_hat the
unbiased sample covariance of n chains. Its square has the exact expectation
(|S_k - C|_F^2 + ((tr S_k)^2 + |S_k|_F^2) / (n - 1)) / |C|_F^2 (the Wishart variance of C_hat around
S_k); a sampler "reaches" at the first k where that is under 0.10^2. For exact draws the second term
is ((tr C)^2 + |C|_F^2) / (n |C|_F^2) = 15.2 / n, so with n = 4000 chains the floor is 6.2 %, safely
under the threshold. Each sampler is then run to its predicted step and its chains are checked
against S_k entry by entry (``tests.helpers.assert_moments``: 5 standard errors, from n).

Plain Langevin (ULA) is stable for h < 2 v_min = 2e-3; at h = 1.9e-3 a direction of variance v
contracts by (1 - h / v) a step, so the widest needs ~ log(10) / (2h) ~ 600 steps. With exact
curvature the diagonal preconditioner makes every direction contract at the same rate (1 - h) on an
axis-aligned Gaussian, and the Ozaki step is exact, so one step reaches the target's law.

Rotated, the diagonal of the precision no longer whitens it: the preconditioned chain is stable only
for h < 2 / lambda_max(M^1/2 P M^1/2) and its slowest direction is barely faster than Langevin's.
Langevin itself is rotation-equivariant (isotropic noise, a start at the mode, and a rotation-invariant
error), so its step count is the same rotated or not.
"""

from __future__ import annotations

import math

import pytest
import torch

from scorelab.oracle import ScoreOracle
from scorelab.sources import ExactScore
from scorelab_builtins.samplers import HessianDiagLangevin, Langevin, OzakiLangevin
from scorelab_builtins.targets import Gaussian
from tests.helpers import assert_moments

pytestmark = pytest.mark.slow

D, KAPPA, CHAINS, THRESHOLD = 50, 1000.0, 4000, 0.10
V_MIN = 1 / KAPPA
DAMPING = 1e-2  # the curvature samplers' default
LANGEVIN_STEP = 0.95 * 2 * V_MIN


def _target(rotate: bool) -> Gaussian:
    return Gaussian(dim=D, condition_number=KAPPA, rotate=rotate).to(dtype=torch.float32)


def _precision(target) -> torch.Tensor:
    return torch.linalg.inv(target.covariance.double())


def _linear_step(sampler, P: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, q) of the sampler's documented update on N(0, P^-1) with exact curvature (module docstring)."""
    h = sampler.step_size
    if isinstance(sampler, Langevin):
        gain, q = torch.full((D,), h, dtype=P.dtype), torch.full((D,), 2 * h, dtype=P.dtype)
    elif isinstance(sampler, HessianDiagLangevin):
        m = 1 / (P.diagonal() + sampler.damping)
        gain, q = h * m, 2 * h * m
    else:
        c = P.diagonal() + sampler.damping
        gain, q = -torch.expm1(-h * c) / c, -torch.expm1(-2 * h * c) / c
    return torch.eye(D, dtype=P.dtype) - gain[:, None] * P, q


def expected_error(S: torch.Tensor, C: torch.Tensor, n: int = CHAINS) -> float:
    """sqrt(E |C_hat - C|_F^2) / |C|_F for n draws from N(0, S) (module docstring)."""
    noise = (S.trace() ** 2 + S.square().sum()) / (n - 1)
    return math.sqrt(float(((S - C).square().sum() + noise) / C.square().sum()))


def predicted(sampler, target, max_steps: int) -> tuple[int, torch.Tensor]:
    """The first step k whose exact law N(0, S_k) has an expected error under THRESHOLD, and S_k."""
    P = _precision(target)
    C = target.covariance.double()
    A, q = _linear_step(sampler, P)
    S = torch.zeros(D, D, dtype=P.dtype)
    for k in range(1, max_steps + 1):
        S = A @ S @ A.T + torch.diag(q)
        if expected_error(S, C) < THRESHOLD:
            return k, S
    raise AssertionError(f"{type(sampler).__name__} does not reach {THRESHOLD} in {max_steps} steps")


def run(sampler, target, steps: int, seed: int = 0) -> torch.Tensor:
    oracle = ScoreOracle(ExactScore(target))
    state, g = sampler.init(torch.zeros(CHAINS, D), oracle, math.inf), torch.Generator().manual_seed(seed)
    for _ in range(steps):
        state, _ = sampler.step(state, oracle, g)
    return state.x


def assert_follows(sampler, target, steps: int, S: torch.Tensor) -> None:
    assert_moments(run(sampler, target, steps), torch.zeros(D, dtype=torch.float64), S)


@pytest.fixture(scope="module")
def langevin_steps() -> int:
    """ULA's predicted step count, checked once against its chains."""
    langevin, target = Langevin(step_size=LANGEVIN_STEP), _target(False)
    steps, S = predicted(langevin, target, 2000)
    assert_follows(langevin, target, steps, S)
    return steps


def test_exact_diagonal_curvature_is_far_faster_on_the_axis_aligned_gaussian(langevin_steps):
    target = _target(False)
    # h = 0.05: every direction contracts by 0.95 a step; the stationary variance is 1 / (1 - h/2), 2.6 % high.
    hessian = HessianDiagLangevin(step_size=0.05, curvature="exact")
    ozaki = OzakiLangevin(step_size=5.0, curvature="exact")
    hessian_steps, hessian_law = predicted(hessian, target, 200)
    ozaki_steps, ozaki_law = predicted(ozaki, target, 20)
    assert langevin_steps / hessian_steps >= 15 and langevin_steps / ozaki_steps >= 100
    assert_follows(hessian, target, hessian_steps, hessian_law)
    assert_follows(ozaki, target, ozaki_steps, ozaki_law)


def test_the_preconditioned_chain_settles_at_ulas_known_bias():
    """Long enough (0.95^(2 * 200) = 1e-9 of the start left) to be stationary: every coordinate's
    variance is ULA's at the effective step h M_i, v_i / (1 - h M_i / (2 v_i)), 2.6 % above v_i."""
    target, sampler = _target(False), HessianDiagLangevin(step_size=0.05, curvature="exact")
    v = target.covariance.double().diagonal()
    biased = torch.tensor([sampler.stationary_variance(float(vi)) for vi in v], dtype=torch.float64)
    A, q = _linear_step(sampler, _precision(target))  # the update's fixed point is that closed form
    torch.testing.assert_close(q / (1 - A.diagonal() ** 2), biased, rtol=1e-10, atol=0)
    x = run(sampler, target, 200).double()
    # Each coordinate's sample variance over its law's has sd sqrt(2 / (n - 1)); the 50 coordinates are
    # independent, so their mean ratio has sd sqrt(2 / (50 (n - 1))) = 0.32 %, against a 2.6 % bias.
    ratio, se = float((x.var(0) / biased).mean()), math.sqrt(2 / (D * (CHAINS - 1)))
    assert abs(ratio - 1) < 5 * se
    assert float((biased / v).mean()) - 1 > 5 * se  # the bias is resolved: exact variances would fail


def test_the_diagonal_advantage_shrinks_on_the_rotated_gaussian(langevin_steps):
    target = _target(True)
    P = _precision(target)
    m = 1 / (P.diagonal() + DAMPING)  # the preconditioner built from the exact diagonal
    largest = 2 / torch.linalg.eigvalsh(m.sqrt()[:, None] * P * m.sqrt()[None]).max().item()
    # Rotation invariance: Langevin's exact law on the rotated target reaches at the same step.
    assert predicted(Langevin(step_size=LANGEVIN_STEP), target, 2000)[0] == langevin_steps
    sampler = HessianDiagLangevin(step_size=0.95 * largest, curvature="exact")
    rotated, law = predicted(sampler, target, 2 * langevin_steps)
    assert langevin_steps / rotated <= 2.0  # against >= 15 axis-aligned: the advantage has all but vanished
    assert_follows(sampler, target, rotated, law)

"""Every sampler on a 2-D Gaussian with its exact score: the right mean and covariance, or the known
biased covariance of its discretisation.

Predictions. Most samplers are linear on a Gaussian target: one step maps x - mu to
A (x - mu) + (noise of covariance Q), so their stationary covariance S solves the discrete Lyapunov
equation S = A S A^T + Q (``tests.helpers.lyapunov``), and their stationary mean is mu. That covers ULA
(A = I - hP, Q = 2hI, P the precision), the fixed diagonal preconditioners (A = I - hMP, Q = 2hM),
the Ozaki step (A = I - Phi_1 P, Q = Phi_2), and the curvature-set step once its estimate is fixed.
MALA is exact, error-controlled Langevin is exact up to a second-order Heun bias far below the
tolerance, and the probability-flow ODE is a linear map whose output law is computed exactly.

Tolerances. Chains start from independent exact draws and never interact (except through the
batch-wide step of dual averaging, which is frozen or nearly so), so after the transient the n
chains are n independent draws from the sampler's law. Over n draws from N(m, S) the sample mean of
coordinate i has standard error sqrt(S_ii / n), and the sample covariance entry (i, j) has standard
error sqrt((S_ii S_jj + S_ij^2) / n). We allow Z = 5 standard errors per entry (a false alarm with
probability 6e-7 per check). Each case runs long enough that the contraction rho of its map gives
rho^(2 steps) < 1e-4: what is left of the start is far below a standard error.
"""

from __future__ import annotations

import math

import pytest
import torch

from scorelab.contracts import traits
from scorelab.oracle import ScoreOracle
from scorelab.rng import KeyedStream
from scorelab.sources import ExactScore
from scorelab_builtins.samplers import (
    AdaptiveLangevin,
    CurvatureStepLangevin,
    HessianDiagLangevin,
    Langevin,
    Mala,
    OzakiLangevin,
    ProbabilityFlowODE,
    RmspropLangevin,
)
from scorelab_builtins.targets import Gaussian
from tests.helpers import assert_moments, lyapunov, stationary

N = 10_000
Z = 5.0

ROTATED = dict(dim=2, condition_number=4.0, rotate=True, mean_value=1.0)  # variances 1 and 0.25, rotated
AXIS = dict(dim=2, condition_number=4.0, mean_value=1.0)
ISOTROPIC = dict(dim=2, scale=0.7, mean_value=1.0)



def _precision(t):
    return torch.linalg.inv(t.covariance)


def ula(h, steps):
    def predict(t):
        P = _precision(t)
        return t.mean, stationary(torch.eye(2, dtype=P.dtype) - h * P, 2 * h * torch.eye(2, dtype=P.dtype), steps)
    return predict


def fixed_diagonal(h, m_of, steps):
    """Preconditioned ULA with a fixed diagonal M = m_of(P)."""
    def predict(t):
        P = _precision(t)
        M = m_of(P)
        return t.mean, stationary(torch.eye(2, dtype=P.dtype) - h * M[:, None] * P, torch.diag(2 * h * M), steps)
    return predict


def ozaki(h, damping, steps):
    def predict(t):
        P = _precision(t)
        c = P.diagonal() + damping
        gain, var = -torch.expm1(-h * c) / c, -torch.expm1(-2 * h * c) / c
        return t.mean, stationary(torch.eye(2, dtype=P.dtype) - gain[:, None] * P, torch.diag(var), steps)
    return predict


def rmsprop_fixed_point(h, steps):
    """G = 1 / sqrt(E[s^2]) with E[s s^T] = P S P, S the stationary covariance for that G: iterate."""
    def predict(t):
        P = _precision(t)
        S = t.covariance
        for _ in range(100):
            G = 1 / (1e-5 + (P @ S @ P).diagonal().sqrt())
            S = lyapunov(torch.eye(2, dtype=P.dtype) - h * G[:, None] * P, torch.diag(2 * h * G))
        stationary(torch.eye(2, dtype=P.dtype) - h * G[:, None] * P, torch.diag(2 * h * G), steps)
        return t.mean, S
    return predict


def exact(t):
    return t.mean, t.covariance


def ode_map(sigma_max, sigma_min):
    """x(sigma_max) = sigma_max z; the flow of N(mu, S + sigma^2 I) is x - mu -> A (x - mu) with
    A = (S + sigma_min^2)^(1/2) (S + sigma_max^2)^(-1/2); denoising maps x - mu -> S (S + sigma_min^2)^-1 (x - mu)."""
    def predict(t):
        lam, U = torch.linalg.eigh(t.covariance)
        f = lambda g: U @ torch.diag(g) @ U.T  # noqa: E731
        A = f(((lam + sigma_min**2) / (lam + sigma_max**2)).sqrt())
        D = f(lam / (lam + sigma_min**2))
        DA = D @ A
        return t.mean - DA @ t.mean, sigma_max**2 * DA @ DA.T
    return predict


CASES = {
    # ULA at h = 0.2: rho = 1 - 0.2 * lambda_min(P) = 0.8.
    "langevin": (lambda: Langevin(step_size=0.2), ROTATED, 60, ula(0.2, 60)),
    "mala": (lambda: Mala(step_size=0.5, warmup=50), ROTATED, 100, exact),
    # alpha = 0.999: V averages over ~1000 steps, far longer than the chain mixes, so G is nearly fixed.
    "rmsprop_langevin": (lambda: RmspropLangevin(step_size=0.2, alpha=0.999), ROTATED, 300,
                         rmsprop_fixed_point(0.2, 300)),
    "hessian_diag_langevin[exact]": (lambda: HessianDiagLangevin(step_size=0.5, curvature="exact", damping=1e-2),
                                     ROTATED, 60, fixed_diagonal(0.5, lambda P: 1 / (P.diagonal() + 1e-2), 60)),
    # Hutchinson is exact on a diagonal Jacobian (every z_i^2 = 1), so this is the same fixed M.
    "hessian_diag_langevin[hutchinson]": (lambda: HessianDiagLangevin(step_size=0.5, refresh_every=1),
                                          AXIS, 40, fixed_diagonal(0.5, lambda P: 1 / (P.diagonal() + 1e-2), 40)),
    # Axis-aligned: exact for any h (up to the damping); rotated: the ignored coupling shows.
    "ozaki_langevin[axis]": (lambda: OzakiLangevin(step_size=3.0, curvature="exact"), AXIS, 10, ozaki(3.0, 1e-2, 10)),
    "ozaki_langevin[rotated]": (lambda: OzakiLangevin(step_size=0.3, curvature="exact"), ROTATED, 60,
                                ozaki(0.3, 1e-2, 60)),
    # h settles near 0.03; the Heun bias at u = h / v <= 0.12 is -u^2 / 4 < 0.4 %, against 5 % tolerance.
    "adaptive_langevin": (lambda: AdaptiveLangevin(), ROTATED, 250, exact),
    # Power iteration converges to lambda_max(P) = 4 (ratio 1/4 a refresh): then h = 0.5 / 4.
    "curvature_step_langevin[power]": (lambda: CurvatureStepLangevin(method="power", refresh_every=5),
                                       ROTATED, 150, ula(0.125, 100)),
    # Isotropic: the secant is exactly 1 / v, so h = 0.5 v.
    "curvature_step_langevin[secant]": (lambda: CurvatureStepLangevin(method="secant"), ISOTROPIC, 40,
                                        ula(0.5 * 0.49, 39)),
    "probability_flow_ode": (lambda: ProbabilityFlowODE(sigma_max=20.0, sigma_min=0.05), ROTATED, 1,
                             ode_map(20.0, 0.05)),
}


def _check_case(case: str, generator) -> None:
    """CASES[case] run from exact draws of its target, its steps drawing from ``generator``."""
    make, spec, steps, predict = CASES[case]
    target = Gaussian(**spec)
    x0 = target.sample(N, torch.Generator().manual_seed(7))
    oracle = ScoreOracle(ExactScore(target))
    sampler = make()
    state = sampler.init(x0, oracle, math.inf)
    for _ in range(steps):
        state, _ = sampler.step(state, oracle, generator)
    assert_moments(state.x, *predict(target), Z)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_reaches_the_target_or_its_known_bias(case):
    _check_case(case, torch.Generator().manual_seed(0))


KEYED_CASES = [c for c in CASES if traits("sampler", CASES[c][0]()).keyed_rng]


def test_the_samplers_that_take_keyed_streams_have_cases():
    assert KEYED_CASES == ["langevin", "mala", "curvature_step_langevin[power]", "curvature_step_langevin[secant]"]


@pytest.mark.slow
@pytest.mark.parametrize("case", KEYED_CASES)
def test_on_a_keyed_stream_reaches_the_same_target_or_known_bias(case):
    """A comparison's ``rng: keyed`` gives these samplers Philox numbers made in the step: the same law."""
    _check_case(case, KeyedStream(seed=0))


def test_the_biased_predictions_are_resolved_from_the_truth():
    """The known-bias cases above are real tests: the target's covariance lies outside the tolerance
    band around each prediction, so samples that matched the target instead would fail them."""
    for case in ("langevin", "rmsprop_langevin", "hessian_diag_langevin[exact]", "ozaki_langevin[rotated]",
                 "curvature_step_langevin[power]", "curvature_step_langevin[secant]"):
        _, spec, _, predict = CASES[case]
        target = Gaussian(**spec)
        _, cov = predict(target)
        se_cov = ((cov.diagonal()[:, None] * cov.diagonal()[None] + cov**2) / N).sqrt()
        assert ((cov - target.covariance).abs() > Z * se_cov).any(), case

"""annealed_langevin with a preconditioner or a step rule per noise level: the score_sde corrector's
step is what its formula says, and on a Gaussian each variant ends at the law its last level and the
denoising step predict.

Predictions. At the last level sigma_L the chain targets N(mu, S + sigma_L^2 I), precision P_L; a
linear variant (fixed M and h once its estimates have settled) has stationary covariance C solving
C = A C A^T + Q with A = I - h M P_L and Q = 2 h M. The denoising step x + sigma_L^2 s(x, sigma_L)
maps x - mu to D (x - mu), D = I - sigma_L^2 P_L, so the final covariance is D C D^T and the mean mu.
Tolerances as in test_samplers_gaussian.py (``tests.helpers.assert_moments``): n independent chains,
Z = 5 standard errors per entry of the mean and the covariance, and enough steps at the last level that
rho^(2T) < 1e-4.
"""

from __future__ import annotations

import math

import pytest
import torch

from scorelab.oracle import ScoreOracle
from scorelab.sources import ExactScore
from scorelab_builtins.kernels import normal_like
from scorelab_builtins.samplers import AnnealedLangevin
from scorelab_builtins.targets import Gaussian
from tests.helpers import assert_moments, stationary

N = 10_000
SIGMA_MAX, SIGMA_MIN, LEVELS = 1.0, 0.1, 3



def _target():
    return Gaussian(dim=2, condition_number=4.0, rotate=True, mean_value=1.0)


def _run(sampler, target, n=N, seed=0):
    oracle = ScoreOracle(ExactScore(target))
    x0 = target.sample(n, torch.Generator().manual_seed(7))
    state, g = sampler.init(x0, oracle, math.inf), torch.Generator().manual_seed(seed)
    while not state.finished:
        state, info = sampler.step(state, oracle, g)
    return state


def _last_level(target):
    eye = torch.eye(2, dtype=torch.float64)
    P = torch.linalg.inv(target.covariance + SIGMA_MIN**2 * eye)
    return P, eye, eye - SIGMA_MIN**2 * P


def test_snr_rule_is_score_sdes_corrector_step():
    target = _target()
    sampler = AnnealedLangevin(sigma_max=SIGMA_MAX, sigma_min=SIGMA_MIN, levels=LEVELS, steps_per_level=2,
                               step_rule="snr", snr=0.16)
    oracle = ScoreOracle(ExactScore(target))
    x = target.sample(500, torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(3)
    twin = torch.Generator().manual_seed(3)  # draws the same z the step will draw
    state, info = sampler.step(sampler.init(x, oracle, math.inf), oracle, g)
    z = normal_like(x, twin)  # the samplers' noise
    s = target.score(x, SIGMA_MAX)
    h = 2 * (0.16 * z.norm(dim=1).mean() / s.norm(dim=1).mean()) ** 2
    torch.testing.assert_close(info.step_size, h)
    torch.testing.assert_close(state.x, x + h * s + (2 * h).sqrt() * z)


def test_hessian_diagonal_preconditioner_per_level_ends_at_its_predicted_law():
    target = _target()
    h, T = 0.3, 40
    sampler = AnnealedLangevin(sigma_max=SIGMA_MAX, sigma_min=SIGMA_MIN, levels=LEVELS, steps_per_level=T,
                               step_rule="constant", epsilon=h, preconditioner="hessian_diag", curvature="exact")
    P, eye, D = _last_level(target)
    M = 1 / (P.diagonal() + 1e-2)
    C = stationary(eye - h * M[:, None] * P, torch.diag(2 * h * M), T)
    assert_moments(_run(sampler, target).x, target.mean, D @ C @ D.T)


def test_power_rule_per_level_ends_at_ulas_law_for_its_step():
    target = _target()
    T, scale = 60, 0.5
    # max_step raised: the default cap of sigma^2 per step would bind on data this smooth (v >> sigma_min^2).
    sampler = AnnealedLangevin(sigma_max=SIGMA_MAX, sigma_min=SIGMA_MIN, levels=LEVELS, steps_per_level=T,
                               step_rule="power", step_scale=scale, max_step=100.0, refresh_every=5)
    P, eye, D = _last_level(target)
    h = scale / torch.linalg.eigvalsh(P).max()  # the power iteration converges to lambda_max(P_L)
    C = stationary(eye - h * P, 2 * h * eye, T - 10)
    assert_moments(_run(sampler, target).x, target.mean, D @ C @ D.T)


@pytest.mark.slow
def test_error_controlled_rule_per_level_ends_at_the_noisy_target():
    target = _target()
    T, n = 150, 5000
    sampler = AnnealedLangevin(sigma_max=SIGMA_MAX, sigma_min=SIGMA_MIN, levels=LEVELS, steps_per_level=T,
                               step_rule="adaptive", max_step=100.0)
    P, eye, D = _last_level(target)
    state = _run(sampler, target, n)
    # The step settles near h = 0.02 (Heun's bias there, -u^2/4 at u = h lambda_max(P) < 0.1, is far below
    # the tolerance). The previous level's law differs from the last one's by sigma_2^2 - sigma_3^2 = 0.09
    # in every variance; at the median step's contraction rho, 0.09 rho^(2T) is left: under 1e-3 of a variance.
    h = float(state.step.median())
    assert 0.01 < h < 0.1
    rho = torch.linalg.eigvalsh(eye - h * P).abs().max().item()
    assert 0.09 * rho ** (2 * T) < 1e-3
    assert_moments(state.x, target.mean, D @ torch.linalg.inv(P) @ D.T)


def test_invalid_combinations_are_clear_errors():
    with pytest.raises(ValueError, match="step_rule must be one of"):
        AnnealedLangevin(step_rule="fast")
    with pytest.raises(ValueError, match="cannot be combined"):
        AnnealedLangevin(step_rule="power", preconditioner="rmsprop")
    assert AnnealedLangevin(preconditioner="hessian_diag", curvature="exact").requires == (
        "noise_conditional", "exact_hess_diag")

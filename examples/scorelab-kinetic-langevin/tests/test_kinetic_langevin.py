"""The plugin's own tests: it registers, it samples a known answer, and it pays one score a step.

Statistical tolerances. Every chain starts from the same point and draws its own noise, so after n
steps the chains are independent draws from one law. On a Gaussian target that law is Gaussian
(each BAOAB step is linear in x, v and the noise), so over N chains the sample mean of a coordinate
of variance v has standard error sqrt(v / N) and the sample variance has standard error
v sqrt(2 / (N - 1)); a sample covariance entry has standard error sqrt((S_ii S_jj + S_ij^2) / N).
We allow 4 standard errors (two-sided, a false alarm with probability 6e-5 per check on a fresh seed).

Burn-in. One step maps (x - mu, v) by a matrix whose determinant is exp(-gamma h) (the B and A
sub-steps are shears, of determinant 1); at the settings below its eigenvalues are complex (the
dynamics are underdamped), so both have modulus exp(-gamma h / 2) and the distance to stationarity
shrinks like exp(-gamma h n / 2). We take gamma h n / 2 >= 15: iterating the exact map shows a
left-over bias of at most 2e-6 in the mean and 1e-12 in the covariance, against tolerances near 1e-2.
"""

import math

import pytest
import torch

import scorelab_kinetic_langevin
from scorelab.oracle import ScoreOracle
from scorelab.plugins import PluginHost
from scorelab_kinetic_langevin import KineticLangevin

CHAINS = 16_000  # variances to within 4 standard errors = 4.5 %
Z = 4.0  # tolerance in standard errors


class GaussianScore:
    """A score source for the oracle: the exact score of N(mean, cov)."""

    provides = frozenset({"exact_score"})

    def __init__(self, mean, cov):
        self.mean = torch.as_tensor(mean, dtype=torch.float64)
        self.cov = torch.as_tensor(cov, dtype=torch.float64)
        self.precision = torch.linalg.inv(self.cov)

    def score(self, x, sigma=None):
        return -(x - self.mean) @ self.precision  # the precision matrix is symmetric


def run(sampler, source, x0, steps, seed=0):
    oracle = ScoreOracle(source)
    generator = torch.Generator().manual_seed(seed)
    state = sampler.init(x0, oracle, budget=math.inf)
    for _ in range(steps):
        state, _ = sampler.step(state, oracle, generator)
    return state, oracle


def burn_in(sampler):
    return math.ceil(30 / (sampler.friction * sampler.step_size))  # gamma h n / 2 >= 15


@pytest.mark.parametrize("step_size", [0.1, 2.0])
def test_1d_gaussian_x_marginal_is_exact(step_size):
    """N(0, 2): x has variance 2 at any stable step (h < 2 sqrt(2)), v has variance 1 - h^2 / 8.

    At h = 2 plain Langevin would give variance 2 / (1 - h / 4) = 4, and v's variance is 1/2.
    """
    var = 2.0
    sampler = KineticLangevin(step_size=step_size, friction=1.0)
    x0 = torch.full((CHAINS, 1), 3.0, dtype=torch.float64)  # start off target
    state, _ = run(sampler, GaussianScore([0.0], [[var]]), x0, burn_in(sampler))
    x, v = state.x[:, 0], state.v[:, 0]
    var_v = 1 - step_size**2 / (4 * var)
    assert abs(x.mean().item()) < Z * math.sqrt(var / CHAINS)
    assert abs(x.var().item() - var) < Z * var * math.sqrt(2 / (CHAINS - 1))
    assert abs(v.mean().item()) < Z * math.sqrt(var_v / CHAINS)
    assert abs(v.var().item() - var_v) < Z * var_v * math.sqrt(2 / (CHAINS - 1))


def test_2d_rotated_gaussian_mean_and_covariance():
    """A correlated N(mu, S): variances 1 and 1/4 along axes turned by 30 degrees (stable for h < 1)."""
    c, s = math.cos(math.pi / 6), math.sin(math.pi / 6)
    R = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    mu = torch.tensor([1.0, -0.5], dtype=torch.float64)
    S = R @ torch.diag(torch.tensor([1.0, 0.25], dtype=torch.float64)) @ R.T
    sampler = KineticLangevin(step_size=0.5, friction=1.0)
    x0 = torch.full((CHAINS, 2), -2.0, dtype=torch.float64)
    state, _ = run(sampler, GaussianScore(mu, S), x0, burn_in(sampler))
    mean_err = state.x.mean(0) - mu
    cov_err = torch.cov(state.x.T) - S
    assert (mean_err.abs() < Z * (torch.diagonal(S) / CHAINS).sqrt()).all(), mean_err
    cov_se = ((torch.outer(torch.diagonal(S), torch.diagonal(S)) + S**2) / CHAINS).sqrt()
    assert (cov_err.abs() < Z * cov_se).all(), cov_err


def test_one_score_per_step():
    steps = 7
    source = GaussianScore(torch.zeros(3), torch.eye(3))
    _, oracle = run(KineticLangevin(), source, torch.zeros(5, 3, dtype=torch.float64), steps)
    assert (oracle.counts.nfe, oracle.counts.vjp, oracle.counts.jvp) == (steps + 1, 0, 0)
    assert oracle.cost == steps + 1


@pytest.mark.parametrize("field", ["step_size", "friction"])
@pytest.mark.parametrize("value", [0.0, -1.0, math.nan])
def test_hyperparameters_must_be_positive(field, value):
    with pytest.raises(ValueError, match=f"{field} must be > 0"):
        KineticLangevin(**{field: value})


def test_registers_through_the_hook():
    info = PluginHost().add(scorelab_kinetic_langevin, name="kinetic_langevin")
    assert info.errors == []
    assert info.registered == {"sampler": ["kinetic_langevin"]}

"""The plugin's own tests: the conformance kit, a known answer, the cost of a step, registration.

Statistical tolerance. Every chain starts from the same point and draws its own noise, so after n
steps the chains are independent draws from one law, Gaussian on a Gaussian target (each BAOAB step
is linear in x, v and the noise). Over N chains a sample variance of a coordinate of variance v has
standard error v sqrt(2 / (N - 1)); we allow 5 of them (a false alarm with probability 6e-7).

Burn-in. One step maps (x - mu, v) by a matrix of determinant exp(-gamma h); underdamped, both of
its eigenvalues have modulus exp(-gamma h / 2), so gamma h n / 2 >= 15 steps leave a bias of order
exp(-15) = 3e-7, far below the tolerance.
"""

import math

import pytest
import torch

import scorelab_kinetic_langevin
from scorelab.oracle import ScoreOracle
from scorelab.plugins import PluginHost
from scorelab.testing import check_sampler
from scorelab_kinetic_langevin import KineticLangevin


class GaussianScore:
    """A score source for the oracle: the exact score of N(0, var) in every coordinate."""

    provides = frozenset({"exact_score"})

    def __init__(self, var: float):
        self.var = var

    def score(self, x, sigma=None):
        return -x / self.var


def run(sampler, source, x0, steps, seed=0):
    oracle = ScoreOracle(source)
    generator = torch.Generator().manual_seed(seed)
    state = sampler.init(x0, oracle, budget=math.inf)
    for _ in range(steps):
        state, _ = sampler.step(state, oracle, generator)
    return state, oracle


@pytest.mark.parametrize("step_size", [0.1, 1.0])
def test_conforms_to_the_sampler_contract(step_size):
    # At h = 1 plain Langevin's variance would be 1 / (1 - h / 2) = 2 times too large on N(0, 1);
    # the declared stationary_variance holds BAOAB to the exact one.
    check_sampler(KineticLangevin, params={"step_size": step_size}).assert_ok()


def test_velocities_have_the_known_variance():
    """N(0, 2) at h = 2: x has variance 2 (exact), v has 1 - h^2 / (4 var) = 1/2 instead of 1."""
    var, h, chains = 2.0, 2.0, 20_000
    sampler = KineticLangevin(step_size=h, friction=1.0)
    x0 = torch.full((chains, 1), 3.0, dtype=torch.float64)  # start off target
    state, _ = run(sampler, GaussianScore(var), x0, steps=math.ceil(30 / h))
    tol = 5 * math.sqrt(2 / (chains - 1))  # relative
    assert abs(state.x.var().item() / var - 1) < tol
    assert abs(state.v.var().item() / (1 - h * h / (4 * var)) - 1) < tol


def test_one_score_per_step():
    _, oracle = run(KineticLangevin(), GaussianScore(1.0), torch.zeros(5, 3), steps=7)
    assert (oracle.counts.nfe, oracle.counts.vjp, oracle.counts.jvp) == (8, 0, 0)  # init + 7 steps


@pytest.mark.parametrize("field", ["step_size", "friction"])
def test_hyperparameters_must_be_positive(field):
    with pytest.raises(ValueError, match=f"{field} must be > 0"):
        KineticLangevin(**{field: 0.0})


def test_registers_through_its_hook():
    info = PluginHost().add(scorelab_kinetic_langevin, name="kinetic_langevin")
    assert info.errors == []
    assert info.registered == {"sampler": ["kinetic_langevin"]}

"""ScoreOracle: counts equal the calls actually made, products are right, Hutchinson is unbiased."""

from __future__ import annotations

import pytest
import torch

from scorelab.chain import run_chain
from scorelab.errors import ScorelabError
from scorelab.oracle import CostWeights, ScoreOracle
from scorelab.sources import ExactScore


class CountingSource:
    """Wraps a source and counts the calls that really reach it."""

    def __init__(self, inner):
        self.inner, self.provides, self.calls = inner, inner.provides, {"score": 0, "hess_diag": 0, "log_prob": 0}

    def score(self, x, sigma=None):
        self.calls["score"] += 1
        return self.inner.score(x, sigma)

    def hess_diag(self, x, sigma=None):
        self.calls["hess_diag"] += 1
        return self.inner.hess_diag(x, sigma)

    def log_prob_and_score(self, x):
        self.calls["log_prob"] += 1
        return self.inner.log_prob_and_score(x)


@pytest.fixture
def gaussian(host):
    return host.get("target", "gaussian")(dim=4, condition_number=10.0, rotate=True)


def test_vjp_and_jvp_give_the_score_jacobian(gaussian):
    oracle = ScoreOracle(ExactScore(gaussian))
    x = torch.randn(5, 4, dtype=torch.float64)
    precision = torch.linalg.inv(gaussian.covariance)  # score = -P (x - mu), so J = -P
    v = torch.randn(5, 4, dtype=torch.float64)
    s, jv = oracle.jvp(x, v)
    _, vj = oracle.vjp(x, v)
    torch.testing.assert_close(jv, -v @ precision.T)
    torch.testing.assert_close(vj, -v @ precision)
    torch.testing.assert_close(s, oracle.score(x))
    assert (oracle.counts.nfe, oracle.counts.vjp, oracle.counts.jvp) == (1, 1, 1)


def test_cost_formula():
    class Src:
        provides = frozenset({"exact_score", "exact_hess_diag"})

        def score(self, x, sigma=None):
            return -x

        def hess_diag(self, x, sigma=None):
            return -torch.ones_like(x)

    oracle = ScoreOracle(Src(), CostWeights(vjp=3.0, jvp=5.0, curvature=2.0))
    x = torch.ones(3, 2)
    oracle.score(x)
    oracle.vjp(x, x)
    oracle.jvp(x, x)
    oracle.jvp(x, x)
    oracle.exact_hess_diag(x)
    assert oracle.cost == 1 + 3 + 2 * 5 + 2


def test_hutchinson_is_unbiased_and_costs_its_probes(gaussian):
    oracle = ScoreOracle(ExactScore(gaussian))
    x = torch.zeros(1, 4, dtype=torch.float64).expand(20_000, 4).contiguous()
    g = torch.Generator().manual_seed(0)
    _, est = oracle.hess_diag(x, probes=2, generator=g)
    exact = -torch.diagonal(torch.linalg.inv(gaussian.covariance))
    # Per probe, z_i (Jz)_i = J_ii + sum_{j != i} J_ij z_i z_j: variance sum_{j != i} J_ij^2. Averaged
    # over 2 probes and 20000 points the mean's standard error is sqrt(that / 40000).
    se = ((-torch.linalg.inv(gaussian.covariance)) ** 2).fill_diagonal_(0).sum(1).div(40_000).sqrt()
    assert ((est.mean(0) - exact).abs() < 5 * se).all()
    assert oracle.counts.vjp == 2 and oracle.counts.nfe == 0


def test_counted_calls_equal_actual_calls_for_every_builtin_sampler(host, gaussian):
    for name in host.names("sampler"):
        source = CountingSource(ExactScore(gaussian))
        oracle = ScoreOracle(source)
        sampler = host.get("sampler", name)()
        run_chain(sampler, oracle, torch.zeros(8, 4, dtype=torch.float64), 40, torch.Generator().manual_seed(0))
        c = oracle.counts
        # every VJP/JVP evaluates the score once on the way
        assert source.calls["score"] == c.nfe - source.calls["log_prob"] + c.vjp + c.jvp, name
        assert source.calls["hess_diag"] == c.curvature, name


def test_noise_level_refused_by_a_source_without_one():
    class Plain:
        provides = frozenset({"exact_score"})

        def score(self, x, sigma=None):
            return -x

    with pytest.raises(ScorelabError, match="not noise-conditional"):
        ScoreOracle(Plain()).score(torch.zeros(2, 2), 0.5)
    with pytest.raises(ScorelabError, match="does not provide 'log_prob'"):
        ScoreOracle(Plain()).log_prob_and_score(torch.zeros(2, 2))

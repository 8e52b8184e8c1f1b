"""ScoreOracle: counts equal the calls actually made, products are right, Hutchinson is unbiased, and
nothing is free: outputs carry no derivatives, the source is out of reach, counts are read-only, and
log_prob_and_score is one evaluation."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from scorelab.chain import run_chain
from scorelab.errors import ScorelabError
from scorelab.oracle import CostWeights, Counts, ScoreOracle
from scorelab.sources import ExactScore
from tests.helpers import CountingSource


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
        source = CountingSource(gaussian)
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


# -- nothing is free: derivatives, the source and the counts are out of a sampler's reach ----------

def _cubic_oracle():
    """An oracle on s(x) = -x^3 (nonlinear, so a second-order product would not be constant)."""

    class Cubic:
        provides = frozenset({"exact_score", "log_prob"})

        def score(self, x, sigma=None):
            return -x**3

        def log_prob_and_score(self, x):
            return -0.25 * (x**4).sum(-1), -x**3

    return ScoreOracle(Cubic())


def _no_derivative(run) -> bool:
    """True when ``run()`` raises (autograd refuses) or returns only zeros or None."""
    try:
        out = run()
    except RuntimeError:
        return True
    return out is None or not bool(out.abs().sum())


def test_oracle_outputs_carry_no_derivatives():
    """Each way of differentiating an oracle output raises or gives nothing: a score is not a VJP or JVP."""
    import torch.autograd.forward_ad as fwAD

    oracle = _cubic_oracle()
    x, v = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    leaf = x.clone().requires_grad_(True)

    s = oracle.score(leaf)
    assert not s.requires_grad and s.grad_fn is None
    assert _no_derivative(lambda: torch.autograd.grad((oracle.score(leaf) * v).sum(), leaf)[0])
    assert _no_derivative(lambda: torch.func.vjp(oracle.score, x)[1](v)[0])
    assert _no_derivative(lambda: torch.func.jvp(oracle.score, (x,), (v,))[1])
    with fwAD.dual_level():
        assert fwAD.unpack_dual(oracle.score(fwAD.make_dual(x, v))).tangent is None
    log_p, s = oracle.log_prob_and_score(leaf)
    assert log_p.grad_fn is None and s.grad_fn is None
    assert _no_derivative(lambda: torch.autograd.grad(oracle.log_prob_and_score(leaf)[0].sum(), leaf)[0])
    assert _no_derivative(lambda: torch.func.grad(lambda y: oracle.log_prob_and_score(y)[0].sum())(x))
    assert oracle.counts.nfe == 8  # each attempt paid for its evaluation and got nothing more


def test_products_are_right_and_carry_nothing_further():
    """The oracle's own VJP and JVP still differentiate the source (torch.func ignores the outer no_grad),
    but their outputs give no second-order product for free."""
    oracle = _cubic_oracle()
    x, v = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    leaf = x.clone().requires_grad_(True)
    jacobian_v = -3 * x**2 * v  # J = diag(-3 x^2)
    s, vj = oracle.vjp(leaf, v)
    _, jv = oracle.jvp(leaf, v)
    torch.testing.assert_close(vj, jacobian_v)
    torch.testing.assert_close(jv, jacobian_v)
    torch.testing.assert_close(s, -x**3)
    assert all(t.grad_fn is None and not t.requires_grad for t in (s, vj, jv))
    assert _no_derivative(lambda: torch.autograd.grad((oracle.vjp(leaf, v)[1]).sum(), leaf)[0])
    assert _no_derivative(lambda: torch.func.vjp(lambda y: oracle.vjp(y, v)[1], x)[1](v)[0])
    assert _no_derivative(lambda: torch.func.jvp(lambda y: oracle.jvp(y, v)[1], (x,), (v,))[1])
    _, diag = oracle.hess_diag(leaf, probes=1, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(diag, -3 * x**2)  # one Rademacher probe is exact on a diagonal Jacobian
    assert diag.grad_fn is None


def test_a_models_own_torch_func_still_works_behind_the_oracle():
    """An energy network's score comes from torch.func.grad inside the source: the oracle's no_grad must
    not break it."""
    from scorelab.sources import ModelScore

    class Energy(torch.nn.Module):
        noise_conditional, energy = False, True

        def forward(self, x):
            return -(x**3)

        def log_prob(self, x):
            return -0.25 * (x**4).sum(-1)

    oracle = ScoreOracle(ModelScore(Energy()))
    x = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    log_p, s = oracle.log_prob_and_score(x)
    torch.testing.assert_close(s, -x.detach() ** 3)
    torch.testing.assert_close(log_p, -0.25 * (x.detach() ** 4).sum(-1))
    assert s.grad_fn is None and log_p.grad_fn is None


def test_the_source_is_out_of_reach(gaussian):
    source = ExactScore(gaussian)
    oracle = ScoreOracle(source)
    with pytest.raises(AttributeError, match="through the oracle's public methods"):
        oracle._source  # noqa: B018
    with pytest.raises(AttributeError):
        oracle.reset()  # counts only go up
    reachable = [name for name in dir(oracle) if not name.startswith("_ScoreOracle__")]
    for name in reachable:
        value = getattr(oracle, name, None)
        assert value is not source and value is not gaussian, name
    assert oracle.provides == source.provides and oracle.weights == CostWeights() and oracle.cost == 0


def test_counts_are_a_read_only_snapshot(gaussian):
    import dataclasses

    oracle = ScoreOracle(ExactScore(gaussian))
    x = torch.zeros(2, 4, dtype=torch.float64)
    oracle.score(x)
    snapshot = oracle.counts
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.nfe = 0
    for name, value in (("counts", Counts()), ("weights", CostWeights(0.0, 0.0, 0.0)), ("provides", frozenset())):
        with pytest.raises(AttributeError):
            setattr(oracle, name, value)
    oracle.score(x)
    assert snapshot.nfe == 1 and oracle.counts == Counts(nfe=2) and oracle.cost == 2
    assert dataclasses.asdict(oracle.counts) == {"nfe": 2, "vjp": 0, "jvp": 0, "curvature": 0}


class _CountingTarget:
    """A target's log density and score, counting every evaluation; ``both`` adds a joint method."""

    def __init__(self, inner, both: bool):
        self.inner, self.provides, self.calls = inner, inner.provides, Counter()
        if both:
            self.log_prob_and_score = self._both

    def log_prob(self, x, sigma=0.0):
        self.calls["log_prob"] += 1
        return self.inner.log_prob(x, sigma)

    def score(self, x, sigma=0.0):
        self.calls["score"] += 1
        return self.inner.score(x, sigma)

    def _both(self, x):
        self.calls["log_prob_and_score"] += 1
        return self.inner.log_prob_and_score(x)


@pytest.mark.parametrize("both", [True, False], ids=["joint method", "one autograd pass"])
def test_log_prob_and_score_is_one_evaluation(host, both):
    """One NFE charged, one evaluation made: the target's joint method, or log p and its gradient together."""
    gmm = host.get("target", "gmm")(weights=[0.7, 0.3], means=[[-2.0, 0.0], [2.0, 1.0]], stds=[1.0, 0.5])
    target = _CountingTarget(gmm, both)
    oracle = ScoreOracle(ExactScore(target))
    x = 2 * torch.randn(6, 2, dtype=torch.float64)
    log_p, s = oracle.log_prob_and_score(x)
    assert sum(target.calls.values()) == 1 and target.calls["score"] == 0, dict(target.calls)
    assert oracle.counts == Counts(nfe=1)
    torch.testing.assert_close(log_p, gmm.log_prob(x))
    torch.testing.assert_close(s, gmm.score(x))


def test_the_kits_gaussian_gives_log_prob_and_score_in_one_pass():
    from scorelab.testing._known import DiagonalGaussian

    g = DiagonalGaussian(torch.tensor([0.5, -1.0]), torch.tensor([0.5, 2.0]))
    x = torch.randn(5, 2)
    separate = g.log_prob(x), g.score(x)
    calls = Counter()

    def counted(name, method):
        return lambda *args: calls.update([name]) or method(*args)

    for name in ("log_prob", "score"):  # instance attributes shadow the methods: count separate evaluations
        setattr(g, name, counted(name, getattr(g, name)))
    log_p, s = g.log_prob_and_score(x)
    assert not calls, dict(calls)
    torch.testing.assert_close(log_p, separate[0])
    torch.testing.assert_close(s, separate[1])

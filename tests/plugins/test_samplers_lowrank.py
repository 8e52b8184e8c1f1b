"""lowrank_langevin: the adjusted chain has the exact law, the unadjusted one ULA's known bias; the
JVPs it is charged are the JVPs it makes; Nystrom at full rank is the dense curvature, and at low
rank it finds the stiff directions; non-concave directions are capped, not inverted.

Statistics. Chains are independent, so in the target's whitened frame (w = diag(v)^-1/2 Q^T (x - mu),
Sigma = Q diag(v) Q^T) the sample mean of a coordinate with variance r has standard error
sqrt(r / n), a diagonal entry of the sample covariance sqrt(2 / (n - 1)) r and an off-diagonal one
sqrt(r_i r_j / (n - 1)). We allow Z = 5 standard errors per entry: with 6 + 21 entries a false alarm
has probability < 2e-5 per test.
"""

from __future__ import annotations

import math

import pytest
import torch

import scorelab_builtins
from scorelab.chain import run_chain
from scorelab.oracle import ScoreOracle
from scorelab.plugins import PluginHost
from scorelab.sources import ExactScore
from scorelab.testing import check_sampler
from scorelab.testing._watch import HostSyncWatch
from scorelab_builtins.kernels import dense_metric, nystrom_metric
from scorelab_builtins.samplers import LowRankLangevin
from scorelab_builtins.targets import Gaussian
from tests.helpers import CountingSource

N, D, Z = 4000, 6, 5.0
DAMPING = 1e-3


def _target() -> Gaussian:
    return Gaussian(dim=D, condition_number=100, rotate=True, mean_value=0.5)


def _run(sampler, target, x0, budget: float, seed: int = 0):
    oracle = ScoreOracle(ExactScore(target))
    result = run_chain(sampler, oracle, x0, budget, torch.Generator().manual_seed(seed))
    assert result.diverged_at is None
    return result, oracle


def _whitened(x: torch.Tensor, target) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean, covariance) of the chains in the target's whitened eigenframe, and the variances v."""
    v, Q = torch.linalg.eigh(target.covariance)
    w = (x - target.mean) @ Q / v.sqrt()
    return w.mean(0), torch.cov(w.T), v


def _assert_moments(x: torch.Tensor, target, ratio: torch.Tensor) -> None:
    """Whitened mean 0 and covariance diag(ratio), within Z standard errors entry by entry."""
    mean, cov, _ = _whitened(x, target)
    n = len(x)
    assert ((mean.abs() / (ratio / n).sqrt()) < Z).all(), mean
    se = (ratio[:, None] * ratio[None, :] / (n - 1)).sqrt()
    se.diagonal().mul_(math.sqrt(2))
    assert ((cov - torch.diag(ratio)).abs() < Z * se).all(), cov


def _dense(metric) -> torch.Tensor:
    """M as a (n, d, d) matrix."""
    U = metric.basis
    M = U @ torch.diag_embed(metric.scale) @ U.transpose(-1, -2)
    if metric.rest is not None:
        eye = torch.eye(U.shape[-2], dtype=U.dtype)
        M = M + metric.rest[..., None, None] * (eye - U @ U.transpose(-1, -2))
    return M


class Quadratic:
    """The score -P (x - 0) of a quadratic log p with any symmetric P: an indefinite P is a saddle."""

    provides = frozenset({"exact_score"})

    def __init__(self, precision: torch.Tensor):
        self.precision = precision

    def score(self, x, sigma=None):
        return -x @ self.precision


def _rotation(d: int, seed: int) -> torch.Tensor:
    A = torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return torch.linalg.qr(A).Q


# -- the stationary law ----------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("rank, shared", [(None, False), (3, False), (None, True)])
def test_adjusted_has_the_exact_law_where_unadjusted_is_biased(rank, shared):
    # Metropolis-adjusted with M fixed between refreshes: on a Gaussian J is constant, so M does not
    # depend on the chain (Nystrom's only on its own test matrix) and the target is exactly invariant.
    # From x = 0 (0.5 / 0.1 = 5 sd off along the stiffest axis) at h = 0.8: the dense M contracts each
    # whitened axis by ~(1 - h) a step when accepted (acceptance ~0.6 here), forgetting the start within
    # ~60 steps; rank 3 leaves the three softest axes to m_rest = 1 / lam_3 (effective step >= h / 16 on
    # the softest, accepted ~40 % of the time): after 800 steps its start is forgotten to ~e^-15.
    target = _target()
    x0 = torch.zeros(N, D, dtype=torch.float64)
    steps = 200 if rank is None else 800
    refreshes = 1 + steps // 50
    budget = 1 + steps + 4.0 * (D if rank is None else rank) * refreshes  # JVPs weigh 4
    adjusted, _ = _run(LowRankLangevin(step_size=0.8, rank=rank, adjust=True, shared=shared), target, x0, budget)
    assert adjusted.steps == steps
    _assert_moments(adjusted.state.x, target, torch.ones(D, dtype=torch.float64))
    if rank is not None or shared:
        return  # (unadjusted Nystrom's bias has no closed form per axis; the dense case shows the contrast)
    # The same proposal taken without the correction: its variances sit far outside those bands.
    unadjusted, _ = _run(LowRankLangevin(step_size=0.8, rank=rank), target, x0, budget)
    _, cov, _ = _whitened(unadjusted.state.x, target)
    assert (cov.diagonal() - 1).abs().max() > 4 * Z * math.sqrt(2 / (N - 1))  # 0.45; 1/(1 - h/2) - 1 = 0.67


@pytest.mark.parametrize("h", [0.4, 0.8])
def test_unadjusted_is_biased_by_the_predicted_factor(h):
    # ULA with the exact dense M = (P + damping I)^-1 decouples in Sigma's eigenbasis: an axis of variance
    # v has effective step g = h m / v, m = 1 / (1 / v + damping), and stationary variance v / (1 - g / 2):
    # Sigma / (1 - h / 2) up to damping (factor 1.25 at h = 0.4, 1.67 at h = 0.8). Contraction |1 - g|
    # <= 0.6 per step: after 150 steps the start is forgotten to 1e-33.
    target = _target()
    x0 = torch.zeros(N, D, dtype=torch.float64)
    sampler = LowRankLangevin(step_size=h, damping=DAMPING)
    result, _ = _run(sampler, target, x0, budget=150 - 3 + 4.0 * D * 4, seed=1)  # 150 steps, refreshes 4
    assert result.steps == 150
    v = torch.linalg.eigvalsh(target.covariance)
    g = h / (1 + DAMPING * v)
    predicted = 1 / (1 - g / 2)
    assert (predicted - 1 / (1 - h / 2)).abs().max() < 2e-3  # damping barely moves it
    assert torch.allclose(torch.tensor([sampler.stationary_variance(float(x)) for x in v]) / v, predicted)
    _assert_moments(result.state.x, target, predicted)
    _, cov, _ = _whitened(result.state.x, target)
    assert ((cov.diagonal() - 1).abs() > Z * math.sqrt(2 / (N - 1)) * predicted).all()  # 1 is rejected


# -- cost ------------------------------------------------------------------------------------------

K, R = 10, 3  # steps, refresh_every: refreshes at the start and after steps 3, 6, 9
REFRESHES = 1 + K // R
COUNTS = {  # (params, (nfe, jvp) after K steps), as the module docstring states them
    "dense": ({}, (K - K // R, D * REFRESHES)),
    "rank>=d is dense": ({"rank": D + 3}, (K - K // R, D * REFRESHES)),
    "nystrom": ({"rank": 2}, (K - K // R, 2 * REFRESHES)),
    "learned": ({"curvature": "learned"}, (1 + K, 0)),
    "adjusted dense": ({"adjust": True}, (1 + K, D * REFRESHES)),
    "adjusted nystrom": ({"adjust": True, "rank": 2}, (1 + K, 2 * REFRESHES)),
    "adjusted learned": ({"adjust": True, "curvature": "learned"}, (2 + K + K // R, 0)),
    "shared dense": ({"shared": True}, (K - K // R, D * REFRESHES)),  # every chain still pays its JVPs
    "shared nystrom": ({"shared": True, "rank": 2}, (K - K // R, 2 * REFRESHES)),
}


@pytest.mark.parametrize("name", list(COUNTS))
def test_jvps_charged_are_jvps_made_and_follow_the_stated_cost(name):
    params, (nfe, jvp) = COUNTS[name]
    source = CountingSource(_target(), learned=True)
    oracle = ScoreOracle(source)
    sampler = LowRankLangevin(refresh_every=R, **params)
    x0 = torch.randn(16, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    state, g = sampler.init(x0, oracle, math.inf), torch.Generator().manual_seed(1)
    for _ in range(K):
        state, _ = sampler.step(state, oracle, g)
    c, calls = oracle.counts, source.calls
    assert (c.nfe, c.jvp, c.vjp, c.curvature) == (nfe, jvp, 0, 0)
    # A JVP evaluates the score once, inside the product; every other call is one NFE.
    assert calls["score"] + calls["score_and_diag"] + calls["log_prob"] == c.nfe + c.jvp
    assert calls["score"] >= c.jvp
    assert oracle.cost == c.nfe + 4.0 * c.jvp


# -- the curvature estimates -----------------------------------------------------------------------

def test_nystrom_at_full_rank_is_the_dense_curvature():
    target = _target()
    oracle = ScoreOracle(ExactScore(target))
    x = torch.randn(5, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    s_dense, dense = dense_metric(oracle, x, 0.0, DAMPING)
    s_nys, nys = nystrom_metric(oracle, x, D, 0.0, DAMPING, torch.Generator().manual_seed(1))
    exact = torch.linalg.inv(torch.linalg.inv(target.covariance) + DAMPING * torch.eye(D, dtype=torch.float64))
    assert torch.allclose(_dense(dense), exact.expand(5, D, D), rtol=1e-10, atol=1e-12)
    assert torch.allclose(_dense(nys), _dense(dense), rtol=1e-8, atol=1e-10)
    assert torch.equal(s_dense, s_nys) and torch.allclose(s_dense, target.score(x))
    assert (oracle.counts.jvp, oracle.counts.nfe) == (2 * D, 0)


@pytest.mark.parametrize("rank", [None, D])
def test_shared_curvature_is_the_chains_mean_one_metric_for_all(rank):
    # On a Gaussian J is the same at every chain, so the shared M is each chain's M, held once.
    oracle = ScoreOracle(ExactScore(_target()))
    x = torch.randn(5, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x[2] = math.nan  # a diverged chain is left out of the mean
    if rank is None:
        _, each = dense_metric(oracle, x, 0.0, DAMPING)
        _, shared = dense_metric(oracle, x, 0.0, DAMPING, shared=True)
    else:
        _, each = nystrom_metric(oracle, x, rank, 0.0, DAMPING, torch.Generator().manual_seed(1))
        _, shared = nystrom_metric(oracle, x, rank, 0.0, DAMPING, torch.Generator().manual_seed(1), shared=True)
    assert shared.basis.shape == (D, D) and shared.scale.shape == (D,)
    assert torch.allclose(_dense(shared), _dense(each)[0], rtol=1e-8, atol=1e-10)
    v = torch.randn(5, D, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert torch.allclose(shared.mul(v), v @ _dense(shared), rtol=1e-10, atol=1e-12)


def test_rank_at_least_d_takes_the_dense_path():
    target = _target()
    x0 = torch.randn(8, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    states = []
    for rank in (None, D, D + 3):
        oracle = ScoreOracle(ExactScore(target))
        state, _ = LowRankLangevin(rank=rank).step(LowRankLangevin(rank=rank).init(x0, oracle, math.inf), oracle,
                                                   torch.Generator().manual_seed(2))
        states.append(state)
        assert oracle.counts.jvp == D
    assert all(torch.equal(s.x, states[0].x) for s in states)


SPIKES = torch.tensor([1e4, 5e3, 2e3], dtype=torch.float64)


def _spiked(d: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """A rotated precision with len(SPIKES) stiff directions over a bulk of ones, and its stiff basis."""
    Q = _rotation(d, 3)
    lam = torch.ones(d, dtype=torch.float64)
    lam[: len(SPIKES)] = SPIKES
    return Q @ torch.diag(lam) @ Q.T, Q[:, : len(SPIKES)]


@pytest.mark.parametrize("rank", [3, 8])
def test_nystrom_at_low_rank_finds_the_stiff_directions(rank):
    # 2000 chains, each with its own test matrix. The Nystrom approximation never exceeds -J (it is
    # H^1/2 P H^1/2 with P a projection), so no eigenvalue is overestimated. With exactly as many probes
    # as stiff directions the error has a heavy tail (it grows with |Omega_2 Omega_1^-1|^2, and a 3 x 3
    # Gaussian Omega_1 is now and then near singular): the median chain is within 0.3 %, 0.7 %, 1.6 %
    # (measured), the 99th percentile within 30-100 %. Five more probes (Halko et al.'s oversampling)
    # tighten every chain: 99th percentile 1.3 %, 2.3 %, 6 %, and m_rest then sits on the bulk.
    precision, stiff = _spiked()
    oracle = ScoreOracle(Quadratic(precision))
    x = torch.zeros(2000, precision.shape[0], dtype=torch.float64)
    _, metric = nystrom_metric(oracle, x, rank, 0.0, DAMPING, torch.Generator().manual_seed(1))
    lam = 1 / metric.scale - DAMPING  # the estimated eigenvalues, largest first
    assert oracle.counts.jvp == rank
    assert (lam[:, :3] <= SPIKES * (1 + 1e-9)).all()
    rel = (lam[:, :3] / SPIKES - 1).abs()
    U = metric.basis[:, :, :3]
    distance = (U @ U.transpose(-1, -2) - stiff @ stiff.T).flatten(1).norm(dim=1)  # between the subspaces
    if rank == 3:
        assert (rel.median(0).values < 0.05).all() and distance.median() < 0.05
    else:
        assert (torch.quantile(rel, 0.99, dim=0) < 0.15).all() and torch.quantile(distance, 0.99) < 0.05
        assert ((1 / metric.rest - DAMPING - 1).abs().median()) < 0.05  # uncaptured: the bulk's step


def test_non_concave_directions_are_capped_not_inverted():
    # log p convex along one axis (curvature -2 of -J): clipped at floor, so M there is 1 / (floor + damping).
    Q = _rotation(3, 5)
    precision = Q @ torch.diag(torch.tensor([4.0, 1.0, -2.0], dtype=torch.float64)) @ Q.T
    oracle = ScoreOracle(Quadratic(precision))
    x = torch.ones(4, 3, dtype=torch.float64)
    for floor in (0.0, 0.5):
        _, metric = dense_metric(oracle, x, floor, DAMPING)
        want = torch.tensor([1 / (floor + DAMPING), 1 / (1 + DAMPING), 1 / (4 + DAMPING)], dtype=torch.float64)
        assert torch.allclose(metric.scale.sort(descending=True).values, want.expand(4, 3))
    # Nystrom on an indefinite -J: M stays positive definite and bounded by the cap.
    precision, _ = _spiked()
    precision = precision - 3 * torch.eye(len(precision), dtype=torch.float64)  # the bulk at -2: convex
    oracle = ScoreOracle(Quadratic(precision))
    _, metric = nystrom_metric(oracle, torch.zeros(200, len(precision), dtype=torch.float64), 6, 0.0, DAMPING,
                               torch.Generator().manual_seed(0))
    M = _dense(metric)
    eig = torch.linalg.eigvalsh(M)
    assert torch.isfinite(M).all() and (eig > 0).all() and (eig <= (1 + 1e-9) / DAMPING).all()
    assert torch.allclose(metric.rest, torch.full_like(metric.rest, 1 / DAMPING))  # the bulk is at the cap


@pytest.mark.slow
@pytest.mark.parametrize("adjust", [True, False])
def test_chains_leave_a_saddle_with_the_default_floor(adjust):
    # Two modes at x_1 = +-3 (unit variances): across |x_1| < 0.6 log p is convex along x_1 (-J = -8 at
    # 0), so the curvature there is clipped and M takes its cap. With floor = 0 the cap is 1000: adjusted
    # proposals jump ~28 and are rejected, and as the refresh happens where the chain stands nothing ever
    # changes (measured: 97 % of the chains never move); unadjusted ones are thrown far out. The default
    # floor = 0.1 caps M at 9.9, and every chain leaves the strip for a mode.
    from scorelab_builtins.targets import GMM

    target = GMM(weights=[0.5, 0.5], means=[[-3.0, 0.0], [3.0, 0.0]], stds=[1.0, 1.0])
    g = torch.Generator().manual_seed(0)
    n = 500
    x0 = torch.stack([0.8 * torch.rand(n, generator=g, dtype=torch.float64) - 0.4,
                      torch.randn(n, generator=g, dtype=torch.float64)], 1)  # all in the convex strip
    result, _ = _run(LowRankLangevin(adjust=adjust, refresh_every=5), target, x0, budget=500, seed=1)
    x = result.state.x
    assert (x != x0).any(1).all() and x.abs().max() < 10
    # At equilibrium P(|x_1| < 1) = 0.023 (binomial se 0.007 at n = 500); 190 steps leave 0.05 behind.
    assert (x[:, 0].abs() < 1).double().mean() < 0.1
    assert abs(float((x[:, 0] > 0).double().mean()) - 0.5) < 5 * math.sqrt(0.25 / n)  # both modes, by symmetry
    if adjust:
        stuck, _ = _run(LowRankLangevin(adjust=True, refresh_every=5, floor=0.0), target, x0, budget=500, seed=1)
        assert (stuck.state.x == x0).all(1).double().mean() > 0.5


# -- the contract ----------------------------------------------------------------------------------

@pytest.mark.parametrize("params", [
    {}, {"adjust": True, "step_size": 0.2}, {"rank": 10}, {"curvature": "learned"},
], ids=["dense", "adjusted", "nystrom", "learned"])
def test_conforms_to_the_sampler_contract(params):
    check_sampler(LowRankLangevin, params=params).assert_ok()


@pytest.mark.parametrize("params", [{}, {"rank": 2}, {"adjust": True, "rank": 2}, {"curvature": "learned"}])
def test_no_step_reads_device_values_on_the_host(params):
    # The class declares host_syncs for torch.linalg on CUDA at refresh steps, so the kit skips this
    # check; on the CPU the watch still sees any .item(), bool(tensor) or mask indexing in step.
    source = CountingSource(_target(), learned=True)
    oracle, sampler = ScoreOracle(source), LowRankLangevin(refresh_every=2, **params)
    state, g = sampler.init(torch.zeros(4, D, dtype=torch.float64), oracle, math.inf), torch.Generator()
    watch = HostSyncWatch(torch.device("cpu"))
    with watch:
        for _ in range(4):  # refresh and plain steps
            state, _ = sampler.step(state, oracle, g)
    assert watch.events == []


def test_it_is_registered():
    host = PluginHost()
    host.add(scorelab_builtins, "builtins", "scorelab", "test")
    assert host.get("sampler", "lowrank_langevin") is LowRankLangevin


@pytest.mark.parametrize(("params", "field"), [
    ({"step_size": 0.0}, "step_size"),
    ({"step_size": math.inf}, "step_size"),
    ({"rank": 0}, "rank"),
    ({"curvature": "hutchinson"}, "curvature"),
    ({"curvature": "learned", "rank": 4}, "rank"),
    ({"refresh_every": 0}, "refresh_every"),
    ({"floor": -1.0}, "floor"),
    ({"damping": 0.0}, "damping"),
])
def test_bad_hyperparameters_are_errors_naming_the_field(params, field):
    with pytest.raises(ValueError, match=field):
        LowRankLangevin(**params)


def test_requires_follow_the_instance():
    assert LowRankLangevin().requires == ()
    assert LowRankLangevin(adjust=True).requires == ("log_prob",)
    assert LowRankLangevin(curvature="learned", adjust=True).requires == ("second_order_head", "log_prob")
    assert LowRankLangevin().h == 0.1 and LowRankLangevin(adjust=True).h == 0.4

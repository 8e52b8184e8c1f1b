"""What several test modules share, defined once: a counting score source, the exact law of a linear
sampler on a Gaussian with the moment check against it, a plain Langevin sampler to break, and a
short chain of every built-in sampler and option path; the graph a compiled step's rewrite gives.

Test modules import it as ``tests.helpers`` (pyproject.toml puts the repository root on pytest's
``pythonpath``); conftest.py holds the fixtures.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import torch

from scorelab import compiled
from scorelab.chain import ChainResult, run_chain
from scorelab.oracle import Counts, ScoreOracle
from scorelab.rng import run_generator
from scorelab.sources import ExactScore
from scorelab_builtins.samplers import (
    AdaptiveLangevin,
    AnnealedLangevin,
    CurvatureStepLangevin,
    EnsembleLangevin,
    EnsembleMala,
    HessianDiagLangevin,
    Langevin,
    LowRankLangevin,
    Mala,
    OzakiLangevin,
    ProbabilityFlowODE,
    RmspropLangevin,
)
from scorelab_builtins.targets import Gaussian

# -- counting what reaches a score source -------------------------------------------------------------


class CountingSource:
    """The exact score of a target, counting the calls that really reach it. With ``learned`` it also
    plays a model with a second-order head (score and diagonal from one call)."""

    def __init__(self, target, learned=False):
        self.inner = ExactScore(target)
        self.provides = self.inner.provides | ({"second_order_head"} if learned else set())
        self.calls = Counter()

    def score(self, x, sigma=None):
        self.calls["score"] += 1
        return self.inner.score(x, sigma)

    def hess_diag(self, x, sigma=None):
        self.calls["hess_diag"] += 1
        return self.inner.hess_diag(x, sigma)

    def score_and_diag(self, x, sigma=None):
        self.calls["score_and_diag"] += 1
        return self.inner.score(x, sigma), self.inner.hess_diag(x, sigma)

    def log_prob_and_score(self, x):
        self.calls["log_prob"] += 1
        return self.inner.log_prob_and_score(x)


# -- linear samplers on a Gaussian: their exact law, and samples checked against it --------------------


def lyapunov(A: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """S with S = A S A^T + Q (vec(S) = (I - A kron A)^-1 vec(Q)): the stationary covariance of
    x <- A x + (noise of covariance Q)."""
    d = A.shape[0]
    return torch.linalg.solve(torch.eye(d * d, dtype=A.dtype) - torch.kron(A, A), Q.reshape(-1)).reshape(d, d)


def stationary(A: torch.Tensor, Q: torch.Tensor, steps: int) -> torch.Tensor:
    """:func:`lyapunov`, after checking that ``steps`` steps of the map forget the start: with
    contraction rho, rho^(2 steps) < 1e-4 of the initial covariance is left, far below a standard error."""
    rho = torch.linalg.eigvals(A).abs().max().item()
    assert rho ** (2 * steps) < 1e-4, f"too few steps for the transient to die out (rho = {rho:.3f})"
    return lyapunov(A, Q)


def assert_moments(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, z: float = 5.0) -> None:
    """The n rows of ``x`` are independent draws from N(mean, cov), entry by entry: over n draws the
    sample mean of coordinate i has standard error sqrt(S_ii / n) and the sample covariance entry
    (i, j) sqrt((S_ii S_jj + S_ij^2) / n). ``z`` standard errors are allowed per entry (z = 5: a false
    alarm with probability 6e-7 per entry)."""
    n, mean, cov = len(x), mean.to(torch.float64), cov.to(torch.float64)
    x = x.to(torch.float64)
    se_mean = (cov.diagonal() / n).sqrt()
    se_cov = ((cov.diagonal()[:, None] * cov.diagonal()[None] + cov**2) / n).sqrt()
    assert ((x.mean(0) - mean).abs() < z * se_mean).all(), (x.mean(0), mean)
    assert ((torch.cov(x.T) - cov).abs() < z * se_cov).all(), (torch.cov(x.T), cov)


# -- a plain Langevin sampler, written out so a test can break one thing ------------------------------


@dataclass
class State:
    x: torch.Tensor
    score: torch.Tensor


@dataclass
class Info:
    step_size: float


@dataclass
class Ula:
    """Plain Langevin, written out here so each test can break one thing."""

    step_size: float = 0.01

    def init(self, x0, oracle, budget):
        return State(x0, oracle.score(x0))

    def noise(self, state, generator):
        return torch.randn(state.x.shape, generator=generator, device=state.x.device, dtype=state.x.dtype)

    def step(self, state, oracle, generator):
        h = self.step_size
        x = state.x + h * state.score + math.sqrt(2 * h) * self.noise(state, generator)
        return State(x, oracle.score(x)), Info(h)


@dataclass
class NoStep:
    step_size: float = 0.01

    def init(self, x0, oracle, budget):
        return State(x0, oracle.score(x0))


def variant(name: str, **methods) -> type:
    """A dataclass named ``name``: :class:`Ula` with ``methods`` replaced."""
    return dataclass(type(name, (Ula,), methods))


# -- a short chain of every built-in sampler ------------------------------------------------------------

#: A short chain of each sampler and of each code path its options select.
SAMPLERS = {
    "langevin": lambda: Langevin(0.05),
    "mala[warmup]": lambda: Mala(warmup=10),
    "mala[fixed]": lambda: Mala(step_size=0.2, warmup=0),
    "rmsprop": lambda: RmspropLangevin(0.01),
    "rmsprop[gamma:hutchinson]": lambda: RmspropLangevin(0.01, correction="hutchinson", probes=2),
    "rmsprop[gamma:exact]": lambda: RmspropLangevin(0.01, correction="exact"),
    "hessian_diag[hutchinson,vjp]": lambda: HessianDiagLangevin(0.1, probes=2, refresh_every=3, ema=0.5),
    "hessian_diag[hutchinson,jvp]": lambda: HessianDiagLangevin(0.1, probe="jvp", refresh_every=3),
    "hessian_diag[exact]": lambda: HessianDiagLangevin(0.1, curvature="exact", refresh_every=3),
    "hessian_diag[learned]": lambda: HessianDiagLangevin(0.1, curvature="learned", refresh_every=3),
    "ozaki[hutchinson]": lambda: OzakiLangevin(0.5, refresh_every=2),
    "ozaki[exact]": lambda: OzakiLangevin(0.5, curvature="exact", refresh_every=2),
    "adaptive": lambda: AdaptiveLangevin(),
    "curvature_step[secant]": lambda: CurvatureStepLangevin(),
    "curvature_step[power]": lambda: CurvatureStepLangevin(method="power", power_iterations=2, refresh_every=3),
    "lowrank[dense]": lambda: LowRankLangevin(refresh_every=5),
    "lowrank[nystrom]": lambda: LowRankLangevin(rank=2, refresh_every=5),
    "lowrank[dense,adjusted]": lambda: LowRankLangevin(adjust=True, refresh_every=5),
    "lowrank[learned,shared]": lambda: LowRankLangevin(curvature="learned", shared=True, refresh_every=5),
    "ensemble[dense]": lambda: EnsembleLangevin(0.1),
    "ensemble[diagonal,uncorrected]": lambda: EnsembleLangevin(0.1, covariance="diagonal", correction=False),
    "ensemble_mala": lambda: EnsembleMala(warmup=20, adapt_every=5),
    "ensemble_mala[diagonal,fixed]": lambda: EnsembleMala(warmup=0, covariance="diagonal"),
    "probability_flow_ode": lambda: ProbabilityFlowODE(sigma_max=5.0, rtol=1e-3, atol=1e-3),
    "annealed[ncsn]": lambda: AnnealedLangevin(levels=3, steps_per_level=5),
    "annealed[snr]": lambda: AnnealedLangevin(levels=3, steps_per_level=5, step_rule="snr"),
    "annealed[secant,rmsprop]": lambda: AnnealedLangevin(levels=3, steps_per_level=5, step_rule="secant",
                                                         preconditioner="rmsprop"),
    "annealed[secant,hessian_diag]": lambda: AnnealedLangevin(levels=3, steps_per_level=5, step_rule="secant",
                                                              preconditioner="hessian_diag", refresh_every=2),
    "annealed[adaptive]": lambda: AnnealedLangevin(levels=3, steps_per_level=5, step_rule="adaptive", denoise=False),
    "annealed[power,hessian_diag:exact]": lambda: AnnealedLangevin(
        levels=3, steps_per_level=5, step_rule="power", preconditioner="hessian_diag", curvature="exact",
        step_scale=0.3),
    "annealed[constant,hessian_diag:hutchinson]": lambda: AnnealedLangevin(
        levels=3, steps_per_level=4, step_rule="constant", epsilon=0.1, preconditioner="hessian_diag", probes=2,
        refresh_every=2, ema=0.5),
    "annealed[adaptive,hessian_diag:learned]": lambda: AnnealedLangevin(
        levels=2, steps_per_level=5, step_rule="adaptive", preconditioner="hessian_diag", curvature="learned",
        denoise=False),
}


class LearnedExact(ExactScore):
    """The exact score playing a model with a second-order head (score and diagonal in one call)."""

    def __init__(self, target):
        super().__init__(target)
        self.provides = self.provides | {"second_order_head"}

    def score_and_diag(self, x, sigma=None):
        return self.score(x, sigma), self.hess_diag(x, sigma)


def short_chain(name: str, compile: str = "none", budget: float = 60, rng: str = "generator"
                ) -> tuple[ChainResult, Counts]:
    """``SAMPLERS[name]`` run from fixed chains (32 in 4-D, float64) with fixed seeds on a rotated
    Gaussian whose exact score also plays a second-order head; the result and the oracle's counts.
    ``rng``: a comparison's key of that name (:mod:`scorelab.rng`)."""
    target = Gaussian(dim=4, condition_number=10.0, rotate=True, mean_value=0.5)
    oracle = ScoreOracle(LearnedExact(target))
    x0 = torch.randn(32, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sampler = SAMPLERS[name]()
    result = run_chain(sampler, oracle, x0, budget, run_generator(rng, sampler, "cpu", 1), compile=compile)
    return result, oracle.counts


# -- the compiled step's own kernels: what the rewrite makes of a graph, and how close its values are ---


def rewritten_graph(fn, x: torch.Tensor, dynamic: bool = False) -> torch.fx.GraphModule:
    """The graph Dynamo captures of ``fn(x)`` (with a symbolic batch size if ``dynamic``), after
    :func:`scorelab.compiled_math.rewrite`."""
    from scorelab import compiled_math

    graphs = []

    def keep(graph, example_inputs):
        graphs.append(compiled_math.rewrite(graph))
        return graph.forward

    torch.compile(fn, backend=keep, dynamic=dynamic)(x)
    (graph,) = graphs
    return graph



def several_a_call(monkeypatch, steps: int = 8) -> None:
    """Compiled runs on the CPU take ``steps`` steps a call wherever they may, as on a GPU (the suite
    runs them one a call otherwise: tests/conftest.py)."""
    monkeypatch.setitem(compiled.STEPS_PER_CALL, "cpu", steps)


# -- a small comparison ---------------------------------------------------------------------------------

# Both samplers reach quality within the budget (Langevin from N(0, 25 I) contracts by 0.8 a step), so the
# crossing of each is resolved: Langevin's at checkpoints (or by replay), annealed Langevin's by a ladder of
# budgets.
TWO_ROWS_THAT_REACH = {
    "name": "two-rows",
    "target": {"name": "gaussian", "dim": 2},
    "budget": 60,
    "chains": 150,
    "seeds": [0],
    "checkpoints": 4,
    "init": {"distribution": "gaussian", "scale": 5.0},
    "cost_weights": {"vjp": 3, "jvp": 4},
    "metrics": ["sliced_wasserstein"],
    "samplers": [{"name": "langevin", "step_size": 0.2},
                 {"name": "annealed_langevin", "levels": 3, "sigma_max": 2.0, "sigma_min": 0.1,
                  "step_rule": "constant", "epsilon": 0.2, "denoise": False}],
    "device": "cpu",
}


def interrupted_child(monkeypatch, at: int) -> None:
    """A comparison's children run as usual, but the ``at``-th (from 1) is interrupted as Ctrl-C would
    interrupt it, once its run is open."""
    from scorelab import child

    calls, sample = [], child._sample

    def interrupting(*args):
        calls.append(None)
        if len(calls) == at:
            raise KeyboardInterrupt
        return sample(*args)

    monkeypatch.setattr(child, "_sample", interrupting)

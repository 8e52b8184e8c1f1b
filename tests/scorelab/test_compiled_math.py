"""A compiled step's own float32 tanh on the CPU (``scorelab.compiled_math``): its coefficients are the
minimax fit, it is within its bound (``WORST_ULPS``) of the correctly rounded tanh and never past +-1,
tanh's values at the special inputs, and what compiled steps actually run.

``SCORELAB_EXHAUSTIVE=1`` checks every float32 instead of every 64th (62 s on the 2-core CPU)."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from scorelab import compiled, compiled_math
from scorelab.chain import run_chain
from scorelab.oracle import ScoreOracle
from scorelab.sources import ModelScore
from scorelab_builtins.models import MLP
from scorelab_builtins.samplers import Langevin
from tests.helpers import rewritten_graph

#: Every float32 from 0 to this is checked (or every 64th): past 9.0109, where float32 tanh reaches 1.
CHECKED_BELOW = 9.2
CHUNK = 1 << 22


def minimax_tanh(p_terms: int = 5, q_terms: int = 4, points: int = 4000, rounds: int = 10):
    """P and Q, coefficients of 1, t, t^2, ... in t = x^2 with P(0) = Q(0) = 1, that minimise the largest
    relative error of x P / Q against tanh x on [0, CLAMP] (sampled at ``points``), and that error.

    By differential correction: each round solves the linear program for the change (dP, dQ) that
    minimises d subject to |P + dP - f (Q + dQ)| <= d f Q on the points, f = tanh(x) / x; the
    variables are scaled by the current error so that the solver's tolerances do not hide it."""
    clamp = compiled_math.CLAMP
    x = np.linspace(0, clamp, points)[1:]
    f = np.tanh(x) / x
    powers = ((x / clamp) ** 2)[:, None] ** np.arange(1, max(p_terms, q_terms) + 1)  # t, scaled to [0, 1]
    sp, sq = powers[:, :p_terms], powers[:, :q_terms]
    p, q = np.zeros(p_terms), np.zeros(q_terms)
    best = (math.inf, p, q)
    for _ in range(rounds):
        big_p, big_q = 1 + sp @ p, 1 + sq @ q
        err = np.abs((big_p / big_q - f) / f).max()
        best = min(best, (err, p, q), key=lambda b: b[0])
        row = np.hstack([sp / f[:, None], -sq]) / err
        gap = (big_p / f - big_q) / err
        bounds = np.hstack([row, -big_q[:, None]]), np.hstack([-row, -big_q[:, None]])
        step = linprog(np.r_[np.zeros(p_terms + q_terms), 1.0], A_ub=np.vstack(bounds), b_ub=np.r_[-gap, gap],
                       bounds=[(None, None)] * (p_terms + q_terms) + [(0, None)], method="highs").x
        p, q = p + step[:p_terms], q + step[p_terms:-1]
    err, p, q = best
    return [1.0, *p * clamp ** (-2.0 * np.arange(1, p_terms + 1))], \
        [1.0, *q * clamp ** (-2.0 * np.arange(1, q_terms + 1))], err


def _compiled_tanh():
    return torch.compile(compiled_math.tanh, backend=compiled._backend("inductor"), dynamic=False)


def test_its_coefficients_are_the_minimax_fit():
    """As close to tanh as the fit gets (its coefficients themselves are ill-conditioned: a solver of
    another version may land on others of the same error)."""
    err = minimax_tanh()[2]
    assert err < 1.4e-9
    x = np.linspace(1e-6, compiled_math.CLAMP, 1_000_001)  # between the points fitted on, too
    stored = x * np.polyval(compiled_math._P[::-1], x * x) / np.polyval(compiled_math._Q[::-1], x * x)
    assert np.abs(stored / np.tanh(x) - 1).max() <= err * 1.001


def test_compiled_tanh_is_within_its_bound_never_past_one_and_odd():
    f, stride = _compiled_tanh(), 1 if os.environ.get("SCORELAB_EXHAUSTIVE") else 64
    top = torch.tensor(CHECKED_BELOW).view(torch.int32).item()
    worst = 0
    for lo in range(0, top, CHUNK * stride):
        x = torch.arange(lo, lo + CHUNK * stride, stride, dtype=torch.int32).clamp_(max=top).view(torch.float32)
        y = f(x)
        worst = max(worst, compiled_math.float32_ulps(y, torch.tanh(x.double()).float()).max().item())
        assert (y <= 1).all() and torch.equal(f(-x), -y)
    assert worst <= compiled_math.WORST_ULPS
    assert torch.equal(f(torch.tensor([9.0109, 20.0, 3e38, math.inf])), torch.ones(4))  # float32 tanh's 1


def test_compiled_tanh_at_the_special_inputs():
    x = torch.tensor([0.0, -0.0, math.inf, -math.inf, math.nan, 1e-45, -1e-38])
    y = _compiled_tanh()(x)
    assert y[:4].tolist() == [0.0, -0.0, 1.0, -1.0] and torch.signbit(y[1]) and not torch.signbit(y[0])
    assert math.isnan(y[4]) and y[5:].tolist() == x[5:].tolist()  # tanh x = x to float32 below 2^-12


def test_its_gradient_is_tanhs_at_finite_x():
    """(Compiled steps never differentiate it: a tanh that is differentiated is left to inductor.) On a
    dense grid its gradient is within (WORST_ULPS + 1) 2^-24 of 1 - tanh^2, also past 7.96, where the
    clamp makes it 0 and tanh' is below that; exactly 1 at 0."""
    x = torch.cat([torch.linspace(-12, 12, 200_001), torch.tensor([0.0, 1e-30, -1e-30, 1e30, -3e38])])
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(_compiled_tanh()(x).sum(), x)
    exact = 1 - torch.tanh(x.detach().double()) ** 2
    assert ((grad.double() - exact).abs() <= (compiled_math.WORST_ULPS + 1) * 2**-24).all()
    assert grad[200_001].item() == 1.0  # at x = 0


def test_the_scalar_path_too_is_within_the_bound():
    """Fewer elements than a vector: the kernel's scalar (or masked) code path."""
    f = _compiled_tanh()
    x = torch.linspace(0, CHECKED_BELOW, 7 * 3000).reshape(-1, 7)
    y = torch.stack([f(row) for row in x])
    assert compiled_math.float32_ulps(y, torch.tanh(x.double()).float()).max() <= compiled_math.WORST_ULPS
    assert (y <= 1).all()


def _tanh_nodes(graph: torch.fx.GraphModule) -> int:
    return sum((n.op, n.target) in compiled_math._TANH for n in graph.graph.nodes)


SPELLINGS = {"torch.tanh": torch.tanh, "Tensor.tanh": torch.Tensor.tanh, "method": lambda x: x.tanh(),
             "functional": torch.nn.functional.tanh, "nn.Tanh": torch.nn.Tanh(),
             "keyword": lambda x: torch.tanh(input=x)}


@pytest.mark.parametrize("spelling", SPELLINGS.values(), ids=SPELLINGS.keys())
def test_compiled_steps_compute_float32_tanh_on_the_cpu_by_it(spelling):
    x = torch.randn(1000)
    assert _tanh_nodes(rewritten_graph(lambda x: spelling(x) + 1, x)) == 0
    fused, spelled = (torch.compile(f, backend=compiled._backend("inductor"), dynamic=False)
                      for f in (lambda x: spelling(x) + 1, lambda x: compiled_math.tanh(x) + 1))
    assert torch.equal(fused(x), spelled(x))


def test_a_tanh_of_a_tanh_is_rewritten_too():
    x = torch.randn(1000)
    assert _tanh_nodes(rewritten_graph(lambda x: torch.tanh(torch.tanh(x)), x)) == 0


@pytest.mark.parametrize("x", [torch.randn(64, dtype=torch.float64), torch.arange(-3, 4), torch.tensor([True, False])],
                         ids=["float64", "int64", "bool"])
def test_tanh_of_other_dtypes_is_left_to_inductor(x):
    assert _tanh_nodes(rewritten_graph(lambda x: torch.tanh(x) + 1, x)) == 1
    fused = torch.compile(lambda x: torch.tanh(x) + 1, backend=compiled._backend("inductor"))
    torch.testing.assert_close(fused(x), torch.tanh(x) + 1)


def test_a_tanh_the_step_differentiates_is_left_to_inductor():
    """Its derivative, (1 - y^2), is cheaper than the rational function's: an oracle VJP (the value requires grad)
    or JVP (dual tensors) keeps torch's tanh, and gives its derivative."""
    x, v = torch.randn(100), torch.randn(100)
    through = {"vjp": lambda x: torch.func.vjp(torch.tanh, x)[1](v)[0],
               "jvp": lambda x: torch.func.jvp(torch.tanh, (x,), (v,))[1]}
    for f in through.values():
        assert _tanh_nodes(rewritten_graph(f, x)) == 1
        fused = torch.compile(f, backend=compiled._backend("inductor"), dynamic=False)
        torch.testing.assert_close(fused(x), v * (1 - torch.tanh(x) ** 2))


def test_a_graph_the_compiler_fails_on_runs_as_captured(monkeypatch, capsys):
    import torch._inductor.compile_fx as fx

    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(fx, "compile_fx", broken)
    monkeypatch.setattr(compiled, "_told", set())
    x = torch.randn(1000)
    fallen = torch.compile(lambda x: torch.tanh(x) * 3, backend=compiled._backend("inductor"), dynamic=False)(x)
    assert torch.equal(fallen, torch.tanh(x) * 3)  # torch's tanh, not the rewrite run op by op
    assert "could not be compiled" in capsys.readouterr().err


@pytest.mark.slow
def test_a_compiled_chain_on_a_tanh_network_keeps_to_the_eager_one():
    net = MLP(hidden=32, layers=2, activation="tanh").build((2,)).eval().requires_grad_(False)
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    runs = [run_chain(Langevin(step_size=0.01), ScoreOracle(ModelScore(net)), x0, 30,
                      torch.Generator().manual_seed(1), compile=mode) for mode in ("none", "inductor")]
    assert (runs[1].steps, runs[1].cost) == (runs[0].steps, runs[0].cost)
    torch.testing.assert_close(runs[1].state.x, runs[0].state.x, rtol=1e-5, atol=1e-5)

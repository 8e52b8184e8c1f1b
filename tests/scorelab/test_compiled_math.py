"""A compiled step's own float32 tanh on the CPU (``scorelab.compiled_math``): within 2 ULP of the
correctly rounded tanh, tanh's values at the special inputs, and what compiled steps actually run.

``SCORELAB_EXHAUSTIVE=1`` checks every float32 instead of every 64th (34 s in all on the 2-core CPU)."""

from __future__ import annotations

import math
import os
from fractions import Fraction

import pytest
import torch

from scorelab import compiled, compiled_math
from scorelab.chain import run_chain
from scorelab.oracle import ScoreOracle
from scorelab.sources import ModelScore
from scorelab_builtins.models import MLP
from scorelab_builtins.samplers import Langevin
from tests.helpers import float32_ulps, rewritten_graph

#: tanh of float32 rounds to 1 from here on; every float32 below it is checked (or every 64th).
ONE_FROM = 9.2
CHUNK = 1 << 22


def _compiled_tanh():
    return torch.compile(compiled_math.tanh, backend=compiled._backend("inductor"), dynamic=False)


def test_the_series_is_tanhs_taylor_series():
    assert compiled_math._taylor_coefficients(5) == [float(Fraction(*f)) for f in
                                                     ((1, 1), (-1, 3), (2, 15), (-17, 315), (62, 2835))]
    x = compiled_math.SERIES_BELOW
    a = compiled_math._taylor_coefficients(20)
    assert abs(sum(c * x ** (2 * k + 1) for k, c in enumerate(a)) - math.tanh(x)) < 1e-15
    assert abs(a[len(compiled_math._SERIES)]) * x ** (2 * len(compiled_math._SERIES) + 1) < 2**-26 * math.tanh(x)


def test_compiled_tanh_is_within_two_ulp_of_the_rounded_tanh_and_odd():
    f, stride = _compiled_tanh(), 1 if os.environ.get("SCORELAB_EXHAUSTIVE") else 64
    top = torch.tensor(ONE_FROM).view(torch.int32).item()
    worst = 0
    for lo in range(0, top, CHUNK * stride):
        x = torch.arange(lo, lo + CHUNK * stride, stride, dtype=torch.int32).clamp_(max=top).view(torch.float32)
        y = f(x)
        worst = max(worst, float32_ulps(y, torch.tanh(x.double()).float()).max().item())
        assert torch.equal(f(-x), -y)
    assert worst <= 2
    assert torch.equal(f(torch.tensor([ONE_FROM, 20.0, 3e38])), torch.ones(3))


def test_compiled_tanh_at_the_special_inputs():
    x = torch.tensor([0.0, -0.0, math.inf, -math.inf, math.nan, 1e-45, -1e-38])
    y = _compiled_tanh()(x)
    assert y[:4].tolist() == [0.0, -0.0, 1.0, -1.0] and torch.signbit(y[1]) and not torch.signbit(y[0])
    assert math.isnan(y[4]) and y[5:].tolist() == x[5:].tolist()  # tanh x = x to float32 below 2^-12


def test_its_gradient_is_tanhs_and_finite_everywhere():
    x = torch.tensor([0.0, 1e-30, 0.3, compiled_math.SERIES_BELOW, 0.7, 4.0, 1e4, 1e30, math.inf]).repeat(2)
    x[len(x) // 2:] *= -1
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(_compiled_tanh()(x).sum(), x)
    torch.testing.assert_close(grad, 1 - torch.tanh(x.detach()) ** 2, rtol=4e-7, atol=1e-7)


def test_the_scalar_path_too_is_within_two_ulp():
    """Fewer elements than a vector: the kernel's scalar (or masked) code path."""
    f = _compiled_tanh()
    x = torch.linspace(0, ONE_FROM, 7 * 3000).reshape(-1, 7)
    worst = max(float32_ulps(f(row), torch.tanh(row.double()).float()).max().item() for row in x)
    assert worst <= 2


def _tanh_nodes(graph: torch.fx.GraphModule) -> int:
    return sum((n.op, n.target) in compiled_math._TANH for n in graph.graph.nodes)


SPELLINGS = {"torch.tanh": torch.tanh, "Tensor.tanh": torch.Tensor.tanh, "method": lambda x: x.tanh(),
             "functional": torch.nn.functional.tanh, "nn.Tanh": torch.nn.Tanh(),
             "keyword": lambda x: torch.tanh(input=x)}


@pytest.mark.parametrize("spelling", SPELLINGS.values(), ids=SPELLINGS.keys())
def test_compiled_steps_compute_float32_tanh_on_the_cpu_by_it(spelling):
    x = torch.randn(1000)
    assert _tanh_nodes(rewritten_graph(lambda x: spelling(x) + 1, x)) == 0
    fused = torch.compile(lambda x: spelling(x) + 1, backend=compiled._backend("inductor"), dynamic=False)
    assert torch.equal(fused(x), torch.compile(lambda x: compiled_math.tanh(x) + 1, dynamic=False)(x))


@pytest.mark.parametrize("x", [torch.randn(64, dtype=torch.float64), torch.arange(-3, 4), torch.tensor([True, False])],
                         ids=["float64", "int64", "bool"])
def test_tanh_of_other_dtypes_is_left_to_inductor(x):
    assert _tanh_nodes(rewritten_graph(lambda x: torch.tanh(x) + 1, x)) == 1
    fused = torch.compile(lambda x: torch.tanh(x) + 1, backend=compiled._backend("inductor"))
    torch.testing.assert_close(fused(x), torch.tanh(x) + 1)


def test_a_tanh_the_step_differentiates_is_left_to_inductor():
    """Its derivative, (1 - y^2), is cheaper than the formula's: an oracle VJP (the value requires grad)
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

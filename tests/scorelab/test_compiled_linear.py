"""A compiled step's float32 CPU linear layers by oneDNN (``scorelab.compiled_linear``): which layers
the rewrite gives it, that their values are the layers', and that the tanh it fuses is within 1 ULP of
the correctly rounded one.

``SCORELAB_EXHAUSTIVE=1`` checks that tanh at every float32 instead of every 64th."""

from __future__ import annotations

import contextlib
import io
import os

import pytest
import torch
import torch.nn.functional as F

from scorelab import compiled, compiled_linear
from scorelab.oracle import ScoreOracle
from scorelab.sources import ModelScore
from scorelab_builtins.models import MLP
from tests.helpers import float32_ulps, rewritten_graph

pytestmark = pytest.mark.skipif(not compiled_linear.AVAILABLE, reason="oneDNN's linear is used on x86-64 only")

#: tanh of float32 rounds to 1 from here on.
ONE_FROM = 9.2
CHUNK = 1 << 22


def _layers(graph: torch.fx.GraphModule) -> list[str]:
    """Each linear layer of ``graph`` in order: the activation oneDNN applies, or "torch" for torch's own."""
    return [n.args[3] if n.target is torch.ops.scorelab.linear.default else "torch" for n in graph.graph.nodes
            if n.target in (torch.ops.scorelab.linear.default, torch._C._nn.linear)]


def test_the_fused_tanh_is_within_one_ulp_of_the_rounded_tanh():
    """Through an identity layer (x * 1 plus zeros is x exactly), at every float32 below ONE_FROM of
    either sign, or every 64th."""
    stride = 1 if os.environ.get("SCORELAB_EXHAUSTIVE") else 64
    top = torch.tensor(ONE_FROM).view(torch.int32).item()
    eye, zero = torch.eye(16), torch.zeros(16)
    worst = 0
    for lo in range(0, top, CHUNK * stride):
        x = torch.arange(lo, lo + CHUNK * stride, stride, dtype=torch.int32).clamp_(max=top).view(torch.float32)
        x = torch.cat([x, -x]).reshape(-1, 16)
        y = compiled_linear.linear(x, eye, zero, "tanh")
        worst = max(worst, float32_ulps(y, torch.tanh(x.double())).max().item())
    tail = x.flatten()[: 13 * 4096].reshape(-1, 13)  # a width oneDNN's vectors do not divide
    worst = max(worst, float32_ulps(compiled_linear.linear(tail, torch.eye(13), torch.zeros(13), "tanh"),
                                    torch.tanh(tail.double())).max().item())
    assert worst <= 1
    assert torch.equal(compiled_linear.linear(torch.full((1, 16), 20.0), eye, zero, "tanh"), torch.ones(1, 16))


@pytest.mark.parametrize(("dim", "activation", "layers"), [
    (2, "tanh", ["tanh", "tanh", "torch"]),  # the d = 2 head is narrower than MIN_WIDTH
    (16, "tanh", ["tanh", "tanh", "none"]),
    (16, "silu", ["none", "none", "none"]),  # oneDNN is given tanh only; inductor fuses the rest
])
def test_an_mlp_score_goes_to_onednn_layer_by_layer(dim, activation, layers):
    net = MLP(hidden=32, layers=2, activation=activation).build((dim,))  # parameters that require grad
    with torch.no_grad():  # as an oracle evaluates a score
        graph = rewritten_graph(net, torch.randn(100, dim))
    assert _layers(graph) == layers


def _compiled(f, dynamic=False):
    """``f`` compiled as a sampler step is; a compile that fell back to eager fails the test."""
    compiled._told.clear()
    fused = torch.compile(f, backend=compiled._backend("inductor"), dynamic=dynamic)

    def checked(*args):
        with contextlib.redirect_stderr(io.StringIO()) as err:
            out = fused(*args)
        assert "could not be compiled" not in err.getvalue(), err.getvalue()
        return out
    return checked


def _within_rounding(y: torch.Tensor, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> bool:
    """|y - tanh(x W^T + b)| within the worst-case rounding of the sum, (K + 1) eps |x| |W^T| + |b|
    (tanh' <= 1), and of tanh, against the float64 value."""
    b = torch.zeros(w.shape[0]) if b is None else b
    exact = torch.tanh(F.linear(x.double(), w.double(), b.double()))
    bound = (w.shape[1] + 1) * 2**-24 * (x.abs() @ w.abs().T + b.abs()).double() + 2**-23
    return bool(((y - exact).abs() <= bound).all())


def test_onednn_layers_give_the_layers_values():
    """An MLP, compiled, against eager torch to float32 rounding; a layer of a non-contiguous input,
    compiled for one batch size and for any (``dynamic``), within the rounding of its sum."""
    g = torch.Generator().manual_seed(0)
    net = MLP(hidden=64, layers=2, activation="tanh").build((16,)).requires_grad_(False)
    x = torch.randn(500, 16, generator=g)
    torch.testing.assert_close(_compiled(net)(x), net(x), rtol=1e-5, atol=1e-5)

    w, b = torch.randn(32, 500, generator=g) / 500**0.5, torch.randn(32, generator=g)

    def layer(x):
        return torch.tanh(F.linear(x.T, w, b))

    assert _layers(rewritten_graph(layer, x)) == ["tanh"]
    assert _within_rounding(_compiled(layer)(x), x.T, w, b)
    w16 = torch.randn(32, 16, generator=g) / 4
    varied = _compiled(lambda x: torch.tanh(F.linear(x, w16, b)), dynamic=None)
    for n in (500, 300, 200):  # the second batch size recompiles with a symbolic one, the third reuses it
        assert _within_rounding(varied(x[:n]), x[:n], w16, b)


BIASES = {"keyword": lambda b: {"bias": b}, "none": lambda b: {"bias": None},
          "a column": lambda b: {"bias": torch.stack([b, b], 1)[:, 0]}}


@pytest.mark.parametrize("bias", BIASES.values(), ids=BIASES.keys())
def test_a_layers_bias_however_given(bias):
    w, b, x = torch.randn(32, 8) / 8**0.5, torch.randn(32), torch.randn(100, 8)
    kw = bias(b)

    def layer(x):
        return torch.tanh(F.linear(x, w, **kw))

    assert _layers(rewritten_graph(layer, x)) == ["tanh"]
    assert _within_rounding(_compiled(layer)(x), x, w, kw["bias"])


def test_a_tanh_that_is_not_the_layers_only_use_is_not_fused():
    w, b, x = torch.randn(32, 8) / 8**0.5, torch.randn(32), torch.randn(100, 8)

    def two_uses(x):
        h = F.linear(x, w, b)
        return torch.tanh(h) + h

    assert _layers(rewritten_graph(two_uses, x)) == ["none"]
    torch.testing.assert_close(_compiled(two_uses)(x), two_uses(x), rtol=1e-5, atol=1e-5)


def test_layers_a_step_differentiates_or_of_other_kinds_are_left_to_torch():
    w, b = torch.randn(32, 8), torch.randn(32)
    x = torch.randn(100, 8)
    kinds = {"vjp": (lambda x: torch.func.vjp(lambda y: F.linear(y, w, b), x)[1](torch.ones(100, 32))[0], x),
             "jvp": (lambda x: torch.func.jvp(lambda y: F.linear(y, w, b), (x,), (x,))[1], x),
             "float64": (lambda x: F.linear(x, w.double(), b.double()), x.double()),
             "3-D": (lambda x: F.linear(x, w, b), x.reshape(10, 10, 8)),
             "a weight of one row": (lambda x: F.linear(x.reshape(10, 10, 8), w[0]), x),
             "a bias of one number": (lambda x: F.linear(x, w, torch.tensor(3.0)), x),
             "a bias of a row": (lambda x: F.linear(x, w, b[None]), x)}
    for name, (f, x) in kinds.items():
        assert "none" not in _layers(rewritten_graph(f, x)), name
        torch.testing.assert_close(_compiled(f)(x), f(x), rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.slow
def test_an_oracle_vjp_through_a_network_keeps_to_eager():
    """A score's VJP (what curvature samplers ask) compiles with torch's layers, to rounding."""
    net = MLP(hidden=32, layers=2, activation="tanh").build((16,)).requires_grad_(False)
    oracle = ScoreOracle(ModelScore(net))
    x, v = torch.randn(64, 16), torch.randn(64, 16)
    torch.testing.assert_close(_compiled(oracle.vjp)(x, v), oracle.vjp(x, v), rtol=1e-5, atol=1e-5)

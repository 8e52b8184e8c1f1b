"""A compiled step's float32 CPU linear layers (``scorelab.compiled_linear``): which layers the rewrite
sums out or gives to oneDNN, and that their values are the layers'."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch
import torch.nn.functional as F

from scorelab import compiled, compiled_linear, compiled_math
from scorelab.oracle import ScoreOracle
from scorelab.sources import ModelScore
from scorelab_builtins.models import MLP
from tests.helpers import rewritten_graph

onednn = pytest.mark.skipif(not compiled_linear.AVAILABLE, reason="oneDNN's linear is used on x86-64 only")


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    """Each test compiles the same few functions anew: past Dynamo's recompile limit they would run
    eager, silently."""
    torch._dynamo.reset()


def _layers(graph: torch.fx.GraphModule) -> list[str]:
    """Each linear layer of ``graph`` in order: "summed", "onednn", or "torch" for torch's own."""
    kinds = {torch.ops.scorelab.linear.default: "onednn", torch._C._nn.linear: "torch"}
    return ["summed" if n.name.startswith("summed_linear") else kinds[n.target] for n in graph.graph.nodes
            if n.target in kinds or n.name.startswith("summed_linear")]


@pytest.mark.parametrize(("dim", "activation", "layers"), [
    (2, "tanh", ["summed", "onednn", "summed"]),  # 2 inputs, then 2 outputs: summed out
    (4, "tanh", ["onednn", "onednn", "torch"]),  # a head of 4: too narrow for oneDNN, too wide to sum
    (16, "silu", ["onednn", "onednn", "onednn"]),
])
@onednn
def test_an_mlp_score_layer_by_layer(dim, activation, layers):
    net = MLP(hidden=32, layers=2, activation=activation).build((dim,))  # parameters that require grad
    with torch.no_grad():  # as an oracle evaluates a score
        graph = rewritten_graph(net, torch.randn(100, dim))
    assert _layers(graph) == layers


def test_without_onednn_only_the_narrow_layers_are_rewritten(monkeypatch):
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)
    net = MLP(hidden=32, layers=2, activation="tanh").build((2,)).requires_grad_(False)
    assert _layers(rewritten_graph(net, torch.randn(100, 2))) == ["summed", "torch", "summed"]


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
    (tanh' <= 1), and the compiled tanh's error, against the float64 value."""
    b = torch.zeros(w.shape[0]) if b is None else b
    exact = torch.tanh(F.linear(x.double(), w.double(), b.double()))
    sum_rounding = (w.shape[1] + 1) * 2**-24 * (x.abs() @ w.abs().T + b.abs()).double()
    bound = sum_rounding + (compiled_math.WORST_ULPS + 1) * 2**-24
    return bool(((y - exact).abs() <= bound).all())


#: (inputs, outputs) of a layer of each kind, and the kind.
SHAPES = {"summed, 2 inputs": (2, 64, "summed"), "summed, 1 input": (1, 16, "summed"),
          "summed, 2 outputs": (300, 2, "summed"), "onednn": pytest.param((300, 32, "onednn"), marks=onednn)}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_each_kind_gives_the_layers_values(shape):
    """Within the rounding of its sum: of a non-contiguous input, compiled for one batch size, and for
    any (``dynamic``)."""
    g = torch.Generator().manual_seed(0)
    inputs, outputs, kind = shape
    w, b = torch.randn(outputs, inputs, generator=g) / inputs**0.5, torch.randn(outputs, generator=g)
    x = torch.randn(inputs, 500, generator=g)

    def layer(x):
        return torch.tanh(F.linear(x.T, w, b))

    assert _layers(rewritten_graph(layer, x)) == _layers(rewritten_graph(layer, x, dynamic=True)) == [kind]
    assert _within_rounding(_compiled(layer)(x), x.T, w, b)
    varied = _compiled(lambda x: torch.tanh(F.linear(x, w, b)), dynamic=None)
    for n in (500, 300, 200):  # the second batch size recompiles with a symbolic one, the third reuses it
        assert _within_rounding(varied(x.T[:n]), x.T[:n], w, b)


@pytest.mark.parametrize("dim", [2, 16])
def test_mlp_scores_keep_to_eager(dim):
    g = torch.Generator().manual_seed(0)
    net = MLP(hidden=64, layers=2, activation="tanh").build((dim,)).requires_grad_(False)
    x = torch.randn(500, dim, generator=g)
    torch.testing.assert_close(_compiled(net)(x), net(x), rtol=1e-5, atol=1e-5)


BIASES = {"keyword": lambda b: {"bias": b}, "none": lambda b: {"bias": None},
          "a column": lambda b: {"bias": torch.stack([b, b], 1)[:, 0]}}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("bias", BIASES.values(), ids=BIASES.keys())
def test_a_layers_bias_however_given(bias, shape):
    (inputs, outputs, kind), g = shape, torch.Generator().manual_seed(1)
    w, b = torch.randn(outputs, inputs, generator=g) / inputs**0.5, torch.randn(outputs, generator=g)
    x, kw = torch.randn(100, inputs, generator=g), bias(b)

    def layer(x):
        return torch.tanh(F.linear(x, w, **kw))

    assert _layers(rewritten_graph(layer, x)) == [kind]
    assert _within_rounding(_compiled(layer)(x), x, w, kw["bias"])


def test_layers_a_step_differentiates_or_of_other_kinds_are_left_to_torch():
    w, b = torch.randn(32, 8), torch.randn(32)
    x = torch.randn(100, 8)
    kinds = {"vjp": (lambda x: torch.func.vjp(lambda y: F.linear(y, w, b), x)[1](torch.ones(100, 32))[0], x),
             "vjp, 2 inputs": (lambda x: torch.func.vjp(lambda y: F.linear(y[:, :2], w[:, :2], b), x)[1](
                 torch.ones(100, 32))[0], x),
             "jvp": (lambda x: torch.func.jvp(lambda y: F.linear(y, w, b), (x,), (x,))[1], x),
             "float64": (lambda x: F.linear(x, w.double(), b.double()), x.double()),
             "3-D": (lambda x: F.linear(x, w, b), x.reshape(10, 10, 8)),
             "a weight of one row": (lambda x: F.linear(x.reshape(10, 10, 8), w[0]), x),
             "a bias of one number": (lambda x: F.linear(x, w, torch.tensor(3.0)), x),
             "a bias of a row": (lambda x: F.linear(x, w, b[None]), x)}
    for name, (f, x) in kinds.items():
        assert _layers(rewritten_graph(f, x)) == ["torch"], name
        torch.testing.assert_close(_compiled(f)(x), f(x), rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.slow
def test_an_oracle_vjp_through_a_network_keeps_to_eager():
    """A score's VJP (what curvature samplers ask) compiles with torch's layers, to rounding."""
    net = MLP(hidden=32, layers=2, activation="tanh").build((16,)).requires_grad_(False)
    oracle = ScoreOracle(ModelScore(net))
    x, v = torch.randn(64, 16), torch.randn(64, 16)
    torch.testing.assert_close(_compiled(oracle.vjp)(x, v), oracle.vjp(x, v), rtol=1e-5, atol=1e-5)

"""How a compiled step computes the ops whose CPU kernels are its slow part: :func:`rewrite` changes
them in the graph Dynamo captured. Eager steps are untouched.

Two ops so far, both of the MLP score models, float32 on the CPU. A linear layer goes to oneDNN, with
the tanh that follows it (:mod:`compiled_linear`). Any other tanh is spelled out as elementwise work
inductor fuses: inductor evaluates tanh by SLEEF's 1-ULP routine; a compiled step computes it as
:func:`tanh` does, in 0.6-0.75 of the time on one core (``benchmarks/kernels_vs_xla.py``, figures in
benchmarks/README.md), within 2 ULP of the correctly rounded tanh for every float32
(``SCORELAB_EXHAUSTIVE=1 pytest tests/scorelab/test_compiled_math.py`` checks all of them on the
machine it runs on).

Only what is evaluated is rewritten: where a step differentiates through a tanh (an oracle VJP or
JVP: the value requires grad, or the graph makes forward-mode dual tensors), tanh's own derivative,
(1 - y^2), is cheaper than the formula's, and inductor keeps it; oneDNN's layer has no derivative.

The rewrite is made on the captured graph, not as an inductor decomposition, so that the op's new
spelling is part of the graph every compile cache keys on (a decomposition is not in AOTAutograd's
key, and a custom table turns inductor's cache off).
"""

from __future__ import annotations

import copy
from fractions import Fraction

import torch

from . import compiled_linear

#: Below this |x| tanh is summed from its Taylor series, above it taken from exp(-2|x|).
SERIES_BELOW = 0.5


def _taylor_coefficients(n: int) -> list[float]:
    """a_0..a_(n-1) of tanh x = sum_k a_k x^(2k+1), exactly: tanh' = 1 - tanh^2 gives
    (2k + 1) a_k = -sum_(i+j=k-1) a_i a_j for k >= 1, a_0 = 1 (1, -1/3, 2/15, -17/315, ...)."""
    a = [Fraction(1)]
    for k in range(1, n):
        a.append(-sum(a[i] * a[k - 1 - i] for i in range(k)) / (2 * k + 1))
    return [float(c) for c in a]


#: Nine terms: the first left out is below 2^-26 of tanh at SERIES_BELOW.
_SERIES = _taylor_coefficients(9)


def tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh from one exp and a polynomial, as elementwise work inductor fuses into one loop.

    For |x| >= 1/2, tanh|x| = (1 - e) / (1 + e) with e = exp(-2|x|) <= 1/e: no overflow and no
    cancellation (exp - 1 is how inductor's CPU code computes expm1, which loses small x), the sign
    x's. Below, x (a_0 + a_1 x^2 + ...) by Horner, on x clamped to the series' range so that the branch
    not taken stays finite (and its gradient, which ``where`` multiplies by 0, too). tanh(-0) = -0,
    tanh'(0) = 1; +-inf give +-1, NaN NaN."""
    s = x.clamp(-SERIES_BELOW, SERIES_BELOW)
    t = s * s
    series = _SERIES[-1]
    for c in reversed(_SERIES[:-1]):
        series = series * t + c
    e = torch.exp(-2.0 * x.abs())
    return torch.where(x.abs() < SERIES_BELOW, s * series, torch.copysign((1.0 - e) / (1.0 + e), x))


#: How a captured graph calls tanh: as torch's, the functional's or the Tensor's, or by method name.
_TANH = {("call_method", "tanh")} | {("call_function", f)
                                     for f in (torch.tanh, torch.nn.functional.tanh, torch.Tensor.tanh)}


def rewrite(graph: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """A copy of ``graph`` in which oneDNN computes the float32 CPU linear layers :mod:`compiled_linear`
    takes (with the tanh that is a layer's only use), and each other tanh of a float32 CPU tensor is
    :func:`tanh`'s operations (``graph`` itself where there is nothing to rewrite). ``graph`` is left as
    it is: it is what runs if compiling fails."""
    nodes = graph.graph.nodes
    if any(getattr(node.target, "__name__", None) == "_make_dual" for node in nodes) \
            or all(_float32_cpu_tanh_of(n) is None and compiled_linear.operands(n) is None for n in nodes):
        return graph  # forward-mode AD, or nothing to do
    out = torch.fx.GraphModule(graph, copy.deepcopy(graph.graph))  # its modules and tensors shared, not copied
    out.meta.update(graph.meta)
    for node in list(out.graph.nodes):
        if (layer := compiled_linear.operands(node)) is not None:
            _to_onednn(out.graph, node, layer)
    spelled = torch.fx.symbolic_trace(tanh).graph
    (argument,) = (n for n in spelled.nodes if n.op == "placeholder")
    for node in list(out.graph.nodes):
        x = _float32_cpu_tanh_of(node)
        if x is not None:
            with out.graph.inserting_before(node):
                node.replace_all_uses_with(out.graph.graph_copy(spelled, {argument: x}))
            out.graph.erase_node(node)
    out.recompile()
    return out


def _to_onednn(graph: torch.fx.Graph, node: torch.fx.Node, layer: tuple) -> None:
    """``node``, a linear layer, replaced by ``scorelab::linear``; with its only use if that is a tanh."""
    (use,) = node.users if len(node.users) == 1 else (None,)
    fused = use is not None and _float32_cpu_tanh_of(use) is node
    with graph.inserting_before(node):
        call = graph.call_function(torch.ops.scorelab.linear.default, (*layer, "tanh" if fused else "none"))
    replaced = [use, node] if fused else [node]
    call.meta.update(replaced[0].meta)
    replaced[0].replace_all_uses_with(call)
    for n in replaced:
        graph.erase_node(n)


def _float32_cpu_tanh_of(node: torch.fx.Node) -> torch.fx.Node | None:
    """The argument of ``node`` if it is tanh(x) or tanh(input=x) of a float32 CPU tensor x that no
    gradient flows through, else None (an ``out=`` tanh, or one of an integer tensor, is left to inductor)."""
    if (node.op, node.target) not in _TANH or node.kwargs.keys() - {"input"}:
        return None
    args = [*node.args, *node.kwargs.values()]
    value = args[0].meta.get("example_value") if len(args) == 1 and isinstance(args[0], torch.fx.Node) else None
    plain = isinstance(value, torch.Tensor) and value.dtype == torch.float32 and value.device.type == "cpu" \
        and not value.requires_grad
    return args[0] if plain else None

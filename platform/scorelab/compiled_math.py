"""How a compiled step computes the ops whose CPU kernels are its slow part: :func:`rewrite` changes
them in the graph Dynamo captured. Eager steps are untouched.

Two ops so far, both of the MLP score models, float32 on the CPU. Linear layers go to oneDNN or are
summed out (:mod:`compiled_linear`). tanh is spelled out as elementwise work inductor fuses with the
work beside it: inductor evaluates tanh by SLEEF's 1-ULP routine; a compiled step computes it as
:func:`tanh` does, a rational function, in a quarter of the time on one core, near XLA's
(``benchmarks/kernels_vs_xla.py``, figures in benchmarks/README.md), within 5 ULP of the correctly
rounded tanh for every float32 and never past +-1, as XLA's is (6 where the C++ compiler does not
fuse multiply-adds; ``SCORELAB_EXHAUSTIVE=1 pytest tests/scorelab/test_compiled_math.py`` checks all
of them on the machine it runs on; ``kernels_vs_xla.py --tanh-ulps 1`` counts both).

Only what is evaluated is rewritten: where a step differentiates through a tanh (an oracle VJP or
JVP: the value requires grad, or the graph makes forward-mode dual tensors), tanh's own derivative,
(1 - y^2), is cheaper than the rational function's, and inductor keeps it; a layer differentiated
through stays torch's too.

The rewrite is made on the captured graph, not as an inductor decomposition, so that the op's new
spelling is part of the graph every compile cache keys on (a decomposition is not in AOTAutograd's
key, and a custom table turns inductor's cache off).
"""

from __future__ import annotations

import copy

import torch

from . import compiled_linear

#: The rational function is fitted on [-CLAMP, CLAMP]; tanh(CLAMP) rounds to 1 - 2^-24 in float32, and
#: from 9.0109 on to 1.
CLAMP = 9.0

#: The most ULP :func:`tanh` is off the correctly rounded tanh, at every float32 (tests check it): 5
#: where the compiled code fuses multiply-adds, as on the machine scorelab's figures come from, 6 not.
WORST_ULPS = 6

#: tanh x = x P(x^2) / Q(x^2) on [-CLAMP, CLAMP], P(0) = Q(0) = 1, coefficients of 1, x^2, x^4, ...:
#: the minimax fit of relative error 1.33e-9, by ``minimax_tanh`` in tests/scorelab/test_compiled_math.py.
_P = (1.0, 0.13682462989302382, 0.0038714958947259704, 2.8069897953466536e-05, 3.0729227803273405e-08,
      -1.2305063457294588e-11)
_Q = (1.0, 0.4701579549462562, 0.027257496956111793, 0.0003944164045462817, 1.2916498235698891e-06)


def tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh as a rational function, elementwise work inductor fuses into one loop: x P(t) / Q(t) with
    t = x^2 capped at CLAMP^2, by Horner and one division, clamped to [-1, 1]. Past CLAMP that is
    x tanh(CLAMP) / CLAMP, which passes 1 at once, so the clamp makes it exactly +-1 (1 ULP off the
    rounded tanh up to 9.0109); below, rounding takes x P / Q 1-2 ULP past 1 from x = 7.96 on, which
    the clamp takes back. Odd; tanh(-0) = -0, tanh'(0) = 1; +-inf give +-1, NaN NaN. Not monotone to
    the last ULP: it can step back by a few. Its gradient (compiled steps never take it: a tanh they
    differentiate stays torch's) is within 3.5e-7 of tanh's at finite x, and 0 where the clamp holds
    the value, where tanh' is below 5e-7. The loop is compute-bound, so the guards are as few as give
    these: without FMAs, with x clamped and +-1 selected as well it took 1.87 ms on 1e4 x 256, this
    form 1.27 (benchmarks/README.md)."""
    t = (x * x).clamp(max=CLAMP * CLAMP)
    return (x * _polynomial(_P, t) / _polynomial(_Q, t)).clamp(-1.0, 1.0)


def _polynomial(coefficients: tuple[float, ...], t: torch.Tensor) -> torch.Tensor:
    """sum_k coefficients[k] t^k by Horner."""
    value = coefficients[-1]
    for c in reversed(coefficients[:-1]):
        value = value * t + c
    return value


def float32_ulps(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """How many float32 values lie between ``a`` and ``b`` (their distance in ULP; -0 and +0 are one value)."""
    def ordinal(t):
        i = t.float().view(torch.int32).long()
        return torch.where(i < 0, -(i & 0x7FFFFFFF), i)
    return (ordinal(a) - ordinal(b)).abs()


#: How a captured graph calls tanh: as torch's, the functional's or the Tensor's, or by method name.
_TANH = {("call_method", "tanh")} | {("call_function", f)
                                     for f in (torch.tanh, torch.nn.functional.tanh, torch.Tensor.tanh)}


def rewrite(graph: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """A copy of ``graph`` in which the float32 CPU linear layers :mod:`compiled_linear` takes are
    computed its way, and each tanh of a float32 CPU tensor is :func:`tanh`'s operations (``graph``
    itself where there is nothing to rewrite). ``graph`` is left as it is: it is what runs if
    compiling fails."""
    if any(getattr(node.target, "__name__", None) == "_make_dual" for node in graph.graph.nodes):
        return graph  # forward-mode AD
    out = torch.fx.GraphModule(graph, copy.deepcopy(graph.graph))  # its modules and tensors shared, not copied
    out.meta.update(graph.meta)
    changed = False
    for node in list(out.graph.nodes):
        changed |= compiled_linear.replace(out.graph, node)
    spelled = torch.fx.symbolic_trace(tanh).graph
    (argument,) = (n for n in spelled.nodes if n.op == "placeholder")
    for node in list(out.graph.nodes):
        x = _float32_cpu_tanh_of(node)
        if x is not None:
            with out.graph.inserting_before(node):
                y = out.graph.graph_copy(spelled, {argument: x})
            y.meta.update(node.meta)  # a tanh of it is rewritten too
            node.replace_all_uses_with(y)
            out.graph.erase_node(node)
            changed = True
    if not changed:
        return graph
    out.recompile()
    return out


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

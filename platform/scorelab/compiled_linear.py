"""A compiled step's float32 linear layers on the CPU: wide ones by oneDNN, those with one or two
inputs or outputs as sums inductor fuses with the work beside them.

torch's float32 CPU matmul is MKL's. On the CPU scorelab's figures come from (an AMD EPYC with
AVX-512, one core) oneDNN's takes 0.64-0.83 of MKL's time for the MLP's 256 x 256 layer, and 1.6-3.2
times MKL's for the d = 2 head (``benchmarks/kernels_vs_xla.py``, five runs, figures in
benchmarks/README.md): layers with fewer than :data:`MIN_OUTPUTS` outputs are not given to it.

A layer with at most :data:`SUMMED_UP_TO` inputs (an MLP's first layer on 2-D data) or outputs (its
head on 2-D data) is written out as products and sums, which inductor computes in the loop that
computes the activation beside it: the first layer's tanh as its output is written, the head's input
as it is read, so the hidden activations are not written and read once more. From the same
benchmark: the 2 -> 256 layer with its tanh on 1e4 chains 1.27 ms (inductor on torch's ops 5.97,
XLA 1.45), the 256 -> 2 head after a tanh 1.15 ms (4.84, XLA 1.39). On a 2-core Intel Xeon (Ice
Lake) the first layer took 3.0 times XLA's time (7.0 ms against 2.3) until its weight was transposed
apart (:func:`transposed`), and 1.0 times after (1.7 against 1.7; 2026-12-01, commit 8a0990d).

Inductor lowers oneDNN's linear only for weights frozen into the graph as constants, and a sampler
step's network weights are inputs of its graph, so the call is a custom op, ``scorelab::linear``,
that inductor leaves as a call. It has no derivative, and a layer a step differentiates through is
left to torch in either case. The layers are summed out on any CPU; the figures are from the AMD EPYC
named above but for the Intel Xeon's.
"""

from __future__ import annotations

import operator
import platform

import torch

#: oneDNN takes layers from this many outputs: narrower ones are faster by MKL on the measured CPU
#: (a throwaway sweep: 2 and 4 outputs slower by oneDNN, 8 to 32 faster).
MIN_OUTPUTS = 8

#: Layers with at most this many inputs or outputs are summed out. A throwaway sweep of a layer onto 256
#: outputs with its tanh, 1e4 chains: 1 and 2 inputs summed 1.2-1.4 ms against oneDNN's 2.1-2.3, 4 and 8
#: inputs summed 3.3-7.5 ms against 2.2-2.4.
SUMMED_UP_TO = 2

#: oneDNN's linear is in torch's x86-64 builds; it was measured faster on an x86-64 CPU only.
AVAILABLE = torch.backends.mkldnn.is_available() and platform.machine().lower() in ("x86_64", "amd64") \
    and hasattr(torch.ops.mkldnn, "_linear_pointwise")


@torch.library.custom_op("scorelab::linear", mutates_args=())
def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x @ weight.T + bias by oneDNN for a 2-D x, as ``torch.nn.functional.linear`` takes them."""
    bias = None if bias is None else bias.contiguous()
    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), weight.contiguous(), bias, "none", [], "")


@linear.register_fake
def _(x, weight, bias):
    return x.new_empty(x.shape[0], weight.shape[0])


@torch.library.custom_op("scorelab::transposed", mutates_args=())
def transposed(weight: torch.Tensor) -> torch.Tensor:
    """``weight.T`` copied contiguous. A custom op, so that inductor computes it once, apart: as a view it
    is read in place, a gather of strided floats for every vector of the layer's output loop (the
    2 -> 256 layer with its tanh on 1e4 chains 3.0 times XLA's time on an Intel Xeon, ``kernels_vs_xla.py``)."""
    return weight.t().clone(memory_format=torch.contiguous_format)  # a copy even where .T is contiguous


@transposed.register_fake
def _(weight):
    return weight.new_empty(weight.shape[1], weight.shape[0])


def replace(graph: torch.fx.Graph, node: torch.fx.Node) -> bool:
    """Replace ``node`` in ``graph`` if it is a layer a compiled step computes its own way (summed out,
    or by oneDNN); whether it did."""
    layer = _operands(node)
    if layer is None:
        return False
    x, weight, bias = layer
    outputs, inputs = weight.meta["example_value"].shape
    with graph.inserting_before(node):
        if min(inputs, outputs) <= SUMMED_UP_TO:
            y = _summed(graph, x, weight, bias, inputs, outputs)
        elif AVAILABLE and torch.backends.mkldnn.enabled and outputs >= MIN_OUTPUTS:
            y = graph.call_function(torch.ops.scorelab.linear.default, (x, weight, bias), name="onednn_linear")
        else:
            return False
    y.meta.update(node.meta)
    node.replace_all_uses_with(y)
    graph.erase_node(node)
    return True


def _summed(graph: torch.fx.Graph, x, weight, bias, inputs: int, outputs: int) -> torch.fx.Node:
    """x @ weight.T + bias as elementwise products and sums, its last node named "summed_linear". Few
    inputs: sum_k x[:, k, None] weight[:, k], one loop writing the output. Few outputs: one sum over
    the inputs per output, stacked, which inductor computes in one pass over x (summed as one
    reduction, it would compute x's producer once per output)."""
    call, name = graph.call_function, "summed_linear"
    last = {"name": name} if bias is None else {}
    if inputs <= SUMMED_UP_TO:
        columns = call(torch.ops.scorelab.transposed.default, (weight,))
        outer = call(operator.mul, (call(torch.unsqueeze, (x, -1)), columns))
        y = call(torch.sum, (outer, -2), **last)
    else:
        columns = [call(torch.sum, (call(operator.mul, (x, call(operator.getitem, (weight, j)))), -1))
                   for j in range(outputs)]
        y = call(torch.stack, (columns, -1), **last)
    return y if bias is None else call(operator.add, (y, bias), name=name)


def _operands(node: torch.fx.Node) -> tuple | None:
    """(x, weight, bias) if ``node`` is ``torch._C._nn.linear`` (F.linear, nn.Linear as Dynamo inlines
    it) of a 2-D float32 CPU tensor by a 2-D weight of at least one input and output, with no bias or a
    1-D one of its width, that no gradient flows through; else None."""
    if (node.op, node.target) != ("call_function", torch._C._nn.linear) \
            or node.kwargs.keys() - {"bias"} or not 2 <= len(node.args) + len(node.kwargs) <= 3:
        return None
    x, weight, *bias = [*node.args, *node.kwargs.values()]
    bias = bias[0] if bias else None
    if not all(isinstance(n, torch.fx.Node) for n in (x, weight, bias) if n is not None):
        return None
    out, w = node.meta.get("example_value"), weight.meta.get("example_value")
    b = None if bias is None else bias.meta.get("example_value")
    plain = isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.device.type == "cpu" \
        and out.dim() == 2 and not out.requires_grad and isinstance(w, torch.Tensor) and w.dim() == 2 \
        and min(w.shape) >= 1 and (bias is None or isinstance(b, torch.Tensor) and b.shape == w.shape[:1])
    return (x, weight, bias) if plain else None

"""A compiled step's float32 linear layers on the CPU, by oneDNN: the matmul, its bias and a tanh that
follows it in one call.

torch's float32 CPU matmul is MKL's. On the CPU scorelab's figures come from (an AMD EPYC with
AVX-512, one core) oneDNN's takes 0.64-0.83 of MKL's time for the MLP's 256 x 256 layer, and 2.8-3.2
times MKL's for the d = 2 head (``benchmarks/kernels_vs_xla.py``, two runs, figures in
benchmarks/README.md): layers narrower than :data:`MIN_WIDTH` stay with MKL. A tanh that is the
layer's only use is applied by oneDNN as it writes the output, which saves a pass over the
activations: within 1 ULP of the rounded tanh for every float32 below 9.2 of either sign, where tanh
rounds to 1 (``SCORELAB_EXHAUSTIVE=1 pytest tests/scorelab/test_compiled_linear.py`` checks all of
them on the machine it runs on).

Inductor lowers oneDNN's linear only for weights frozen into the graph as constants, and a sampler
step's network weights are inputs of its graph, so the call is a custom op, ``scorelab::linear``,
that inductor leaves as a call. It has no derivative: a layer a step differentiates through is left
to inductor, as :mod:`compiled_math` leaves such a tanh.
"""

from __future__ import annotations

import platform

import torch

#: Narrower layers are faster by MKL on the measured CPU (a throwaway sweep: 2 and 4 outputs slower
#: by oneDNN, 8 to 32 faster).
MIN_WIDTH = 8

#: oneDNN's linear is in torch's x86-64 builds; it was measured faster on an x86-64 CPU only.
AVAILABLE = torch.backends.mkldnn.is_available() and platform.machine().lower() in ("x86_64", "amd64") \
    and hasattr(torch.ops.mkldnn, "_linear_pointwise")


@torch.library.custom_op("scorelab::linear", mutates_args=())
def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, activation: str) -> torch.Tensor:
    """activation(x @ weight.T + bias) for a 2-D x, as ``torch.nn.functional.linear`` takes them, the
    activation "none" or "tanh"."""
    bias = None if bias is None else bias.contiguous()
    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), weight.contiguous(), bias, activation, [], "")


@linear.register_fake
def _(x, weight, bias, activation):
    return x.new_empty(x.shape[0], weight.shape[0])


def operands(node: torch.fx.Node) -> tuple | None:
    """(x, weight, bias) if ``node`` is a linear layer a compiled step gives to oneDNN, else None: the
    layer of a 2-D float32 CPU tensor by a 2-D weight at least :data:`MIN_WIDTH` rows wide and no bias
    or one of that length, that no gradient flows through (and oneDNN not switched off in torch)."""
    if not (AVAILABLE and torch.backends.mkldnn.enabled) \
            or (node.op, node.target) != ("call_function", torch._C._nn.linear) \
            or node.kwargs.keys() - {"bias"} or not 2 <= len(node.args) + len(node.kwargs) <= 3:
        return None
    x, weight, *bias = [*node.args, *node.kwargs.values()]
    bias = bias[0] if bias else None
    out, w = (n.meta.get("example_value") if isinstance(n, torch.fx.Node) else None for n in (node, weight))
    b = bias.meta.get("example_value") if isinstance(bias, torch.fx.Node) else bias
    plain = isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.device.type == "cpu" \
        and out.dim() == 2 and not out.requires_grad and isinstance(w, torch.Tensor) and w.dim() == 2 \
        and w.shape[0] >= MIN_WIDTH and (bias is None or isinstance(b, torch.Tensor) and b.shape == w.shape[:1])
    return (x, weight, bias) if plain else None

"""``mlp``: a fully connected score network for vector data (any event shape, flattened).

Options: ``noise_conditional`` (s(x, sigma) through a sigma embedding, scaled as in ``_net``),
``energy`` (a scalar energy whose negative gradient is the score, so ``log_prob`` up to a constant
exists for Metropolis corrections), ``second_order`` (a second head giving the diagonal of the score
Jacobian, trained by ``dsm_second_order``). ``data_scale`` is the typical spread of the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ._net import ACTIVATIONS, MAX_DEPTH, ScoreNet, SigmaEmbedding, event_size


class MLPNet(ScoreNet):
    def __init__(self, event_shape, hidden, layers, activation, embedding, **flags):
        super().__init__(event_shape, **flags)
        d = event_size(event_shape)
        self.embed = SigmaEmbedding(embedding) if self.noise_conditional else None
        width = d + (embedding if self.noise_conditional else 0)
        blocks = []
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
            width = hidden
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(hidden, 1 if self.energy else d)
        self.head2 = nn.Linear(hidden, d) if self.second_order else None
        for h in filter(None, (self.head, self.head2)):  # start at the preconditioned baseline
            nn.init.zeros_(h.weight)
            nn.init.zeros_(h.bias)

    def trunk(self, x_in: torch.Tensor, sigma: torch.Tensor | None):
        h = x_in.reshape(len(x_in), -1)
        if self.embed is not None:
            h = torch.cat([h, self.embed(sigma)], -1)
        h = self.body(h)
        if self.energy:
            return self.head(h)[:, 0]
        out = self.head(h).reshape(x_in.shape)
        return out, None if self.head2 is None else self.head2(h).reshape(x_in.shape)


@dataclass
class MLP:
    hidden: int = 128  # width of every hidden layer, >= 1
    layers: int = 3  # hidden Linear + activation layers, 1 to 1000
    activation: Literal["silu", "softplus", "tanh", "gelu"] = "silu"  # nonlinearity after each hidden layer
    noise_conditional: bool = False  # s(x, sigma): a sigma embedding and _net's scaling; multi-level objectives need it
    energy: bool = False  # a scalar energy E with s = -grad E, so log_prob exists (for Metropolis corrections)
    second_order: bool = False  # a second head for the diagonal of the score Jacobian (not with energy)
    data_scale: float = 1.0  # sigma_d, the data's typical spread in x's units, > 0: scales input and output (see _net)
    embedding: int = 16  # sinusoidal features of log sigma (even, >= 2); used only when noise_conditional

    name = "mlp"
    # The setting that gives its networks each capability, named in an error that asks for one.
    provides_with = {"noise_conditional": "noise_conditional: true", "second_order_head": "second_order: true",
                     "log_prob": "energy: true"}

    def __post_init__(self):
        if self.hidden < 1 or self.layers < 1:
            raise ValueError(f"hidden and layers must be >= 1, got {self.hidden} and {self.layers}")
        if self.layers > MAX_DEPTH:
            raise ValueError(f"layers must be <= {MAX_DEPTH}, got {self.layers}")
        if not self.data_scale > 0:
            raise ValueError(f"data_scale must be > 0, got {self.data_scale}")
        if self.energy and self.second_order:
            raise ValueError("energy and second_order cannot be combined (an energy network's curvature "
                             "comes from autograd, not a head)")
        if self.embedding < 2 or self.embedding % 2:
            raise ValueError(f"embedding must be an even number >= 2, got {self.embedding}")

    @property
    def provides(self) -> frozenset[str]:
        caps = {"noise_conditional": self.noise_conditional, "log_prob": self.energy,
                "second_order_head": self.second_order}
        return frozenset(k for k, v in caps.items() if v)

    def build(self, event_shape: tuple[int, ...]) -> nn.Module:
        return MLPNet(event_shape, self.hidden, self.layers, self.activation, self.embedding,
                      noise_conditional=self.noise_conditional, data_scale=self.data_scale,
                      energy=self.energy, second_order=self.second_order)

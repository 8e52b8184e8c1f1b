"""What every built-in score network shares: the call convention, noise-level scaling, and heads.

A score network is an ``nn.Module`` with ``noise_conditional`` (bool) and ``forward(x, sigma=None)``
returning the score, shaped like ``x``. ``sigma`` is a tensor of one noise level per sample (shape
``(n,)``) or a scalar. Optional, announced by flags: ``score_and_diag(x, sigma)`` (a learned
diagonal of the score Jacobian from the same forward pass, ``second_order``) and ``log_prob(x,
sigma)`` (up to a constant, ``energy``).

Noise-conditional networks use the preconditioning of Karras et al. (2022) with data scale
sigma_d: the trunk F sees c_in(sigma) * x, and

    s(x, sigma) = -x / (sigma^2 + sigma_d^2) + F * sigma_d / (sigma * sqrt(sigma^2 + sigma_d^2)),

so an untrained network already gives the score of N(0, sigma_d^2 + sigma^2), and F stays of order
one at every noise level. The learned Hessian diagonal is scaled the same way (by the square of
that factor). Energy networks output a scalar G and s = -grad E with
E = |x|^2 / (2 (sigma^2 + sigma_d^2)) - (sigma_d / sigma) G(c_in x, sigma), which gives the same form.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import grad

ACTIVATIONS = {"silu": nn.SiLU, "softplus": nn.Softplus, "tanh": nn.Tanh, "gelu": nn.GELU}

#: The deepest stack a built-in model builds: layers are built one by one in Python, so a typo such as
#: 10^18 would build until memory ran out instead of being refused.
MAX_DEPTH = 1000


class SigmaEmbedding(nn.Module):
    """Fixed sinusoidal features of log(sigma), log-spaced frequencies (no parameters)."""

    def __init__(self, dim: int):
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"embedding must be an even number >= 2, got {dim}")
        self.register_buffer("freqs", torch.logspace(-1.0, 1.5, dim // 2), persistent=False)

    def forward(self, sigma: torch.Tensor) -> torch.Tensor:
        angle = torch.log(sigma)[:, None] * self.freqs
        return torch.cat([angle.sin(), angle.cos()], -1)


class ScoreNet(nn.Module):
    """Base of the built-in networks. Subclasses implement ``trunk(x_in, sigma) -> (F, F2 or None)``
    (or a scalar per sample for energy networks); ``sigma`` reaches the trunk as an ``(n,)`` tensor,
    or None for networks that are not noise-conditional."""

    def __init__(self, event_shape, *, noise_conditional: bool, data_scale: float,
                 energy: bool = False, second_order: bool = False):
        super().__init__()
        self.event_shape = tuple(event_shape)
        self.noise_conditional = noise_conditional
        self.energy = energy
        self.second_order = second_order
        self.data_scale = float(data_scale)

    # -- scaling ------------------------------------------------------------------------------
    def _sigma(self, x: torch.Tensor, sigma) -> torch.Tensor | None:
        if not self.noise_conditional:
            return None
        if sigma is None:
            raise ValueError("this network is noise-conditional: call it as model(x, sigma)")
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        return sigma.expand(x.shape[0]) if sigma.ndim == 0 else sigma.reshape(x.shape[0])

    def _coefficients(self, x, sigma):
        """(c_in, c_base, c_out) broadcast over the event dims: s = c_base * x + c_out * F."""
        sd = self.data_scale
        if sigma is None:
            return 1.0 / sd, 0.0, 1.0 / sd
        s = sigma.reshape(-1, *([1] * (x.ndim - 1)))
        total = s * s + sd * sd
        return total.rsqrt(), -1.0 / total, sd / (s * total.sqrt())

    # -- the call convention ------------------------------------------------------------------
    def forward(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        return self.score_and_diag(x, sigma)[0] if self.second_order else self._score(x, self._sigma(x, sigma))[0]

    def _score(self, x, sigma):
        c_in, c_base, c_out = self._coefficients(x, sigma)
        if self.energy:
            return -grad(lambda y: self._energy(y, sigma).sum())(x), None
        out, out2 = self.trunk(c_in * x, sigma)
        return c_base * x + c_out * out, (out2, c_base, c_out)

    def score_and_diag(self, x: torch.Tensor, sigma=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(score, learned diagonal of the score Jacobian), both from one forward pass."""
        if not self.second_order:
            raise ValueError("this network has no second-order head (build it with second_order: true)")
        sigma = self._sigma(x, sigma)
        s, (out2, c_base, c_out) = self._score(x, sigma)
        return s, c_base + c_out * c_out * out2

    def _energy(self, x, sigma):
        c_in, c_base, _ = self._coefficients(x, sigma)
        g = self.trunk(c_in * x, sigma)
        dims = tuple(range(1, x.ndim))
        if sigma is None:
            return -g
        return -0.5 * c_base.flatten() * (x * x).sum(dims) - (self.data_scale / sigma) * g

    def log_prob(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        """log p(x) up to a constant (energy networks): -E(x, sigma)."""
        if not self.energy:
            raise ValueError("only energy-parametrised networks have log_prob (build with energy: true)")
        return -self._energy(x, self._sigma(x, sigma))


def event_size(event_shape) -> int:
    return math.prod(event_shape)

"""``ism``: implicit score matching (Hyvarinen 2005), E[1/2 |s(x)|^2 + tr grad_x s(x)].

Needs no true score: it differs from ``esm`` by the constant 1/2 E |grad log p|^2. The trace is
exact, one backward pass per dimension, so it is meant for small dimensions and as the reference
the sliced objectives are checked against. ``sigma`` > 0 matches the noised data's score instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._common import call, check_sigma, perturb, sq


@dataclass
class ISM:
    sigma: float = 0.0  # fit the noised data x + sigma z, >= 0 (0: the data); a noise-conditional model needs > 0

    name = "ism"
    requires = ()

    def __post_init__(self):
        check_sigma(self.sigma)

    def noise_levels(self) -> list[float]:
        return [self.sigma]

    def loss(self, model, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = perturb(batch, self.sigma, generator).detach().requires_grad_(True)
        s = call(model, x, self.sigma)
        flat = s.reshape(len(s), -1)
        trace = torch.zeros(len(s), dtype=s.dtype, device=s.device)
        for i in range(flat.shape[1]):
            (row,) = torch.autograd.grad(flat[:, i].sum(), x, create_graph=True)
            trace = trace + row.reshape(len(s), -1)[:, i]
        return (0.5 * sq(s) + trace).mean()

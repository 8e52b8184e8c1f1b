"""``ssm``: sliced score matching (Song, Garg, Shi & Ermon 2019).

E_v[1/2 (v^T s)^2 + v^T grad_x (v^T s)] with random directions v, E[v v^T] = I (Gaussian or
Rademacher): an unbiased estimate of ``ism`` that costs one extra backward pass (a Hessian-vector
product, double backward) per projection instead of d. Each sample gets ``projections`` directions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ._common import call, check_sigma, dot, perturb, projections


def sliced_terms(model, batch, sigma, count, kind, generator):
    """(s, v, v^T grad_x(v^T s)) on ``count`` copies of the (noised) batch."""
    x = perturb(batch, sigma, generator).repeat_interleave(count, 0).detach().requires_grad_(True)
    v = projections(x, kind, generator)
    s = call(model, x, sigma)
    (jv,) = torch.autograd.grad(dot(v, s).sum(), x, create_graph=True)
    return s, v, dot(v, jv)


@dataclass
class SSM:
    projections: int = 1  # directions v per sample, one double-backward Hessian-vector product each, >= 1
    distribution: Literal["gaussian", "rademacher"] = "gaussian"  # law of v: N(0, I) or +-1 entries (E[v v^T] = I)
    sigma: float = 0.0  # fit the noised data x + sigma z, >= 0 (0: the data); a noise-conditional model needs > 0

    name = "ssm"
    requires = ()

    def __post_init__(self):
        if self.projections < 1:
            raise ValueError(f"projections must be >= 1, got {self.projections}")
        check_sigma(self.sigma)

    def noise_levels(self) -> list[float]:
        return [self.sigma]

    def loss(self, model, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        s, v, vjv = sliced_terms(model, batch, self.sigma, self.projections, self.distribution, generator)
        return (0.5 * dot(v, s) ** 2 + vjv).mean()

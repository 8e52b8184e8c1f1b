"""``ssm_vr``: sliced score matching with variance reduction (Song, Garg, Shi & Ermon 2019).

The first term's expectation over v is taken in closed form, E_v[(v^T s)^2] = |s|^2, leaving
E[1/2 |s|^2 + v^T grad_x (v^T s)]; still an unbiased estimate of ``ism``, with less variance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ._common import check_sigma, sq
from .ssm import sliced_terms


@dataclass
class SSMVR:
    projections: int = 1
    distribution: Literal["gaussian", "rademacher"] = "gaussian"
    sigma: float = 0.0

    name = "ssm_vr"
    requires = ()

    def __post_init__(self):
        if self.projections < 1:
            raise ValueError(f"projections must be >= 1, got {self.projections}")
        check_sigma(self.sigma)

    def noise_levels(self) -> list[float]:
        return [self.sigma]

    def loss(self, model, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        s, _, vjv = sliced_terms(model, batch, self.sigma, self.projections, self.distribution, generator)
        return (0.5 * sq(s) + vjv).mean()

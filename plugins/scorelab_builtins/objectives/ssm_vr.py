"""``ssm_vr``: sliced score matching with variance reduction (Song, Garg, Shi & Ermon 2019).

The first term's expectation over v is taken in closed form, E_v[(v^T s)^2] = |s|^2, leaving
E[1/2 |s|^2 + v^T grad_x (v^T s)]; still an unbiased estimate of ``ism``, with less variance.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._common import sq
from .ssm import SSM, sliced_terms


@dataclass
class SSMVR(SSM):
    """Same hyperparameters as ``ssm``; only the first term differs."""

    name = "ssm_vr"

    def loss(self, model, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        s, _, vjv = sliced_terms(model, batch, self.sigma, self.projections, self.distribution, generator)
        return (0.5 * sq(s) + vjv).mean()

"""``dsm``: denoising score matching at one noise level (Vincent 2011).

x~ = x + sigma z; loss 1/2 E |s(x~) + z / sigma|^2, whose minimiser is the score of the data
convolved with N(0, sigma^2 I). It differs from ``esm`` at that sigma by a constant that does not
depend on the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._common import call, check_sigma, randn, sq


@dataclass
class DSM:
    sigma: float = 0.1  # sigma of x~ = x + sigma z, in x's units, > 0: s learns the score of p * N(0, sigma^2 I)

    name = "dsm"
    requires = ()

    def __post_init__(self):
        check_sigma(self.sigma, positive=True)

    def noise_levels(self) -> list[float]:
        return [self.sigma]

    def loss(self, model, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        z = randn(batch, generator)
        return 0.5 * sq(call(model, batch + self.sigma * z, self.sigma) + z / self.sigma).mean()

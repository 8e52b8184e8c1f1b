"""``dsm_multi``: noise-conditional denoising score matching over a geometric schedule (NCSN).

sigma_1 > ... > sigma_L geometric from ``sigma_max`` to ``sigma_min``; each sample gets a level
drawn uniformly; the per-sample loss 1/2 |s(x~, sigma) + z / sigma|^2 is weighted by
lambda(sigma) = sigma^2 (so every level contributes on the same scale): 1/2 |sigma s + z|^2.
The model is called s(x, sigma). Song & Ermon (2019), ``anneal_dsm_score_estimation``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from scorelab.schedules import geometric_sigmas

from ._common import check_levels, draw_levels, per_sample, randn, sq


@dataclass
class DSMMulti:
    sigma_max: float = 10.0  # sigma_1, the largest noise level, in x's units
    sigma_min: float = 0.01  # sigma_L, the smallest noise level; 0 < sigma_min <= sigma_max
    levels: int = 10  # L, levels geometric from sigma_max to sigma_min, one drawn per sample; 1 to 10000

    name = "dsm_multi"
    requires = ("noise_conditional",)

    def __post_init__(self):
        check_levels(self.sigma_max, self.sigma_min, self.levels)

    def noise_levels(self) -> list[float]:
        return geometric_sigmas(self.sigma_max, self.sigma_min, self.levels)

    def loss(self, model, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if not model.noise_conditional:
            raise ValueError("dsm_multi needs a noise-conditional network (noise_conditional: true)")
        sigma = draw_levels(self.noise_levels(), batch, generator)
        z = randn(batch, generator)
        s_b = per_sample(sigma, batch)
        return 0.5 * sq(s_b * model(batch + s_b * z, sigma) + z).mean()

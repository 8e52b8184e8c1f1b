"""``dsm_second_order``: the score and the diagonal of its Jacobian, by denoising.

Meng, Song, Li & Ermon (2021). With x~ = x + sigma z, Tweedie's formula one order up gives
E[(z z^T - I) / sigma^2 | x~] = H(x~) + s(x~) s(x~)^T, H the Hessian of log p_sigma. On the
diagonal: the head d(x~) is trained so that h = d + s^2 (s detached: the first-order head is
trained by DSM alone) regresses (z^2 - 1) / sigma^2, with per-sample loss 1/2 |h + (1 - z^2) /
sigma^2|^2 less its model-free constant. ``variance_reduction`` evaluates the antithetic pair
x +- sigma z and subtracts the clean point's h as a control variate (``hosm_plus_vr`` in
chenlin9/high_order_dsm): the expectation is unchanged because E[1 - z^2] = 0. The first-order part
is DSM on the same points. Levels and weights follow ``dsm_multi``: sigma^2 for the first order,
sigma^4 for the second; several levels need a noise-conditional network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from scorelab.schedules import geometric_sigmas

from ._common import call_with_diag, check_levels, draw_levels, per_sample, randn, sq


@dataclass
class DSMSecondOrder:
    sigma_max: float = 0.1  # the largest noise level sigma of x~ = x + sigma z, in x's units
    sigma_min: float = 0.1  # the smallest noise level; 0 < sigma_min <= sigma_max
    levels: int = 1  # levels geometric from sigma_max to sigma_min, one drawn per sample; > 1 needs noise_conditional
    variance_reduction: bool = True  # evaluate x +- sigma z and the clean x (control variate): 3 passes, not 1
    second_order_weight: float = 1.0  # weight of the diagonal (second-order) loss against the first-order DSM, > 0

    name = "dsm_second_order"
    requires = ("second_order_head",)

    def __post_init__(self):
        check_levels(self.sigma_max, self.sigma_min, self.levels)
        if not self.second_order_weight > 0:
            raise ValueError(f"second_order_weight must be > 0, got {self.second_order_weight}")

    def noise_levels(self) -> list[float]:
        return geometric_sigmas(self.sigma_max, self.sigma_min, self.levels)

    def loss(self, model, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        sigma = draw_levels(self.noise_levels(), batch, generator)
        z = randn(batch, generator)
        sb = per_sample(sigma, batch)
        arg = sigma if model.noise_conditional else None
        s_a, d_a = call_with_diag(model, batch + sb * z, arg)
        h_a = sb**2 * (d_a + s_a.detach() ** 2)  # scaled by sigma^2: the sigma^4 weight, squared in
        c = 1 - z * z  # sigma^2 (I - z z^T)/sigma^2 on the diagonal, mean zero
        if not self.variance_reduction:
            first = 0.5 * sq(sb * s_a + z)
            second = 0.5 * (h_a * h_a + 2 * c * h_a).reshape(len(batch), -1).sum(-1)
        else:
            s_b, d_b = call_with_diag(model, batch - sb * z, arg)
            s_0, d_0 = call_with_diag(model, batch, arg)
            h_b = sb**2 * (d_b + s_b.detach() ** 2)
            h_0 = sb**2 * (d_0 + s_0.detach() ** 2)
            first = 0.25 * (sq(sb * s_a + z) + sq(sb * s_b - z))
            terms = h_a * h_a + h_b * h_b + 2 * c * (h_a - h_0 + h_b - h_0)
            second = 0.25 * terms.reshape(len(batch), -1).sum(-1)
        return (first + self.second_order_weight * second).mean()

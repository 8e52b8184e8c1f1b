"""``esm``: explicit score matching, 1/2 E |s(x) - grad log p(x)|^2, against the target's exact score.

With ``sigma`` > 0 it matches the score of the target convolved with N(0, sigma^2 I) on noised
samples, which is what a noise-conditional network is evaluated at. Needs a target that knows its
score (analytic targets); data sets have none. Hyvarinen (2005) shows it equals ``ism`` plus the
constant 1/2 E |grad log p|^2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._common import call, check_sigma, perturb, sq


@dataclass
class ESM:
    sigma: float = 0.0  # score of p * N(0, sigma^2 I) matched at x + sigma z, >= 0; a noise-conditional model needs > 0

    name = "esm"
    requires = ("exact_score",)

    def __post_init__(self):
        check_sigma(self.sigma)

    def bind(self, target) -> None:
        """The target whose exact score is matched (the trainer binds it before training)."""
        self._target = target

    def noise_levels(self) -> list[float]:
        return [self.sigma]

    def loss(self, model, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        target = getattr(self, "_target", None)
        if target is None:
            raise ValueError("esm needs the target's exact score: call bind(target) first")
        x = perturb(batch, self.sigma, generator)
        return 0.5 * sq(call(model, x, self.sigma) - target.score(x, self.sigma)).mean()

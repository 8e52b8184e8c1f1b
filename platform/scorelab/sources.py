"""Score sources an oracle can wrap: a target's exact score (trained networks live in training)."""

from __future__ import annotations

from typing import Any

import torch

_SOURCE_CAPS = ("noise_conditional", "exact_score", "log_prob", "exact_hess_diag")


class ExactScore:
    """A target's analytic score, s(x, sigma) of the target convolved with N(0, sigma^2 I)."""

    def __init__(self, target: Any):
        if "exact_score" not in target.provides:
            raise ValueError(f"target {type(target).__name__} has no exact score")
        self.target = target
        self.provides = frozenset(c for c in _SOURCE_CAPS if c in target.provides)

    def score(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        return self.target.score(x, 0.0 if sigma is None else sigma)

    def hess_diag(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        return self.target.hess_diag(x, 0.0 if sigma is None else sigma)

    def log_prob_and_score(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.target.log_prob(x), self.target.score(x, 0.0)

"""Score sources an oracle can wrap: a target's exact score, or a trained network (loaded from its MLflow URI
by :func:`scorelab.training.export.model_source`)."""

from __future__ import annotations

from typing import Any

import torch
from torch.func import grad_and_value

_SOURCE_CAPS = ("noise_conditional", "exact_score", "log_prob", "exact_hess_diag")


class ExactScore:
    """A target's analytic score, s(x, sigma) of the target convolved with N(0, sigma^2 I); for a target
    that is not noise-conditional (``noise_conditional = False``) s(x) only: ``provides`` then lacks
    ``noise_conditional`` and the oracle refuses a noise level before it reaches the target."""

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
        """Both from one evaluation of the target, as the oracle charges one NFE for them: the
        target's own ``log_prob_and_score`` where it has one, else log p and its gradient in one
        autograd pass."""
        both = getattr(self.target, "log_prob_and_score", None)
        if callable(both):
            return both(x)

        def log_prob(y):
            value = self.target.log_prob(y)
            return value.sum(), value

        score, (_, value) = grad_and_value(log_prob, has_aux=True)(x)
        return value, score


class ModelScore:
    """A trained score network (see ``scorelab_builtins.models``) as a score source.

    Provides ``noise_conditional`` for networks called s(x, sigma) (asked without a noise level, they
    answer at ``default_sigma``, the smallest level they were trained on), ``log_prob`` for
    energy-parametrised ones (up to a constant), and ``second_order_head`` where a learned diagonal
    of the score Jacobian comes out of the same forward pass (``score_and_diag``).
    """

    def __init__(self, network: torch.nn.Module, default_sigma: float | None = None, uri: str | None = None):
        self.network = network.eval().requires_grad_(False)
        self.uri = uri
        self.conditional = bool(network.noise_conditional)
        if self.conditional and default_sigma is None:
            raise ValueError("a noise-conditional network needs a default noise level")
        self.default_sigma = default_sigma
        caps = {"noise_conditional": self.conditional, "log_prob": getattr(network, "energy", False),
                "second_order_head": getattr(network, "second_order", False)}
        self.provides = frozenset(k for k, v in caps.items() if v)

    def _args(self, sigma) -> tuple:
        if not self.conditional:
            return ()
        return (self.default_sigma if sigma is None else sigma,)

    def score(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        return self.network(x, *self._args(sigma))

    def score_and_diag(self, x: torch.Tensor, sigma=None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.network.score_and_diag(x, *self._args(sigma))

    def log_prob_and_score(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        def log_prob(y):
            value = self.network.log_prob(y, *self._args(None))
            return value.sum(), value

        score, (_, value) = grad_and_value(log_prob, has_aux=True)(x)
        return value, score


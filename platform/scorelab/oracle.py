"""ScoreOracle: the only way a sampler reaches a score, and the meter that charges for it.

Counts are plain Python integers incremented per batched call (one call evaluates every chain), so
reading the cost never synchronises with the device. Cost is in score-evaluation units:

    cost = NFE + w_vjp * VJP + w_jvp * JVP + w_curv * CURV

where CURV counts calls of an exact (analytic) Hessian diagonal. A VJP or JVP returns the score at
the same point for free: it is computed on the way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch.func import jvp as _jvp
from torch.func import vjp as _vjp

from .errors import ScorelabError

Sigma = float | torch.Tensor | None


@dataclass(frozen=True)
class CostWeights:
    """Price of each call kind in score evaluations (timed on the run's device, or fixed by config)."""

    vjp: float = 3.0
    jvp: float = 4.0
    curvature: float = 1.0


@dataclass
class Counts:
    nfe: int = 0
    vjp: int = 0
    jvp: int = 0
    curvature: int = 0


class ScoreOracle:
    """Wraps a score source on one device and counts every call.

    ``source`` has ``score(x, sigma)`` and a set ``provides`` of capabilities (see
    :data:`scorelab.contracts.CAPABILITIES`); ``log_prob(x)`` and ``hess_diag(x, sigma)`` where it
    provides them.
    """

    def __init__(self, source: Any, weights: CostWeights = CostWeights()):
        self._source = source
        self.weights = weights
        self.counts = Counts()
        self.provides: frozenset[str] = frozenset(source.provides)

    # -- the meter -----------------------------------------------------------------------------
    @property
    def cost(self) -> float:
        c, w = self.counts, self.weights
        return c.nfe + w.vjp * c.vjp + w.jvp * c.jvp + w.curvature * c.curvature

    def reset(self) -> None:
        self.counts = Counts()

    # -- what a sampler may call ---------------------------------------------------------------
    def score(self, x: torch.Tensor, sigma: Sigma = None) -> torch.Tensor:
        """s(x) = grad log p(x), or of p convolved with N(0, sigma^2 I). One NFE."""
        self._check_sigma(sigma)
        self.counts.nfe += 1
        return self._source.score(x, sigma)

    def vjp(self, x: torch.Tensor, v: torch.Tensor, sigma: Sigma = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(s(x), v^T J) with J the score Jacobian, per chain. One VJP."""
        self._check_sigma(sigma)
        self.counts.vjp += 1
        s, pullback = _vjp(lambda y: self._source.score(y, sigma), x)
        return s, pullback(v)[0]

    def jvp(self, x: torch.Tensor, v: torch.Tensor, sigma: Sigma = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(s(x), J v) with J the score Jacobian, per chain. One JVP."""
        self._check_sigma(sigma)
        self.counts.jvp += 1
        return _jvp(lambda y: self._source.score(y, sigma), (x,), (v,))

    def hess_diag(
        self,
        x: torch.Tensor,
        sigma: Sigma = None,
        *,
        probes: int,
        generator: torch.Generator,
        mode: Literal["vjp", "jvp"] = "vjp",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(s(x), Hutchinson estimate of diag J) from ``probes`` Rademacher probes: E[z * Jz] = diag J.

        Costs ``probes`` VJPs (or JVPs). diag J is the diagonal of the Hessian of log p.
        """
        if probes < 1:
            raise ValueError(f"probes must be >= 1, got {probes}")
        product = self.vjp if mode == "vjp" else self.jvp
        total = torch.zeros_like(x)
        for _ in range(probes):
            z = torch.randint(0, 2, x.shape, generator=generator, device=x.device).to(x.dtype) * 2 - 1
            s, jz = product(x, z, sigma)
            total = total + z * jz
        return s, total / probes

    def exact_hess_diag(self, x: torch.Tensor, sigma: Sigma = None) -> torch.Tensor:
        """The exact diagonal of the score Jacobian, where the source has it. One CURV."""
        self._require("exact_hess_diag")
        self._check_sigma(sigma)
        self.counts.curvature += 1
        return self._source.hess_diag(x, sigma)

    def score_and_learned_diag(self, x: torch.Tensor, sigma: Sigma = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(s(x), learned diag of the score Jacobian) from a model with a second-order head. One NFE:
        both heads come out of the same forward pass."""
        self._require("second_order_head")
        self._check_sigma(sigma)
        self.counts.nfe += 1
        return self._source.score_and_diag(x, sigma)

    def log_prob_and_score(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log p(x) up to a constant, s(x)). One NFE: the score's evaluation yields the value."""
        self._require("log_prob")
        self.counts.nfe += 1
        return self._source.log_prob_and_score(x)

    # -- checks --------------------------------------------------------------------------------
    def _require(self, capability: str) -> None:
        if capability not in self.provides:
            raise ScorelabError(
                f"this score source does not provide '{capability}' (it provides {sorted(self.provides)})"
            )

    def _check_sigma(self, sigma: Sigma) -> None:
        if sigma is not None and "noise_conditional" not in self.provides:
            raise ScorelabError("a noise level was asked of a score source that is not noise-conditional")

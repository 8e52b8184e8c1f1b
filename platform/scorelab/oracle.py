"""ScoreOracle: the only way a sampler reaches a score, and the meter that charges for it.

Counts are plain Python integers incremented per batched call (one call evaluates every chain), so
reading the cost never synchronises with the device. Cost is in score-evaluation units:

    cost = NFE + w_vjp * VJP + w_jvp * JVP + w_curv * CURV

where CURV counts calls of an exact (analytic) Hessian diagonal. A VJP or JVP returns the score at
the same point for free: it is computed on the way. Nothing else is free: the source is out of reach,
outputs carry no derivatives, and the counts are read-only (see :class:`ScoreOracle`).
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


@dataclass(frozen=True)
class Counts:
    """Calls charged so far. ``oracle.counts`` is a fresh snapshot on every read, so changing or
    replacing it cannot lower what a sampler has been charged."""

    nfe: int = 0
    vjp: int = 0
    jvp: int = 0
    curvature: int = 0


def price(counts: Counts | Any, weights: CostWeights) -> float:
    """The cost of ``counts`` (anything with Counts' fields) in score evaluations: the oracle's cost is
    the price of its counts, so a cost predicted from counts is the one the oracle will report."""
    c, w = counts, weights
    return c.nfe + w.vjp * c.vjp + w.jvp * c.jvp + w.curvature * c.curvature


@dataclass
class _Tally:
    """The oracle's own running counts; only the oracle holds a reference."""

    nfe: int = 0
    vjp: int = 0
    jvp: int = 0
    curvature: int = 0


def _plain(value: Any) -> Any:
    """A tensor argument cut off from every derivative (autograd, forward-mode duals, torch.func)."""
    return value.detach() if isinstance(value, torch.Tensor) else value


def _plain_all(out: Any) -> Any:
    return tuple(_plain(o) for o in out) if isinstance(out, tuple) else _plain(out)


class ScoreOracle:
    """Wraps a score source on one device and counts every call.

    ``source`` has ``score(x, sigma)`` and a set ``provides`` of capabilities (see
    :data:`scorelab.contracts.CAPABILITIES`); ``log_prob_and_score(x)`` and ``hess_diag(x, sigma)``
    where it provides them.

    Nothing a charge pays for can be had another way:

    - the source is held in a name-mangled slot, so no public or single-underscore name reaches it
      (``oracle._source`` does not exist; the conformance kit catches a sampler that digs further);
    - every output is detached and computed without autograd from a detached input, so
      differentiating an output (autograd, ``torch.func`` transforms around an oracle method,
      forward-mode duals) gives nothing: a score is not a VJP, and a VJP is not a second-order product;
    - ``counts``, ``weights`` and ``provides`` are read-only, and ``counts`` is a snapshot.
    """

    __slots__ = ("__source", "__tally", "__weights", "__provides")

    def __init__(self, source: Any, weights: CostWeights = CostWeights(), counts: Counts = Counts()):
        """``counts``: the calls charged before this oracle's first (a replay resuming a run's counts)."""
        self.__source = source
        self.__tally = _Tally(counts.nfe, counts.vjp, counts.jvp, counts.curvature)
        self.__weights = weights
        self.__provides = frozenset(source.provides)

    # -- the meter -----------------------------------------------------------------------------
    @property
    def weights(self) -> CostWeights:
        return self.__weights

    @property
    def provides(self) -> frozenset[str]:
        return self.__provides

    @property
    def counts(self) -> Counts:
        t = self.__tally
        return Counts(t.nfe, t.vjp, t.jvp, t.curvature)

    @property
    def cost(self) -> float:
        return price(self.__tally, self.__weights)

    # -- what a sampler may call ---------------------------------------------------------------
    def score(self, x: torch.Tensor, sigma: Sigma = None) -> torch.Tensor:
        """s(x) = grad log p(x), or of p convolved with N(0, sigma^2 I). One NFE."""
        self._check_sigma(sigma)
        self.__tally.nfe += 1
        return self.__evaluate("score", x, sigma)

    def vjp(self, x: torch.Tensor, v: torch.Tensor, sigma: Sigma = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(s(x), v^T J) with J the score Jacobian, per chain. One VJP."""
        self._check_sigma(sigma)
        self.__tally.vjp += 1
        score, sigma = self.__source.score, _plain(sigma)
        with torch.no_grad():  # torch.func ignores an outer no_grad: only the caller's derivatives are cut
            s, pullback = _vjp(lambda y: score(y, sigma), _plain(x))
            return _plain_all((s, pullback(_plain(v))[0]))

    def jvp(self, x: torch.Tensor, v: torch.Tensor, sigma: Sigma = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(s(x), J v) with J the score Jacobian, per chain. One JVP."""
        self._check_sigma(sigma)
        self.__tally.jvp += 1
        score, sigma = self.__source.score, _plain(sigma)
        with torch.no_grad():
            return _plain_all(_jvp(lambda y: score(y, sigma), (_plain(x),), (_plain(v),)))

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
        x = _plain(x)
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
        self.__tally.curvature += 1
        return self.__evaluate("hess_diag", x, sigma)

    def score_and_learned_diag(self, x: torch.Tensor, sigma: Sigma = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(s(x), learned diag of the score Jacobian) from a model with a second-order head. One NFE:
        both heads come out of the same forward pass."""
        self._require("second_order_head")
        self._check_sigma(sigma)
        self.__tally.nfe += 1
        return self.__evaluate("score_and_diag", x, sigma)

    def log_prob_and_score(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log p(x) up to a constant, s(x)). One NFE: the score's evaluation yields the value."""
        self._require("log_prob")
        self.__tally.nfe += 1
        return self.__evaluate("log_prob_and_score", x)

    # -- the source, out of reach ---------------------------------------------------------------
    def __evaluate(self, method: str, *args: Any) -> Any:
        """The source's ``method`` on detached arguments, without autograd: outputs carry no derivatives."""
        with torch.no_grad():  # a source's own torch.func transforms (energy models) still work inside
            return _plain_all(getattr(self.__source, method)(*(_plain(a) for a in args)))

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(
            f"{type(self).__name__} has no attribute {name!r}. A sampler reaches the score only through the "
            "oracle's public methods (score, vjp, jvp, hess_diag, exact_hess_diag, score_and_learned_diag, "
            "log_prob_and_score), which charge for it; the source behind the oracle is not reachable")

    # -- checks --------------------------------------------------------------------------------
    def _require(self, capability: str) -> None:
        if capability not in self.__provides:
            raise ScorelabError(
                f"this score source does not provide '{capability}' (it provides {sorted(self.__provides)})"
            )

    def _check_sigma(self, sigma: Sigma) -> None:
        if sigma is not None and "noise_conditional" not in self.__provides:
            raise ScorelabError("a noise level was asked of a score source that is not noise-conditional")

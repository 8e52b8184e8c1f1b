"""Diagonal curvature for the curvature-aware samplers: where it comes from, and how it is made safe.

The curvature here is c = -diag J, with J the score Jacobian (the Hessian of log p): positive along
directions where log p is concave. Three sources, each paid for through the oracle:

- ``hutchinson``: k Rademacher probes z, c = -mean(z * Jz); k VJPs (or JVPs). The score at the
  point comes out of the first product, so it costs nothing extra. Unbiased; exact when J is
  diagonal (every z_i^2 = 1), noisy when J has off-diagonal mass.
- ``exact``: the target's analytic diagonal (one CURV call) and the score (one NFE). Separates the
  estimator's error from the idea.
- ``learned``: a model's second-order head, score and diagonal from one forward pass (one NFE).

Estimates are smoothed across refreshes (EMA), then clipped at zero and damped, so the
preconditioner M = 1 / (max(c, 0) + damping) is positive and bounded by 1 / damping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

Source = Literal["hutchinson", "exact", "learned"]
SOURCES = ("hutchinson", "exact", "learned")
#: The capability each curvature source needs from the score source.
REQUIRES = {"hutchinson": (), "exact": ("exact_hess_diag",), "learned": ("second_order_head",)}


def check_fields(curvature: str, probes: int, probe: str, refresh_every: int, ema: float, damping: float) -> None:
    """The shared hyperparameter checks, with errors that name the field and the valid range."""
    if curvature not in SOURCES:
        raise ValueError(f"curvature must be one of {', '.join(SOURCES)}, got {curvature!r}")
    if probes < 1:
        raise ValueError(f"probes must be >= 1, got {probes}")
    if probe not in ("vjp", "jvp"):
        raise ValueError(f"probe must be 'vjp' or 'jvp', got {probe!r}")
    if refresh_every < 1:
        raise ValueError(f"refresh_every must be >= 1, got {refresh_every}")
    if not 0 <= ema < 1:
        raise ValueError(f"ema must be in [0, 1), got {ema}")
    if not damping > 0:
        raise ValueError(f"damping must be > 0 (it bounds the preconditioner by 1/damping), got {damping}")


def score_and_curvature(oracle, x: torch.Tensor, sigma, source: str, *, probes: int = 1, probe: str = "vjp",
                        generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(s(x), c(x) = -diag J) from ``source``; the oracle counts every call (see the module docstring)."""
    if source == "hutchinson":
        s, d = oracle.hess_diag(x, sigma, probes=probes, generator=generator, mode=probe)
    elif source == "exact":
        s, d = oracle.score(x, sigma), oracle.exact_hess_diag(x, sigma)
    elif source == "learned":
        s, d = oracle.score_and_learned_diag(x, sigma)
    else:
        raise ValueError(f"unknown curvature source {source!r}; valid: {', '.join(SOURCES)}")
    return s, -d


def smooth(previous: torch.Tensor | None, new: torch.Tensor, ema: float) -> torch.Tensor:
    """Exponential moving average across refreshes (``ema`` = weight of the old value)."""
    return new if previous is None or ema == 0 else ema * previous + (1 - ema) * new


def inverse_curvature(c: torch.Tensor, damping: float) -> torch.Tensor:
    """M = 1 / (max(c, 0) + damping): non-positive curvature clipped, then damped."""
    return 1.0 / (c.clamp(min=0) + damping)


def batch_shape(x: torch.Tensor) -> tuple[int, ...]:
    """Shape of a per-chain quantity broadcast against ``x``: (n, 1, ..., 1)."""
    return (x.shape[0],) + (1,) * (x.ndim - 1)


def chain_norm(x: torch.Tensor) -> torch.Tensor:
    """Euclidean norm of each chain's state, shaped to broadcast against ``x``."""
    return x.flatten(1).norm(dim=1).reshape(batch_shape(x))


@dataclass
class CurvatureOptions:
    """The hyperparameters hessian_diag_langevin and ozaki_langevin share: the step, and where the
    curvature diagonal comes from, how often it is refreshed, how it is smoothed and damped. (A
    subclass re-declares ``step_size`` for its own default; the field keeps its first place.)"""

    step_size: float = 0.1  # the step h; what it means is the subclass's update rule (each re-declares it)
    curvature: Literal["hutchinson", "exact", "learned"] = "hutchinson"  # source of c = -diag J (module docstring)
    probes: int = 1  # Rademacher probes per Hutchinson refresh, one VJP/JVP each, >= 1; unused by exact, learned
    probe: Literal["vjp", "jvp"] = "vjp"  # Hutchinson's product, z^T J (VJP) or J z (JVP): same expectation
    refresh_every: int = 5  # steps between refreshes of c at the chain's current point (the first step refreshes), >= 1
    ema: float = 0.5  # weight of the old c when smoothing across refreshes, in [0, 1); 0 keeps only the newest
    damping: float = 1e-2  # added to max(c, 0), in units of 1/variance, > 0: M = 1 / (max(c, 0) + damping) <= 1/damping

    requires = ()

    def __post_init__(self):
        if not self.step_size > 0:
            raise ValueError(f"step_size must be > 0, got {self.step_size}")
        check_fields(self.curvature, self.probes, self.probe, self.refresh_every, self.ema, self.damping)
        self.requires = REQUIRES[self.curvature]  # this instance's needs (the class needs nothing)

    def _refresh(self, oracle, x, generator):
        return score_and_curvature(oracle, x, None, self.curvature, probes=self.probes, probe=self.probe,
                                   generator=generator)

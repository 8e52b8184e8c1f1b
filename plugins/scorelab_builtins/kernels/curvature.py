"""Curvature of log p for the curvature-aware samplers: where it comes from, and how it is made safe.

Diagonal curvature c = -diag J, with J the score Jacobian (the Hessian of log p): positive along
directions where log p is concave. Three sources, each paid for through the oracle:

- ``hutchinson``: k Rademacher probes z, c = -mean(z * Jz); k VJPs (or JVPs). The score at the
  point comes out of the first product, so it costs nothing extra. Unbiased; exact when J is
  diagonal (every z_i^2 = 1), noisy when J has off-diagonal mass.
- ``exact``: the target's analytic diagonal (one CURV call) and the score (one NFE). Separates the
  estimator's error from the idea.
- ``learned``: a model's second-order head, score and diagonal from one forward pass (one NFE).

Estimates are refreshed every few steps (``DiagonalCurvature``), smoothed across refreshes (EMA),
then clipped at zero and damped, so the preconditioner M = 1 / (max(c, 0) + damping) is positive
and bounded by 1 / damping.

The largest curvature |lambda_max(J)| per chain, for a step size: ``secant_curvature`` (Barzilai &
Borwein 1988), |s(x') - s(x)| / |x' - x| along the chain's last move, free; ``power_curvature``,
power iterations on J (one JVP each, warm-started; Yao et al. 2020, "PyHessian"). Both optionally on
the preconditioned M^(1/2) J M^(1/2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ._batch import chain_norm

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


def clipped_fraction(c: torch.Tensor) -> torch.Tensor:
    """Fraction of coordinates (over all chains) whose curvature is clipped at zero."""
    return (c <= 0).to(c.dtype).mean()


@dataclass(frozen=True)
class DiagonalCurvature:
    """c = -diag J from ``source``, refreshed every ``refresh_every`` steps, smoothed with weight ``ema``
    on the old value. Between refreshes c is held and a step pays for the score alone."""

    source: str = "hutchinson"
    probes: int = 1
    probe: str = "vjp"
    refresh_every: int = 1
    ema: float = 0.0

    def refresh(self, oracle, x: torch.Tensor, previous: torch.Tensor | None, generator: torch.Generator,
                sigma=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(s(x), c) measured at x and smoothed with ``previous`` (None: start afresh)."""
        s, c = score_and_curvature(oracle, x, sigma, self.source, probes=self.probes, probe=self.probe,
                                   generator=generator)
        return s, smooth(previous, c, self.ema)

    def update(self, oracle, x: torch.Tensor, previous: torch.Tensor | None, t: int, generator: torch.Generator,
               sigma=None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(s(x), c) at step ``t`` (a Python int: the schedule, not the data, decides): refreshed when t
        is a multiple of ``refresh_every``, else ``previous`` held."""
        if t % self.refresh_every == 0:
            return self.refresh(oracle, x, previous, generator, sigma)
        return oracle.score(x, sigma), previous


@dataclass
class CurvatureState:
    """What a sampler moved by a refreshed diagonal curvature carries from step to step."""

    x: torch.Tensor
    score: torch.Tensor | None  # None until the first step has evaluated it
    curvature: torch.Tensor | None  # smoothed -diag J, before clipping and damping
    k: int  # steps taken


@dataclass
class CurvatureOptions:
    """The hyperparameters of a sampler moved by a refreshed diagonal curvature (hessian_diag_langevin,
    ozaki_langevin): the step, and where c comes from, how often it is refreshed, how it is smoothed and
    damped. A subclass re-declares ``step_size`` for its own default; the field keeps its first place.
    ``_begin`` and ``_end`` frame its step: a refresh at the start, and the score (and the refresh when
    due) at the point the step reached."""

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

    def _estimator(self) -> DiagonalCurvature:
        return DiagonalCurvature(self.curvature, self.probes, self.probe, self.refresh_every, self.ema)

    def _begin(self, state: CurvatureState, oracle, generator: torch.Generator) -> CurvatureState:
        """``state`` with s and c at its point: the first step refreshes there, with the run's generator."""
        if state.score is not None:
            return state
        return CurvatureState(state.x, *self._estimator().refresh(oracle, state.x, None, generator), state.k)

    def _end(self, state: CurvatureState, x: torch.Tensor, oracle, generator: torch.Generator) -> CurvatureState:
        """The state after a step from ``state`` to x."""
        k = state.k + 1
        return CurvatureState(x, *self._estimator().update(oracle, x, state.curvature, k, generator), k)


def secant_curvature(dx: torch.Tensor, ds: torch.Tensor, previous: torch.Tensor | None,
                     sqrt_m: torch.Tensor | None = None) -> torch.Tensor:
    """|ds| / |dx| per chain (of the preconditioned |M^(1/2) ds| / |M^(-1/2) dx| when ``sqrt_m`` is given).
    Where the chain did not move at all (dx and ds both 0: a step below the precision of x), the
    previous estimate stands; with none, inf (the smallest step)."""
    if sqrt_m is not None:
        dx, ds = dx / sqrt_m, sqrt_m * ds
    estimate = chain_norm(ds) / chain_norm(dx)
    keep = torch.full_like(estimate, torch.inf) if previous is None else previous
    return torch.where(torch.isnan(estimate), keep, estimate)


def power_start(x: torch.Tensor) -> torch.Tensor:
    """The power method's first vector per chain: (1, ..., 1) / sqrt(d)."""
    return torch.ones_like(x) / x[0].numel() ** 0.5


def power_curvature(oracle, x: torch.Tensor, v: torch.Tensor, iterations: int, sigma=None,
                    sqrt_m: torch.Tensor | None = None):
    """(s(x), |lambda_max| per chain, unit vector) after ``iterations`` power steps on J (or on
    M^(1/2) J M^(1/2) when ``sqrt_m`` is given), warm-started from the unit vector ``v``; one JVP each."""
    for _ in range(iterations):
        u = v if sqrt_m is None else sqrt_m * v
        s, ju = oracle.jvp(x, u, sigma)
        w = ju if sqrt_m is None else sqrt_m * ju
        lam = chain_norm(w)
        v = torch.where(lam > 0, w / lam, v)
    return s, lam, v

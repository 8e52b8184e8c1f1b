"""The per-level parts of ``annealed_langevin``, on the shared kernels: the diagonal preconditioner,
restarted at every noise level, and the rule for the step h at a level of noise sigma. Each checks
its own hyperparameters, with errors that name the sampler's fields.

Fixed rules (one h for all chains): ``ncsn``, ``constant``, ``snr``. Per-chain rules (h of shape
(n,)): ``secant``, ``power``, ``adaptive``, each bounded so that a chain's largest effective step
h max(M) lies in [min_step, max_step] sigma^2. See ``annealed_langevin``'s docstring for the equations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..kernels import (
    BrownianMemory,
    DiagonalCurvature,
    batch_shape,
    error_controlled_move,
    inverse_curvature,
    next_step,
    power_curvature,
    power_start,
    rmsprop_average,
    rmsprop_preconditioner,
    secant_curvature,
)
from ..kernels.curvature import check_fields

RULES = ("ncsn", "constant", "snr", "secant", "power", "adaptive")
FIXED_RULES = ("ncsn", "constant", "snr")
PRECONDITIONERS = ("none", "rmsprop", "hessian_diag")


@dataclass(frozen=True)
class LevelPreconditioner:
    """A diagonal M restarted at every level: ``none`` (M = I), ``rmsprop`` (M from this level's running
    average of s^2) or ``hessian_diag`` (M = 1 / (max(c, 0) + damping), c refreshed when due)."""

    kind: str
    damping: float | None  # None: 1e-5 for rmsprop, 1e-2 for hessian_diag
    alpha: float
    curvature: DiagonalCurvature

    def __post_init__(self):
        if self.kind not in PRECONDITIONERS:
            raise ValueError(f"preconditioner must be none, rmsprop or hessian_diag, got {self.kind!r}")
        if not 0 <= self.alpha < 1:
            raise ValueError(f"alpha must be in [0, 1), got {self.alpha}")
        if self.damping is not None and not self.damping > 0:
            raise ValueError(f"damping must be > 0, got {self.damping}")
        c = self.curvature
        check_fields(c.source, c.probes, c.probe, c.refresh_every, c.ema, 1.0 if self.damping is None else self.damping)

    def _damping(self) -> float:
        return self.damping if self.damping is not None else (1e-5 if self.kind == "rmsprop" else 1e-2)

    def before_score(self, oracle, x: torch.Tensor, sigma: float, diag: torch.Tensor | None, j: int,
                     new_level: bool, generator: torch.Generator):
        """(s(x) or None, c, M or None) at step ``j`` of a level: hessian_diag's refresh gives the score too."""
        if self.kind != "hessian_diag":
            return None, diag, None
        s = None
        if j % self.curvature.refresh_every == 0:
            s, diag = self.curvature.refresh(oracle, x, None if new_level else diag, generator, sigma)
        return s, diag, inverse_curvature(diag, self._damping())

    def after_score(self, s: torch.Tensor, v: torch.Tensor | None, new_level: bool, m: torch.Tensor | None):
        """(V, M): rmsprop's needs this step's score; the others' M is known already."""
        if self.kind != "rmsprop":
            return v, m
        v = rmsprop_average(None if new_level else v, s, self.alpha)
        return v, rmsprop_preconditioner(v, self._damping())


@dataclass(frozen=True)
class StepRule:
    """The rule for h at a level, and what the per-chain rules carry: L (secant, power) and the power
    method's vector, or each chain's h and Brownian memory (adaptive)."""

    rule: str
    epsilon: float
    snr: float
    step_scale: float
    power_iterations: int
    refresh_every: int
    abs_tol: float
    rel_tol: float
    min_step: float
    max_step: float

    def __post_init__(self):
        if not self.epsilon > 0:
            raise ValueError(f"epsilon must be > 0, got {self.epsilon}")
        if self.rule not in RULES:
            raise ValueError(f"step_rule must be one of {', '.join(RULES)}, got {self.rule!r}")
        for key in ("snr", "step_scale", "abs_tol"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key} must be > 0, got {getattr(self, key)}")
        if not 0 < self.min_step <= self.max_step:
            raise ValueError(f"need 0 < min_step <= max_step (units of sigma^2), got {self.min_step}, {self.max_step}")
        if self.power_iterations < 1:
            raise ValueError(f"power_iterations must be >= 1, got {self.power_iterations}")

    def probe(self, oracle, x: torch.Tensor, sigma: float, j: int, m: torch.Tensor | None,
              lam: torch.Tensor | None, vector: torch.Tensor | None):
        """(s(x) or None, L, vector): the power rule's refresh on M^(1/2) J M^(1/2) when due (JVPs)."""
        if self.rule != "power" or j % self.refresh_every != 0:
            return None, lam, vector
        vector = power_start(x) if vector is None else vector
        return power_curvature(oracle, x, vector, self.power_iterations, sigma, None if m is None else m.sqrt())

    def step_size(self, state, s: torch.Tensor, m: torch.Tensor | None, z: torch.Tensor, sigma: float,
                  new_level: bool, lam: torch.Tensor | None):
        """(h, the per-chain lower bound or None, L) for ``state`` (an ``AnnealedState``) at noise sigma."""
        if self.rule in FIXED_RULES:
            return self._fixed(s, m, z, sigma, state.sigmas[-1]), None, lam
        x, n = state.x, state.x.shape[0]
        if self.rule == "secant" and state.prev_x is not None and not new_level:
            lam = secant_curvature(x - state.prev_x, s - state.prev_score, lam, None if m is None else m.sqrt())
        if self.rule == "adaptive":
            h = state.step if state.step is not None else x.new_zeros(n)
        else:  # no secant yet: the smallest step
            h = x.new_zeros(n) if lam is None else self.step_scale / lam.reshape(n)
        top = 1.0 if m is None else m.flatten(1).amax(1)  # the curvature of the smoothed score is <= 1 / sigma^2
        lo, hi = self.min_step * sigma**2 / top, self.max_step * sigma**2 / top
        return h.clamp(min=lo).clamp(max=hi), lo, lam

    def _fixed(self, s: torch.Tensor, m: torch.Tensor | None, z: torch.Tensor, sigma: float, sigma_last: float):
        if self.rule == "ncsn":
            return self.epsilon * (sigma / sigma_last) ** 2
        if self.rule == "constant":
            return self.epsilon
        whitened = s if m is None else m.sqrt() * s
        return 2 * (self.snr * z.flatten(1).norm(dim=1).mean() / whitened.flatten(1).norm(dim=1).mean()) ** 2

    def adaptive_move(self, x: torch.Tensor, s: torch.Tensor, m: torch.Tensor | None, h: torch.Tensor, lo,
                      memory: BrownianMemory | None, score_at, generator: torch.Generator):
        """The ``adaptive`` rule's attempt: (x, accepted, next h, memory, effective step)."""
        memory = memory if memory is not None else BrownianMemory.empty(x, 8)
        h, dw, memory = memory.take(h, generator)  # the Brownian increment, kept through rejections
        eff = effective_step(h, m, x)
        noise = math.sqrt(2) * dw if m is None else torch.sqrt(2 * m) * dw  # sqrt(2M) dW, dW ~ N(0, h)
        x_new, accept, err = error_controlled_move(x, s, eff, noise, score_at, h, lo, self.abs_tol, self.rel_tol)
        h_new = next_step(h, err, 0.9, 0.9, 0.0, math.inf, 2.0)  # bounded at the next step
        return x_new, accept, h_new, memory.give_back(h, dw, ~accept), eff


def effective_step(h, m: torch.Tensor | None, x: torch.Tensor):
    """h M, with a per-chain h (n,) shaped to broadcast against x."""
    eff = h.reshape(batch_shape(x)) if isinstance(h, torch.Tensor) and h.ndim == 1 else h
    return eff if m is None else eff * m

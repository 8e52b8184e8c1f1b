"""``kinetic_langevin``: underdamped (kinetic) Langevin dynamics, BAOAB splitting.

The chains carry a velocity v next to the position x and follow dx = v dt,
dv = s(x) dt - gamma v dt + sqrt(2 gamma) dW, whose stationary law is p(x) N(v; 0, I). One step of
size h is five sub-steps, B A O A B (Leimkuhler & Matthews 2013):

    B:  v <- v + (h/2) s(x)
    A:  x <- x + (h/2) v
    O:  v <- c v + sqrt(1 - c^2) z,    c = exp(-gamma h),  z ~ N(0, I)
    A:  x <- x + (h/2) v
    B:  v <- v + (h/2) s(x)

One score evaluation a step: the score at the new position serves the closing B of this step and
the opening B of the next, so ``init`` plus n steps costs n + 1. Velocities start at zero.

Without a Metropolis correction the chain is biased, in x by O(h^2) in general. On a Gaussian target
N(mu, Sigma) the x-marginal of BAOAB's stationary law is exact for every friction and every stable
step (h < 2 sqrt(v_min), v_min the smallest eigenvalue of Sigma); only the velocities are off: along
an eigen-direction of variance v, ``state.v`` has variance 1 - h^2 / (4 v) instead of 1.

Reference: B. Leimkuhler and C. Matthews, "Rational construction of stochastic numerical methods for
molecular sampling", Applied Mathematics Research eXpress 2013(1), 34-56.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class KineticLangevinState:
    x: torch.Tensor
    v: torch.Tensor
    score: torch.Tensor


@dataclass
class KineticLangevinInfo:
    step_size: float


@dataclass
class KineticLangevin:
    step_size: float = 0.1  # h of one BAOAB step; stable for h < 2 sqrt(v_min), v_min Sigma's least eigenvalue
    friction: float = 1.0  # gamma > 0: O keeps the fraction c = exp(-gamma h) of v; large gamma renews v each step

    name = "kinetic_langevin"

    def __post_init__(self):
        if not self.step_size > 0:
            raise ValueError(f"step_size must be > 0, got {self.step_size}")
        if not self.friction > 0:
            raise ValueError(f"friction must be > 0, got {self.friction}")

    def stationary_variance(self, variance: float) -> float:
        """What the chains' variance settles at on N(mu, variance): exactly ``variance`` (see above).
        Declaring it holds the conformance checks to sampling error, not a 10 % allowance."""
        return variance

    def init(self, x0: torch.Tensor, oracle, budget: float) -> KineticLangevinState:
        return KineticLangevinState(x0, torch.zeros_like(x0), oracle.score(x0))

    def step(self, state: KineticLangevinState, oracle, generator: torch.Generator):
        h = self.step_size
        c = math.exp(-self.friction * h)
        z = torch.randn(state.x.shape, generator=generator, device=state.x.device, dtype=state.x.dtype)
        v = state.v + 0.5 * h * state.score  # B
        x = state.x + 0.5 * h * v  # A
        v = c * v + math.sqrt(1 - c * c) * z  # O
        x = x + 0.5 * h * v  # A
        score = oracle.score(x)
        v = v + 0.5 * h * score  # B
        return KineticLangevinState(x, v, score), KineticLangevinInfo(h)

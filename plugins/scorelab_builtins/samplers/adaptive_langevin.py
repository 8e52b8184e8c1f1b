"""``adaptive_langevin``: Langevin with a per-chain step chosen by error control ("Gotta Go Fast").

Each attempt makes an Euler–Maruyama step and a stochastic Heun step with the same Brownian
increment dW ~ N(0, h I), and uses their difference as the local error estimate:

    x_EM   = x + h s(x) + sqrt(2) dW
    x_Heun = x + h (s(x) + s(x_EM)) / 2 + sqrt(2) dW,    E = x_Heun - x_EM
    delta  = max(abs_tol, rel_tol * max(|x|, |x_Heun|))            (elementwise)
    err    = |E / delta|_2 / sqrt(d)                                  (per chain)

A chain accepts when err <= 1 (or when its step is already at ``min_step``) and moves to x_Heun
(the extrapolated, higher-order result); a rejected chain stays exactly where it was. Either way
its next step is h <- clip(h * min(max_growth, safety * err^(-exponent)), min_step, max_step), so
steps grow where the score is smooth and shrink where it bends sharply. The growth limit is not in
the reference: a single noisy error estimate can be tiny by accident (the Euler step lands where the
score is what it was), and without a limit one such accident lets h jump far past stability, where
a second one accepts a wild move (seen near a sharp mode: a chain thrown out of it). A non-finite
error is a rejection with the smallest step.

Rejection sampling with memory. E depends on the noise, so discarding the increment of a rejected
attempt and drawing a new one would keep the small increments and refuse the large ones: the
accepted noise would be truncated and the stationary variance too small by an amount that does not
vanish as the tolerances shrink (on N(0, diag(1, 0.25)) about -28 % along the stiff axis). So a
rejected increment is kept: each chain holds a short stack of the unused future of its Brownian
path (``memory`` pieces), the next, shorter attempt takes the first part of it through the
Brownian bridge, and the rest waits its turn, so the path every chain follows is exactly Brownian
(Rackauckas & Nie 2017, RSwM).

Cost per attempt: 2 NFE (s(x) and s(x_EM), for all chains in one batch each), accepted or not:
rejected attempts cost what they evaluated. ``init`` costs nothing.

Known bias. The Heun step's own bias on N(0, v) is second order (stationary variance
v (2 - u) / (2 - u + u^2 / 2) at u = h / v, for a fixed step). Since chains are read at a step
count rather than at a common time, a step that depends on the position weights the law by about
1 / h(x): a relative tolerance (rel_tol > 0) makes steps longer far from the origin and pulls the
samples towards it (on a Gaussian with mean 1 and variance 0.25, rel_tol = 0.05 moves the mean by
about -0.13). That is why ``rel_tol`` defaults to 0 here, unlike in the reference, where each
sample is integrated to the same final time and the effect does not arise. There is no Metropolis
correction.

References: A. Jolicoeur-Martineau, K. Li, R. Piché-Taillefer, T. Kachman & I. Mitliagkas (2021),
"Gotta Go Fast When Generating Data with Score-Based Models" (Algorithm 1; theta = 0.9, r = 0.9,
h_init = 0.01, abs_tol 0.0078); AlexiaJM/score_sde_fast_sampling. C. Rackauckas & Q. Nie (2017),
"Adaptive methods for stochastic differential equations via natural embeddings and rejection
sampling with memory", Discrete Contin. Dyn. Syst. B 22(7).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..kernels import BrownianMemory, batch_shape, error_controlled_move, next_step


@dataclass
class AdaptiveState:
    x: torch.Tensor
    step: torch.Tensor  # per chain (n,): the step the next attempt asks for
    memory: BrownianMemory


@dataclass
class AdaptiveInfo:
    step_size: torch.Tensor  # per chain: the step attempted
    accepted: torch.Tensor  # per chain: 1 if the attempt was accepted
    error: torch.Tensor  # per chain: the scaled error norm


@dataclass
class AdaptiveLangevin:
    initial_step: float = 0.01  # h of every chain's first attempt, in [min_step, max_step] (the reference's h_init)
    abs_tol: float = 0.0078  # absolute floor of delta, in x's units, > 0; smaller: shorter steps, more rejections
    rel_tol: float = 0.0  # delta's part relative to max(|x|, |x_Heun|), >= 0; > 0 pulls samples towards the origin
    safety: float = 0.9  # the factor in h * min(max_growth, safety * err^(-exponent)), in (0, 1]
    exponent: float = 0.9  # the power in h * min(max_growth, safety * err^(-exponent)), > 0
    min_step: float = 1e-6  # least h, > 0; an attempt at it is accepted whatever its error
    max_step: float = 1.0  # largest h, >= min_step
    max_growth: float = 2.0  # most h can grow in one attempt, > 1: a guard against an accidentally tiny err
    memory: int = 8  # pieces of unused Brownian path a chain holds, >= 2; when full, a new one joins the top

    name = "adaptive_langevin"

    def __post_init__(self):
        if not 0 < self.min_step <= self.max_step:
            raise ValueError(f"need 0 < min_step <= max_step, got {self.min_step} and {self.max_step}")
        if not self.min_step <= self.initial_step <= self.max_step:
            raise ValueError(f"initial_step must lie in [min_step, max_step], got {self.initial_step}")
        if not self.abs_tol > 0:
            raise ValueError(f"abs_tol must be > 0, got {self.abs_tol}")
        if not self.rel_tol >= 0:
            raise ValueError(f"rel_tol must be >= 0, got {self.rel_tol}")
        if not 0 < self.safety <= 1:
            raise ValueError(f"safety must be in (0, 1], got {self.safety}")
        if not self.exponent > 0:
            raise ValueError(f"exponent must be > 0, got {self.exponent}")
        if not self.max_growth > 1:
            raise ValueError(f"max_growth must be > 1, got {self.max_growth}")
        if self.memory < 2:
            raise ValueError(f"memory must be >= 2 pieces of Brownian path per chain, got {self.memory}")

    def init(self, x0: torch.Tensor, oracle, budget: float) -> AdaptiveState:
        h = torch.full((x0.shape[0],), self.initial_step, dtype=x0.dtype, device=x0.device)
        return AdaptiveState(x0, h, BrownianMemory.empty(x0, self.memory))

    def step(self, state: AdaptiveState, oracle, generator: torch.Generator):
        x = state.x
        h, dw, memory = state.memory.take(state.step, generator)
        x_new, accept, err = error_controlled_move(x, oracle.score(x), h.reshape(batch_shape(x)), math.sqrt(2) * dw,
                                                   oracle.score, h, self.min_step, self.abs_tol, self.rel_tol)
        h_next = next_step(h, err, self.safety, self.exponent, self.min_step, self.max_step, self.max_growth)
        state = AdaptiveState(x_new, h_next, memory.give_back(h, dw, ~accept))
        return state, AdaptiveInfo(h, accept.to(x.dtype), err)

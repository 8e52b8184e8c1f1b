"""``langevin``: the unadjusted Langevin algorithm with a fixed step.

    x <- x + h * s(x) + sqrt(2h) * z,    z ~ N(0, I)

One score evaluation a step (the score at the new point is kept for the next step). Without a
Metropolis correction it samples a biased distribution: on N(0, v) its stationary variance is
v / (1 - h / (2v)), and it diverges for h >= 2v. Reference: Roberts & Tweedie (1996).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from scorelab.contracts import DrawsFirst

from ..kernels import euler_maruyama, normal_draws, normal_from


@dataclass
class LangevinState:
    x: torch.Tensor
    score: torch.Tensor


@dataclass
class LangevinInfo:
    step_size: float


@dataclass
class Langevin(DrawsFirst):
    step_size: float = 0.01  # the step h of x <- x + h s(x) + sqrt(2h) z, > 0; diverges on N(0, v) for h >= 2v

    keyed_rng = True  # draws with normal_draws: a comparison's rng: keyed makes its noise in the compiled step

    def __post_init__(self):
        if not self.step_size > 0:
            raise ValueError(f"step_size must be > 0, got {self.step_size}")

    def init(self, x0: torch.Tensor, oracle, budget: float) -> LangevinState:
        return LangevinState(x0, oracle.score(x0))

    def draw(self, state: LangevinState, generator: torch.Generator) -> torch.Tensor:
        return normal_draws(state.x, generator)

    def advance(self, state: LangevinState, oracle, draws: torch.Tensor):
        h = self.step_size
        x = euler_maruyama(state.x, state.score, h, normal_from(draws, state.x), fused=True)
        return LangevinState(x, oracle.score(x)), LangevinInfo(h)

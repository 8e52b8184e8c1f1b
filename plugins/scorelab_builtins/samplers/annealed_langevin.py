"""``annealed_langevin``: Langevin dynamics over decreasing noise levels (NCSN).

For sigma_1 > ... > sigma_L (geometric), T steps at each level with step
alpha_i = epsilon * sigma_i^2 / sigma_L^2:

    x <- x + alpha_i * s(x, sigma_i) + sqrt(2 alpha_i) * z

then, optionally, one denoising step x <- x + sigma_L^2 * s(x, sigma_L) (NCSNv2). Large noise
levels let chains cross between separated modes, so mode weights come out right where plain
Langevin keeps the weights of its starting points. One score evaluation a step; unless
``steps_per_level`` is set, the budget is split evenly across levels. The chain finishes when the
schedule ends. References: Song & Ermon (2019); Song & Ermon (2020) for the denoising step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from scorelab.schedules import geometric_sigmas


@dataclass
class AnnealedState:
    x: torch.Tensor
    k: int  # steps taken; the level is k // steps_per_level
    sigmas: list[float]
    steps_per_level: int
    finished: bool = False


@dataclass
class AnnealedInfo:
    sigma: float
    step_size: float


@dataclass
class AnnealedLangevin:
    sigma_max: float = 10.0
    sigma_min: float = 0.01
    levels: int = 10
    epsilon: float = 2e-5
    steps_per_level: int | None = None
    denoise: bool = True

    requires = ("noise_conditional",)

    def __post_init__(self):
        if not 0 < self.sigma_min <= self.sigma_max:
            raise ValueError(f"need 0 < sigma_min <= sigma_max, got {self.sigma_min} and {self.sigma_max}")
        if self.levels < 1:
            raise ValueError(f"levels must be >= 1, got {self.levels}")
        if not self.epsilon > 0:
            raise ValueError(f"epsilon must be > 0, got {self.epsilon}")
        if self.steps_per_level is not None and self.steps_per_level < 1:
            raise ValueError(f"steps_per_level must be >= 1, got {self.steps_per_level}")

    def init(self, x0: torch.Tensor, oracle, budget: float) -> AnnealedState:
        T = self.steps_per_level or int((budget - self.denoise) // self.levels)
        if T < 1:
            raise ValueError(f"a budget of {budget} is too small for {self.levels} levels")
        return AnnealedState(x0, 0, geometric_sigmas(self.sigma_max, self.sigma_min, self.levels), T)

    def step(self, state: AnnealedState, oracle, generator: torch.Generator):
        level, sigma_last = state.k // state.steps_per_level, state.sigmas[-1]
        if level >= len(state.sigmas):  # the schedule is over: one denoising step, then done
            x = state.x + sigma_last**2 * oracle.score(state.x, sigma_last)
            return AnnealedState(x, state.k + 1, state.sigmas, state.steps_per_level, True), AnnealedInfo(
                sigma_last, sigma_last**2
            )
        sigma = state.sigmas[level]
        alpha = self.epsilon * (sigma / sigma_last) ** 2
        z = torch.randn(state.x.shape, generator=generator, device=state.x.device, dtype=state.x.dtype)
        x = state.x + alpha * oracle.score(state.x, sigma) + math.sqrt(2 * alpha) * z
        done = not self.denoise and state.k + 1 >= len(state.sigmas) * state.steps_per_level
        return AnnealedState(x, state.k + 1, state.sigmas, state.steps_per_level, done), AnnealedInfo(sigma, alpha)

"""``probability_flow_ode``: the variance-exploding probability-flow ODE, integrated by scipy.

The VE diffusion's marginals p_sigma = p * N(0, sigma^2 I) are transported deterministically by

    dx / dsigma = -sigma s(x, sigma)

from x ~ N(0, sigma_max^2 I) at sigma_max down to sigma_min, with ``scipy.integrate.solve_ivp``
(adaptive RK45 by default, ``rtol``/``atol`` as given; one step size for all chains, the error norm
taken over the whole batch), then, with ``denoise``, one Tweedie step x <- x + sigma_min^2 s(x,
sigma_min). This is what a diffusion-model user reaches for; like every diffusion sampler it draws
its own start from the wide Gaussian and ignores the chains it is given.

This is the one host-side sampler: the integrator runs in numpy on the CPU, so every evaluation
copies the chains between host and device. The whole integration happens inside the first
``step`` call, which then sets ``state.finished``; its cost is set by the tolerances, not by the
budget, and may exceed it (the counted cost says by how much).

Cost: every right-hand-side evaluation is one NFE through the oracle (their number equals
``solve_ivp``'s ``nfev``), plus 1 NFE for the denoising step. ``init`` costs nothing.

Known bias. Starting from N(0, sigma_max^2 I) instead of p_sigma_max is off by the target's own
mean and spread relative to sigma_max, and stopping at sigma_min leaves the target blurred by
sigma_min (denoising replaces the blur by a shrinkage: on N(mu, v), variance v^2 / (v + sigma_min^2));
on a Gaussian target the map is linear and both effects are exactly computable (the tests do).
Otherwise the error is the integrator's, controlled by rtol/atol.

References: Y. Song, J. Sohl-Dickstein, D. P. Kingma, A. Kumar, S. Ermon & B. Poole (2021),
"Score-Based Generative Modeling through Stochastic Differential Equations", ICLR (probability
flow, Eq. 13; yang-song/score_sde_pytorch ``sampling.py``, RK45 with rtol = atol = 1e-5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.integrate import solve_ivp


@dataclass
class ODEState:
    x: torch.Tensor
    finished: bool = False


@dataclass
class ODEInfo:
    nfe: int  # right-hand-side evaluations of the integrator
    success: float  # 1 if solve_ivp reached sigma_min
    sigma_reached: float


@dataclass
class ProbabilityFlowODE:
    sigma_max: float = 50.0  # start, x ~ N(0, sigma_max^2 I); biased unless it dwarfs the target's mean and spread
    sigma_min: float = 0.01  # end of the ODE: the target blurred by N(0, sigma_min^2 I); 0 < sigma_min < sigma_max
    rtol: float = 1e-5  # solve_ivp's relative tolerance (one error norm over the whole batch), > 0; sets the NFE
    atol: float = 1e-5  # solve_ivp's absolute tolerance, in x's units, > 0
    method: Literal["RK45", "RK23", "DOP853"] = "RK45"  # solve_ivp's explicit Runge-Kutta pair
    denoise: bool = True  # end with the Tweedie step x <- x + sigma_min^2 s(x, sigma_min) (1 NFE)

    name = "probability_flow_ode"
    requires = ("noise_conditional",)
    host_syncs = "scipy's solve_ivp integrates on the host: every right-hand side copies the chains"
    chains_interact = True  # one adaptive step size for the whole batch
    compilable = False  # one step is a whole host-side solve: nothing for a compiler to fuse

    def __post_init__(self):
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {self.sigma_min} and {self.sigma_max}")
        if not (self.rtol > 0 and self.atol > 0):
            raise ValueError(f"rtol and atol must be > 0, got {self.rtol} and {self.atol}")
        if self.method not in ("RK45", "RK23", "DOP853"):
            raise ValueError(f"method must be one of RK45, RK23, DOP853, got {self.method!r}")

    def init(self, x0: torch.Tensor, oracle, budget: float) -> ODEState:
        return ODEState(x0)

    def step(self, state: ODEState, oracle, generator: torch.Generator):
        shape, device, dtype = state.x.shape, state.x.device, state.x.dtype
        z = torch.randn(shape, generator=generator, device=device, dtype=dtype)
        start = (self.sigma_max * z).reshape(-1).cpu().double().numpy()

        def velocity(sigma: float, y: np.ndarray) -> np.ndarray:
            x = torch.from_numpy(y).to(device=device, dtype=dtype).reshape(shape)
            return (-sigma * oracle.score(x, float(sigma))).reshape(-1).cpu().double().numpy()

        sol = solve_ivp(velocity, (self.sigma_max, self.sigma_min), start, method=self.method,
                        rtol=self.rtol, atol=self.atol)
        x = torch.from_numpy(sol.y[:, -1]).to(device=device, dtype=dtype).reshape(shape)
        if self.denoise:
            x = x + self.sigma_min**2 * oracle.score(x, self.sigma_min)
        return ODEState(x, True), ODEInfo(int(sol.nfev), float(sol.success), float(sol.t[-1]))

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

from ._curvature import batch_shape


def error_norm(error: torch.Tensor, x: torch.Tensor, x_new: torch.Tensor, abs_tol: float,
               rel_tol: float) -> torch.Tensor:
    """Per-chain scaled error |E / delta|_2 / sqrt(d), delta = max(abs_tol, rel_tol max(|x|, |x_new|))."""
    delta = torch.maximum(x.abs(), x_new.abs()).mul(rel_tol).clamp(min=abs_tol)
    return (error / delta).flatten(1).square().mean(1).sqrt()


def next_step(h: torch.Tensor, err: torch.Tensor, safety: float, exponent: float, lo: float, hi: float,
              max_growth: float = math.inf) -> torch.Tensor:
    """h <- clip(h * min(max_growth, safety * err^(-exponent)), lo, hi); a non-finite err gives lo."""
    err = torch.nan_to_num(err, nan=torch.inf)
    return (h * (safety * err.pow(-exponent)).clamp(max=max_growth)).clamp(lo, hi)


@dataclass
class BrownianMemory:
    """Pieces of each chain's Brownian path that rejected attempts drew and did not use: a stack of
    (dt, dW) per chain, the nearest piece of the future on top (rejection sampling with memory)."""

    dt: torch.Tensor  # (n, depth)
    dw: torch.Tensor  # (n, depth, *event)
    size: torch.Tensor  # (n,) pieces held

    @classmethod
    def empty(cls, x: torch.Tensor, depth: int) -> BrownianMemory:
        n = x.shape[0]
        return cls(x.new_zeros(n, depth), x.new_zeros(n, depth, *x.shape[1:]),
                   torch.zeros(n, dtype=torch.long, device=x.device))

    def _at(self, index: torch.Tensor):
        """Each chain's piece at slot ``index`` (n,)."""
        rows = torch.arange(index.shape[0], device=index.device)
        return self.dt[rows, index], self.dw[rows, index]

    def _put(self, index: torch.Tensor, dt: torch.Tensor, dw: torch.Tensor, size: torch.Tensor) -> BrownianMemory:
        """A copy with each chain's slot ``index`` set to (dt, dw)."""
        wide = index.reshape((-1, 1) + (1,) * (self.dw.ndim - 2)).expand(-1, 1, *self.dw.shape[2:])
        return BrownianMemory(self.dt.scatter(1, index[:, None], dt[:, None]),
                              self.dw.scatter(1, wide, dw[:, None]), size)

    def take(self, h: torch.Tensor, generator: torch.Generator):
        """(h, dW, memory) for an attempt of length h (per chain, shape (n,)): the top piece when it is
        no longer than h (the step shortens to it), its first h by the Brownian bridge when it is
        longer (the rest stays on top), a fresh N(0, h) draw when the memory is empty."""
        top = (self.size - 1).clamp(min=0)
        top_dt, top_dw = self._at(top)
        xi = torch.randn(top_dw.shape, generator=generator, device=h.device, dtype=top_dw.dtype)
        held = self.size > 0
        split = held & (h < top_dt)
        h = torch.where(held & ~split, top_dt, h)
        w = lambda t: t.reshape(t.shape + (1,) * (top_dw.ndim - 1))  # noqa: E731  per chain, against dW
        frac = h / torch.where(held, top_dt, h)
        bridge = w(frac) * top_dw + w((h * (1 - frac)).clamp(min=0).sqrt()) * xi
        dw = torch.where(w(split), bridge, torch.where(w(held), top_dw, w(h.sqrt()) * xi))
        rest_dt = torch.where(split, top_dt - h, top_dt)
        rest_dw = torch.where(w(split), top_dw - dw, top_dw)
        return h, dw, self._put(top, rest_dt, rest_dw, self.size - (held & ~split).long())

    def give_back(self, h: torch.Tensor, dw: torch.Tensor, rejected: torch.Tensor) -> BrownianMemory:
        """Rejected attempts put their piece back on top. On a full stack the piece is joined to the
        top one, which follows it in time (exact in law: the joint is redrawn by the bridge when split)."""
        depth = self.dt.shape[1]
        full = self.size == depth
        slot = torch.where(full, self.size - 1, self.size).clamp(max=depth - 1)
        old_dt, old_dw = self._at(slot)
        w = lambda t: t.reshape(t.shape + (1,) * (dw.ndim - 1))  # noqa: E731
        new_dt = torch.where(full, h + old_dt, h)
        new_dw = torch.where(w(full), dw + old_dw, dw)
        return self._put(slot, torch.where(rejected, new_dt, old_dt), torch.where(w(rejected), new_dw, old_dw),
                         self.size + (rejected & ~full).long())


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
        hb, noise = h.reshape(batch_shape(x)), math.sqrt(2) * dw  # sqrt(2) dW, dW ~ N(0, h)
        s0 = oracle.score(x)
        x_em = x + hb * s0 + noise
        s1 = oracle.score(x_em)
        x_heun = x + 0.5 * hb * (s0 + s1) + noise
        err = error_norm(x_heun - x_em, x, x_heun, self.abs_tol, self.rel_tol)
        accept = (err <= 1) | (h <= self.min_step)  # at the floor a step is taken whatever its error
        x_new = torch.where(accept.reshape(batch_shape(x)), x_heun, x)
        h_next = next_step(h, err, self.safety, self.exponent, self.min_step, self.max_step, self.max_growth)
        state = AdaptiveState(x_new, h_next, memory.give_back(h, dw, ~accept))
        return state, AdaptiveInfo(h, accept.to(x.dtype), err)

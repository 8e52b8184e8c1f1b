"""Error control of a Langevin step: a per-chain step size chosen by the local error, and the
Brownian memory that keeps the noise exactly Brownian through rejections.

Each attempt makes an Euler–Maruyama and a stochastic Heun step from the same Brownian increment
(``integrators.euler_heun``) and scales their difference E = x_Heun - x_EM:

    delta = max(abs_tol, rel_tol * max(|x|, |x_Heun|))  (elementwise),    err = |E / delta|_2 / sqrt(d)

A chain accepts (moves to x_Heun) when err <= 1, or when its step is at the floor; its next step is
h <- clip(h * min(max_growth, safety * err^(-exponent)), lo, hi) (Jolicoeur-Martineau et al. 2021).

Discarding the increment of a rejected attempt would keep the small increments and refuse the large
ones, truncating the noise; ``BrownianMemory`` keeps each chain's unused future of its Brownian path
instead, and later, shorter attempts take it through the Brownian bridge (rejection sampling with
memory, Rackauckas & Nie 2017).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ._batch import batch_shape
from .integrators import euler_heun


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


def error_controlled_move(x: torch.Tensor, score: torch.Tensor, step, noise: torch.Tensor,
                          score_at: Callable[[torch.Tensor], torch.Tensor], h: torch.Tensor, floor,
                          abs_tol: float, rel_tol: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One attempt per chain: (x after it, accepted (n,), err (n,)). ``step`` is the effective step (h, or h M,
    broadcast against x), ``noise`` sqrt(2M) dW, ``h`` (n,) the step compared with ``floor``: at the floor
    an attempt is taken whatever its error. A rejected chain stays exactly where it was."""
    x_em, x_heun = euler_heun(x, score, step, noise, score_at)
    err = error_norm(x_heun - x_em, x, x_heun, abs_tol, rel_tol)
    accept = (err <= 1) | (h <= floor)
    return torch.where(accept.reshape(batch_shape(x)), x_heun, x), accept, err

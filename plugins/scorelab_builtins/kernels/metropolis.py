"""The Metropolis–Hastings correction of a Gaussian Langevin proposal, for a preconditioner held fixed.

For the proposal y ~ N(x + h M s(x), 2h M) (``integrators.euler_maruyama``), with M the same in both
directions (Girolami & Calderhead 2011, constant-metric case),

    log q(b | a) = -(b - a - h M s(a))^T M^-1 (b - a - h M s(a)) / (4h)    (+ a constant in M)
    log a = log p(y) - log p(x) + log q(x | y) - log q(y | x)
    x <- y with probability min(1, a), else x stays

which leaves p exactly invariant. Each chain accepts or rejects on its own; a proposal whose log
density or score is NaN or infinite is rejected, so a far too large step shows as zero acceptance,
not as a divergence. One uniform per chain is drawn from the run's generator or keyed stream
(``uniform_per_chain``), by the caller or else here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from scorelab import rng

from ._batch import batch_shape


class Corrected(NamedTuple):
    """Where each chain stands after the correction, and what it cost in acceptance."""

    x: torch.Tensor
    score: torch.Tensor
    log_prob: torch.Tensor  # (n,)
    acceptance: torch.Tensor  # (n,): min(1, a)
    accepted: torch.Tensor  # (n,) bool: the proposal was taken


@dataclass
class MetropolisInfo:
    """Per-step diagnostics of a Metropolis sampler whose step may adapt during a warm-up."""

    step_size: torch.Tensor
    acceptance: torch.Tensor  # per chain: min(1, a)
    accepted: torch.Tensor  # per chain: 1 if the proposal was taken
    adapting: float  # 1 during warm-up


def log_proposal(y: torch.Tensor, x: torch.Tensor, score_x: torch.Tensor, h, m=None) -> torch.Tensor:
    """log q(y | x), (n,), up to a constant that cancels when M is the same both ways. ``m``: None
    (M = I, any event shape) or a metric with ``mul`` and ``inv_quad`` on chains flattened to (n, d)."""
    if m is None:
        return -(y - x - h * score_x).flatten(1).square().sum(1) / (4 * h)
    return -m.inv_quad(y - x - h * m.mul(score_x)) / (4 * h)


def metropolis_hastings(x: torch.Tensor, y: torch.Tensor, log_prob_x: torch.Tensor, log_prob_y: torch.Tensor,
                        score_x: torch.Tensor, score_y: torch.Tensor, h,
                        generator: torch.Generator | rng.KeyedStream | None, m=None, *,
                        u: torch.Tensor | None = None) -> Corrected:
    """Accept or reject, per chain, the proposal y made from x with step ``h`` and preconditioner ``m``.
    ``u``: the chains' uniforms, (n,), drawn by the caller (with the proposal's noise, so a compiled
    step's draws come before its arithmetic instead of splitting it); else one is drawn per chain from
    ``generator``, which must then be given.

    >>> x, y = torch.zeros(3, 2), torch.ones(3, 2)
    >>> lp = torch.tensor([0.0, 0.0, math.nan])  # the third proposal is broken
    >>> out = metropolis_hastings(x, y, torch.zeros(3), lp, -x, -y, 1.0, torch.Generator().manual_seed(0))
    >>> out.accepted.tolist(), out.acceptance.tolist()
    ([True, True, False], [1.0, 1.0, 0.0])
    """
    log_a = log_prob_y - log_prob_x + log_proposal(x, y, score_y, h, m) - log_proposal(y, x, score_x, h, m)
    proper = torch.isfinite(log_prob_y) & _all_finite(score_y)
    log_a = torch.where(proper, log_a, -math.inf).nan_to_num(nan=-math.inf)
    if u is None:
        if generator is None:
            raise ValueError("metropolis_hastings needs the chains' uniforms u or a generator to draw them from")
        u = uniform_per_chain(x, generator)
    if rng.is_ticket(u):  # drawn from a keyed stream: the uniforms are made here, in the step's graph
        u = rng.uniform_from(u, tuple(log_a.shape), x.dtype)
    elif u.shape != log_a.shape:
        raise ValueError(f"u must hold one uniform per chain, shape {tuple(log_a.shape)}; got {tuple(u.shape)}")
    accept = torch.log(u) < log_a
    wide = accept.reshape(batch_shape(x))
    return Corrected(torch.where(wide, y, x), torch.where(wide, score_y, score_x),
                     torch.where(accept, log_prob_y, log_prob_x), log_a.clamp(max=0).exp(), accept)


def _all_finite(v: torch.Tensor) -> torch.Tensor:
    """Per chain, whether every coordinate of ``v`` is finite: its largest |v| is below infinity (NaN
    fails the comparison). One reduction: ``isfinite(v).all(1)`` compiles to per-element mask
    conversions, and ``(0 * v).sum(1) == 0`` is folded by the compiler to True (0 * v taken as 0)."""
    return v.flatten(1).abs().amax(1) < math.inf


def uniform_per_chain(x: torch.Tensor, generator: torch.Generator | rng.KeyedStream) -> torch.Tensor:
    """One uniform in [0, 1) per chain of ``x``, (n,), for the accept/reject decision (from a keyed
    stream, its ticket: :func:`metropolis_hastings` makes the uniforms)."""
    return rng.uniform_draws(tuple(x.shape[:1]), x, generator)

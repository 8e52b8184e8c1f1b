"""Step-size adaptation by dual averaging towards a target acceptance rate (Hoffman & Gelman 2014, Alg. 5).

With t >= 1 the iteration since the adaptation (re)started and a_t the acceptance probability it
observed,

    H_t = (1 - 1/(t + t0)) H_{t-1} + (target - a_t) / (t + t0)
    log h_t = mu - sqrt(t) / gamma * H_t
    log hbar_t = t^-kappa log h_t + (1 - t^-kappa) log hbar_{t-1}

h_t is the step to use next; hbar_t, the weighted average of the iterates, is the step to freeze at
the end. ``mu`` is where log h is shrunk towards, log(10 h_0) by convention: it pulls the first
iterates up, so a too-small start is outgrown within a few steps. H_0 = 0; hbar_0 does not matter
(t^-kappa = 1 at t = 1). The defaults are Hoffman & Gelman's, used by Stan and BlackJAX
(``adaptation/step_size.py``). Works on tensors without reading them on the host.

``dual_averaging_update`` is the arithmetic; ``DualAveraging`` runs it over a warm-up with its own
small state (``DualAveragingState``), so a Metropolis sampler composes it rather than carrying it:

    adaptation = DualAveraging(target_accept=0.574)
    state = adaptation.init(log_h0, mu=math.log(10 * h0))
    state, adapting = adaptation.warmup(state, acceptance.mean(), k, warmup)   # each step k = 1, 2, ...
    h = state.log_step.exp()                                                   # the step to use next
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

T0, GAMMA, KAPPA = 10.0, 0.05, 0.75


def dual_averaging_update(
    accept_error: torch.Tensor,
    log_step_avg: torch.Tensor,
    acceptance: torch.Tensor,
    t: int,
    *,
    mu: torch.Tensor | float,
    target: float,
    t0: float = T0,
    gamma: float = GAMMA,
    kappa: float = KAPPA,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One dual-averaging iteration; returns (log h_t, log hbar_t, H_t).

    ``accept_error`` is H_{t-1}, ``log_step_avg`` log hbar_{t-1}, ``acceptance`` a_t (a 0-dim tensor, e.g.
    the acceptance probability averaged over chains), ``t`` >= 1 a Python int counted from the last
    restart (restart: H = 0 and t = 1 again, with a new ``mu``).

    >>> import math
    >>> log_h, log_hbar, H = dual_averaging_update(torch.tensor(0.0), torch.tensor(0.0), torch.tensor(0.9), 1,
    ...                                            mu=math.log(10.0), target=0.574)
    >>> round(float(H), 4), round(float(log_h - math.log(10.0)), 4), bool(log_hbar == log_h)
    (-0.0296, 0.5927, True)
    """
    if t < 1:
        raise ValueError(f"t must be >= 1 (iterations since the adaptation started), got {t}")
    w = 1.0 / (t + t0)
    accept_error = (1 - w) * accept_error + w * (target - acceptance)
    log_step = mu - math.sqrt(t) / gamma * accept_error
    eta = t ** (-kappa)
    log_step_avg = eta * log_step + (1 - eta) * log_step_avg
    return log_step, log_step_avg, accept_error


def check_fields(target_accept: float, t0: float, gamma: float, kappa: float) -> None:
    """The checks every sampler adapting by dual averaging makes, with errors naming the field."""
    if not 0 < target_accept < 1:
        raise ValueError(f"target_accept must be in (0, 1), got {target_accept}")
    if not t0 >= 0:
        raise ValueError(f"t0 must be >= 0, got {t0}")
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    if not 0.5 < kappa <= 1:
        raise ValueError(f"kappa must be in (0.5, 1] for the averaged step to converge, got {kappa}")


@dataclass
class DualAveragingState:
    log_step: torch.Tensor  # 0-dim: log h_t, the step in use
    log_step_avg: torch.Tensor  # 0-dim: log hbar_t, the averaged log step, frozen in at the end
    accept_error: torch.Tensor  # 0-dim: H_t, the averaged shortfall of the acceptance from its target
    mu: torch.Tensor | float  # where log h is shrunk to
    t: int  # iterations since the (re)start


@dataclass(frozen=True)
class DualAveraging:
    """Dual averaging's constants (the module docstring); checked as a sampler's fields are."""

    target_accept: float = 0.574
    t0: float = T0
    gamma: float = GAMMA
    kappa: float = KAPPA

    def __post_init__(self):
        check_fields(self.target_accept, self.t0, self.gamma, self.kappa)

    def init(self, log_step: torch.Tensor, mu: torch.Tensor | float) -> DualAveragingState:
        """Start at the 0-dim ``log_step``, shrinking towards ``mu`` (log(10 h_0) by convention)."""
        return DualAveragingState(log_step, log_step.clone(), torch.zeros_like(log_step), mu, 0)

    def update(self, state: DualAveragingState, acceptance: torch.Tensor) -> DualAveragingState:
        """One iteration on the observed ``acceptance`` (0-dim)."""
        t = state.t + 1
        log_step, log_step_avg, accept_error = dual_averaging_update(
            state.accept_error, state.log_step_avg, acceptance, t, mu=state.mu, target=self.target_accept,
            t0=self.t0, gamma=self.gamma, kappa=self.kappa)
        return DualAveragingState(log_step, log_step_avg, accept_error, state.mu, t)

    def warmup(self, state: DualAveragingState, acceptance: torch.Tensor, k: int,
               warmup: int) -> tuple[DualAveragingState, bool]:
        """(state, adapting) after step ``k`` >= 1 of a run that adapts for ``warmup`` steps (Python ints:
        the schedule, not the data, decides): updated while k <= warmup, the averaged step frozen in at
        k = warmup, untouched after."""
        if k > warmup:
            return state, False
        state = self.update(state, acceptance)
        return (replace(state, log_step=state.log_step_avg) if k == warmup else state), True

    def restart(self, state: DualAveragingState) -> DualAveragingState:
        """Start again from the averaged step, shrinking towards log(10 hbar) (as Stan does after a metric
        window): the step in use is hbar, H = 0, t = 0."""
        avg = state.log_step_avg
        return DualAveragingState(avg, avg, torch.zeros_like(state.accept_error), avg + math.log(10), 0)

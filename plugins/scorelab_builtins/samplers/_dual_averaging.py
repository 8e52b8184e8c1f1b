"""Dual averaging of a step size towards a target acceptance rate (Hoffman & Gelman 2014, Algorithm 5).

One pure function, so any adaptive sampler states the same arithmetic once. With t >= 1 the
iteration since the adaptation (re)started and a_t the acceptance probability it observed,

    H_t = (1 - 1/(t + t0)) H_{t-1} + (target - a_t) / (t + t0)
    log h_t = mu - sqrt(t) / gamma * H_t
    log hbar_t = t^-kappa log h_t + (1 - t^-kappa) log hbar_{t-1}

h_t is the step to use next; hbar_t, the weighted average of the iterates, is the step to freeze at
the end. ``mu`` is where log h is shrunk towards, log(10 h_0) by convention: it pulls the first
iterates up, so a too-small start is outgrown within a few steps. H_0 = 0; hbar_0 does not matter
(t^-kappa = 1 at t = 1). The defaults are Hoffman & Gelman's, used by Stan and BlackJAX
(``adaptation/step_size.py``). Works on tensors without reading them on the host.
"""

from __future__ import annotations

import math

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

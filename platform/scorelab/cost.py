"""Cost weights timed on the run's own device: what a VJP, a JVP and an exact curvature call cost,
in score evaluations, for the actual score source and batch."""

from __future__ import annotations

import statistics
import time

import torch

from .device import synchronize
from .oracle import CostWeights, ScoreOracle


def _timed(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up: allocations, kernel selection
    times = []
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure_cost_weights(source, x: torch.Tensor, repeats: int = 7) -> CostWeights:
    """Median wall time of each call kind over ``repeats`` runs, divided by a score evaluation's."""
    oracle = ScoreOracle(source)
    sigma = None
    v = torch.ones_like(x)
    t_score = _timed(lambda: oracle.score(x, sigma), x.device, repeats)
    t_vjp = _timed(lambda: oracle.vjp(x, v, sigma), x.device, repeats)
    t_jvp = _timed(lambda: oracle.jvp(x, v, sigma), x.device, repeats)
    t_curv = (
        _timed(lambda: oracle.exact_hess_diag(x, sigma), x.device, repeats)
        if "exact_hess_diag" in oracle.provides else t_score
    )
    return CostWeights(vjp=t_vjp / t_score, jvp=t_jvp / t_score, curvature=t_curv / t_score)

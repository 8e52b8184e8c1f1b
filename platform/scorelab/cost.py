"""Cost weights timed on the run's own device: what a VJP, a JVP and an exact curvature call cost,
in score evaluations, for the actual score source and batch.

A VJP or JVP is timed the way the built-in samplers make one: as a Hutchinson probe (draw a
Rademacher vector, take the product, multiply), and as a bare product; the weight is the larger.
Both return the score on the way, so neither can honestly cost less than one score evaluation:
the weights are floored at 1 (on tiny batches timing noise can say otherwise). A noise-conditional
source is timed at a noise level, since that is how annealed and ODE samplers call it.
"""

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
    sigma = 1.0 if "noise_conditional" in oracle.provides else None
    v = torch.ones_like(x)
    g = torch.Generator(x.device).manual_seed(0)
    device = x.device

    def probe(mode):
        return lambda: oracle.hess_diag(x, sigma, probes=1, generator=g, mode=mode)

    t_score = _timed(lambda: oracle.score(x, sigma), device, repeats)
    t_vjp = max(_timed(lambda: oracle.vjp(x, v, sigma), device, repeats), _timed(probe("vjp"), device, repeats))
    t_jvp = max(_timed(lambda: oracle.jvp(x, v, sigma), device, repeats), _timed(probe("jvp"), device, repeats))
    t_curv = (
        _timed(lambda: oracle.exact_hess_diag(x, sigma), device, repeats)
        if "exact_hess_diag" in oracle.provides else t_score
    )
    return CostWeights(vjp=max(1.0, t_vjp / t_score), jvp=max(1.0, t_jvp / t_score), curvature=t_curv / t_score)

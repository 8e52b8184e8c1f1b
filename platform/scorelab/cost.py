"""Cost weights timed on the run's own device: what a VJP, a JVP and an exact curvature call cost,
in score evaluations, for the actual score source and batch.

A VJP or JVP is timed the way the built-in samplers make one: as a Hutchinson probe (draw a
Rademacher vector, take the product, multiply), and as a bare product; the weight is the larger.
Both return the score on the way, so neither can honestly cost less than one score evaluation:
the weights are floored at 1 (on tiny batches timing noise can say otherwise). A noise-conditional
source is timed at a noise level, since that is how annealed and ODE samplers call it. A source
without an exact curvature is charged 1 for it (no call of that kind can be made).

Timing is made to survive a loaded machine (separate medians per kind varied up to 7x between runs on
a busy 2-core CPU). Every call kind is warmed up, then repeated a fixed number of times per sample,
chosen once so a sample lasts at least ``min_seconds`` (a single call is too short to time). Each
round times every kind once, in an order rotated from round to round, and divides by the score's
time in the same round: a change in load between rounds hits numerator and denominator alike. The
weight is the median over rounds of these ratios; their quartiles are kept as its spread.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter

import numpy as np
import torch

from .device import synchronize
from .oracle import CostWeights, ScoreOracle

_SPREAD = (0.25, 0.75)  # quantiles of the per-round ratios reported as a weight's spread


@dataclass(frozen=True)
class WeightMeasurement:
    """Measured cost weights with how much the per-round ratios behind them varied.

    ``spread[kind]`` is (low, high): the quartiles of the per-round ratios, so low <= weight <= high.
    ``repeats[kind]`` is how many calls one timed sample made.
    """

    weights: CostWeights
    spread: dict[str, tuple[float, float]]
    rounds: int
    repeats: dict[str, int]

    def as_params(self) -> dict[str, float]:
        """Flat names for a tracker: ``cost_weight.vjp``, ``cost_weight.vjp.low``, ``cost_weight.vjp.high``, ..."""
        params = {}
        for kind, (low, high) in self.spread.items():
            params[f"cost_weight.{kind}"] = getattr(self.weights, kind)
            params[f"cost_weight.{kind}.low"] = low
            params[f"cost_weight.{kind}.high"] = high
        return params


def _sample(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Wall time of ``repeats`` calls, the device's queue drained before and after."""
    synchronize(device)
    t0 = perf_counter()
    for _ in range(repeats):
        fn()
    synchronize(device)
    return perf_counter() - t0


def _calibrate(fn: Callable[[], object], device: torch.device, min_seconds: float) -> int:
    """Calls per sample so one lasts at least ``min_seconds``: grow until it does (at most 10x a step,
    so one slow call under load cannot make a sample absurdly long)."""
    repeats = 1
    while (elapsed := _sample(fn, repeats, device)) < min_seconds:
        wanted = math.ceil(1.2 * repeats * min_seconds / max(elapsed, 1e-9))
        repeats = min(10 * repeats, max(repeats + 1, wanted))
    return repeats


def _calls(oracle: ScoreOracle, x: torch.Tensor, sigma) -> dict[str, Callable[[], object]]:
    """The calls timed, by name: the score, both ways of making each product, the exact curvature."""
    v = torch.ones_like(x)
    g = torch.Generator(x.device).manual_seed(0)

    def probe(mode):
        return lambda: oracle.hess_diag(x, sigma, probes=1, generator=g, mode=mode)

    calls = {"score": lambda: oracle.score(x, sigma),
             "vjp": lambda: oracle.vjp(x, v, sigma), "vjp_probe": probe("vjp"),
             "jvp": lambda: oracle.jvp(x, v, sigma), "jvp_probe": probe("jvp")}
    if "exact_hess_diag" in oracle.provides:
        calls["curvature"] = lambda: oracle.exact_hess_diag(x, sigma)
    return calls


def _ratios(calls: dict, repeats: dict[str, int], rounds: int, device: torch.device) -> dict[str, np.ndarray]:
    """Per round, each kind's time per call over the score's in the same round (order rotated each round)."""
    names = list(calls)
    per_call = {name: np.empty(rounds) for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            per_call[name][r] = _sample(calls[name], repeats[name], device) / repeats[name]
    return {name: t / per_call["score"] for name, t in per_call.items() if name != "score"}


def _summary(ratios: np.ndarray, floor: float | None) -> tuple[float, tuple[float, float]]:
    """(median, (low, high) quantiles); flooring each ratio first keeps low <= median <= high."""
    if floor is not None:
        ratios = np.maximum(ratios, floor)
    low, median, high = np.quantile(ratios, [_SPREAD[0], 0.5, _SPREAD[1]])
    return float(median), (float(low), float(high))


def _measurement(ratios: dict[str, np.ndarray], rounds: int, repeats: dict[str, int]) -> WeightMeasurement:
    """Weights and spreads from the per-round ratios: VJP and JVP the dearer of bare product and probe,
    floored at 1; curvature its own, or 1 where the source has none."""
    summaries = {kind: max(_summary(ratios[kind], 1.0), _summary(ratios[f"{kind}_probe"], 1.0), key=lambda s: s[0])
                 for kind in ("vjp", "jvp")}
    summaries["curvature"] = _summary(ratios["curvature"], None) if "curvature" in ratios else (1.0, (1.0, 1.0))
    weights = CostWeights(**{kind: median for kind, (median, _) in summaries.items()})
    return WeightMeasurement(weights, {kind: spread for kind, (_, spread) in summaries.items()}, rounds, repeats)


def measure_cost_weights(source, x: torch.Tensor, *, rounds: int = 15, min_seconds: float = 0.02) -> WeightMeasurement:
    """Median over ``rounds`` interleaved rounds of each call kind's time over a score evaluation's.

    At least ``6 * rounds * min_seconds`` of timing plus calibration: 2-4 s with the defaults on a
    busy 2-core CPU. ``min_seconds=0`` makes one call per sample.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    oracle = ScoreOracle(source)
    sigma = 1.0 if "noise_conditional" in oracle.provides else None
    calls = _calls(oracle, x, sigma)
    for fn in calls.values():
        _sample(fn, 1, x.device)  # warm-up: allocations, kernel selection, torch.func's first-call setup
    # The garbage collector stays on: torch.func's products leave reference cycles, and without
    # collections their memory piles up and slows every kind (2-6x, measured). A full collection now
    # keeps one (about 100 ms with torch loaded) from landing on a sample.
    gc.collect()
    repeats = {name: _calibrate(fn, x.device, min_seconds) for name, fn in calls.items()}
    return _measurement(_ratios(calls, repeats, rounds, x.device), rounds, repeats)

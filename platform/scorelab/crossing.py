"""Where quality is reached, to the step: the cost at which a run's primary metric falls under its
threshold for good, known far better than the checkpoint grid (spaced ~1.5x apart) would say.

Two ways, one per kind of sampler:

- **Replay** (samplers that step until the budget runs out). The runner keeps a snapshot (state,
  generator state, calls so far) at the last checkpoint where the metric was still above the
  threshold. If the run then stays under it to the end, the segment from that snapshot to the next
  checkpoint is run again with the primary metric evaluated on a fine grid (points ``resolution``
  apart in relative cost). Same state, same generator, same device: the replay is the same
  trajectory, and it is checked to be, by landing on the logged checkpoint's cost and value; a
  sampler that does not reproduce keeps its checkpoint resolution and says so.
- **Budget ladder** (``budget_bound`` samplers, e.g. annealed Langevin splitting its schedule
  over the budget): a point on one run's curve is not what the sampler needs at that cost, so the
  sampler is run again at smaller budgets, bisecting in log-budget between a budget that misses
  and one that reaches until they are ``resolution`` apart. Each run contributes one point
  (its final cost, its final primary metric); this assumes quality improves with the budget,
  which the points themselves show.

Both return extra points of the primary curve, with their call counts; merged into the curve,
:func:`scorelab.efficiency.cost_to_reach` reads the refined crossing with no special case.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .chain import Checkpoint
from .compiled import settled_mode
from .oracle import Counts, ScoreOracle
from .rng import KeyedStream, fork
from .stepping import Stepper, Stepping

Point = tuple[float, float, Counts]  # (cost, metric value, calls so far)


@dataclass
class Snapshot:
    """Everything a replay needs to continue a run exactly from a checkpoint."""

    state: Any
    generator: torch.Generator | KeyedStream  # a copy of the run's, as it stood at the checkpoint
    cost: float
    counts: Counts
    stepping: Stepping

    @classmethod
    def take(cls, checkpoint: Checkpoint, generator: torch.Generator | KeyedStream) -> Snapshot:
        return cls(copy.deepcopy(checkpoint.state), fork(generator), checkpoint.cost,
                   dataclasses.replace(checkpoint.counts), checkpoint.stepping or Stepping())


def replay(sampler: Any, source: Any, weights, snapshot: Snapshot, until: tuple[float, float],
           metric: Callable[[torch.Tensor], float], resolution: float, compile: str = "none") -> list[Point] | None:
    """Re-run from ``snapshot`` to the checkpoint ``until`` = (cost, value), evaluating ``metric`` at
    costs ``resolution`` apart (relative). None when the replay does not land on ``until`` exactly
    (a sampler whose step is not reproducible from its state and generator). ``compile``: the run's mode.

    The replay steps as the run did (:mod:`scorelab.stepping`): the oracle resumes the run's counts,
    so its costs are the run's to the bit, and calls of several steps give every step's chains (their
    graph has that output where the run's had a trace's or none: the same arithmetic, checked by
    landing on ``until``)."""
    oracle = ScoreOracle(source, weights, snapshot.counts)
    generator = fork(snapshot.generator)
    state = copy.deepcopy(snapshot.state)
    end_cost, end_value = until
    points: list[Point] = []
    next_at = snapshot.cost * (1 + resolution)
    stepper = Stepper(sampler, settled_mode(sampler, compile, state.x), state.x.device, project=_chains,
                      stepping=snapshot.stepping)
    while oracle.cost < end_cost:
        moved = stepper(state, oracle, generator, snapshot.stepping.stop)
        state = moved.state
        for cost, counts, x in zip(moved.costs, moved.counts, moved.records, strict=True):
            if counts is not None and (cost >= next_at or cost >= end_cost):
                points.append((cost, metric(x), counts))
                next_at = cost * (1 + resolution)
    if not points or points[-1][0] != end_cost or not _same(points[-1][1], end_value):
        return None
    return points[:-1]


def _chains(x: torch.Tensor) -> torch.Tensor:
    """A step's chains as its record: the replay evaluates the metric on them."""
    return x


def _same(a: float, b: float) -> bool:
    return a == b or (math.isfinite(a) and math.isfinite(b) and abs(a - b) <= 1e-9 * max(abs(a), abs(b)))


def budget_ladder(run_at: Callable[[float], Point | None], budget: float, threshold: float, *,
                  smallest: float, resolution: float) -> list[Point]:
    """Bisect in log-budget for the least budget whose run ends under ``threshold``.

    ``run_at(b)`` runs the sampler with budget ``b`` and returns its final (cost, value, counts), or
    None when the sampler cannot run at that budget (too small for its schedule). Called only after
    the full budget has been seen to reach: the ladder starts at ``smallest``, and stops when the
    bracketing budgets are within ``1 + resolution`` of each other.
    """
    points: list[Point] = []

    def reaches(b: float) -> bool:
        point = run_at(b)
        if point is None:
            return False
        points.append(point)
        return point[1] <= threshold

    lo, hi = smallest, budget
    if reaches(lo):
        return points
    while hi / lo > 1 + resolution:
        mid = math.sqrt(lo * hi)
        if reaches(mid):
            hi = mid
        else:
            lo = mid
    return points

"""From run records to the comparison's answer: best settings (from tuning runs only), quality at
the budget, cost to reach quality, and speedup over the baseline with bootstrap intervals.

A comparison builds ``RunRecord``s in memory; ``scorelab report`` rebuilds the same records from
MLflow. Both go through :func:`analyse`, so the report reproduces the original table exactly.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from .efficiency import NOT_REACHED, bootstrap_ratio, cost_to_reach, value_at


@dataclass
class RunRecord:
    """One child run: a sampler setting on one seed, in the tuning or the evaluation phase."""

    label: str
    sampler: str
    seed: int
    role: str  # "tuning" or "evaluation"
    status: str  # FINISHED, FAILED, KILLED
    run_id: str = ""
    cost: float = 0.0
    diverged_at: float | None = None
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # metric -> [(cost, value)]
    wall: list[tuple[int, float]] = field(default_factory=list)  # [(cost, seconds sampling)]

    @property
    def ok(self) -> bool:
        return self.status == "FINISHED" and self.diverged_at is None

    def final(self, metric: str) -> float:
        curve = self.curves.get(metric)
        return curve[-1][1] if self.ok and curve else math.nan


@dataclass
class Study:
    """What the analysis needs from the config, and the floors measured for this comparison."""

    metrics: list[str]
    primary: str
    multiple: float
    baseline: str | None
    floors: dict[str, float]

    def threshold(self, metric: str) -> float | None:
        floor = self.floors.get(metric, math.nan)
        return self.multiple * floor if floor > 0 else None  # a floor <= 0 (unbiased estimates) gives no threshold

    def cost_to_quality(self, run: RunRecord, metric: str) -> float:
        t = self.threshold(metric)
        if t is None:
            return math.nan
        return cost_to_reach(run.curves.get(metric, []), t) if run.ok else NOT_REACHED


def select_best(tuning: list[RunRecord], study: Study) -> dict[str, str]:
    """Best setting per sampler from tuning runs alone: least mean cost to reach quality on the
    primary metric (a setting that misses on any seed counts as never reaching), ties and misses
    broken by the mean primary metric at the budget."""
    by_sampler: dict[str, dict[str, list[RunRecord]]] = defaultdict(lambda: defaultdict(list))
    for run in tuning:
        by_sampler[run.sampler][run.label].append(run)
    best = {}
    for sampler, settings in by_sampler.items():
        def key(label, settings=settings):
            runs = settings[label]
            costs = [study.cost_to_quality(r, study.primary) for r in runs]
            finals = [r.final(study.primary) for r in runs]
            mean_cost = statistics.fmean(costs) if costs and not any(math.isnan(c) for c in costs) else math.inf
            mean_final = statistics.fmean(finals) if not any(math.isnan(f) for f in finals) else math.inf
            return (mean_cost, mean_final, label)

        best[sampler] = min(settings, key=key)
    return best


def _mean_sd(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    if any(math.isinf(v) for v in values):
        return math.inf, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


@dataclass
class Row:
    sampler: str
    label: str
    runs: int
    ok: int
    final: dict[str, tuple[float, float]]  # metric -> (mean, sd) at the budget, over seeds that finished
    cost_to_quality: tuple[float, float]  # primary metric, (mean, sd); inf when some seed missed
    reached: int
    wall_to_quality: tuple[float, float]
    speedup_cost: tuple[float, float, float]  # ratio, low, high (nan when not computable)
    speedup_wall: tuple[float, float, float]


def analyse(evaluation: list[RunRecord], study: Study) -> list[Row]:
    """The headline table: one row per sampler, from evaluation runs only."""
    groups: dict[str, list[RunRecord]] = defaultdict(list)
    for run in evaluation:
        groups[run.sampler].append(run)

    def costs(runs):
        return [study.cost_to_quality(r, study.primary) for r in runs]

    def walls(runs):
        return [value_at(r.wall, c) if math.isfinite(c) else c for r, c in zip(runs, costs(runs), strict=True)]

    base = groups.get(study.baseline or "", [])
    rows = []
    for sampler, runs in groups.items():
        c = costs(runs)
        reached = sum(math.isfinite(x) for x in c)
        ctq = _mean_sd(c) if reached == len(runs) else (NOT_REACHED, math.nan)
        w = walls(runs)
        wtq = _mean_sd(w) if reached == len(runs) else (NOT_REACHED, math.nan)
        rows.append(Row(
            sampler=sampler, label=runs[0].label, runs=len(runs), ok=sum(r.ok for r in runs),
            final={m: _mean_sd([r.final(m) for r in runs]) for m in study.metrics},
            cost_to_quality=ctq, reached=reached, wall_to_quality=wtq,
            speedup_cost=bootstrap_ratio(costs(base), c) if base else (math.nan,) * 3,
            speedup_wall=bootstrap_ratio(walls(base), w) if base else (math.nan,) * 3,
        ))
    return rows


def tuning_table(tuning: list[RunRecord], best: dict[str, str], study: Study) -> list[tuple[str, bool, float, float]]:
    """(setting, selected, mean cost to quality, mean primary metric at budget) for every tuned setting."""
    groups: dict[str, list[RunRecord]] = defaultdict(list)
    for run in tuning:
        groups[run.label].append(run)
    chosen = set(best.values())
    return [(label, label in chosen, _mean_sd([study.cost_to_quality(r, study.primary) for r in runs])[0],
             _mean_sd([r.final(study.primary) for r in runs])[0]) for label, runs in groups.items()]

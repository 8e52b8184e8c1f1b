"""From run records to the comparison's answer: best settings (from tuning runs only), quality at
the budget, cost to reach quality as a censored time-to-event, and speedups over the baseline
paired by seed.

A comparison builds ``RunRecord``s in memory; ``scorelab report`` rebuilds the same records from
MLflow. Both go through :func:`analyse`, so the report reproduces the original table exactly, and
:func:`reprice` lets either be re-costed with other weights from the call counts logged at every
point of every curve.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from .efficiency import NOT_REACHED, cost_to_reach, interpolate, median, median_interval, paired_speedup
from .oracle import CostWeights, Counts, price


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
    counts: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)  # cost -> (nfe, vjp, jvp, curvature)
    ess: float = math.nan  # min bulk ESS of the traced projections, per 1000 cost units
    budget_points: bool = False  # its curves hold one run per budget (a budget ladder), not one run's checkpoints

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
    budget: float = math.inf
    resolution: float = 0.0  # relative resolution of a crossing's cost (0: to the checkpoint)

    def threshold(self, metric: str) -> float | None:
        floor = self.floors.get(metric, math.nan)
        return self.multiple * floor if floor > 0 else None  # a floor <= 0 (unbiased estimates) gives no threshold

    def cost_to_quality(self, run: RunRecord, metric: str) -> float:
        t = self.threshold(metric)
        if t is None:
            return math.nan
        return cost_to_reach(run.curves.get(metric, []), t) if run.ok else NOT_REACHED


def reprice(records: list[RunRecord], weights: CostWeights, budget: float) -> list[RunRecord]:
    """The records as if the comparison had been priced with ``weights``: every point's cost is
    recomputed from the call counts logged with it, and points past ``budget`` are dropped (every
    sampler is held to the same budget). Refused for records without counts at their points."""
    out = []
    for r in records:
        missing = {c for curve in r.curves.values() for c, _ in curve} - r.counts.keys()
        if missing:
            raise ValueError(f"run {r.run_id or r.label} has no call counts at costs {sorted(missing)[:3]}...: it was "
                             "logged before counts were kept at every checkpoint, so it cannot be re-priced")

        def cost(c, r=r):
            return round(price(Counts(*r.counts[c]), weights))

        def move(curve):
            return [(cost(c), v) for c, v in curve if cost(c) <= budget]

        wall = [(cost(c), v) for c, v in r.wall if c in r.counts and cost(c) <= budget]
        out.append(dataclasses.replace(r, curves={m: move(curve) for m, curve in r.curves.items()}, wall=wall,
                                       counts={cost(c): n for c, n in r.counts.items()}))
    return out


def _tuning_key(runs: list[RunRecord], study: Study) -> tuple:
    """Healthy settings first, then the least median cost to quality, then the least median final value."""
    healthy = all(r.ok for r in runs)
    cost = median([study.cost_to_quality(r, study.primary) for r in runs])
    finals = [r.final(study.primary) for r in runs]
    final = median(finals) if not any(math.isnan(f) for f in finals) else math.inf
    return (not healthy, cost if not math.isnan(cost) else math.inf, final)


def in_plan_order(records: list[RunRecord], labels: list[str], tuning_seeds: list[int],
                  seeds: list[int]) -> list[RunRecord]:
    """``records`` in the order a comparison plans its children: tuning, then evaluation; by setting (in
    ``labels``' order), then seed. A comparison run in one go has them so (either executor); a resumed
    one runs its children that never ended last."""
    setting = {label: i for i, label in enumerate(labels)}
    order = {"tuning": list(tuning_seeds), "evaluation": list(seeds)}

    def key(r: RunRecord) -> tuple:
        known = order.get(r.role, [])
        return (r.role != "tuning", setting.get(r.label, len(setting)),
                known.index(r.seed) if r.seed in known else len(known))

    return sorted(records, key=key)


def select_best(tuning: list[RunRecord], study: Study) -> dict[str, str | None]:
    """Best setting per sampler from tuning runs alone: the least median cost to reach quality on the
    primary metric over the tuning seeds (censored seeds counted as such), ties broken by the median
    primary metric at the budget. A setting whose run diverged or failed on any tuning seed is never
    preferred to one that did not; a sampler whose every setting did gets None: it is not evaluated."""
    by_sampler: dict[str, dict[str, list[RunRecord]]] = defaultdict(lambda: defaultdict(list))
    for run in tuning:
        by_sampler[run.sampler][run.label].append(run)
    best: dict[str, str | None] = {}
    for sampler, settings in by_sampler.items():
        label = min(settings, key=lambda lab, s=settings: (*_tuning_key(s[lab], study), lab))
        best[sampler] = label if _tuning_key(settings[label], study)[0] is False else None
    return best


@dataclass
class Row:
    sampler: str
    label: str
    runs: int
    ok: int
    final: dict[str, tuple[float, float]]  # metric -> (mean, sd) at the budget, over seeds that finished
    reached: int
    cost_to_quality: tuple[float, float, float, float]  # primary metric: median, low, high, achieved level
    wall_to_quality: float  # median seconds of sampling up to the crossing (inf when censored)
    speedup_cost: tuple[float, float, float]  # ratio, low, high (nan when not computable)
    speedup_wall: tuple[float, float, float]
    seed_costs: dict[int, float]  # per evaluation seed, inf when censored at the budget
    ess: float = math.nan  # median over seeds of min bulk ESS per 1000 cost units
    # Where the baseline's median is censored (speedup_cost is inf): the speedup's lower bound, the
    # baseline's median with each censored cost put at the budget, over this row's median.
    speedup_bound: float = math.nan
    spent: float = math.nan  # median over seeds of the cost a run ended at (its last step may pass the budget)


def swept(rows: list[str]) -> set[str]:
    """The rows tuned, given each setting's row: those with more than one setting."""
    return {row for row in rows if rows.count(row) > 1}


def _mean_sd(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    if any(math.isinf(v) for v in values):
        return math.inf, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _paired(base: dict[int, float], other: dict[int, float]) -> tuple[float, float, float]:
    seeds = sorted(base.keys() & other.keys())
    return paired_speedup([base[s] for s in seeds], [other[s] for s in seeds])


def _bound(base: dict[int, float], other: dict[int, float], budget: float) -> float:
    """A lower bound on median(base) / median(other) over the paired seeds, the base's censored costs
    taken at the budget they are known to exceed."""
    seeds = sorted(base.keys() & other.keys())
    ours = median([other[s] for s in seeds])  # 0 where the starting chains are already of quality
    return median([min(base[s], budget) for s in seeds]) / ours if ours > 0 else math.inf


def analyse(evaluation: list[RunRecord], study: Study) -> list[Row]:
    """The headline table: one row per sampler, from evaluation runs only."""
    groups: dict[str, list[RunRecord]] = defaultdict(list)
    for run in evaluation:
        groups[run.sampler].append(run)

    def costs(runs) -> dict[int, float]:
        return {r.seed: study.cost_to_quality(r, study.primary) for r in runs}

    def walls(runs) -> dict[int, float]:
        return {r.seed: interpolate(r.wall, c) for r, c in zip(runs, costs(runs).values(), strict=True)}

    base = groups.get(study.baseline or "", [])
    rows = []
    for sampler, runs in groups.items():
        c = costs(runs)
        speedup = _paired(costs(base), c) if base else (math.nan,) * 3
        rows.append(Row(
            sampler=sampler, label=runs[0].label, runs=len(runs), ok=sum(r.ok for r in runs),
            final={m: _mean_sd([r.final(m) for r in runs]) for m in study.metrics},
            reached=sum(math.isfinite(x) for x in c.values()), cost_to_quality=median_interval(list(c.values())),
            wall_to_quality=median(list(walls(runs).values())),
            speedup_cost=speedup,
            speedup_wall=_paired(walls(base), walls(runs)) if base else (math.nan,) * 3,
            seed_costs=c, ess=median([r.ess for r in runs if not math.isnan(r.ess)]),
            speedup_bound=_bound(costs(base), c, study.budget) if math.isinf(speedup[0]) else math.nan,
            spent=median([r.cost for r in runs]),
        ))
    return rows


def weight_sensitivity(records: list[RunRecord], study: Study, weights: CostWeights,
                       factors: tuple[float, ...] = (0.5, 2.0)) -> dict[str, dict[float, tuple[float, float]]]:
    """How each sampler's cost speedup moves when every weight is scaled by each factor (VJP and JVP
    weights kept at least 1: a product returns the score on the way): sampler -> factor -> (speedup,
    its bound where the baseline's median is censored)."""
    evaluation = [r for r in records if r.role == "evaluation"]
    out: dict[str, dict[float, float]] = defaultdict(dict)
    for f in factors:
        scaled = CostWeights(vjp=max(1.0, f * weights.vjp), jvp=max(1.0, f * weights.jvp),
                             curvature=f * weights.curvature)
        for row in analyse(reprice(evaluation, scaled, study.budget), study):
            out[row.sampler][f] = row.speedup_cost[0], row.speedup_bound
    return dict(out)


def tuning_table(tuning: list[RunRecord], best: dict[str, str | None],
                 study: Study) -> list[tuple[str, bool, float, float, int]]:
    """(setting, selected, median cost to quality, median primary metric at budget, unhealthy runs) per setting."""
    groups: dict[str, list[RunRecord]] = defaultdict(list)
    for run in tuning:
        groups[run.label].append(run)
    chosen = set(best.values())
    return [(label, label in chosen, median([study.cost_to_quality(r, study.primary) for r in runs]),
             median([r.final(study.primary) for r in runs]), sum(not r.ok for r in runs))
            for label, runs in groups.items()]

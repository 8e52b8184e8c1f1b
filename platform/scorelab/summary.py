"""Rendering the comparison's answer: terminal text, Markdown and CSV."""

from __future__ import annotations

import csv
import io
import math

from .analysis import Row, RunRecord, Study


def _num(v: float) -> str:
    if math.isnan(v):
        return "-"
    return "not reached" if math.isinf(v) else f"{v:.3g}"


def _pm(pair: tuple[float, float]) -> str:
    mean, sd = pair
    return _num(mean) if math.isnan(sd) or math.isinf(mean) else f"{_num(mean)} ± {_num(sd)}"


def _final(row: Row, metric: str) -> str:
    """Mean ± sd at the budget; over the surviving seeds only when some diverged or failed, and said so."""
    if 0 < row.ok < row.runs:
        mean, sd = row.final[metric]
        shown = _num(mean) if row.ok == 1 else _pm((mean, sd))
        return f"{shown} ({row.ok} of {row.runs} seeds)"
    return _pm(row.final[metric])


def _bound(v: float, budget: float) -> str:
    """An interval end; a censored one is only known to exceed the budget."""
    return f"> {budget:.3g}" if math.isinf(v) else f"{v:.3g}"


def _cost(row: Row, budget: float) -> str:
    med, low, high, _ = row.cost_to_quality
    if math.isnan(med):
        return "-"
    if math.isinf(low):
        return f"> {budget:.3g} (none reached)"
    return f"{_bound(med, budget)} [{_bound(low, budget)}, {_bound(high, budget)}]"


def _ratio(v: float) -> str:
    return "-" if math.isnan(v) else "∞" if math.isinf(v) else f"{v:.2f}"


def ratio_interval(triple: tuple[float, float, float]) -> str:
    ratio, low, high = triple
    if math.isnan(ratio):
        return "-"
    return f"{_ratio(ratio)}× [{_ratio(low)}, {_ratio(high)}]"


def headline(rows: list[Row], study: Study) -> tuple[list[str], list[list[str]]]:
    header = ["sampler", "setting", "ok", "reached", *study.metrics, f"cost to {study.primary}",
              "wall s to it", f"speedup vs {study.baseline} (cost)", "speedup (wall)", "ESS / 1k cost"]
    body = []
    for r in rows:
        body.append([r.sampler, r.label, f"{r.ok}/{r.runs}", f"{r.reached}/{r.runs}",
                     *[_final(r, m) for m in study.metrics], _cost(r, study.budget),
                     _num(r.wall_to_quality) if math.isfinite(r.wall_to_quality) else "-",
                     ratio_interval(r.speedup_cost), ratio_interval(r.speedup_wall), _num(r.ess)])
    return header, body


def _legend(rows: list[Row], study: Study) -> str:
    threshold = study.threshold(study.primary)
    quality = (f"{study.primary} ≤ {study.multiple:g} × floor {study.floors.get(study.primary, math.nan):.3g} "
               f"= {threshold:.3g}") if threshold is not None else f"{study.primary} has no positive floor"
    seeds = sorted({r.runs for r in rows})
    level = next((r.cost_to_quality[3] for r in rows if not math.isnan(r.cost_to_quality[3])), math.nan)
    resolution = "to the checkpoint"
    if study.resolution:
        resolution = (f"to {study.resolution:.0%} in cost (the segment before the crossing replayed on a fine grid, "
                      f"or a ladder of budgets for samplers that plan by the budget)")
    return (f"Evaluation seeds only ({'/'.join(map(str, seeds))} per sampler); each sampler at its best setting from "
            f"the tuning seeds. Metrics at the full budget, mean ± sd over seeds. Quality is reached at the cost from "
            f"which {quality} holds to the end of the budget, resolved {resolution}. Cost to it: median over seeds "
            f"[order-statistic interval, {level:.1%}]; a seed that never reaches is censored at the budget "
            f"{study.budget:.3g} ('> budget'). Speedups: median baseline cost / median cost, paired by seed (same "
            f"initial chains), 95 % paired bootstrap intervals. ESS: min bulk ESS over traced projections per 1000 "
            f"cost units, median over seeds.")


def _skipped(skipped) -> str:
    return (f"\nNot evaluated (every setting diverged or failed on a tuning seed): {', '.join(skipped)}.\n"
            if skipped else "")


def text_table(rows: list[Row], study: Study, skipped: list[str] = ()) -> str:
    header, body = headline(rows, study)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells):
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, body), "", _legend(rows, study)]) + (
        _skipped(skipped).rstrip())


def markdown(rows: list[Row], study: Study, tuning: list | None = None,
             sensitivity: dict[str, dict[float, float]] | None = None, skipped: list[str] = ()) -> str:
    header, body = headline(rows, study)
    lines = ["| " + " | ".join(r) + " |" for r in [header, ["---"] * len(header), *body]]
    out = "## Comparison\n\n" + "\n".join(lines) + "\n\n" + _legend(rows, study) + "\n" + _skipped(skipped)
    floors = ", ".join(f"{m} {study.floors[m]:.3g}" for m in study.metrics if m in study.floors)
    out += f"\nQuality floors (metric between two independent exact sample sets of the same size): {floors}.\n"
    if sensitivity:
        factors = sorted({f for by in sensitivity.values() for f in by})
        out += ("\n## Sensitivity to the cost weights\n\nCost speedup with every weight (VJP, JVP, curvature) scaled, "
                "re-priced from the logged call counts:\n\n| sampler | as measured | "
                + " | ".join(f"weights × {f:g}" for f in factors) + " |\n|" + " --- |" * (len(factors) + 2) + "\n")
        for row in rows:
            by = sensitivity.get(row.sampler, {})
            cells = [_ratio(row.speedup_cost[0]), *(_ratio(by.get(f, math.nan)) for f in factors)]
            out += f"| {row.sampler} | " + " | ".join(cells) + " |\n"
    if tuning:
        out += "\n## Tuning (tuning seeds)\n\n| setting | selected | median cost to quality | median " + study.primary
        out += " | diverged or failed |\n| --- | --- | --- | --- | --- |\n"
        out += "\n".join(f"| {label} | {'yes' if chosen else ''} | {_num(c)} | {_num(f)} | {bad or ''} |"
                         for label, chosen, c, f, bad in tuning) + "\n"
    return out


def runs_csv(runs: list[RunRecord], study: Study) -> str:
    """Every run, tuning and evaluation: the raw figures behind the tables (inf: censored at the budget)."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["role", "sampler", "setting", "seed", "status", "diverged_at", "cost", "run_id", "ess_per_1k_cost",
                *[f"final.{m}" for m in study.metrics], *[f"cost_to_quality.{m}" for m in study.metrics]])
    for r in sorted(runs, key=lambda r: (r.role != "tuning", r.sampler, r.label, r.seed)):
        w.writerow([r.role, r.sampler, r.label, r.seed, r.status, r.diverged_at, r.cost, r.run_id, r.ess,
                    *[r.final(m) for m in study.metrics], *[study.cost_to_quality(r, m) for m in study.metrics]])
    return out.getvalue()

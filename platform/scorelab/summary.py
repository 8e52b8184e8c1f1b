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


def cost_text(v: float) -> str:
    """A cost in plain digits to three significant figures (2,000 and 33,000, not 2e+03 and 3.3e+04)."""
    if not math.isfinite(v) or not 1 <= abs(v) < 1e7:
        return f"{v:.3g}"
    return f"{float(f'{v:.3g}'):,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _bound(v: float, budget: float) -> str:
    """An interval end; a censored one is only known to exceed the budget."""
    return f"> {cost_text(budget)}" if math.isinf(v) else cost_text(v)


ONE_SEED = "(one seed)"  # in place of an interval: one seed gives none
PAST_BUDGET = 1.1  # runs that end past this multiple of the budget are named: their last step was large


def _cost(row: Row, budget: float) -> str:
    med, low, high, _ = row.cost_to_quality
    if math.isnan(med):
        return "-"
    if row.ok == 0:
        return "diverged or failed on every seed"
    if math.isinf(low):
        return f"> {cost_text(budget)} (none reached)"
    return cost_interval(row, budget)


def _ratio(v: float) -> str:
    return "-" if math.isnan(v) else "∞" if math.isinf(v) else f"{v:.2f}"


def _speedup(ratio: float, at_least: float = math.nan) -> str:
    """A speedup; an infinite one (the baseline's median censored at the budget) as its bound, "≥ x",
    where one is known, else "-"."""
    if math.isnan(ratio) or (math.isinf(ratio) and math.isnan(at_least)):
        return "-"
    return f"≥ {_ratio(at_least)}" if math.isinf(ratio) else _ratio(ratio)


def ratio_interval(triple: tuple[float, float, float], seeds: int, at_least: float = math.nan) -> str:
    """"1.54× [0.9, 2.1]" from (ratio, low, high); over ``seeds`` seeds, and one gives no interval. An
    infinite ratio shows as its bound (:func:`_speedup`), with the interval only where its lower end is
    finite (where every resample's baseline is censored too, the interval says nothing more)."""
    ratio, low, high = triple
    shown = _speedup(ratio, at_least)
    if shown == "-":
        return shown
    if seeds == 1:
        return f"{shown}× {ONE_SEED}"
    return f"{shown}×" + ("" if math.isinf(ratio) and math.isinf(low) else f" [{_ratio(low)}, {_ratio(high)}]")


def cost_speedup(row: Row) -> str:
    """The cost speedup's cell: its lower bound where the baseline's median is censored."""
    return ratio_interval(row.speedup_cost, row.runs, row.speedup_bound)


def headline(rows: list[Row], study: Study) -> tuple[list[str], list[list[str]]]:
    """The comparison's table; without a baseline it has no speedup columns."""
    speedups = [f"speedup vs {study.baseline} (cost)", "speedup (wall)"] if study.baseline else []
    header = ["sampler", "setting", "ok", "reached", *study.metrics, f"cost to {study.primary}", "wall s to it",
              *speedups, "ESS / 1k cost"]
    body = []
    for r in rows:
        ratios = [cost_speedup(r), ratio_interval(r.speedup_wall, r.runs)] if study.baseline else []
        body.append([r.sampler, r.label, f"{r.ok}/{r.runs}", f"{r.reached}/{r.runs}",
                     *[_final(r, m) for m in study.metrics], _cost(r, study.budget),
                     _num(r.wall_to_quality) if math.isfinite(r.wall_to_quality) else "-", *ratios, _num(r.ess)])
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
                      f"or a ladder of budgets for samplers that plan by the budget; a run in blocks, which has no "
                      f"one state to replay, to the checkpoint: each child's tag scorelab.resolution says which)")
    intervals = (f"Cost to it: median over seeds [order-statistic interval, {level:.1%}]; a seed that never reaches "
                 f"is censored at the budget {cost_text(study.budget)} ('> budget'). Speedups: median baseline cost / "
                 f"median cost, paired by seed (same initial chains), 95 % paired bootstrap intervals; where the "
                 f"baseline's median is censored (half its seeds or more not reached), the cost speedup's lower "
                 f"bound, its censored costs taken at the budget, and no wall speedup.")
    if seeds == [1]:
        intervals = (f"Cost to it: the one seed's, censored at the budget {cost_text(study.budget)} when not reached "
                     "('> budget'). Speedups: baseline cost / cost on that seed (same initial chains). With one seed "
                     "no interval can be given: give two or more for them.")
    return (f"Evaluation seeds only ({'/'.join(map(str, seeds))} per sampler); each sampler at its best setting from "
            f"the tuning seeds (its one setting when it has one). ok: seeds that finished without diverging; reached: "
            f"seeds that reached quality. "
            f"Cost counts NFE (score evaluations), VJP and JVP (vector-Jacobian and Jacobian-vector products of the "
            f"score) and CURV (exact curvature calls), each at its weight. Metrics at the end of the run (its first "
            f"step at or past the budget), mean ± sd over seeds. Quality is reached at the cost from "
            f"which {quality} holds to the end of the budget, resolved {resolution}. {intervals} ESS: min bulk ESS "
            f"over traced projections per 1000 cost units, median over seeds.")


def skipped_text(skipped) -> str:
    """The line naming samplers left out of the evaluation ('' when none is)."""
    return (f"\nNot evaluated (every setting diverged or failed on a tuning seed): {', '.join(skipped)}.\n"
            if skipped else "")


NO_ROWS = "No evaluation run finished: there is nothing to tabulate."


def text_table(rows: list[Row], study: Study, skipped: list[str] = ()) -> str:
    if not rows:
        return NO_ROWS + skipped_text(skipped).rstrip()
    header, body = headline(rows, study)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells):
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, body), "", _legend(rows, study)]) + (
        skipped_text(skipped).rstrip())


def markdown(rows: list[Row], study: Study, tuning: list | None = None,
             sensitivity: dict[str, dict[float, tuple[float, float]]] | None = None, skipped: list[str] = ()) -> str:
    header, body = headline(rows, study)
    lines = ["| " + " | ".join(r) + " |" for r in [header, ["---"] * len(header), *body]]
    table = "\n".join(lines) + "\n\n" + _legend(rows, study) if rows else NO_ROWS
    out = "## Comparison\n\n" + table + "\n" + skipped_text(skipped)
    floors = ", ".join(f"{m} {study.floors[m]:.3g}" for m in study.metrics if m in study.floors)
    out += f"\nQuality floors (metric between two independent exact sample sets of the same size): {floors}.\n"
    if sensitivity:
        factors = sorted({f for by in sensitivity.values() for f in by})
        out += ("\n## Sensitivity to the cost weights\n\nCost speedup with every weight (VJP, JVP, curvature) scaled, "
                "re-priced from the logged call counts (≥: a bound, the baseline's median censored):\n\n"
                "| sampler | at the run's weights | "
                + " | ".join(f"weights × {f:g}" for f in factors) + " |\n|" + " --- |" * (len(factors) + 2) + "\n")
        for row in rows:
            by = sensitivity.get(row.sampler, {})
            cells = [_speedup(row.speedup_cost[0], row.speedup_bound),
                     *(_speedup(*by.get(f, (math.nan, math.nan))) for f in factors)]
            out += f"| {row.sampler} | " + " | ".join(cells) + " |\n"
    if tuning:
        out += "\n## Tuning (tuning seeds)\n\n| setting | selected | median cost to quality | median " + study.primary
        out += " | diverged or failed |\n| --- | --- | --- | --- | --- |\n"
        out += "\n".join(f"| {label} | {'yes' if chosen else ''} | {_tuned(c)} | {f:.5g} | {bad or ''} |"
                         for label, chosen, c, f, bad in tuning) + "\n"
    return out


def _tuned(cost: float) -> str:
    """A tuning cost, to enough digits to see why one setting won over another."""
    return "not reached" if math.isinf(cost) else "-" if math.isnan(cost) else f"{cost:,.0f}"


def runs_csv(runs: list[RunRecord], study: Study) -> str:
    """Every run, tuning and evaluation: the raw figures behind the tables (inf: censored at the budget;
    empty: a metric the run did not measure, as tuning runs measure the primary metric alone; nan: a
    final value a failed run never logged)."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["role", "sampler", "setting", "seed", "status", "diverged_at", "cost", "run_id", "ess_per_1k_cost",
                *[f"final.{m}" for m in study.metrics], *[f"cost_to_quality.{m}" for m in study.metrics]])
    for r in sorted(runs, key=lambda r: (r.role != "tuning", r.sampler, r.label, r.seed)):
        w.writerow([r.role, r.sampler, r.label, r.seed, r.status, r.diverged_at, r.cost, r.run_id, r.ess,
                    *[r.final(m) if _measures(r, m, study) else "" for m in study.metrics],
                    *[study.cost_to_quality(r, m) if _measures(r, m, study) else "" for m in study.metrics]])
    return out.getvalue()


def _measures(run: RunRecord, metric: str, study: Study) -> bool:
    """Whether ``run`` measures ``metric``: tuning runs measure the primary metric alone."""
    return run.role != "tuning" or metric == study.primary


def pays_for_derivatives(records: list[RunRecord]) -> bool:
    """Whether a sampler paid for derivatives of the score (VJP, JVP or curvature calls)."""
    return any(sum(counts[1:]) > 0 for r in records for counts in r.counts.values())


def cost_interval(row: Row, budget: float) -> str:
    """Median cost to quality [interval]; a censored end shows as '> budget'."""
    med, low, high, _ = row.cost_to_quality
    interval = ONE_SEED if row.runs == 1 else f"[{_bound(low, budget)}, {_bound(high, budget)}]"
    return f"{_bound(med, budget)} {interval}"


def speedup_text(row: Row) -> str:
    return "no speedup computable" if math.isnan(row.speedup_cost[0]) else cost_speedup(row)


def findings(rows: list[Row], study: Study, evaluation: list[RunRecord]) -> str:
    """What the table says, in sentences: who reached quality for least cost, the best sampler that
    pays for derivatives of the score against the best that pays for scores only (learned curvature
    comes with the score, so it counts as the latter), and who never reached or diverged."""
    out = []
    threshold = study.threshold(study.primary)
    if threshold is None:
        return f"{study.primary} has no positive floor, so no cost to quality is defined."
    reached = sorted((r for r in rows if r.reached * 2 > r.runs), key=lambda r: r.cost_to_quality[0])
    out.append(f"Quality is {study.primary} ≤ {threshold:.3g}; samplers that reach it on most seeds: {len(reached)} "
               f"of {len(rows)}.")
    if reached:
        best = reached[0]
        tied = [r.sampler for r in reached[1:] if r.cost_to_quality[0] == best.cost_to_quality[0]]
        tie = f" (tied with {', '.join(tied)})" if tied else ""
        versus = "" if best.sampler == study.baseline else \
            f", a cost speedup of {speedup_text(best)} over {study.baseline}"
        out.append(f"Least cost to quality: {best.sampler}{tie}, median {cost_interval(best, study.budget)}{versus}.")
        paying = {r.sampler: pays_for_derivatives([e for e in evaluation if e.sampler == r.sampler]) for r in rows}
        with_c = [r for r in reached if paying[r.sampler]]
        without = [r for r in reached if not paying[r.sampler]]
        if with_c and without:
            a, b = with_c[0], without[0]
            ratio = b.cost_to_quality[0] / a.cost_to_quality[0]
            verdict = "wins" if ratio > 1 else "loses"
            out.append(f"The best sampler that pays for derivatives of the score (VJP, JVP or curvature calls), "
                       f"{a.sampler} ({cost_interval(a, study.budget)}), {verdict} against the best that pays for "
                       f"scores only, {b.sampler} ({cost_interval(b, study.budget)}): a cost ratio of {ratio:.3g} "
                       "(medians).")
        elif with_c:
            out.append("Only samplers that pay for derivatives of the score reach quality here.")
        elif without and any(paying.values()):
            out.append("No sampler that pays for derivatives of the score reaches quality here.")
    never = [r.sampler for r in rows if r.reached == 0 and r.ok > 0]
    if never:
        out.append(f"Never within the budget of {cost_text(study.budget)}: {', '.join(never)}.")
    past = [f"{r.sampler} ({cost_text(r.spent)})" for r in rows if r.spent > PAST_BUDGET * study.budget]
    if past:
        out.append(f"Past the budget of {cost_text(study.budget)} (median cost the runs ended at; a step may take "
                   f"more than is left): {', '.join(past)}.")
    diverged = [f"{r.sampler} (on {r.runs - r.ok} of {r.runs} seeds)" for r in rows if r.ok < r.runs]
    if diverged:
        out.append(f"Diverged or failed: {', '.join(diverged)}.")
    return " ".join(out)

"""Figures logged with runs. matplotlib is imported here only, with a non-interactive backend."""

from __future__ import annotations

import math

import numpy as np
import torch


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def samples_figure(samples: torch.Tensor, reference: torch.Tensor, title: str, max_points: int = 2000):
    """Scatter of the first two coordinates of samples (over the reference); 1-D data as histograms."""
    plt = _pyplot()
    s = samples[:max_points].detach().double().cpu().reshape(min(len(samples), max_points), -1).numpy()
    r = reference[:max_points].detach().double().cpu().reshape(min(len(reference), max_points), -1).numpy()
    fig, ax = plt.subplots(figsize=(4, 4), dpi=90)
    if s.shape[1] == 1:
        ax.hist(r[:, 0], bins=60, density=True, alpha=0.5, label="reference")
        ax.hist(s[:, 0], bins=60, density=True, alpha=0.5, label="samples")
    else:
        ax.scatter(r[:, 0], r[:, 1], s=2, alpha=0.3, label="reference", color="tab:gray", rasterized=True)
        ax.scatter(s[:, 0], s[:, 1], s=2, alpha=0.4, label="samples", color="tab:blue", rasterized=True)
        ax.set_xlabel("x[0]")
        ax.set_ylabel("x[1]")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=8, markerscale=4)
    fig.tight_layout()
    return fig


def quality_vs_cost_figure(evaluation, metric: str, study):
    """One line per sampler (median over seeds) with the min-max band shaded; floor and threshold dashed.
    A sampler that plans its run by the budget has no checkpoints, only one run to each budget of its
    ladder: its points are drawn, seed by seed, as measured. Log axes where the values allow; the
    legend beside the axes, never over a curve; a run far above the rest (a near-divergence that stayed
    finite) runs off the top instead of squashing every curve."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100, layout="constrained")
    by_sampler, by_budget = {}, {}
    for run in evaluation:
        if run.ok and run.curves.get(metric):
            (by_budget if run.budget_points else by_sampler).setdefault(run.label, []).append(run.curves[metric])
    if len(by_sampler) + len(by_budget) > 10:  # more rows than the default cycle's colours
        ax.set_prop_cycle(color=plt.get_cmap("tab20").colors)
    medians = []
    for label, curves in by_budget.items():
        color = None
        for i, curve in enumerate(curves):
            costs, values = zip(*curve, strict=True)
            color = ax.plot(costs, values, "o", ms=4, alpha=0.8, color=color,  # points alone: nothing between
                            label=None if i else f"{label} (a run to each budget, per seed)")[0].get_color()
        medians.append(np.array([v for curve in curves for _, v in curve], dtype=float))  # one scale entry a row
    for label, curves in by_sampler.items():
        costs = sorted({c for curve in curves for c, _ in curve})
        values = np.array([[_at(curve, c) for c in costs] for curve in curves])
        medians.append(np.nanmedian(values, 0))
        line = ax.plot(costs, medians[-1], label=label, lw=1.5)[0]
        if len(curves) > 1:
            ax.fill_between(costs, np.nanmin(values, 0), np.nanmax(values, 0), color=line.get_color(), alpha=0.2)
    floor, threshold = study.floors.get(metric, math.nan), study.threshold(metric)
    if floor > 0:
        ax.axhline(floor, color="gray", ls=":", lw=1, label="floor (exact vs exact)")
    if threshold is not None:
        ax.axhline(threshold, color="black", ls="--", lw=1.2, label=f"quality: {study.multiple:g} × floor")
    ax.set_xscale("log")
    shown = np.concatenate(medians) if medians else np.array([])
    shown = shown[np.isfinite(shown)]
    logy = shown.size > 0 and bool((shown > 0).all())
    if logy:
        ax.set_yscale("log")
    if shown.size:
        maxima = [float(m[np.isfinite(m)].max()) for m in medians if np.isfinite(m).any()]
        _clip_top(ax, maxima, [v for v in (floor, threshold or math.nan) if math.isfinite(v)], logy)
    ax.set_xlabel("cost (score evaluations at the stated weights)")
    ax.set_ylabel(metric)
    ladders = "; points: one run to each budget" if by_budget else ""
    # From the axes' left edge: centred over axes narrowed by the legend, a long title ran off the figure.
    ax.set_title(f"{metric} against cost: median over seeds, band from min to max{ladders}", fontsize=9, loc="left")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return fig


def _clip_top(ax, maxima: list[float], lines: list[float], logy: bool) -> None:
    """Top of the y axis at the larger of the lines and 100x (log) or 2x the lower median of the
    samplers' highest values, if some sampler goes above it: one outlying run cannot set the scale."""
    typical = sorted(maxima)[(len(maxima) - 1) // 2]
    top = max([typical * (100 if logy else 2), *lines]) if typical > 0 else None
    if top is not None and max(maxima) > top:
        ax.set_ylim(top=top)


def _at(curve, cost):
    """Value of a step curve at ``cost``: the last checkpoint at or before it."""
    value = math.nan
    for c, v in curve:
        if c > cost:
            break
        value = v
    return value


def _not_drawn(row, base) -> str:
    """Why ``row`` has no bar in the speedup plot, in a few words (``base``: the baseline's row, if any)."""
    speedup = row.speedup_cost[0]
    if math.isinf(speedup):
        return f"{row.label} ≥ {row.speedup_bound:.3g}×"
    if speedup == 0:
        return f"{row.label} (did not reach)"
    if base is not None and math.isinf(row.cost_to_quality[0]) and math.isinf(base.cost_to_quality[0]):
        return f"{row.label} (neither it nor {base.sampler} reached)"
    return f"{row.label} (no speedup computable)"


def speedup_figure(rows, study):
    """Speedup over the baseline in cost and in wall time, with bootstrap intervals."""
    plt = _pyplot()
    drawn = [r for r in rows if 0 < r.speedup_cost[0] < math.inf]
    # Said, not drawn: a bound where the baseline's median is censored, no speedup where one's own is,
    # none where both are or none is computable; the baseline's own row says nothing.
    base = next((r for r in rows if r.sampler == study.baseline), None)
    unbounded = [_not_drawn(r, base) for r in rows if r not in drawn and r is not base]
    rows = drawn
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(rows) + 1.5), dpi=100, layout="constrained")
    y = np.arange(len(rows))
    for offset, attr, name in ((-0.18, "speedup_cost", "cost"), (0.18, "speedup_wall", "wall time")):
        vals = np.array([getattr(r, attr) for r in rows], dtype=float).reshape(-1, 3)
        finite = vals[np.isfinite(vals) & (vals > 0)]
        # An interval end that is censored (0 or inf) is drawn to the plot's edge, not to infinity.
        lo_edge, hi_edge = (finite.min() / 2, finite.max() * 2) if finite.size else (0.5, 2.0)
        vals[:, 1] = np.where(vals[:, 1] > 0, vals[:, 1], lo_edge)
        vals[:, 2] = np.where(np.isfinite(vals[:, 2]), vals[:, 2], hi_edge)
        vals = np.where(np.isnan(vals), 1.0, vals)
        err = np.abs(vals[:, 1:].T - vals[:, 0])
        ax.barh(y + offset, vals[:, 0], height=0.34, xerr=err, capsize=3, label=name)
    ax.axvline(1.0, color="black", lw=1)
    ax.set_xscale("log")
    ax.set_yticks(y, [r.label for r in rows], fontsize=7)
    ax.set_xlabel(f"speedup over {study.baseline} to reach {study.primary} ≤ {study.multiple:g} × floor")
    if unbounded:
        ax.set_title("not drawn, no finite speedup: " + ", ".join(unbounded), fontsize=7, wrap=True, loc="left")
    if not rows:
        ax.text(0.5, 0.5, "no finite speedup to draw", ha="center", va="center", transform=ax.transAxes)
        return fig
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return fig

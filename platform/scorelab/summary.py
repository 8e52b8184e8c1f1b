"""The comparison table: one row per sampler setting, mean and spread over seeds."""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import defaultdict


def _group(runs):
    groups = defaultdict(list)
    for r in runs:
        groups[r.label].append(r)
    return groups


def _mean_sd(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summary_rows(runs, metrics: list[str]) -> list[dict]:
    """Per setting: each metric's mean and sd over the seeds that finished without diverging."""
    rows = []
    for label, group in _group(runs).items():
        ok = [r for r in group if r.status == "FINISHED" and r.diverged_at is None]
        row = {"sampler": label, "seeds": len(group), "ok": len(ok),
               "diverged": sum(r.diverged_at is not None for r in group),
               "failed": sum(r.status == "FAILED" for r in group)}
        for m in metrics:
            row[m], row[f"{m}_sd"] = _mean_sd([r.metrics.get(m, math.nan) for r in ok])
        row["cost"], _ = _mean_sd([r.cost for r in ok])
        row["wall_s"], _ = _mean_sd([r.wall_time for r in ok])
        rows.append(row)
    return rows


def _fmt(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.4g}"


def summary_table(runs, metrics: list[str]) -> tuple[list[str], list[list[str]]]:
    header = ["sampler", "ok/seeds", *metrics, "cost", "wall s"]
    body = []
    for row in summary_rows(runs, metrics):
        status = f"{row['ok']}/{row['seeds']}"
        if row["diverged"]:
            status += f" ({row['diverged']} diverged)"
        if row["failed"]:
            status += f" ({row['failed']} failed)"
        cells = [f"{_fmt(row[m])} ± {_fmt(row[m + '_sd'])}" for m in metrics]
        body.append([row["sampler"], status, *cells, _fmt(row["cost"]), _fmt(row["wall_s"])])
    return header, body


def summary_text(runs, metrics: list[str]) -> str:
    """A plain-text table for the terminal."""
    header, body = summary_table(runs, metrics)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, body)])


def summary_markdown(runs, metrics: list[str]) -> str:
    header, body = summary_table(runs, metrics)
    rows = [header, ["---"] * len(header), *body]
    table = "\n".join("| " + " | ".join(r) + " |" for r in rows)
    return table + "\n\nValues: mean ± sd over seeds at the full budget.\n"


def summary_csv(runs, metrics: list[str]) -> str:
    """Every run, one row each: the raw figures behind the table."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["sampler", "setting", "seed", "run_id", "status", "diverged_at", "cost", "steps", "wall_s", *metrics])
    for r in runs:
        w.writerow([r.sampler, r.label, r.seed, r.run_id, r.status, r.diverged_at, r.cost, r.steps,
                    round(r.wall_time, 4), *[r.metrics.get(m, "") for m in metrics]])
    return out.getvalue()

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


def _ci(triple: tuple[float, float, float]) -> str:
    ratio, low, high = triple
    return "-" if math.isnan(ratio) else f"{ratio:.2f}× [{low:.2f}, {high:.2f}]"


def headline(rows: list[Row], study: Study) -> tuple[list[str], list[list[str]]]:
    header = ["sampler", "setting", "ok", *study.metrics, f"cost to {study.primary}",
              "wall s to it", f"speedup vs {study.baseline} (cost)", "speedup (wall)"]
    body = []
    for r in rows:
        ok = f"{r.ok}/{r.runs}" + ("" if r.reached == r.runs else f", reached {r.reached}")
        body.append([r.sampler, r.label, ok, *[_pm(r.final[m]) for m in study.metrics], _pm(r.cost_to_quality),
                     _pm(r.wall_to_quality), _ci(r.speedup_cost), _ci(r.speedup_wall)])
    return header, body


def _legend(study: Study) -> str:
    threshold = study.threshold(study.primary)
    quality = (f"{study.primary} ≤ {study.multiple:g} × floor {study.floors.get(study.primary, math.nan):.3g} "
               f"= {threshold:.3g}") if threshold is not None else f"{study.primary} has no positive floor"
    return (f"Evaluation seeds only; each sampler at its best setting from the tuning seeds. Metrics at the full "
            f"budget, mean ± sd over seeds. Quality is reached at the first checkpoint from which {quality} "
            f"holds to the end of the budget; speedups are ratios of mean cost (or wall time) to reach it, "
            f"with 95 % bootstrap intervals over seeds.")


def text_table(rows: list[Row], study: Study) -> str:
    header, body = headline(rows, study)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells):
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, body), "", _legend(study)])


def markdown(rows: list[Row], study: Study, tuning: list[tuple[str, str, float, float]] | None = None) -> str:
    header, body = headline(rows, study)
    lines = ["| " + " | ".join(r) + " |" for r in [header, ["---"] * len(header), *body]]
    out = "## Comparison\n\n" + "\n".join(lines) + "\n\n" + _legend(study) + "\n"
    floors = ", ".join(f"{m} {study.floors[m]:.3g}" for m in study.metrics if m in study.floors)
    out += f"\nQuality floors (metric between two independent exact sample sets of the same size): {floors}.\n"
    if tuning:
        out += "\n## Tuning (tuning seeds)\n\n| setting | selected | mean cost to quality | mean " + study.primary
        out += " |\n| --- | --- | --- | --- |\n"
        out += "\n".join(f"| {label} | {'yes' if chosen else ''} | {_num(c)} | {_num(f)} |"
                         for label, chosen, c, f in tuning) + "\n"
    return out


def runs_csv(runs: list[RunRecord], study: Study) -> str:
    """Every run, tuning and evaluation: the raw figures behind the tables."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["role", "sampler", "setting", "seed", "status", "diverged_at", "cost", "run_id",
                *[f"final.{m}" for m in study.metrics], *[f"cost_to_quality.{m}" for m in study.metrics]])
    for r in sorted(runs, key=lambda r: (r.role != "tuning", r.sampler, r.label, r.seed)):
        w.writerow([r.role, r.sampler, r.label, r.seed, r.status, r.diverged_at, r.cost, r.run_id,
                    *[r.final(m) for m in study.metrics], *[study.cost_to_quality(r, m) for m in study.metrics]])
    return out.getvalue()

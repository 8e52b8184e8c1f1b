"""A study: a folder of comparison configs run in turn, and one document built from their MLflow records.

``study.yaml`` in the folder lists the comparisons in the order the document shows them, each with a
title, the goals it is measured against (a row's speedup over the baseline) and, in words, why the
mechanisms behave as they do. Every figure in the document is read from MLflow, as ``scorelab report``
reads one comparison, so ``scorelab study DIR --from-mlflow`` rebuilds it without running anything.
``--quick`` shrinks every comparison (budget, chains, seeds, first value of every sweep) into a smoke
test whose experiments are named ``<name>-quick`` and never mix with the full study's.

A comparison of a learned score names a training config (``train``): the model is trained first, in
the same store, and the comparison runs with ``score`` set to the new model's URI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import params as P
from .analysis import Row, Study
from .config import Comparison, load_yaml, parse_comparison
from .errors import ConfigError, ScorelabError
from .reporting import IncompleteComparison, find_parent, load_records, report_files, skipped_samplers, write_report
from .summary import findings, headline, skipped_text, speedup_text
from .training.spec import parse_training

QUICK_SUFFIX = "-quick"


@dataclass
class Goal:
    """A row of a comparison set to reach ``speedup`` × the baseline's cost to quality."""

    sampler: str
    speedup: float
    what: str = ""


@dataclass
class Entry:
    config: str  # relative to the study folder
    title: str
    why: str = ""  # the mechanisms, in words; figures come from the runs, never from here
    goals: list = field(default_factory=list)
    train: str | None = None  # a training config, relative to the folder: the comparison's score is its model


@dataclass
class QuickSpec:
    budget_scale: float = 0.05
    chains: int = 256
    seeds: int = 2
    train_steps: int = 100


@dataclass
class StudySpec:
    title: str
    document: str  # where the document goes, relative to the current directory
    comparisons: list
    introduction: str = ""
    quick: dict = field(default_factory=dict)


#: A comparison whose model is still to be trained is validated with this URI in ``score``.
UNTRAINED = "runs:/untrained/model"


@dataclass
class StudyPlan:
    spec: StudySpec
    entries: list[Entry]
    comparisons: list[Comparison]  # a learned score's is re-parsed with its model's URI once trained
    trainings: list[Any]  # the Training for each entry, or None
    quick: QuickSpec | None

    def select(self, configs: list[str]) -> list[int]:
        """The positions of the entries whose config file is named in ``configs``."""
        known = [e.config for e in self.entries]
        missing = [c for c in configs if c not in known]
        if missing:
            raise ConfigError(P.unknown_choice("comparison", missing[0], known, "The study's comparisons")
                              + " (--only takes config file names from study.yaml)")
        return [i for i, e in enumerate(self.entries) if e.config in configs]

    def with_model(self, i: int, uri: str) -> Comparison:
        """Comparison ``i`` with its score the trained model at ``uri``."""
        comp = self.comparisons[i]
        return parse_comparison({**comp.raw, "score": uri}, file=comp.file)


def load_study(folder: str | Path, quick: bool = False, host=None) -> StudyPlan:
    """``study.yaml`` and every comparison it names, validated before any work."""
    folder = Path(folder)
    file = str(folder / "study.yaml")
    raw = load_yaml(file)
    (top,) = P.check_params(StudySpec, raw, "", file)
    spec = P.instantiate(StudySpec, top, "", file)
    (q,) = P.check_params(QuickSpec, spec.quick, "quick", file)
    quick_spec = QuickSpec(**q)
    if not isinstance(spec.comparisons, list) or not spec.comparisons:
        raise ConfigError("expected a non-empty list of comparisons", file=file, key="comparisons")
    entries, comparisons, trainings = [], [], []
    for i, item in enumerate(spec.comparisons):
        path = f"comparisons[{i}]"
        (e,) = P.check_params(Entry, item if isinstance(item, dict) else {}, path, file)
        entry = Entry(**e)
        entry.goals = [Goal(**P.check_params(Goal, g if isinstance(g, dict) else {}, f"{path}.goals[{j}]", file)[0])
                       for j, g in enumerate(entry.goals)]
        config, training = load_yaml(folder / entry.config), None
        if entry.train:
            train_config = load_yaml(folder / entry.train)
            training = parse_training(_quick_training(train_config, quick_spec) if quick else train_config,
                                      file=str(folder / entry.train), host=host)
            config = {**config, "score": UNTRAINED}
        comp = parse_comparison(config, file=str(folder / entry.config), host=host)
        if quick:
            comp = parse_comparison(quicken(config, comp, quick_spec), file=comp.file, host=host)
        rows = {s.name for s in comp.samplers}
        for j, goal in enumerate(entry.goals):
            if goal.sampler not in rows:
                raise ConfigError(P.unknown_choice("row", goal.sampler, rows, f"Rows of {entry.config}"),
                                  file=file, key=f"{path}.goals[{j}].sampler")
        entries.append(entry)
        comparisons.append(comp)
        trainings.append(training)
    return StudyPlan(spec, entries, comparisons, trainings, quick_spec if quick else None)


def quicken(config: dict, comp: Comparison, quick: QuickSpec) -> dict:
    """The comparison (``config``, parsed as ``comp``) shrunk to a smoke test: a fraction of the
    budget, fewer chains and seeds, and each row's first setting only (so no tuning runs)."""
    first = {}
    for s in comp.samplers:
        first.setdefault(s.name, {"name": s.plugin, **({"as": s.name} if s.name != s.plugin else {}), **s.params})
    return {**config, "name": f"{config['name']}{QUICK_SUFFIX}",
            "budget": max(1.0, comp.budget * quick.budget_scale), "chains": min(comp.chains, quick.chains),
            "seeds": comp.seeds[: quick.seeds], "samplers": list(first.values())}


def _quick_training(config: dict, quick: QuickSpec) -> dict:
    """A training config shrunk to ``train_steps`` (checkpoints and logging within them), named *-quick."""
    steps = min(int(config["steps"]), quick.train_steps)
    out = {**config, "name": f"{config['name']}{QUICK_SUFFIX}", "steps": steps}
    for key in ("checkpoint_every", "log_every", "eval_every"):
        if key in out and out[key] is not None:
            out[key] = min(int(out[key]), steps)
    if isinstance(out.get("schedule"), dict) and "warmup" in out["schedule"]:
        out["schedule"] = {**out["schedule"], "warmup": min(int(out["schedule"]["warmup"]), steps // 10)}
    out.pop("register_as", None)
    return out


# -- the document ------------------------------------------------------------------------------------

def write_document(plan: StudyPlan, client, refs: list[str], out: Path | None = None) -> tuple[Path, list[str]]:
    """The study document from MLflow: for each comparison (``refs``: parent run ids or experiment
    names), its table, plot, findings and goals; each comparison's full report in a folder beside it.
    A comparison with no finished run gets a section that says so. Returns the document's path and
    the config files of the comparisons not measured."""
    out = Path(out or plan.spec.document)
    assets = out.parent / out.stem
    parts = [f"# {plan.spec.title}\n", plan.spec.introduction.strip() + "\n" if plan.spec.introduction else ""]
    if plan.quick is not None:
        parts.append("**Quick run** (a smoke test: a fraction of the budget, few chains and seeds, no tuning). "
                     "Its figures are not the study's.\n")
    unmeasured = []
    for entry, ref in zip(plan.entries, refs, strict=True):
        try:
            measured = load_records(client, ref, finished=True)
        except ScorelabError as exc:
            unmeasured.append(entry.config)
            parts += _unmeasured(entry, exc)
            continue
        latest = find_parent(client, ref)
        later = latest if latest is not None and latest.info.run_id != measured[0].info.run_id else None
        parts += _section(entry, client, assets, *measured, later=later, quick=plan.quick is not None)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(p for p in parts if p))
    return out, unmeasured


def _section(entry: Entry, client, assets: Path, parent, study: Study, records, weights, later=None,
             quick: bool = False) -> list[str]:
    """The comparison's section from its run ``parent``; ``later``: a later run of it that did not finish;
    ``quick``: a quick run's, whose goals get no verdict."""
    experiment = client.get_experiment(parent.info.experiment_id).name
    rows, files = report_files(records, study, weights)
    folder = assets / experiment
    write_report(folder, files)
    evaluation = [r for r in records if r.role == "evaluation"]
    plot = f"plots/{study.primary}_vs_cost.png"
    parts = [
        f"## {entry.title}\n",
        f"Experiment `{experiment}`, parent run `{parent.info.run_id}` (score: {parent.data.params.get('score')}; "
        f"device {parent.data.params.get('device')}, "
        f"{parent.data.params.get('chains')} chains, budget {study.budget:g}; cost = NFE + {weights.vjp:.2f}·VJP + "
        f"{weights.jvp:.2f}·JVP + {weights.curvature:.2f}·CURV). Full report: "
        f"[{folder.name}/report.md]({assets.name}/{experiment}/report.md)."
        + (f" A later run, parent `{later.info.run_id}`, ended {later.info.status}: this is the latest finished one."
           if later is not None else "") + "\n",
        _table(rows, study) + skipped_text(skipped_samplers(records, study)),
        f"![{study.primary} against cost]({assets.name}/{experiment}/{plot})\n",
        "**What the numbers show.** " + findings(rows, study, evaluation) + "\n",
    ]
    if entry.why:
        parts.append("**Why.** " + " ".join(entry.why.split()) + "\n")
    if entry.goals:
        lines = [_goal_line(g, rows, study, quick) for g in entry.goals]
        parts.append("**Goals.**" + (" A quick run's figures: no verdict." if quick else "") + "\n\n"
                     + "\n".join(lines) + "\n")
    return parts


def _unmeasured(entry: Entry, why: Exception) -> list[str]:
    resume = ""
    if isinstance(why, IncompleteComparison):
        why, resume = f"its latest run, parent {why.parent_id}, did not finish", " --resume"
    parts = [f"## {entry.title}\n",
             f"**Not measured**: no finished run of this comparison in MLflow ({why}). Run it with "
             f"`scorelab study <folder> --only {entry.config}{resume}`; the document then takes it from MLflow.\n"]
    if entry.why:
        parts.append("**Why.** " + " ".join(entry.why.split()) + "\n")
    if entry.goals:
        parts.append("**Goals.**\n\n" + "\n".join(f"- {g.what + ': ' if g.what else ''}{g.sampler} ≥ {g.speedup:g}×: "
                                                   "**not measured**" for g in entry.goals) + "\n")
    return parts


def _table(rows: list[Row], study: Study) -> str:
    header, body = headline(rows, study)
    keep = [i for i, h in enumerate(header) if h not in study.metrics or h == study.primary]
    lines = ["| " + " | ".join(r[i] for i in keep) + " |" for r in [header, ["---"] * len(header), *body]]
    seeds = max((r.runs for r in rows), default=0)
    level = next((r.cost_to_quality[3] for r in rows if not math.isnan(r.cost_to_quality[3])), math.nan)
    intervals = ("one seed: no intervals" if seeds == 1 else f"costs: median over {seeds} seeds [order-statistic "
                 f"interval, {level:.1%}]; speedups: [95 % paired bootstrap interval]; ≥: a bound, the baseline's "
                 "median censored at the budget")
    return "\n".join(lines) + f"\n\n{intervals}; the full legend is in the report.\n"


def _goal_line(goal: Goal, rows: list[Row], study: Study, quick: bool = False) -> str:
    """The goal, what was measured, and its verdict (none for a quick run: its budget, chains and seeds
    are a fraction of the study's)."""
    row = next((r for r in rows if r.sampler == goal.sampler), None)
    what = f"{goal.what}: " if goal.what else ""
    if quick:
        measured = "nothing (every setting diverged or failed)" if row is None else speedup_text(row)
        return f"- {what}{goal.sampler} ≥ {goal.speedup:g}× {study.baseline}: measured {measured}"
    if row is None:
        return (f"- {what}{goal.sampler} ≥ {goal.speedup:g}× {study.baseline}: **not measured** (every setting "
                "diverged or failed in tuning)")
    ratio, low, _ = row.speedup_cost
    base = next((r for r in rows if r.sampler == study.baseline), None)
    if math.isnan(ratio) and base is not None and math.isinf(base.cost_to_quality[0]):
        state = (f"**undetermined** (neither it nor {study.baseline} reached quality within the budget on half "
                 "their seeds or more)")
    elif math.isnan(ratio):
        state = "**not met** (it did not reach quality on most seeds)"
    elif math.isinf(ratio):  # the baseline's median is censored: the speedup is only bounded below
        bound = row.speedup_bound
        state = ("**met**" if bound >= goal.speedup else "**undetermined**") + (
            f" ({study.baseline} did not reach quality within the budget on half its seeds or more, so the "
            f"speedup is at least {bound:.3g}×, its censored costs taken at the budget)")
    elif ratio >= goal.speedup:
        state = "**met**" + ("" if low >= goal.speedup else " by the median, not by the interval's lower end")
    else:
        state = "**not met**"
    measured = speedup_text(row)
    return f"- {what}{goal.sampler} ≥ {goal.speedup:g}× {study.baseline}: measured {measured}, {state}"


def experiment_names(plan: StudyPlan) -> list[str]:
    return [comp.name for comp in plan.comparisons]

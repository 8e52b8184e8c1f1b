"""Cost to reach quality, the bootstrap interval, and fair tuning (selection from tuning seeds only)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scorelab.analysis import RunRecord, Study, analyse, reprice, select_best
from scorelab.efficiency import cost_to_reach, median, median_interval, paired_speedup
from scorelab.oracle import CostWeights


def test_cost_to_reach_on_a_synthetic_curve():
    # metric = 10 / cost: under 0.5 first at cost 20; the checkpoints are 1, 2, 4, ..., 64
    curve = [(c, 10 / c) for c in (1, 2, 4, 8, 16, 32, 64)]
    assert cost_to_reach(curve, 0.5) == 32
    assert cost_to_reach(curve, 10.0) == 1
    assert math.isinf(cost_to_reach(curve, 0.1))  # not reached: a value, not an error
    assert math.isinf(cost_to_reach([(1, math.nan), (2, math.nan)], 1.0))  # a diverged curve never reaches
    # reached means reached and kept: a dip under the threshold that does not last does not count
    assert cost_to_reach([(1, 2.0), (2, 0.5), (4, 1.5), (8, 0.8), (16, 0.9)], 1.0) == 8


def _paired_costs(rng, n, censor_quantile=None):
    """Lognormal costs sharing a per-seed effect (same initial chains), true median speedup 4; the
    baseline censored above its ``censor_quantile`` when given (a budget it does not always meet)."""
    shared = rng.normal(0, 0.5, n)
    base = np.exp(math.log(400) + shared + rng.normal(0, 0.3, n))
    fast = np.exp(math.log(100) + shared + rng.normal(0, 0.3, n))
    if censor_quantile is not None:
        budget = math.exp(math.log(400) + math.hypot(0.5, 0.3) * censor_quantile)
        base = np.where(base > budget, math.inf, base)
    return base, fast


@pytest.mark.slow
@pytest.mark.parametrize("n, censor", [(5, None), (5, 0.84), (10, 0.84)])
def test_paired_bootstrap_covers_the_true_speedup_at_about_its_nominal_rate(n, censor):
    # 400 simulated comparisons: the coverage estimate has standard error sqrt(0.95 * 0.05 / 400) = 0.011.
    # A percentile bootstrap of a median from 5 seeds is discrete and undercovers a little; accept 0.90
    # to 1.0 (about -4.5 standard errors), with ~20 % of baseline seeds censored in two of the cases.
    rng = np.random.default_rng(n)
    covered = 0
    for i in range(400):
        base, fast = _paired_costs(rng, n, censor)
        _, low, high = paired_speedup(base, fast, resamples=1000, seed=i)
        covered += low <= 4.0 <= high
    assert 0.90 <= covered / 400 <= 1.0


def test_paired_bootstrap_is_tighter_than_an_unpaired_one_when_seeds_share_their_start():
    rng = np.random.default_rng(3)
    base, fast = _paired_costs(rng, 10)
    _, low, high = paired_speedup(base, fast)
    # The unpaired interval of the same ratio: resample each group's seeds on its own.
    idx = np.random.default_rng(0).integers(0, 10, (4000, 2, 10))
    unpaired = np.median(base[idx[:, 0]], 1) / np.median(fast[idx[:, 1]], 1)
    u_low, u_high = np.quantile(unpaired, [0.025, 0.975])
    assert high / low < (u_high / u_low) * 0.8


@pytest.mark.slow
@pytest.mark.parametrize("censored", [0.0, 0.4])
def test_median_interval_covers_the_median_at_its_stated_level_under_censoring(censored):
    # 4000 samples of 5 seeds: standard error of the coverage 0.004; the order-statistic interval is
    # exact, so its coverage (93.75 % at n = 5) holds whatever is censored above the median.
    rng = np.random.default_rng(1)
    budget = math.exp(math.log(400) + 0.5 * 0.2533) if censored else math.inf  # the 60 % quantile
    covered, level = 0, None
    for _ in range(4000):
        costs = np.exp(math.log(400) + 0.5 * rng.normal(size=5))
        med, low, high, level = median_interval(np.where(costs > budget, math.inf, costs))
        covered += low <= 400 <= high
    assert level == pytest.approx(0.9375)
    assert abs(covered / 4000 - level) < 4 * math.sqrt(level * (1 - level) / 4000)


def test_a_seed_that_never_reaches_is_censored_not_dropped():
    med, low, high, _ = median_interval([100, 200, math.inf])
    assert (med, low, high) == (200, 100, math.inf)
    assert math.isinf(median([100, math.inf, math.inf]))
    # The sampler misses on one seed of three: still a finite median speedup, with an open upper end.
    ratio, low, high = paired_speedup([1000, 1000, 1000], [100, 200, math.inf])
    assert ratio == 5.0 and low == 0.0 and high == 10.0


def _run(label, seed, role, values, sampler="langevin"):
    curve = list(zip((10, 100, 1000), values, strict=True))
    return RunRecord(label, sampler, seed, role, "FINISHED", curves={"m": curve})


STUDY = Study(metrics=["m"], primary="m", multiple=2.0, baseline="langevin", floors={"m": 0.5}, budget=1000)  # t = 1


def test_selection_uses_tuning_runs_only():
    tuning = [_run("a", 100, "tuning", (3, 2, 0.9)), _run("a", 101, "tuning", (3, 2, 0.8)),
              _run("b", 100, "tuning", (3, 0.9, 0.5)), _run("b", 101, "tuning", (3, 0.7, 0.5))]
    assert select_best(tuning, STUDY) == {"langevin": "b"}  # b reaches at cost 100, a at 1000
    # Evaluation runs on which 'a' looks better would flip the choice if they were shown to select_best:
    # that is why the comparison passes tuning records only (checked in test_compare).
    evaluation = [_run("a", s, "evaluation", (0.1, 0.1, 0.1)) for s in (0, 1)]
    evaluation += [_run("b", s, "evaluation", (9, 9, 9)) for s in (0, 1)]
    assert select_best(tuning + evaluation, STUDY) == {"langevin": "a"}


def test_selection_falls_back_to_final_quality_when_nothing_reaches():
    tuning = [_run("a", 100, "tuning", (5, 4, 3)), _run("b", 100, "tuning", (5, 4, 2))]
    assert select_best(tuning, STUDY) == {"langevin": "b"}


def test_headline_speedup_and_not_reached():
    base = [_run("langevin", s, "evaluation", (3, 2, 0.9)) for s in (0, 1, 2)]  # reaches at 1000
    fast = [_run("fast", s, "evaluation", (3, 0.9, 0.5), "fast") for s in (0, 1, 2)]  # reaches at 100
    never = [_run("never", s, "evaluation", (3, 3, 3), "never") for s in (0, 1, 2)]
    rows = {r.sampler: r for r in analyse(base + fast + never, STUDY)}
    assert rows["fast"].cost_to_quality[:3] == (100, 100, 100) and rows["fast"].speedup_cost == (10.0, 10.0, 10.0)
    assert rows["langevin"].speedup_cost[0] == 1.0
    assert math.isinf(rows["never"].cost_to_quality[0]) and rows["never"].reached == 0
    assert rows["never"].speedup_cost[0] == 0.0  # censored on every seed: slower than the baseline, by how much unknown
    assert rows["fast"].seed_costs == {0: 100, 1: 100, 2: 100}


def test_a_row_survives_one_seed_that_misses():
    base = [_run("langevin", s, "evaluation", (3, 2, 0.9)) for s in (0, 1, 2)]  # reaches at 1000
    fast = [_run("fast", s, "evaluation", (3, 0.9, 0.5), "fast") for s in (0, 1)]
    fast.append(_run("fast", 2, "evaluation", (3, 3, 3), "fast"))  # misses on seed 2
    row = {r.sampler: r for r in analyse(base + fast, STUDY)}["fast"]
    assert row.reached == 2 and row.cost_to_quality[0] == 100 and math.isinf(row.cost_to_quality[2])
    assert row.speedup_cost[0] == 10.0


def test_a_setting_that_diverged_in_tuning_is_never_selected():
    good = [_run("a", s, "tuning", (3, 2, 0.9)) for s in (100, 101)]  # reaches at 1000
    fast = [_run("b", s, "tuning", (3, 0.5, 0.5)) for s in (100, 101)]  # reaches at 100 ...
    fast[1].diverged_at = 500.0  # ... but blew up on one seed
    assert select_best(good + fast, STUDY) == {"langevin": "a"}
    assert select_best(fast, STUDY) == {"langevin": None}  # nothing healthy: not evaluated


def test_repricing_moves_costs_by_the_logged_counts_and_holds_the_budget():
    # A sampler paying 1 NFE + 1 VJP per step; logged at weights vjp=3 (4 per step).
    run = RunRecord("v", "v", 0, "evaluation", "FINISHED",
                    curves={"m": [(40, 3.0), (400, 0.9), (1000, 0.5)]},
                    counts={40: (10, 10, 0, 0), 400: (100, 100, 0, 0), 1000: (250, 250, 0, 0)})
    (cheap,) = reprice([run], CostWeights(vjp=1.0), budget=1000)
    assert cheap.curves["m"] == [(20, 3.0), (200, 0.9), (500, 0.5)]
    (dear,) = reprice([run], CostWeights(vjp=9.0), budget=1000)
    assert dear.curves["m"] == [(100, 3.0), (1000, 0.9)]  # the last point is past the budget
    with pytest.raises(ValueError, match="cannot be re-priced"):
        reprice([RunRecord("v", "v", 0, "evaluation", "FINISHED", curves={"m": [(1, 1.0)]})], CostWeights(), 10)


def test_a_metric_over_surviving_seeds_says_so_in_its_cell():
    from scorelab.summary import headline

    runs = [_run("langevin", s, "evaluation", (3, 2, v)) for s, v in ((0, 0.9), (1, 0.5), (2, 0.7))]
    runs[1].diverged_at = 500.0
    _, body = headline(analyse(runs, STUDY), STUDY)
    assert f"{0.8:.3g} ± {math.sqrt(0.02):.3g} (2 of 3 seeds)" in body[0]
    runs[2].diverged_at = 400.0
    _, body = headline(analyse(runs, STUDY), STUDY)
    assert "0.9 (1 of 3 seeds)" in body[0]


def test_costs_print_in_plain_digits_and_a_table_without_baseline_has_no_speedup_columns():
    import dataclasses

    from scorelab.summary import cost_text, headline

    assert [cost_text(v) for v in (2000, 33_000, 44_548, 416.2, 12.34)] == ["2,000", "33,000", "44,500", "416", "12.3"]
    runs = [_run("langevin", s, "evaluation", (3, 3, 3)) for s in (0, 1)]  # never reaches: censored at 1,000
    study = dataclasses.replace(STUDY, baseline=None)
    header, body = headline(analyse(runs, study), study)
    assert not any("speedup" in h for h in header) and "> 1,000 (none reached)" in body[0]


def test_one_seed_shows_no_interval_and_the_legend_says_why():
    from scorelab.summary import text_table

    base = [_run("langevin", 0, "evaluation", (3, 2, 0.9))]  # reaches at 1000
    fast = [_run("fast", 0, "evaluation", (3, 0.9, 0.5), "fast")]  # reaches at 100
    table = text_table(analyse(base + fast, STUDY), STUDY)
    fast_line = next(line for line in table.splitlines() if line.startswith("fast"))
    assert "100 (one seed)" in fast_line and "10.00× (one seed)" in fast_line and "[" not in fast_line
    assert "With one seed no interval can be given" in table and "bootstrap" not in table
    two = [_run("langevin", s, "evaluation", (3, 2, 0.9)) for s in (0, 1)]
    assert "(one seed)" not in text_table(analyse(two, STUDY), STUDY)


def test_a_censored_baseline_bounds_the_speedup_and_a_diverged_row_says_so():
    from scorelab.summary import findings, headline

    base = [_run("langevin", s, "evaluation", (3, 3, 3)) for s in (0, 1, 2)]  # never reaches: censored at 1000
    fast = [_run("fast", s, "evaluation", (3, 0.9, 0.5), "fast") for s in (0, 1, 2)]  # reaches at 100
    blown = [_run("blown", s, "evaluation", (3, 3, 3), "blown") for s in (0, 1, 2)]
    for run in blown:
        run.diverged_at = 21.0
    rows = analyse(base + fast + blown, STUDY)
    _, body = headline(rows, STUDY)
    cells = {line[0]: line for line in body}
    assert cells["fast"][-3] == "≥ 10.00×"  # budget 1000 / median 100; every resample censored: no interval
    assert cells["blown"][-5] == "diverged or failed on every seed"
    text = findings(rows, STUDY, base + fast + blown)
    assert "fast, median 100 [100, 100], a cost speedup of ≥ 10.00× over langevin." in text
    assert "Never within the budget of 1,000: langevin." in text
    assert "Diverged or failed: blown (on 3 of 3 seeds)." in text


def test_the_bound_of_a_half_censored_baseline_takes_its_censored_costs_at_the_budget():
    # Four seeds, the baseline reaching at 100 on two and never within 1000 on two: its median is
    # censored, and at least (100 + 1000) / 2 = 550, so the speedup of a sampler at 100 is at least 5.5.
    base = [_run("langevin", s, "evaluation", (3, 0.9, 0.5) if s < 2 else (3, 3, 3)) for s in range(4)]
    fast = [_run("fast", s, "evaluation", (3, 0.9, 0.5), "fast") for s in range(4)]
    row = {r.sampler: r for r in analyse(base + fast, STUDY)}["fast"]
    assert math.isinf(row.speedup_cost[0]) and row.speedup_bound == 5.5


def test_a_comparison_killed_in_tuning_names_the_runs_it_lacks_and_prints_no_empty_table():
    from types import SimpleNamespace

    from scorelab.reporting import incomplete
    from scorelab.summary import NO_ROWS, text_table

    config = {"seeds": [0], "tuning_seeds": [1000, 1001],
              "samplers": [{"name": "langevin", "label": f"langevin[step_size={h}]"} for h in (0.1, 0.2)]}
    done = [_run("langevin[step_size=0.1]", 1000, "tuning", (3, 2, 0.9))]
    parent = SimpleNamespace(info=SimpleNamespace(status="KILLED"))
    assert incomplete(parent, config, done, STUDY) == [
        "the parent run is KILLED", "never run: langevin[step_size=0.1] tuning seed 1001, langevin[step_size=0.2] "
        "tuning seed 1000, langevin[step_size=0.2] tuning seed 1001, langevin seed 0"]
    assert text_table([], STUDY) == NO_ROWS


def test_the_findings_speak_of_derivative_samplers_only_where_some_ran():
    from scorelab.summary import findings

    base = [_run("langevin", s, "evaluation", (3, 2, 0.9)) for s in (0, 1, 2)]  # pays for scores only
    text = findings(analyse(base, STUDY), STUDY, base)
    assert "derivatives" not in text


def test_a_tie_for_least_cost_is_called_one():
    from scorelab.summary import findings

    base = [_run("langevin", s, "evaluation", (3, 2, 0.9)) for s in (0, 1, 2)]  # reaches at 1000
    a = [_run("a", s, "evaluation", (3, 0.9, 0.5), "a") for s in (0, 1, 2)]  # at 100
    b = [_run("b", s, "evaluation", (3, 0.9, 0.5), "b") for s in (0, 1, 2)]  # at 100 too
    text = findings(analyse(base + a + b, STUDY), STUDY, base + a + b)
    assert "Least cost to quality: a (tied with b), median 100 [100, 100], a cost speedup of 10.00× [" in text


def test_a_sampler_whose_runs_end_far_past_the_budget_is_named():
    from scorelab.summary import findings

    base = [_run("langevin", s, "evaluation", (3, 2, 0.9)) for s in (0, 1, 2)]
    big = [_run("big", s, "evaluation", (3, 3, 3), "big") for s in (0, 1, 2)]
    for run in base:
        run.cost = 1000.0
    for run in big:
        run.cost = 13_000.0  # one step of it costs more than the whole budget
    text = findings(analyse(base + big, STUDY), STUDY, base + big)
    assert "Past the budget of 1,000 (median cost the runs ended at; a step may take more than is left): " \
           "big (13,000)." in text and "langevin (" not in text


def test_a_sampler_of_quality_from_its_start_has_an_unbounded_speedup_over_a_censored_baseline():
    base = [_run("langevin", s, "evaluation", (3, 3, 3)) for s in (0, 1)]  # never reaches
    at_start = [RunRecord("start", "start", s, "evaluation", "FINISHED", curves={"m": [(0, 0.5), (1000, 0.5)]})
                for s in (0, 1)]  # of quality at cost 0
    row = {r.sampler: r for r in analyse(base + at_start, STUDY)}["start"]
    assert row.cost_to_quality[0] == 0 and math.isinf(row.speedup_bound)


def test_runs_csv_leaves_a_metric_a_run_did_not_measure_empty():
    import csv
    import dataclasses
    import io

    from scorelab.summary import runs_csv

    study = dataclasses.replace(STUDY, metrics=["m", "other"])
    tuning = _run("a", 100, "tuning", (3, 2, 0.9))  # tuning runs measure the primary metric alone
    evaluation = _run("a", 0, "evaluation", (3, 2, 0.9))
    evaluation.curves["other"] = [(1000, 0.25)]
    failed = RunRecord("a", "langevin", 1, "evaluation", "FAILED")  # failed before its first checkpoint
    table = csv.DictReader(io.StringIO(runs_csv([tuning, evaluation, failed], study)))
    rows = {(r["role"], r["seed"]): r for r in table}
    tuned = rows["tuning", "100"]
    assert (tuned["final.m"], tuned["final.other"], tuned["cost_to_quality.other"]) == ("0.9", "", "")
    assert rows["evaluation", "0"]["final.other"] == "0.25"
    assert (rows["evaluation", "1"]["final.m"], rows["evaluation", "1"]["cost_to_quality.m"]) == ("nan", "inf")

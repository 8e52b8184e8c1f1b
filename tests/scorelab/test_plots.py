"""The report's figures stay readable: log axes, the quality threshold drawn, the legend beside the
axes, and a scale that one outlying run cannot set."""

from __future__ import annotations

from scorelab.analysis import RunRecord, Study
from scorelab.plots import quality_vs_cost_figure

STUDY = Study(metrics=["m"], primary="m", multiple=2.0, baseline="a", floors={"m": 0.05}, budget=1000)


def _run(label, values):
    curve = list(zip((10, 100, 1000), values, strict=True))
    return RunRecord(label, label, 0, "evaluation", "FINISHED", curves={"m": curve})


def test_an_outlying_run_does_not_set_the_scale_and_the_threshold_is_drawn():
    runs = [_run("a", (3.0, 0.5, 0.08)), _run("b", (2.0, 0.2, 0.06)), _run("c", (1e38, 1e30, 1e20))]
    fig = quality_vs_cost_figure(runs, "m", STUDY)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_xscale() == "log"
    assert ax.get_ylim()[1] < 1e6  # the 1e38 run runs off the top
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "quality: 2 × floor" in labels and {"a", "b", "c"} <= set(labels)
    legend = ax.get_legend().get_window_extent(fig.canvas.get_renderer())
    assert legend.x0 >= ax.get_window_extent(fig.canvas.get_renderer()).x1  # beside the axes, not on a curve


def test_a_well_behaved_comparison_keeps_its_whole_range():
    runs = [_run("a", (3.0, 0.5, 0.08)), _run("b", (2.0, 0.2, 0.06))]
    ax = quality_vs_cost_figure(runs, "m", STUDY).axes[0]
    assert ax.get_ylim()[1] >= 3.0 and ax.get_ylim()[0] <= 0.05


def test_a_budget_ladder_is_drawn_as_its_measured_points_not_as_a_step_from_the_start():
    import numpy as np

    ladder = [RunRecord("annealed", "annealed", s, "evaluation", "FINISHED", budget_points=True,
                        curves={"m": [(10, 3.0), (250, 0.3 + s), (1000, 0.1)]}) for s in (0, 1)]
    ax = quality_vs_cost_figure([_run("a", (3.0, 0.5, 0.08)), *ladder], "m", STUDY).axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    drawn = lines["annealed (a run to each budget, per seed)"]
    assert drawn.get_marker() == "o" and list(drawn.get_xdata()) == [10, 250, 1000]
    assert np.allclose(drawn.get_ydata(), [3.0, 0.3, 0.1])  # its points, not the value at 10 carried to 1000
    assert "points: one run to each budget" in ax.get_title(loc="left")


def test_a_speedup_plot_with_nothing_to_draw_says_so_and_has_no_legend():
    from scorelab.analysis import analyse
    from scorelab.plots import speedup_figure

    never = [RunRecord(label, label, s, "evaluation", "FINISHED", curves={"m": [(10, 3.0), (1000, 3.0)]})
             for label in ("a", "b") for s in (0, 1)]  # neither reaches: no speedup anywhere
    ax = speedup_figure(analyse(never, STUDY), STUDY).axes[0]
    assert ax.get_legend() is None and [t.get_text() for t in ax.texts] == ["no finite speedup to draw"]
    assert ax.get_title(loc="left") == "not drawn, no finite speedup: b (neither it nor a reached)"

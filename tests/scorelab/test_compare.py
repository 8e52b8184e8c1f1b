"""A comparison end to end on a temporary MLflow store, read back with MlflowClient."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from scorelab.analysis import select_best
from scorelab.compare import run_comparison
from scorelab.config import parse_comparison
from scorelab.errors import ConfigError
from scorelab.hookspecs import hookimpl
from scorelab.schedules import log_spaced_checkpoints
from scorelab.tracking import Tracker
from tests.helpers import TWO_ROWS_THAT_REACH

BASE = {
    "name": "unit",
    "target": {"name": "gmm", "weights": [0.8, 0.2], "means": [[-4, -4], [4, 4]], "stds": [1, 1]},
    "budget": 60,
    "chains": 200,
    "seeds": [0, 1],
    "checkpoints": 4,
    "init": {"distribution": "uniform", "scale": 6.0},
    "cost_weights": {"vjp": 3, "jvp": 4},
    "metrics": ["sliced_wasserstein", "mode_weight_error"],
    "samplers": [{"name": "langevin", "step_size": [0.05, 0.2]}, {"name": "annealed_langevin", "levels": 3}],
}

# BASE with Langevin's best setting known by construction. The chains start far out, N(0, 30^2 I). At
# h = 0.2 the pull towards the nearest mode (unit variance) shrinks the distance to it by 1 - h = 0.8 a
# step, to 0.8^60 ~ 1e-6 of it at the 60-evaluation budget; at h = 0.002 by 0.998^60 = 0.89 only, so
# those chains are still ~27 wide against the target's spread of ~4 (sliced Wasserstein >= ~20, where
# even every chain in the wrong mode would read < 8). On every tuning seed h = 0.2 reaches quality sooner
# or, neither reaching it, ends lower: select_best must pick it.
KNOWN_BEST = {**BASE, "init": {"distribution": "gaussian", "scale": 30.0},
              "samplers": [{"name": "langevin", "step_size": [0.002, 0.2]}, {"name": "annealed_langevin", "levels": 3}]}
BEST = "langevin[step_size=0.2]"


def _children(client, result):
    runs = client.search_runs([result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    return {r.info.run_name: r for r in runs}


def _artifacts(client, run_id):
    return {a.path for a in client.list_artifacts(run_id)}


def test_parent_child_runs_curves_and_artifacts(host, tracking_uri):
    comp = parse_comparison(KNOWN_BEST, "inline.yaml", host)
    result = run_comparison(comp, Tracker(tracking_uri), plugins=host.listing())
    client = MlflowClient(tracking_uri)

    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["scorelab.role"] == "comparison"
    assert {"config.yaml", "plugins.json", "summary.md", "runs.csv", "environment.json", "plots"} <= _artifacts(
        client, parent.info.run_id)
    assert {"plots/sliced_wasserstein_vs_cost.png", "plots/mode_weight_error_vs_cost.png"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert parent.data.metrics["floor.sliced_wasserstein"] > 0
    # The UI opens the experiment on its runs, and the parent's page on the answer.
    assert client.get_experiment(result.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    note = parent.data.tags["mlflow.note.content"]
    assert note.startswith("**Quality is sliced_wasserstein ≤") and "samplers that reach it on most seeds" in note
    assert "| sampler | setting |" in note

    children = _children(client, result)
    # Tuning runs every setting on seeds 1000 + i, evaluation the best setting on the seeds themselves.
    tuning = {f"tune {s} langevin[step_size={h}]" for h in (0.002, 0.2) for s in (1000, 1001)}
    evaluation = {f"eval {s} {label}" for label in (BEST, "annealed_langevin") for s in (0, 1)}
    assert set(children) == tuning | evaluation
    run = children[f"eval 1 {BEST}"]
    assert run.data.tags["scorelab.sampler"] == "langevin" and run.data.tags["scorelab.seed"] == "1"
    assert run.data.tags["scorelab.role"] == "evaluation" and run.data.tags["scorelab.target"] == "gmm"
    assert run.data.params["seed"] == "1" and "step_size" in run.data.params
    assert (run.data.params["setting"], run.data.params["role"]) == (BEST, "evaluation")
    assert run.data.metrics["calls.nfe"] == 60 and run.data.metrics["diverged"] == 0
    curve = client.get_metric_history(run.info.run_id, "sliced_wasserstein")
    steps = [m.step for m in curve]
    assert steps == sorted(steps) and steps[0] == 1 and steps[-1] == 60 and len(steps) >= 4
    assert "samples.png" in _artifacts(client, run.info.run_id)
    assert run.info.artifact_uri.startswith(Path(tracking_uri.removeprefix("sqlite:///")).parent.as_uri())
    assert all(r.info.status == "FINISHED" for r in children.values())


def test_same_config_and_seed_give_the_same_result(host, tmp_path):
    finals = []
    for i in range(2):
        comp = parse_comparison(BASE, None, host)
        result = run_comparison(comp, Tracker(f"sqlite:///{tmp_path / f'{i}.db'}"))
        finals.append([(r.label, r.seed, r.role, r.curves) for r in result.runs])
    assert finals[0] == finals[1]


def test_diverging_sampler_is_recorded_and_the_comparison_goes_on(host, tracking_uri):
    config = {**BASE, "seeds": [0], "samplers": [{"name": "langevin", "step_size": [0.1, 50.0]}]}
    result = run_comparison(parse_comparison(config, None, host), Tracker(tracking_uri))
    by_label = {r.label: r for r in result.runs if r.role == "tuning"}
    assert by_label["langevin[step_size=0.1]"].diverged_at is None
    bad = by_label["langevin[step_size=50]"]
    assert bad.diverged_at is not None and bad.diverged_at < 60 and math.isnan(bad.final("sliced_wasserstein"))
    assert {r.label for r in result.runs if r.role == "evaluation"} == {"langevin[step_size=0.1]"}
    run = MlflowClient(tracking_uri).get_run(bad.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["scorelab.status"] == "diverged"
    assert run.data.metrics["diverged"] == 1 and run.data.metrics["diverged_at_cost"] == bad.diverged_at


@dataclass
class _State:
    x: torch.Tensor
    k: int = 0


@dataclass
class Flaky:
    """Raises ``error`` at step ``at``."""

    at: int = 5
    error: str = "runtime"

    def init(self, x0, oracle, budget):
        return _State(x0)

    def step(self, state, oracle, generator):
        if state.k == self.at:
            raise KeyboardInterrupt() if self.error == "interrupt" else RuntimeError("sampler bug")
        return _State(state.x + 0.01 * oracle.score(state.x), state.k + 1), None


class _FlakyPlugin:
    @hookimpl
    def register_samplers(self, register):
        register(Flaky, name="flaky")


def test_failing_sampler_fails_its_run_only(host, tracking_uri):
    host.add(_FlakyPlugin(), "flaky")
    config = {**BASE, "seeds": [0], "samplers": ["flaky", {"name": "langevin", "step_size": 0.1}]}
    result = run_comparison(parse_comparison(config, None, host), Tracker(tracking_uri))
    flaky, good = result.runs
    assert flaky.status == "FAILED" and good.status == "FINISHED"
    client = MlflowClient(tracking_uri)
    assert client.get_run(flaky.run_id).info.status == "FAILED"
    assert "error.txt" in _artifacts(client, flaky.run_id)
    assert "sampler bug" in client.get_run(flaky.run_id).data.tags["scorelab.error"]
    assert client.get_run(result.parent_run_id).info.status == "FINISHED"


def test_interrupt_marks_runs_killed_and_keeps_what_was_logged(host, tracking_uri):
    host.add(_FlakyPlugin(), "flaky")
    config = {**BASE, "seeds": [0], "checkpoints": 30,
              "samplers": [{"name": "langevin", "step_size": 0.1}, {"name": "flaky", "at": 40, "error": "interrupt"}]}
    tracker = Tracker(tracking_uri)
    with pytest.raises(KeyboardInterrupt):
        run_comparison(parse_comparison(config, None, host), tracker)
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("unit").experiment_id])
    by_name = {r.info.run_name: r for r in runs}
    assert by_name["compare unit"].info.status == "KILLED"
    assert by_name["eval 0 langevin"].info.status == "FINISHED"
    killed = by_name["eval 0 flaky"]
    assert killed.info.status == "KILLED"
    # checkpoints before the interrupt were buffered, and flushed when the run was closed
    assert len(client.get_metric_history(killed.info.run_id, "sliced_wasserstein")) >= 10


def test_the_readme_shows_the_quickstart_config_as_it_is():
    root = Path(__file__).parents[2]
    shipped = (root / "configs" / "quickstart.yaml").read_text()
    body = "\n".join(line for line in shipped.splitlines() if not line.startswith("#"))
    assert f"```yaml\n{body}\n```" in (root / "README.md").read_text()


def test_quickstart_config_parses(host):
    from scorelab.config import load_comparison

    comp = load_comparison(Path(__file__).parents[2] / "configs" / "quickstart.yaml", host)
    assert {s.name for s in comp.samplers} == {"langevin", "annealed_langevin"}


@pytest.mark.parametrize("name", ["compare_mixture", "compare_illconditioned", "compare_illconditioned_rotated"])
def test_shipped_comparisons_parse_with_five_seeds(host, name):
    from scorelab.config import load_comparison

    comp = load_comparison(Path(__file__).parents[2] / "configs" / f"{name}.yaml", host)
    assert len(comp.seeds) >= 5 and comp.primary in comp.metrics


def test_tuning_and_evaluation_seeds_are_kept_apart(host, tracking_uri):
    result = run_comparison(parse_comparison(KNOWN_BEST, None, host), Tracker(tracking_uri))
    assert {r.seed for r in result.runs if r.role == "tuning"} == {1000, 1001}
    assert {r.seed for r in result.runs if r.role == "evaluation"} == {0, 1}
    assert select_best([r for r in result.runs if r.role == "tuning"], result.study)["langevin"] == BEST
    assert {r.label for r in result.runs if r.role == "evaluation" and r.sampler == "langevin"} == {BEST}


def test_report_rebuilds_the_table_from_mlflow_alone(host, tracking_uri, tmp_path, capsys):
    from scorelab.cli import main

    result = run_comparison(parse_comparison(BASE, None, host), Tracker(tracking_uri))
    client = MlflowClient(tracking_uri)
    original = Path(client.download_artifacts(result.parent_run_id, "summary.md")).read_text()
    assert main(["report", "unit", "--out", str(tmp_path / "rep"), "--tracking-uri", tracking_uri]) == 0
    rebuilt = (tmp_path / "rep" / "report.md").read_text()
    assert rebuilt.startswith(original)
    assert (tmp_path / "rep" / "plots" / "sliced_wasserstein_vs_cost.png").stat().st_size > 1000
    assert "wrote" in capsys.readouterr().out


@dataclass
class Blowup:
    """Finite but exploding: x doubles every step (1e19 is finite in float32, and diverged all the same)."""

    step_size: float = 2.0

    def init(self, x0, oracle, budget):
        return _State(x0)

    def step(self, state, oracle, generator):
        return _State(state.x * self.step_size + 0 * oracle.score(state.x), state.k + 1), None


class _BlowupPlugin:
    @hookimpl
    def register_samplers(self, register):
        register(Blowup, name="blowup")


def test_a_run_that_blows_up_is_diverged_and_never_selected(host, tracking_uri):
    host.add(_BlowupPlugin(), "blowup")
    config = {**BASE, "budget": 200, "samplers": [{"name": "langevin", "step_size": 0.1},
                                                  {"name": "blowup", "step_size": [1.5, 2.0]}]}
    result = run_comparison(parse_comparison(config, None, host), Tracker(tracking_uri))
    tuning = [r for r in result.runs if r.sampler == "blowup"]
    assert tuning and all(r.diverged_at is not None and r.role == "tuning" for r in tuning)
    assert not any(r.sampler == "blowup" and r.role == "evaluation" for r in result.runs)  # never selected
    summary = Path(MlflowClient(tracking_uri).download_artifacts(result.parent_run_id, "summary.md")).read_text()
    assert "Not evaluated (every setting diverged or failed on a tuning seed): blowup" in summary
    assert result.skipped == ["blowup"]  # what `scorelab compare` prints under its table
    note = MlflowClient(tracking_uri).get_run(result.parent_run_id).data.tags["mlflow.note.content"]
    assert "Not evaluated (every setting diverged or failed on a tuning seed): blowup" in note


def test_metrics_see_the_target_moved_to_the_run_device(host, tracking_uri):
    from scorelab_builtins.targets import GMM

    seen = []

    @dataclass
    class CopyingGMM(GMM):
        """A target whose to() returns a moved copy, leaving the original where it was."""

        def to(self, device=None, dtype=None):
            import copy

            return GMM.to(copy.deepcopy(self), device, dtype)

    @dataclass
    class Spy:
        name = "spy"

        def __call__(self, samples, reference, target=None):
            seen.append(target)
            return float(samples.float().var())

    class _Plugin:
        @hookimpl
        def register_targets(self, register):
            register(CopyingGMM, name="copying_gmm")

        @hookimpl
        def register_metrics(self, register):
            register(Spy, name="spy")

    host.add(_Plugin(), "copying")
    config = {**BASE, "seeds": [0], "target": {**BASE["target"], "name": "copying_gmm"}, "metrics": ["spy"],
              "samplers": [{"name": "langevin", "step_size": 0.1}]}
    comp = parse_comparison(config, None, host)
    run_comparison(comp, Tracker(tracking_uri))
    assert seen and not any(t is comp.target for t in seen)  # floors and checkpoints alike
    assert all(t.mixture_weights.dtype == torch.float32 for t in seen)


def test_chains_from_the_target_start_at_quality(host, tracking_uri):
    config = {**BASE, "seeds": [0], "init": {"distribution": "target"}, "metrics": ["mode_weight_error"],
              "samplers": [{"name": "langevin", "step_size": 0.05}]}
    result = run_comparison(parse_comparison(config, None, host), Tracker(tracking_uri))
    (run,) = result.runs
    first_cost, first_value = run.curves["mode_weight_error"][0]
    # 200 exact draws: the mode weight is off by its binomial noise only, sd sqrt(0.8 * 0.2 / 200) = 0.028
    assert first_value < 4 * 0.028


def test_cost_to_quality_is_resolved_between_checkpoints_and_repriced_by_report(host, tracking_uri, tmp_path,
                                                                                monkeypatch):
    from scorelab.cli import main

    config = {**BASE, "seeds": [0, 1], "budget": 400, "checkpoints": 5, "chains": 400,
              "init": {"distribution": "gaussian", "center": -4.0, "scale": 0.5}, "quality_multiple": 3.0,
              "metrics": ["mean_error"],
              "target": {"name": "gaussian", "dim": 2}, "samplers": [{"name": "langevin", "step_size": 0.05},
                                                                      {"name": "hessian_diag_langevin"}]}
    result = run_comparison(parse_comparison(config, None, host), Tracker(tracking_uri))
    grid = set(round(c) for c in log_spaced_checkpoints(400, 5)) | {0, 1}
    client = MlflowClient(tracking_uri)
    for run in result.runs:
        cost = result.study.cost_to_quality(run, "mean_error")
        assert math.isfinite(cost) and cost not in grid  # a replayed point, not a checkpoint
        assert client.get_run(run.run_id).data.tags["scorelab.resolution"] == "replay, 2%"
    # Re-priced with a dearer VJP, the curvature sampler costs more; plain Langevin does not move.
    out = tmp_path / "rep"
    assert main(["report", "unit", "--out", str(out), "--tracking-uri", tracking_uri, "--cost-weights", "vjp=30"]) == 0
    text = (out / "report.md").read_text()
    assert "Sensitivity to the cost weights" in text
    assert main(["report", "unit", "--tracking-uri", tracking_uri, "--cost-weights", "vjp=x"]) == 2
    monkeypatch.chdir(tmp_path)  # the default folders: a re-priced report goes beside the as-run one
    for weights in ([], ["--cost-weights", "vjp=30,jvp=4"]):
        assert main(["report", "unit", "--tracking-uri", tracking_uri, *weights]) == 0
    run = result.parent_run_id[:8]
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == [
        f"unit-{run}", f"unit-{run}-at-vjp30-jvp4-curvature1"]


# A comparison on keyed streams: Langevin takes one (and its crossing is replayed from a checkpoint's copy of
# it); annealed Langevin does not declare keyed_rng and takes a generator.
KEYED = {**TWO_ROWS_THAT_REACH, "name": "keyed", "rng": "keyed"}


def test_a_comparison_on_keyed_streams_logs_which_stream_each_run_took_and_replays_it(host, tracking_uri):
    result = run_comparison(parse_comparison(KEYED, "keyed.yaml", host), Tracker(tracking_uri))
    client = MlflowClient(tracking_uri)
    assert client.get_run(result.parent_run_id).data.params["rng"] == "keyed"
    runs = client.search_runs([result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    children = {r.data.tags["scorelab.sampler"]: r for r in runs}
    assert children["langevin"].data.params["rng"] == "keyed"
    assert children["annealed_langevin"].data.params["rng"] == "generator"
    assert children["langevin"].data.tags["scorelab.resolution"].startswith("replay")


def test_an_unknown_rng_is_a_config_error_naming_the_choices(host):
    with pytest.raises(ConfigError) as err:
        parse_comparison({**KEYED, "rng": "philox"}, "keyed.yaml", host)
    assert (err.value.file, err.value.key) == ("keyed.yaml", "rng")
    assert "generator" in str(err.value) and "keyed" in str(err.value)

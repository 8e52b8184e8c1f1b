"""``scorelab train``: bad input refused before any work, kill-and-resume equals an uninterrupted run,
and the trained model is a comparison's score source by MLflow URI."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from scorelab.chain import run_chain
from scorelab.cli import main
from scorelab.compare import make_source
from scorelab.config import parse_comparison
from scorelab.errors import ConfigError, ScorelabError
from scorelab.oracle import ScoreOracle
from scorelab.tracking import Tracker
from scorelab.training import load_training, parse_training, resume, train
from scorelab.training.export import model_source

ROOT = Path(__file__).parents[2]



GOOD = """\
name: unit-train
target: {name: two_moons, size: 600}
model: {name: mlp, noise_conditional: true, hidden: 16, layers: 2}
objective: {name: dsm_multi, sigma_max: 2.0, sigma_min: 0.1, levels: 4}
steps: 20
batch_size: 64
"""

BROKEN = [
    # (replace this, with that, expected key path, expected words in the message)
    ("batch_size: 64", "batch_size: 512", "batch_size",
     "batch_size 512 is larger than the training split of target 'two_moons' (480 points)"),
    ("name: dsm_multi, sigma_max: 2.0, sigma_min: 0.1, levels: 4", "name: esm, sigma: 0.1", "objective",
     "objective esm requires exact_score, which target 'two_moons' does not provide (a data set has samples only)"),
    ("noise_conditional: true, ", "", "objective",
     "objective dsm_multi requires noise_conditional, which model mlp does not provide (for mlp: set "
     "noise_conditional: true)"),
    ("name: dsm_multi, sigma_max: 2.0, sigma_min: 0.1, levels: 4", "name: dsm_second_order", "objective",
     "requires second_order_head, which model mlp does not provide (for mlp: set second_order: true)"),
    ("name: dsm_multi, sigma_max: 2.0, sigma_min: 0.1, levels: 4", "name: ism", "objective",
     "model mlp is noise-conditional, so objective ism needs a noise level > 0"),
    ("name: mlp, noise_conditional: true, hidden: 16, layers: 2", "name: conv", "model",
     "cannot build model conv for target 'two_moons': conv needs image data"),
    ("name: dsm_multi,", "name: dsm_mult,", "objective.name", "did you mean 'dsm_multi'? Registered objectives:"),
    ("levels: 4", "levels: 0", "objective", "levels must be >= 1"),
    ("steps: 20", "steps: 20\nschedule: {name: cosine, warmup: 20}", "schedule.warmup", "must be in [0, steps)"),
    ("steps: 20", "steps: 20\noptimizer: {name: lbfgs}", "optimizer.name", "expected 'adam' | 'adamw' | 'sgd'"),
    ("steps: 20", "steps: 20\nema: 1.0", "ema", "must be in [0, 1)"),
    ("steps: 20", "steps: 20\nbatchsize: 8", "batchsize", "did you mean 'batch_size'?"),
]


@pytest.mark.parametrize("old, new, key, words", BROKEN, ids=[b[2] + ":" + b[3][:30] for b in BROKEN])
def test_bad_training_config_is_refused_before_any_work(tmp_path, host, old, new, key, words):
    assert old in GOOD, old
    path = tmp_path / "train.yaml"
    path.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_training(path, host)
    assert err.value.file == str(path) and (err.value.key or "") == key
    assert words in str(err.value)


def test_a_score_known_at_sigma_zero_only_is_never_asked_for_a_noisy_one(host):
    noisy_esm = {"name": "t", "target": {"name": "banana"}, "model": {"name": "mlp", "noise_conditional": True},
                 "objective": {"name": "esm", "sigma": 0.5}, "steps": 5}
    with pytest.raises(ConfigError, match="target 'banana' knows its score at sigma = 0 only"):
        parse_training(noisy_esm, host=host)
    # Denoising needs samples only; its evaluation compares with the exact score where it is known (sigma = 0).
    from scorelab.training.evaluate import Evaluator
    from scorelab.training.loop import Trainer

    dsm = {**noisy_esm, "objective": {"name": "dsm_multi", "sigma_max": 1.0, "sigma_min": 0.1, "levels": 3}}
    training = parse_training(dsm, host=host)
    assert set(Evaluator(Trainer(training, torch.device("cpu")), 64)()) == {"eval_loss"}  # raised before


def test_cli_refuses_a_bad_config_without_touching_the_store(tmp_path, capsys):
    path = tmp_path / "train.yaml"
    path.write_text(GOOD.replace("batch_size: 64", "batch_size: 512"))
    store = tmp_path / "store" / "mlflow.db"
    assert main(["train", str(path), "--tracking-uri", f"sqlite:///{store}", "--quiet"]) == 2
    assert "batch_size: batch_size 512 is larger" in capsys.readouterr().err
    assert not store.exists()


RESUMABLE = {
    "name": "unit-resume",
    "target": {"name": "gaussian", "dim": 2, "condition_number": 4.0},
    "model": {"name": "mlp", "hidden": 16, "layers": 2},
    "objective": {"name": "dsm", "sigma": 0.3},
    "steps": 30, "batch_size": 64, "checkpoint_every": 10, "log_every": 5, "eval_every": 10, "eval_samples": 200,
    "ema": 0.9, "schedule": {"name": "cosine", "warmup": 5}, "seed": 3,
}


class _Killed(BaseException):
    """Stands in for SIGKILL: no handler runs, the MLflow run stays RUNNING, buffered points are lost."""


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One MLflow store for this module's runs (creating a store costs seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def whole(store):
    """An uninterrupted run, its model registered."""
    import scorelab_builtins
    from scorelab.plugins import PluginHost

    host = PluginHost()
    host.add(scorelab_builtins, "builtins", "scorelab", "test")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(parse_training({**RESUMABLE, "register_as": "unit-model"}, None, host), Tracker(store))
    finally:
        torch.set_num_threads(n)


def test_a_run_resumed_after_ctrl_c_keeps_why_it_stopped_as_history_not_as_an_error(store, host):
    def ctrl_c_at_25(trainer):
        if trainer.step == 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(parse_training(copy.deepcopy(RESUMABLE), None, host), Tracker(store), on_step=ctrl_c_at_25)
    client = MlflowClient(store)
    (stopped,) = client.search_runs([client.get_experiment_by_name("unit-resume").experiment_id])
    assert stopped.data.tags["scorelab.error"] == "interrupted at step 25"
    resume(stopped.info.run_id, Tracker(store), host=host)
    tags = client.get_run(stopped.info.run_id).data.tags
    assert "scorelab.error" not in tags and tags["scorelab.status"] == "ok"
    assert tags["scorelab.resumed_after"] == "interrupted at step 25"


def test_kill_and_resume_equals_an_uninterrupted_run(store, whole, host):
    def kill_at_25(trainer):
        if trainer.step == 25:
            raise _Killed()

    with pytest.raises(_Killed):
        train(parse_training(copy.deepcopy(RESUMABLE), None, host), Tracker(store), on_step=kill_at_25)
    client = MlflowClient(store)
    (killed,) = client.search_runs([client.get_experiment_by_name("unit-resume").experiment_id],
                                   "attributes.status = 'RUNNING'")
    run_id = killed.info.run_id

    resumed = resume(run_id, Tracker(store), host=host)
    assert resumed.run_id == run_id and resumed.resumed_from == 20  # lost steps 21-25: less than one interval
    # The run's training time counts the first session up to its checkpoint, not only the resumed one.
    assert resumed.total_seconds > resumed.seconds
    assert MlflowClient(store).get_run(run_id).data.metrics["train_seconds"] == pytest.approx(resumed.total_seconds)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["scorelab.resumed_from_step"] == "20"

    a = model_source(whole.model_uri, tracking_uri=store, host=host).network.state_dict()
    b = model_source(resumed.model_uri, tracking_uri=store, host=host).network.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the curve has each step once, with the values of the uninterrupted run
    curve = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "loss"))
    assert curve == sorted((m.step, m.value) for m in client.get_metric_history(whole.run_id, "loss"))
    assert [s for s, _ in curve] == list(range(5, 31, 5))
    assert {"model/MLmodel", "model/artifacts"} <= {a.path for a in client.list_artifacts(run_id, "model")}
    with pytest.raises(ScorelabError, match="has finished"):
        resume(run_id, Tracker(store), host=host)


def test_registered_model_loads_by_registry_uri(store, whole, host):
    assert whole.registered_version == "1"
    a = model_source(whole.model_uri, tracking_uri=store, host=host).network.state_dict()
    c = model_source("models:/unit-model/1", tracking_uri=store, host=host).network.state_dict()
    assert all(torch.equal(a[k], c[k]) for k in a)


def test_trained_model_is_a_comparison_score_source(store, whole, host):
    base = {"name": "unit-compare", "target": {"name": "gaussian", "dim": 2, "condition_number": 4.0},
            "score": whole.model_uri, "budget": 20, "chains": 50, "metrics": ["sliced_wasserstein"],
            "samplers": [{"name": "langevin", "step_size": 0.1}]}
    comp = parse_comparison(base, "cmp.yaml", host)
    target = comp.target.to(torch.device("cpu"), torch.float32)
    source = make_source(comp, target, torch.device("cpu"), torch.float32, store)
    x = torch.randn(50, 2)
    trained = model_source(whole.model_uri, tracking_uri=store, host=host)
    torch.testing.assert_close(source.score(x), trained.network(x))
    oracle = ScoreOracle(source)
    run_chain(comp.samplers[0].make(), oracle, x, 20, torch.Generator().manual_seed(0))
    assert oracle.counts.nfe == 20 and oracle.cost == 20  # counted like an exact score

    for change, words in [({"samplers": ["annealed_langevin"]}, "sampler annealed_langevin requires noise_conditional"),
                          ({"target": {"name": "gaussian", "dim": 3}}, r"was trained on shape \(2,\)"),
                          ({"score": "runs:/0123456789abcdef/model"}, "cannot load the model")]:
        comp = parse_comparison({**base, **change}, "cmp.yaml", host)
        with pytest.raises(ConfigError, match=words) as err:
            make_source(comp, comp.target, torch.device("cpu"), torch.float32, store)
        assert err.value.key == "score" and err.value.file == "cmp.yaml"


def test_shipped_training_configs_are_valid(host):
    for path in sorted((ROOT / "configs").glob("train_*.yaml")):
        if "digits" in path.name:
            pytest.importorskip("sklearn")
        training = load_training(path, host)
        assert training.steps > 0
    mixture = yaml.safe_load((ROOT / "configs" / "train_mixture.yaml").read_text())
    quickstart = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    assert mixture["objective"]["name"] == "dsm_multi" and mixture["target"] == quickstart["target"]

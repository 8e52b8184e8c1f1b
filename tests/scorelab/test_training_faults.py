"""``scorelab train`` and trained models under faults: a run trained by two processes at once is refused,
a damaged checkpoint falls back to the one before it, and a corrupt or mismatched model artifact is one
clear error that names the run."""

from __future__ import annotations

import copy
import json
import os
import random
import signal
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from scorelab.cli import main
from scorelab.compare import make_source
from scorelab.config import parse_comparison
from scorelab.errors import ConfigError, ScorelabError
from scorelab.tracking import Tracker
from scorelab.training import parse_training, resume, train
from scorelab.training.checkpoints import Checkpoints
from scorelab.training.export import model_source

CONFIG = {
    "name": "unit-faults",
    "target": {"name": "gaussian", "dim": 2, "condition_number": 4.0},
    "model": {"name": "mlp", "hidden": 8, "layers": 2},
    "objective": {"name": "dsm", "sigma": 0.3},
    "steps": 30, "batch_size": 32, "checkpoint_every": 10, "log_every": 5, "eval_every": 10, "eval_samples": 100,
    "ema": 0.9, "seed": 5,
}


class _Killed(BaseException):
    """Stands in for SIGKILL: no handler runs, the MLflow run stays RUNNING."""


def _kill_at(step: int):
    def on_step(trainer):
        if trainer.step == step:
            raise _Killed()

    return on_step


@pytest.fixture(scope="module")
def module_host():
    import scorelab_builtins
    from scorelab.plugins import PluginHost

    host = PluginHost()
    host.add(scorelab_builtins, "builtins", "scorelab", "test")
    return host


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One MLflow store for this module's runs (creating a store costs seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def whole(store, module_host):
    """An uninterrupted run of CONFIG: the reference for resumed runs, and the model the artifact tests damage."""
    return train(parse_training(copy.deepcopy(CONFIG), None, module_host), Tracker(store))


def _killed_run(store, host, step: int = 25) -> str:
    """The id of a run of CONFIG killed at ``step`` (checkpoints at steps 10 and 20 when killed at 25)."""
    with pytest.raises(_Killed):
        train(parse_training(copy.deepcopy(CONFIG), None, host), Tracker(store), on_step=_kill_at(step))
    return _running_run(store)


def _running_run(store) -> str:
    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name(CONFIG["name"]).experiment_id],
                              "attributes.status = 'RUNNING'", order_by=["attributes.start_time DESC"])
    return runs[0].info.run_id


def _artifacts(store, run_id) -> Path:
    return Path(urllib.parse.urlparse(MlflowClient(store).get_run(run_id).info.artifact_uri).path)


def _weights(store, model_uri: str, host) -> dict:
    return model_source(model_uri, tracking_uri=store, host=host).network.state_dict()


# -- item 3: one process trains a run at a time ---------------------------------------------------------------

def test_resuming_a_run_that_is_still_training_is_refused(store, whole, module_host, capsys):
    refused = []

    def resume_meanwhile(trainer):
        if trainer.step == 15:  # this run is live: a second process resuming it would log every step twice
            run_id = _running_run(store)
            with pytest.raises(ScorelabError) as err:
                resume(run_id, Tracker(store), host=module_host)
            refused.append((run_id, str(err.value)))
            assert main(["train", "--resume", run_id, "--tracking-uri", store, "--quiet"]) == 2

    result = train(parse_training(copy.deepcopy(CONFIG), None, module_host), Tracker(store), on_step=resume_meanwhile)
    ((run_id, message),) = refused
    assert run_id == result.run_id and f"run {run_id} is still training" in message
    assert f"pid {os.getpid()}" in message
    err = capsys.readouterr().err
    assert err.endswith("then resume\n") and "Traceback" not in err
    assert err.splitlines()[-1].startswith(f"error: run {run_id} is still training")
    steps = [m.step for m in MlflowClient(store).get_metric_history(run_id, "loss")]
    assert steps == list(range(5, 31, 5))  # each step once


def test_a_second_resume_while_the_first_runs_is_refused(store, whole, module_host):
    run_id = _killed_run(store, module_host)
    refused = []

    def resume_again(trainer):
        if trainer.step == 25 and not refused:
            with pytest.raises(ScorelabError, match=f"run {run_id} is still training") as err:
                resume(run_id, Tracker(store), host=module_host)
            refused.append(err)

    resumed = resume(run_id, Tracker(store), on_step=resume_again, host=module_host)
    assert refused and resumed.resumed_from == 20
    client = MlflowClient(store)
    assert ([(m.step, m.value) for m in client.get_metric_history(run_id, "loss")]
            == [(m.step, m.value) for m in client.get_metric_history(whole.run_id, "loss")])


def test_the_lock_dies_with_its_process(store, module_host):
    run_id = _killed_run(store, module_host)
    lock = Checkpoints(Tracker(store), run_id).lock_path
    holder = subprocess.Popen(  # another scorelab process, training this run
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from scorelab.training.lock import "
         "hold_lock; held = hold_lock(Path(sys.argv[1]), sys.argv[2]); print('held', flush=True); time.sleep(60)",
         str(lock), run_id], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ScorelabError, match=f"run {run_id} is still training in another process "
                                                f"\\(pid {holder.pid} "):
            resume(run_id, Tracker(store), host=module_host)
    finally:
        holder.send_signal(signal.SIGKILL)  # no handler runs: the kernel drops the lock
        holder.wait()
    assert resume(run_id, Tracker(store), host=module_host).resumed_from == 20


# -- item 4: the checkpoint before the last one is kept ---------------------------------------------------------

def test_a_truncated_last_checkpoint_falls_back_to_the_previous_one(store, whole, module_host, capsys):
    run_id = _killed_run(store, module_host)
    checkpoints = _artifacts(store, run_id) / "checkpoints"
    assert torch.load(checkpoints / "previous.pt", weights_only=True)["step"] == 10
    last = checkpoints / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])

    resumed = resume(run_id, Tracker(store), host=module_host)
    assert resumed.resumed_from == 10
    (line,) = [x for x in capsys.readouterr().err.splitlines() if "last.pt" in x]
    assert f"checkpoints/last.pt of run {run_id} is unreadable" in line
    assert "resuming from checkpoints/previous.pt at step 10" in line
    a, b = _weights(store, whole.model_uri, module_host), _weights(store, resumed.model_uri, module_host)
    assert all(torch.equal(a[k], b[k]) for k in a)  # the replayed steps are the same steps
    client = MlflowClient(store)
    assert ([(m.step, m.value) for m in client.get_metric_history(run_id, "loss")]
            == [(m.step, m.value) for m in client.get_metric_history(whole.run_id, "loss")])


def test_two_damaged_checkpoints_are_one_clear_error(store, module_host):
    run_id = _killed_run(store, module_host)
    checkpoints = _artifacts(store, run_id) / "checkpoints"
    (checkpoints / "last.pt").write_bytes(b"")
    (checkpoints / "previous.pt").write_bytes(random.Random(1).randbytes(500))
    with pytest.raises(ScorelabError, match=f"no readable checkpoint in run {run_id}: checkpoints/last.pt") as err:
        resume(run_id, Tracker(store), host=module_host)
    assert "previous.pt" in str(err.value) and "weights_only" not in str(err.value)


def test_checkpoints_kept_by_a_tracking_server_rotate_and_lock_too(store, module_host, monkeypatch, tmp_path, capsys):
    """Artifacts that are not files here (a server keeps them): rotated locally, both uploaded, locked per user."""
    import scorelab.training.checkpoints as checkpoints

    monkeypatch.setattr(checkpoints, "local_artifact_dir", lambda uri: None)
    monkeypatch.setenv("HOME", str(tmp_path))
    run_id = _killed_run(store, module_host)
    stored = _artifacts(store, run_id) / "checkpoints"
    assert torch.load(stored / "previous.pt", weights_only=True)["step"] == 10
    (stored / "last.pt").write_bytes(b"")
    refused = []

    def resume_again(trainer):
        if not refused:
            with pytest.raises(ScorelabError, match=f"run {run_id} is still training") as err:
                resume(run_id, Tracker(store), host=module_host)
            refused.append(err)

    assert resume(run_id, Tracker(store), on_step=resume_again, host=module_host).resumed_from == 10
    assert refused and "last.pt of run" in capsys.readouterr().err
    assert list((tmp_path / ".cache" / "scorelab" / "locks").glob("*.lock"))


# -- item 7: a damaged model artifact is one clear error --------------------------------------------------------

def _spec_edit(**changes):
    def edit(artifacts: Path):
        spec = json.loads((artifacts / "spec.json").read_text())
        for key, value in changes.items():
            if "." in key:
                outer, inner = key.split(".")
                spec[outer][inner] = value
            elif value is None:
                spec.pop(key)
            else:
                spec[key] = value
        (artifacts / "spec.json").write_text(json.dumps(spec))

    return edit


def _other_weights(artifacts: Path):
    weights = torch.load(artifacts / "weights.pt", weights_only=True)
    weights["body.0.weight"] = torch.zeros(3, 2)
    torch.save(weights, artifacts / "weights.pt")


DAMAGE = [
    # (what is done to the model directory's artifacts, words the error has)
    ("truncated weights", lambda a: (a / "weights.pt").write_bytes((a / "weights.pt").read_bytes()[:300]),
     "weights.pt of run {run} is not a readable state dict (truncated, or not written by scorelab)"),
    ("random weights", lambda a: (a / "weights.pt").write_bytes(random.Random(0).randbytes(2000)),
     "weights.pt of run {run} is not a readable state dict (truncated, or not written by scorelab)"),
    ("empty weights", lambda a: (a / "weights.pt").write_bytes(b""),
     "weights.pt of run {run} is not a readable state dict"),
    ("a list, not a state dict", lambda a: torch.save([1, 2], a / "weights.pt"),
     "weights.pt of run {run} is not a state dict (it holds a list)"),
    ("no weights", lambda a: (a / "weights.pt").unlink(), "weights.pt of run {run} is missing"),
    ("other shape", _other_weights,
     "weights.pt of run {run} does not match the architecture in spec.json (model mlp, hidden=8, layers=2): "
     "parameter 'body.0.weight' has shape (3, 2), the architecture's has (8, 2)"),
    ("spec: other width", _spec_edit(**{"model.hidden": 16}),
     "weights.pt of run {run} does not match the architecture in spec.json (model mlp, hidden=16, layers=2): "
     "parameter 'body.0.weight' has shape (8, 2), the architecture's has (16, 2)"),
    ("spec: not JSON", lambda a: (a / "spec.json").write_text("{not json"),
     "spec.json of run {run} is not valid JSON"),
    ("spec: a list", lambda a: (a / "spec.json").write_text("[1, 2]"),
     "spec.json of run {run}: expected a JSON object, got a list"),
    ("spec: hidden a string", _spec_edit(**{"model.hidden": "big"}), "spec.json of run {run}: model.hidden: "),
    ("spec: hidden negative", _spec_edit(**{"model.hidden": -3}), "spec.json of run {run}: model: invalid mlp"),
    ("spec: unknown key", _spec_edit(**{"model.hiden": 8}), "spec.json of run {run}: model.hiden: unknown key"),
    ("spec: unknown model", _spec_edit(**{"model.name": "mlpx"}),
     "spec.json of run {run}: model.name: unknown model 'mlpx'; did you mean 'mlp'?"),
    ("spec: no model", _spec_edit(model=None), "spec.json of run {run}: missing key 'model'"),
    ("spec: bad shape", _spec_edit(event_shape="x"),
     "spec.json of run {run}: event_shape: expected a list of positive integers, got 'x'"),
    ("spec: conditional, no sigma", _spec_edit(**{"model.noise_conditional": True}),
     "spec.json of run {run}: default_sigma: a noise-conditional model needs a noise level > 0, got None"),
]


def _damaged_copy(store, whole, tmp_path, damage) -> str:
    """A new run holding a copy of the trained model with ``damage`` done to its artifacts."""
    client = MlflowClient(store)
    model = Path(client.download_artifacts(whole.run_id, "model", str(tmp_path)))
    damage(model / "artifacts")
    run = client.create_run(client.get_run(whole.run_id).info.experiment_id).info.run_id
    client.log_artifacts(run, str(model), "model")
    return run


def _comparison(run: str) -> dict:
    return {"name": "unit-damaged", "target": CONFIG["target"], "score": f"runs:/{run}/model", "budget": 100,
            "chains": 10, "metrics": ["sliced_wasserstein"], "samplers": [{"name": "langevin", "step_size": 0.1}]}


@pytest.mark.parametrize("damage, words", [d[1:] for d in DAMAGE], ids=[d[0] for d in DAMAGE])
def test_a_damaged_model_is_a_clear_score_error(store, whole, module_host, tmp_path, damage, words):
    run = _damaged_copy(store, whole, tmp_path, damage)
    comp = parse_comparison(_comparison(run), "cmp.yaml", module_host)
    with pytest.raises(ConfigError) as err:
        make_source(comp, comp.target, torch.device("cpu"), torch.float32, store)
    assert err.value.file == "cmp.yaml" and err.value.key == "score"
    assert words.format(run=run) in str(err.value)
    assert "weights_only" not in str(err.value) and "\n" not in str(err.value)


def test_a_damaged_model_in_a_compare_is_one_line(store, whole, tmp_path, capsys):
    noise = random.Random(2).randbytes(2000)
    run = _damaged_copy(store, whole, tmp_path, lambda a: (a / "weights.pt").write_bytes(noise))
    config = tmp_path / "cmp.yaml"
    config.write_text(yaml.safe_dump(_comparison(run)))
    assert main(["compare", str(config), "--tracking-uri", store, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith(f"error: {config}: score: weights.pt of run {run} is not a readable "
                                           "state dict")
    assert "Traceback" not in err and "weights_only" not in err


def test_a_model_directory_without_its_files_is_named(tmp_path, module_host):
    from scorelab.training.export import load_network

    (tmp_path / "artifacts").mkdir()
    with pytest.raises(ScorelabError, match=f"{tmp_path}: not a scorelab score model"):
        load_network(tmp_path, host=module_host)

"""A comparison on Ray: a local Ray runtime (2 CPUs) and an MLflow server, both on the loopback, both
stopped at the end. Every child run is logged to the server with its curves, the table equals the
local executor's, and a child that raises fails alone."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

import pytest
import torch
import yaml

ray = pytest.importorskip("ray")

from mlflow.tracking import MlflowClient  # noqa: E402

from scorelab.cli import main  # noqa: E402
from scorelab.compare import run_comparison  # noqa: E402
from scorelab.config import parse_comparison  # noqa: E402
from scorelab.executors import RayExecutor  # noqa: E402
from scorelab.hookspecs import hookimpl  # noqa: E402
from scorelab.summary import headline  # noqa: E402
from scorelab.tracking import Tracker  # noqa: E402

SMALL = {"name": "on-ray", "target": {"name": "gaussian", "dim": 2}, "budget": 100, "chains": 64, "seeds": [0, 1],
         "checkpoints": 4, "metrics": ["mean_error"], "cost_weights": {"vjp": 3, "jvp": 4},
         "samplers": [{"name": "langevin", "step_size": [0.05, 0.1]}, {"name": "mala", "warmup": 0}, "broken"]}


@dataclass
class _State:
    x: torch.Tensor


@dataclass
class Broken:
    """Raises on its first step. Defined here, so Ray's workers receive it by value, not by import."""

    def init(self, x0, oracle, budget):
        return _State(x0)

    def step(self, state, oracle, generator):
        raise RuntimeError("sampler bug on a worker")


class _BrokenPlugin:
    @hookimpl
    def register_samplers(self, register):
        register(Broken, name="broken")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(tracking URI of an MLflow server on a temporary sqlite store, a local 2-CPU Ray runtime): both on
    127.0.0.1, both stopped after the module's tests."""
    tmp = tmp_path_factory.mktemp("ray")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
         "--artifacts-destination", str(tmp / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
    try:
        # Ray starts while the server does; the workers pickle this module's sampler by value.
        ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
        uri = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.5)
        yield uri
    finally:
        ray.shutdown()
        server.terminate()
        server.wait(timeout=30)


def _table(result) -> list[list[str]]:
    """The headline rows without the wall-time columns (the one thing two runs cannot share)."""
    header, body = headline(result.rows, result.study)
    keep = [i for i, h in enumerate(header) if "wall" not in h]
    return [[row[i] for i in keep] for row in body]


def test_a_comparison_on_ray_matches_the_local_one_and_survives_a_failed_child(cluster, host, tracking_uri):
    host.add(_BrokenPlugin(), "broken")
    on_ray = run_comparison(parse_comparison(SMALL, None, host), Tracker(cluster), executor=RayExecutor())
    local = run_comparison(parse_comparison(SMALL, None, host), Tracker(tracking_uri))

    assert _table(on_ray) == _table(local)
    assert [(r.label, r.seed, r.role, r.status) for r in on_ray.runs] == [
        (r.label, r.seed, r.role, r.status) for r in local.runs]

    client = MlflowClient(cluster)
    assert client.get_run(on_ray.parent_run_id).info.status == "FINISHED"
    children = client.search_runs([on_ray.experiment_id], f"tags.mlflow.parentRunId = '{on_ray.parent_run_id}'")
    assert {r.info.run_id for r in children} == {r.run_id for r in on_ray.runs} and len(children) == 10
    for record in on_ray.runs:
        run = client.get_run(record.run_id)
        if record.sampler == "broken":
            assert run.info.status == "FAILED" and "sampler bug on a worker" in run.data.tags["scorelab.error"]
            assert "error.txt" in {a.path for a in client.list_artifacts(record.run_id)}
        else:
            assert run.info.status == "FINISHED"
            curve = [(m.step, m.value) for m in client.get_metric_history(record.run_id, "mean_error")]
            assert sorted(curve) == sorted(record.curves["mean_error"]) and len(curve) >= 4


def test_a_task_whose_worker_fails_leaves_its_run_failed(cluster, host, monkeypatch):
    """Not the sampler but the task itself fails (here: the worker cannot build the score source)."""
    import scorelab.executors as executors

    def no_source(*args):
        raise RuntimeError("worker setup failed")

    host.add(_BrokenPlugin(), "broken")
    comp = parse_comparison({**SMALL, "seeds": [0], "samplers": [{"name": "langevin", "step_size": 0.1}]}, None, host)
    monkeypatch.setattr(executors, "_run_remote", no_source)  # submitted by value: the workers run this one
    result = run_comparison(comp, Tracker(cluster), executor=RayExecutor())
    (record,) = result.runs
    run = MlflowClient(cluster).get_run(record.run_id)
    assert record.status == run.info.status == "FAILED" and "worker setup failed" in run.data.tags["scorelab.error"]


def test_cli_on_ray_and_its_refusal_of_sqlite_for_a_cluster(cluster, tmp_path, capsys):
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump({**SMALL, "samplers": [{"name": "langevin", "step_size": 0.1}], "seeds": [0]}))
    assert main(["compare", str(config), "--quiet", "--executor", "ray", "--tracking-uri", cluster]) == 0
    assert "langevin" in capsys.readouterr().out
    sqlite = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["compare", str(config), "--executor", "ray", "--ray-address", "ray://head:10001",
                 "--tracking-uri", sqlite]) != 0
    assert "not the sqlite file" in capsys.readouterr().err
    assert not (tmp_path / "mlflow.db").exists()  # refused before any work


TINY_TRAINING = {"name": "train-on-ray", "target": {"name": "gmm", "weights": [0.5, 0.5],
                                                     "means": [[-2.0, 0.0], [2.0, 0.0]], "stds": [1.0, 1.0]},
                 "model": {"name": "mlp", "hidden": 16, "layers": 2}, "objective": {"name": "dsm", "sigma": 0.5},
                 "steps": 20, "batch_size": 64, "seed": 0, "checkpoint_every": 10, "log_every": 5}


def test_training_on_ray_logs_the_same_model_as_here(cluster, host, tracking_uri, capsys):
    from scorelab.training import parse_training, train

    on_ray = RayExecutor().train(parse_training(TINY_TRAINING, host=host), cluster)
    here = train(parse_training(TINY_TRAINING, host=host), Tracker(tracking_uri))
    assert on_ray.steps == here.steps == 20 and on_ray.final == here.final  # same seeds, same CPU arithmetic
    run = MlflowClient(cluster).get_run(on_ray.run_id)
    assert run.info.status == "FINISHED" and on_ray.model_uri == f"runs:/{on_ray.run_id}/model"
    assert main(["train", "--resume", on_ray.run_id, "--executor", "ray", "--tracking-uri", cluster]) != 0
    assert "without --executor ray" in capsys.readouterr().err


def test_training_for_a_cluster_refuses_sqlite_before_creating_it(tmp_path, capsys):
    config, sqlite = tmp_path / "train.yaml", tmp_path / "mlflow.db"
    config.write_text(yaml.safe_dump(TINY_TRAINING))
    assert main(["train", str(config), "--executor", "ray", "--ray-address", "ray://head:10001",
                 "--tracking-uri", f"sqlite:///{sqlite}"]) != 0
    assert "not the sqlite file" in capsys.readouterr().err and not sqlite.exists()
    assert main(["train", str(config), "--ray-address", "ray://head:10001",
                 "--tracking-uri", f"sqlite:///{sqlite}"]) != 0
    assert "--ray-address needs --executor ray" in capsys.readouterr().err and not sqlite.exists()

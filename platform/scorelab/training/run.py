"""A training run in MLflow: params, batched loss curve, evaluation at checkpoints, periodic
checkpoints, the trained model as an MLflow model, and resume into the same run.

Checkpoints are run artifacts (``checkpoints/last.pt`` and the one before it, see ``checkpoints``),
so ``resume(run_id)`` needs nothing but the store: the config is read back from the run's
``config.yaml``, the state from the checkpoint, and training continues, losing at most one checkpoint
interval. The steps after the checkpoint are replayed exactly (same generator state), so their
metric points, already logged before the kill, are not logged twice. One process at a time trains a
run: a resume of a run that is still training is refused.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..contracts import hyperparameters
from ..device import cpu_threads, device_name, resolve_device
from ..errors import ScorelabError
from ..store import process_tags
from ..tracking import Tracker
from .checkpoints import Checkpoints
from .evaluate import Evaluator
from .export import save_model_dir
from .loop import Trainer
from .spec import Training, model_provides, parse_training

CONFIG_FILE = "config.yaml"


@dataclass
class TrainResult:
    run_id: str
    experiment_id: str
    model_uri: str
    steps: int
    final: dict[str, float]  # the last evaluation figures and loss
    seconds: float  # this session's
    registered_version: str | None = None
    resumed_from: int | None = None
    total_seconds: float | None = None  # the run's, earlier sessions included (see Trainer.seconds)


def train(training: Training, tracker: Tracker, *, progress: bool = False,
          on_step: Callable[[Trainer], None] | None = None) -> TrainResult:
    """Train from scratch into a new MLflow run. ``on_step`` sees the trainer after every step."""
    device = resolve_device(training.device)
    trainer = Trainer(training, device)
    experiment_id = tracker.experiment(training.name)
    t = training
    run_id = tracker.start_run(
        experiment_id, f"train {t.objective_name} {t.model_name} on {t.target_name} seed={t.seed}",
        tags={"scorelab.role": "training", "scorelab.target": t.target_name, "scorelab.model": t.model_name,
              "scorelab.objective": t.objective_name, "scorelab.seed": t.seed,
              "scorelab.device": device_name(device)},
        params=run_params(training, device))
    with Checkpoints(tracker, run_id) as checkpoints:  # held while it trains: a resume meanwhile is refused
        tracker.log_dict(run_id, training.raw, CONFIG_FILE)
        tracker.log_dict(run_id, resolved_config(training, device), "resolved_config.yaml")
        return _run(training, trainer, tracker, run_id, experiment_id, checkpoints, progress, on_step,
                    replayed_until=0)


def resume(run_id: str, tracker: Tracker, *, progress: bool = False,
           on_step: Callable[[Trainer], None] | None = None, host=None) -> TrainResult:
    """Continue a killed or failed training run from its last checkpoint, into the same MLflow run."""
    client = tracker.client
    try:
        role = client.get_run(run_id).data.tags.get("scorelab.role")
    except Exception:
        raise ScorelabError(f"no run '{run_id}' in {tracker.uri}") from None
    if role != "training":
        raise ScorelabError(f"run {run_id} is not a training run (tag scorelab.role is {role!r})")
    with Checkpoints(tracker, run_id) as checkpoints:  # refused while another process trains the run
        run = client.get_run(run_id)  # read under the lock: it may have finished meanwhile
        if run.info.status == "FINISHED":
            raise ScorelabError(f"run {run_id} has finished; nothing to resume (its model: runs:/{run_id}/model)")
        training = _logged_training(tracker, run_id, host)
        trainer = Trainer(training, resolve_device(training.device))
        checkpoints.restore(trainer.load_state_dict)  # moved to the device in load
        logged = max((m.step for key in run.data.metrics for m in client.get_metric_history(run_id, key)),
                     default=0)
        client.update_run(run_id, status="RUNNING")
        stopped = run.data.tags.get("scorelab.error")
        if stopped is not None:  # the run is healthy again: what stopped it is history, not an error
            client.delete_tag(run_id, "scorelab.error")
        tracker.set_tags(run_id, {"scorelab.resumed_from_step": trainer.step, "scorelab.status": "running",
                                  **({"scorelab.resumed_after": stopped} if stopped else {}),
                                  **process_tags()})  # this process trains it now
        return _run(training, trainer, tracker, run_id, run.info.experiment_id, checkpoints, progress, on_step,
                    replayed_until=logged)


def _logged_training(tracker: Tracker, run_id: str, host) -> Training:
    """The run's training, parsed again from its ``config.yaml``."""
    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        raw = yaml.safe_load(Path(tracker.client.download_artifacts(run_id, CONFIG_FILE, tmp)).read_text())
    return parse_training(raw, file=f"runs:/{run_id}/{CONFIG_FILE}", host=host)


def _run(training: Training, trainer: Trainer, *args, **kwargs) -> TrainResult:
    with cpu_threads(training.cpu_threads if trainer.device.type == "cpu" else 0):
        return _loop(training, trainer, *args, **kwargs)


def _loop(training: Training, trainer: Trainer, tracker: Tracker, run_id: str, experiment_id: str,
          checkpoints: Checkpoints, progress: bool, on_step, replayed_until: int) -> TrainResult:
    from tqdm import tqdm

    started, start_step = time.perf_counter(), trainer.step
    evaluator = Evaluator(trainer, training.eval_samples)
    eval_every = training.eval_every or training.checkpoint_every
    final: dict[str, float] = {}
    bar = tqdm(total=training.steps, initial=trainer.step, unit="step", desc=f"train {training.name}",
               disable=not progress or not sys.stderr.isatty(), dynamic_ncols=True)
    last = {"t": time.perf_counter(), "step": trainer.step}

    def log(values: dict[str, float], step: int) -> None:
        if step > replayed_until:  # steps replayed after a resume were logged before the kill
            tracker.log_metrics(run_id, values, step=step)

    def after_step(tr: Trainer) -> None:
        step = tr.step
        bar.update(1)
        end = step == training.steps
        if step % training.log_every == 0 or end:
            loss = tr.pop_loss()
            if not math.isfinite(loss):
                raise FloatingPointError(f"the loss is {loss} at step {step}: training diverged (lower the "
                                         "learning rate, or set grad_clip)")
            now = time.perf_counter()
            rate = (step - last["step"]) / max(now - last["t"], 1e-9)
            last.update(t=now, step=step)
            final["loss"] = loss
            log({"loss": loss, "lr": tr.lr, "steps_per_second": rate}, step)
            bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
        if step % eval_every == 0 or end:
            figures = evaluator()
            final.update(figures)
            log(figures, step)
        if step % training.checkpoint_every == 0 and not end:
            save_checkpoint(tracker, run_id, checkpoints, tr)
        if on_step is not None:
            on_step(tr)

    try:
        trainer.run(training.steps, after_step)
    except KeyboardInterrupt as exc:
        exc.scorelab_run_id = run_id  # for the message that says how to resume
        _close(tracker, run_id, "KILLED", f"interrupted at step {trainer.step}")
        raise
    except Exception as exc:
        exc.scorelab_run_id = run_id
        tracker.log_text(run_id, traceback.format_exc(), "error.txt")
        _close(tracker, run_id, "FAILED", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        bar.close()

    return _finish(training, trainer, tracker, run_id, experiment_id, final, started, start_step)


def _finish(training: Training, trainer: Trainer, tracker: Tracker, run_id: str, experiment_id: str,
            final: dict[str, float], started: float, start_step: int) -> TrainResult:
    """The trained model logged (and registered), the run's time and loss figure; the run ends FINISHED."""
    tracker.flush(run_id)
    log_model(tracker, run_id, training, trainer)
    version = register(tracker, run_id, training.register_as) if training.register_as else None
    seconds, total = time.perf_counter() - started, trainer.seconds
    tracker.log_metrics(run_id, {"train_seconds": total, "tracking_seconds": tracker.seconds}, step=trainer.step)
    tracker.log_figure(run_id, training_figure(tracker, run_id), "training.png")
    tracker.set_tags(run_id, {"scorelab.status": "ok"})
    tracker.end(run_id, "FINISHED")
    return TrainResult(run_id, experiment_id, f"runs:/{run_id}/model", trainer.step, final, seconds, version,
                       start_step if start_step else None, total)


def _close(tracker: Tracker, run_id: str, status: str, why: str) -> None:
    tracker.set_tags(run_id, {"scorelab.status": status.lower(), "scorelab.error": why[:5000]})
    tracker.end(run_id, status)


def save_checkpoint(tracker: Tracker, run_id: str, checkpoints: Checkpoints, trainer: Trainer) -> None:
    """Write the trainer's state as the run's newest checkpoint (metrics up to now flushed first, so the
    store never holds a checkpoint ahead of its curve)."""
    tracker.flush(run_id)
    t0 = time.perf_counter()
    checkpoints.save(trainer.state_dict())
    tracker.seconds += time.perf_counter() - t0


def log_model(tracker: Tracker, run_id: str, training: Training, trainer: Trainer) -> None:
    """The weight-averaged network as the run's ``model`` (an MLflow pyfunc model)."""
    levels = training.noise_levels
    conditional = bool(trainer.network.noise_conditional)
    spec = {
        "model": {"name": training.model_name, **hyperparameters(training.model)},
        "event_shape": list(trainer.target.event_shape),
        "noise_levels": levels,
        "default_sigma": min(levels) if conditional else None,
        "provides": sorted(model_provides(training.model)),
        "objective": {"name": training.objective_name, **hyperparameters(training.objective)},
        "target": {"name": training.target_name},
        "dtype": training.dtype,
        "steps": trainer.step,
    }
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        save_model_dir(Path(tmp) / "model", trainer.ema.network, spec)
        tracker.client.log_artifacts(run_id, str(Path(tmp) / "model"), "model")
    tracker.seconds += time.perf_counter() - t0


def register(tracker: Tracker, run_id: str, name: str) -> str:
    """Register the run's model under ``name``; returns the new version."""
    from mlflow.exceptions import MlflowException

    client = tracker.client
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(exc):
            raise
    source = f"{client.get_run(run_id).info.artifact_uri}/model"
    version = client.create_model_version(name, source, run_id=run_id)
    tracker.set_tags(run_id, {"scorelab.registered_as": f"models:/{name}/{version.version}"})
    return str(version.version)


def run_params(training: Training, device) -> dict:
    """Flat params: every key of the resolved config, plugin hyperparameters as ``model.hidden`` etc."""
    resolved = resolved_config(training, device)
    out = {}
    for key, value in resolved.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}" if k != "name" else key: v for k, v in value.items()})
        else:
            out[key] = value
    return out


def resolved_config(training: Training, device) -> dict:
    """The config as it runs: every default filled in."""
    skip = ("target", "model", "objective", "optimizer", "schedule")
    return {
        **{k: v for k, v in dataclasses.asdict(training.spec).items() if k not in skip},
        "device": str(device),
        "eval_every": training.eval_every or training.checkpoint_every,
        "target": {"name": training.target_name, **training.target.describe()},
        "model": {"name": training.model_name, **hyperparameters(training.model)},
        "objective": {"name": training.objective_name, **hyperparameters(training.objective)},
        "noise_levels": training.noise_levels,
        "optimizer": dataclasses.asdict(training.optimizer),
        "schedule": dataclasses.asdict(training.schedule),
    }


def training_figure(tracker: Tracker, run_id: str):
    """Loss and (where logged) relative ESM per noise level against steps, read back from the run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    client = tracker.client
    keys = sorted(k for k in client.get_run(run_id).data.metrics if k.startswith("esm_relative/"))
    fig, axes = plt.subplots(1, 2 if keys else 1, figsize=(10 if keys else 5, 3.5), squeeze=False)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.15, top=0.9, wspace=0.3)
    loss = client.get_metric_history(run_id, "loss")
    axes[0, 0].plot([m.step for m in loss], [m.value for m in loss])
    axes[0, 0].set(xlabel="step", ylabel="loss", title="training loss")
    for key in keys:
        hist = client.get_metric_history(run_id, key)
        axes[0, 1].semilogy([m.step for m in hist], [m.value for m in hist], label=key.split("/")[1])
    if keys:
        axes[0, 1].set(xlabel="step", ylabel="E|s - s*|^2 / E|s*|^2", title="relative ESM per noise level")
        axes[0, 1].legend(fontsize=7)
    return fig

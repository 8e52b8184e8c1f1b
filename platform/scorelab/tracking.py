"""MLflow tracking for comparisons: parent and child runs, batched metric logging, artifacts.

Samplers never see this module; the runner calls it at checkpoints. Metric points are buffered
and written with ``log_batch`` (one call per flush), at most every ``flush_seconds`` and always
when a run ends or is interrupted, so tracking stays a small share of a run and nothing logged is
lost on Ctrl-C.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from .store import artifact_root, open_store, process_tags

DEFAULT_STORE = Path("runs")
#: MLflow's UI opens an experiment on the view its kind names; without it, MLflow 3 opens on the GenAI
#: overview (traces, tokens) with no runs in sight.
KIND_TAG = "mlflow.experimentKind"
KIND = {KIND_TAG: "custom_model_development"}


def default_tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else the embedded store ``runs/mlflow.db`` under the current directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{DEFAULT_STORE / 'mlflow.db'}"


class Tracker:
    """A thin, batching layer over ``MlflowClient``. ``seconds`` counts time spent in tracking."""

    def __init__(self, tracking_uri: str | None = None, flush_seconds: float = 15.0):
        self.uri = tracking_uri or default_tracking_uri()
        self.client = open_store(self.uri)
        self.flush_seconds = flush_seconds
        self.seconds = 0.0
        self._buffer: dict[str, list] = {}
        self._tags: dict[str, dict[str, str]] = {}
        self._last_flush: dict[str, float] = {}
        self._last_ms: dict[str, int] = {}
        self.open: set[str] = set()  # runs this tracker started and has not ended

    def _timed(self, fn, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0

    def experiment(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        def get_or_create():
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                return self.client.create_experiment(name, artifact_location=artifact_root(self.uri), tags=KIND)
            if exp.lifecycle_stage == "deleted":
                self.client.restore_experiment(exp.experiment_id)
            if KIND_TAG not in exp.tags:
                self.client.set_experiment_tag(exp.experiment_id, KIND_TAG, KIND[KIND_TAG])
            return exp.experiment_id

        for attempt in range(5):  # another command may create it between the lookup and the insert
            try:
                return self._timed(get_or_create)
            except MlflowException:
                if attempt == 4:
                    raise
                time.sleep(0.1 * (attempt + 1))

    def start_run(self, experiment_id: str, name: str, *, parent: str | None = None,
                  tags: dict[str, Any] | None = None, params: dict[str, Any] | None = None) -> str:
        from mlflow.entities import Param

        tags = {**process_tags(), **{k: str(v) for k, v in (tags or {}).items()}}
        if parent:
            tags["mlflow.parentRunId"] = parent
        run = self._timed(self.client.create_run, experiment_id, run_name=name, tags=tags)
        run_id = run.info.run_id
        self.open.add(run_id)
        items = [Param(k, _param_str(v)) for k, v in (params or {}).items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self._timed(self.client.log_batch, run_id, params=items[i : i + 100])
        self._last_flush[run_id] = time.perf_counter()
        return run_id

    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        """Buffer tags; written with the next metric flush (at the latest when the run ends)."""
        self._tags.setdefault(run_id, {}).update({k: str(v) for k, v in tags.items()})

    def log_metrics(self, run_id: str, values: dict[str, float], step: int) -> None:
        """Buffer metric points; written when the buffer is old enough, or at ``flush``/``end``."""
        from mlflow.entities import Metric

        # Timestamps strictly increase within a run, so points at the same step keep their order.
        now_ms = max(int(time.time() * 1000), self._last_ms.get(run_id, 0) + 1)
        self._buffer.setdefault(run_id, []).extend(Metric(k, float(v), now_ms, int(step)) for k, v in values.items())
        self._last_ms[run_id] = now_ms
        if time.perf_counter() - self._last_flush.get(run_id, 0.0) > self.flush_seconds:
            self.flush(run_id)

    def flush(self, run_id: str) -> None:
        """Write buffered metrics and tags, in as few ``log_batch`` calls as MLflow's limits allow."""
        from mlflow.entities import RunTag

        points = self._buffer.pop(run_id, [])
        tags = [RunTag(k, v) for k, v in self._tags.pop(run_id, {}).items()]
        metric_batches = [points[i : i + 1000] for i in range(0, len(points), 1000)]  # MLflow's limits
        tag_batches = [tags[i : i + 100] for i in range(0, len(tags), 100)]
        for j in range(max(len(metric_batches), len(tag_batches))):
            metrics = metric_batches[j] if j < len(metric_batches) else []
            batch_tags = tag_batches[j] if j < len(tag_batches) else []
            self._timed(self.client.log_batch, run_id, metrics=metrics, tags=batch_tags)
        self._last_flush[run_id] = time.perf_counter()

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self._timed(self.client.log_text, run_id, text, artifact_file)

    def log_dict(self, run_id: str, data: Any, artifact_file: str) -> None:
        self._timed(self.client.log_dict, run_id, data, artifact_file)

    def log_figure(self, run_id: str, figure: Any, artifact_file: str) -> None:
        import matplotlib.pyplot as plt

        self._timed(self.client.log_figure, run_id, figure, artifact_file)
        plt.close(figure)

    def end(self, run_id: str, status: str = "FINISHED") -> None:
        """Flush what is buffered and close the run (FINISHED, FAILED or KILLED)."""
        self.flush(run_id)
        self._timed(self.client.set_terminated, run_id, status)
        self.open.discard(run_id)


def _param_str(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."

"""Executors: who runs a comparison's child jobs, and where.

A comparison plans its children as :class:`ChildJob` records (a setting's index, a seed, a phase),
plain data a worker on another machine can receive. The driver opens every child's MLflow run, the
executor runs the jobs, and the driver builds the parent run and the report from the records they
return. ``local`` runs them one after another in this process (the default); ``ray`` submits each as
a Ray task (``pip install 'scorelab[ray]'``; docs/scale-out.md). Both sample the same chains from the
same seeds, so on the same kind of device they give the same numbers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol

from .analysis import RunRecord, Study
from .child import Setup, fail_child, open_child, run_child
from .errors import ScorelabError
from .oracle import CostWeights
from .store import sqlite_path

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class ChildJob:
    """One child run to do: ``comp.samplers[setting]`` on ``seed``, in phase ``role`` (tuning/evaluation)."""

    setting: int
    seed: int
    role: str


class Executor(Protocol):
    def check(self, tracking_uri: str) -> None:
        """Raise ScorelabError, before any work, if this executor cannot log to ``tracking_uri``."""

    def run(self, setup: Setup, jobs: list[ChildJob], progress: Any) -> list[RunRecord]:
        """Run ``jobs``; one record per job, in the jobs' order. A failed child is a FAILED record."""


class LocalExecutor:
    """Today's behaviour: each child opened and run in turn, in this process."""

    def check(self, tracking_uri: str) -> None:
        pass

    def run(self, setup: Setup, jobs: list[ChildJob], progress: Any) -> list[RunRecord]:
        records = []
        for job in jobs:
            setting = setup.comp.samplers[job.setting]
            records.append(run_child(setup, setting, open_child(setup, setting, job.seed, job.role), progress))
        return records


@dataclass(frozen=True)
class _Shared:
    """What the driver measured or opened that every worker needs: plain, picklable data."""

    tracking_uri: str
    experiment_id: str
    parent: str
    tags: dict
    weights: CostWeights
    checkpoints: list
    device: str
    study: Study


class RayExecutor:
    """Each child a Ray task: one GPU per child on CUDA, ``cpu_threads`` CPUs per child on the CPU.

    ``address`` is the cluster's (``ray://head:10001``, ``auto``); None or ``local`` starts or joins a Ray
    runtime on this machine. A task that raises, or whose worker dies, fails its own child run with the
    traceback; the other tasks go on."""

    def __init__(self, address: str | None = None, **init_options):
        self.address, self.init_options = address, init_options

    @property
    def local(self) -> bool:
        return (self.address or os.environ.get("RAY_ADDRESS") or "local") == "local"

    def check(self, tracking_uri: str) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ScorelabError("--executor ray needs Ray: pip install 'scorelab[ray]'") from None
        if sqlite_path(tracking_uri) is not None and not self.local:
            raise ScorelabError(
                f"--executor ray with a Ray cluster ({self.address or os.environ.get('RAY_ADDRESS')}) needs an MLflow "
                f"tracking server, not the sqlite file {tracking_uri}: workers on other machines cannot reach this "
                "machine's disk, and sqlite on a shared disk is not safe for concurrent writers. Start `mlflow server` "
                "and pass --tracking-uri http://HOST:PORT (docs/scale-out.md)")

    def _connect(self) -> None:
        import ray

        if not ray.is_initialized():
            ray.init(address=self.address, **self.init_options)  # "local" starts one here even with $RAY_ADDRESS set

    def train(self, training: Any, tracking_uri: str) -> Any:
        """``scorelab train --executor ray``: the training run as one Ray task (one GPU when the driver
        resolves the config's device to CUDA, else ``cpu_threads`` CPUs), logging to ``tracking_uri``.
        Returns its TrainingResult; an error in training is raised here as itself."""
        import ray

        from .device import resolve_device

        self.check(tracking_uri)
        self._connect()
        cuda = resolve_device(training.device).type == "cuda"
        task = _task(_train_remote, cuda, training.cpu_threads)
        ref = task.remote(training, tracking_uri)
        try:
            return ray.get(ref)
        except KeyboardInterrupt:
            ray.cancel(ref, force=True)  # the worker dies; the next command marks its run KILLED
            raise
        except ray.exceptions.RayTaskError as exc:
            raise exc.as_instanceof_cause() from None

    def run(self, setup: Setup, jobs: list[ChildJob], progress: Any) -> list[RunRecord]:
        import ray

        if not jobs:
            return []
        self._connect()
        comp = setup.comp
        cuda = setup.device.type == "cuda"
        task = _task(_run_remote, cuda, comp.cpu_threads)
        shared = _Shared(setup.tracker.uri, setup.experiment_id, setup.parent, setup.tags, setup.weights,
                         setup.checkpoints, setup.device.type, setup.study)
        comp_ref = ray.put(comp)  # one copy in the object store, shared by every task
        # The driver opens the runs, in plan order: their numbering matches the local executor's, and a task
        # whose worker dies still leaves a run to mark FAILED.
        opened = [open_child(setup, comp.samplers[job.setting], job.seed, job.role) for job in jobs]
        refs = {task.remote(comp_ref, shared, job.setting, record): i for i, (job, record) in
                enumerate(zip(jobs, opened, strict=True))}
        records: list[RunRecord | None] = [None] * len(jobs)
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                i = refs[done[0]]
                try:
                    records[i] = ray.get(done[0])
                    setup.tracker.open.discard(opened[i].run_id)  # the worker's own tracker ended it
                    if progress is not None:
                        progress.update(1)
                except ray.exceptions.RayError as exc:  # the task itself failed: its worker died, or setup raised
                    fail_child(setup.tracker, opened[i], str(exc), f"{type(exc).__name__}: {exc}", progress)
                    records[i] = opened[i]
        except KeyboardInterrupt:
            for ref in pending:  # their runs, still open in the driver's tracker, end KILLED with the parent
                ray.cancel(ref, force=True)
            raise
        return records


def _task(fn, cuda: bool, cpu_threads: int):
    """``fn`` as a Ray task: one GPU on CUDA, in a worker used for that one call (Ray reuses a worker
    only under the GPU it was given first, and a worker's setup is built on its device), else
    ``cpu_threads`` CPUs; never retried (a retry would log into the same run again)."""
    import ray

    if cuda:
        return ray.remote(num_gpus=1, num_cpus=1, max_calls=1, max_retries=0)(fn)
    return ray.remote(num_cpus=max(1, cpu_threads), max_retries=0)(fn)


_WORKER: dict[str, Setup] = {}  # a worker process's setup, built once per comparison (workers are reused)


def _run_remote(comp, shared: _Shared, setting: int, record: RunRecord) -> RunRecord:
    """A Ray task: rebuild the comparison's setup on this worker (from the config's seeds, so the same
    target, source and reference as the driver's), then sample and log the child whose run is open."""
    import torch

    from .compare import materials  # compare imports this module: import at call time
    from .device import cpu_threads
    from .tracking import Tracker

    setup = _WORKER.get(shared.parent)
    if setup is None:
        device = torch.device(shared.device)  # on CUDA, Ray makes the GPU it gave this task the only one visible
        dtype, target, source, reference = materials(comp, device, shared.tracking_uri)
        setup = Setup(comp, Tracker(shared.tracking_uri), shared.experiment_id, shared.parent, source, target,
                      reference, shared.weights, shared.checkpoints, device, dtype, shared.tags, shared.study)
        _WORKER.clear()
        _WORKER[shared.parent] = setup
    with cpu_threads(comp.cpu_threads if setup.device.type == "cpu" else 0):
        return run_child(setup, comp.samplers[setting], record)


def _train_remote(training, tracking_uri: str):
    """A Ray task: train and log the model to the tracking server, as ``scorelab train`` does here."""
    from .tracking import Tracker
    from .training import train

    return train(training, Tracker(tracking_uri), progress=False)

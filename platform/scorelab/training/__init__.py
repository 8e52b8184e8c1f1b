"""Training score models: a YAML config in, an MLflow run with a trained model out.

``load_training(path)`` validates a training config before any work; ``train(training, tracker)``
runs it (or ``resume(run_id, tracker)`` continues a killed run into the same MLflow run); the
trained model is logged as an MLflow model that ``scorelab.training.export.model_source`` loads back.
Modules: ``spec`` (config schema), ``loop`` (the step loop), ``ema``, ``optim``, ``evaluate``,
``run`` (the MLflow run), ``checkpoints`` (the last two checkpoints, rotated atomically), ``lock`` (one
process trains a run at a time), ``export`` (the model as an MLflow artifact, checked when loaded).
"""

from __future__ import annotations

import importlib

_PUBLIC = {
    "load_training": "scorelab.training.spec",
    "parse_training": "scorelab.training.spec",
    "Training": "scorelab.training.spec",
    "train": "scorelab.training.run",
    "resume": "scorelab.training.run",
    "TrainResult": "scorelab.training.run",
}

__all__ = list(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'scorelab.training' has no attribute {name!r}")

"""Optimiser and learning-rate schedule from a training config."""

from __future__ import annotations

import math

import torch

from .spec import OptimizerSpec, ScheduleSpec


def make_optimizer(spec: OptimizerSpec, params) -> torch.optim.Optimizer:
    params = list(params)
    if spec.name == "sgd":
        return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay, foreach=True)
    cls = torch.optim.Adam if spec.name == "adam" else torch.optim.AdamW
    return cls(params, lr=spec.lr, betas=tuple(spec.betas), weight_decay=spec.weight_decay)


def lr_factor(spec: ScheduleSpec, step: int, steps: int) -> float:
    """Multiplier of the base lr at ``step`` (0-based) of ``steps``.

    >>> [round(lr_factor(ScheduleSpec("cosine", warmup=2), s, 6), 3) for s in range(6)]
    [0.5, 1.0, 1.0, 0.75, 0.25, 0.0]
    """
    if step < spec.warmup:
        return (step + 1) / spec.warmup
    if spec.name == "constant":
        return 1.0
    span = max(steps - 1 - spec.warmup, 1)
    progress = min((step - spec.warmup) / span, 1.0)
    decay = 0.5 * (1 + math.cos(math.pi * progress)) if spec.name == "cosine" else 1 - progress
    return spec.final + (1 - spec.final) * decay


def make_schedule(spec: ScheduleSpec, optimizer: torch.optim.Optimizer, steps: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(spec, step, steps))

"""Training configs: YAML in, a validated :class:`Training` out, before any work starts.

Every error names the file, the key path and what would be valid. Besides types and ranges, the
pieces are checked against each other: an objective's ``requires`` against what the model
(``noise_conditional``, ``second_order_head``, ``log_prob``) or the target (``exact_score``, ...)
provides, the objective's noise levels against the model, the batch against a data set's size, the
model against the data's shape.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from .. import params as P
from ..config import MAX_CPU_THREADS, check_device, check_memory, load_yaml, spec_attribute
from ..contracts import traits
from ..device import BYTES, run_memory
from ..errors import ConfigError

#: Capabilities an objective may require of the model; every other one is asked of the target.
MODEL_CAPABILITIES = ("noise_conditional", "second_order_head", "log_prob")

#: Copies of the network's parameters training holds: the weights, their gradients, the optimizer's two
#: moments, the averaged (EMA) weights.
PARAMETER_COPIES = 5


@dataclass
class TrainSpec:
    """The keys of a training config (its schema: the dataclass fields)."""

    name: str  # the MLflow experiment
    target: Any
    model: Any
    objective: Any
    steps: int
    batch_size: int = 256
    optimizer: dict = field(default_factory=dict)
    schedule: dict = field(default_factory=dict)
    ema: float = 0.999  # decay of the weight average the saved model uses; 0 keeps the last weights
    grad_clip: float | None = None
    seed: int = 0
    device: str = "auto"
    cpu_threads: int = 1  # torch threads on the CPU (0: torch's default); small nets' steps only wait on more
    dtype: Literal["float32", "float64"] = "float32"
    checkpoint_every: int = 500
    log_every: int = 50
    eval_every: int | None = None  # default: checkpoint_every
    eval_samples: int = 2000
    register_as: str | None = None  # register the trained model under this name in the model registry


@dataclass
class OptimizerSpec:
    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    momentum: float = 0.9  # sgd only


@dataclass
class ScheduleSpec:
    """Learning-rate schedule: linear warm-up over ``warmup`` steps, then constant, or a cosine or
    linear decay to ``final`` x lr at the last step."""

    name: Literal["constant", "cosine", "linear"] = "constant"
    warmup: int = 0
    final: float = 0.0


@dataclass
class Training:
    file: str | None
    spec: TrainSpec
    target: Any
    model: Any
    objective: Any
    optimizer: OptimizerSpec
    schedule: ScheduleSpec
    raw: dict
    target_name: str = ""  # the names the plugins' classes are registered under
    model_name: str = ""
    objective_name: str = ""

    def __getattr__(self, key):  # steps, batch_size, seed, ... read through to the spec
        return spec_attribute(self, key)

    @property
    def noise_levels(self) -> list[float]:
        return noise_levels(self.objective)


def noise_levels(objective) -> list[float]:
    """The noise levels an objective trains (``noise_levels()``; 0 is the data itself). An objective
    that does not say is taken to train the data itself, [0.0]."""
    method = traits("objective", objective).noise_levels
    return [float(s) for s in method()] if method is not None else [0.0]


def load_training(path: str | Path, host=None) -> Training:
    return parse_training(load_yaml(path), file=str(path), host=host)


def parse_training(raw: dict, file: str | None = None, host=None) -> Training:
    if host is None:
        from ..plugins import host as default_host

        host = default_host()
    if "samplers" in raw and "objective" not in raw:
        raise ConfigError("this is a comparison config (it has 'samplers' and no 'objective'): run it with "
                          "`scorelab compare`", file=file, key="samplers")
    (top,) = P.check_params(TrainSpec, raw, "", file)
    spec = P.instantiate(TrainSpec, top, "", file)
    _check_values(spec, file)
    (opt,) = P.check_params(OptimizerSpec, spec.optimizer, "optimizer", file)
    optimizer = OptimizerSpec(**opt)
    (sch,) = P.check_params(ScheduleSpec, spec.schedule, "schedule", file)
    schedule = ScheduleSpec(**sch)
    _check_optim(optimizer, schedule, spec, file)

    target_name, target = P.build(host, "target", spec.target, "target", file)
    model_name, model = P.build(host, "model", spec.model, "model", file)
    objective_name, objective = P.build(host, "objective", spec.objective, "objective", file)
    training = Training(file, spec, target, model, objective, optimizer, schedule, raw, target_name, model_name,
                        objective_name)
    _check_fit(host, training)
    return training


def model_provides(model) -> frozenset[str]:
    """What a model plugin's networks provide (its ``provides``, else from ``noise_conditional``)."""
    declared = traits("model", model)
    if declared.provides is not None:
        return declared.provides
    return frozenset({"noise_conditional"} if declared.noise_conditional else ())


def build_network(model, event_shape, seed: int) -> torch.nn.Module:
    """The model's network with weights drawn from ``seed`` (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model.build(tuple(event_shape))


def _check_fit(host, t: Training) -> None:
    """The pieces against each other: what the objective requires, its noise levels, the model's
    network for the target's shape, the batch against a data set."""
    file, target, model, objective = t.file, t.target, t.model, t.objective

    def bad(key, msg):
        raise ConfigError(msg, file=file, key=key)

    _check_requires(host, t)
    levels = noise_levels(objective)
    conditional = "noise_conditional" in model_provides(model)
    noiseless = "noise_conditional" not in target.provides
    if "exact_score" in traits("objective", objective).requires and max(levels) > 0 and noiseless:
        bad("objective", f"objective {t.objective_name} needs the exact score at noise levels up to {max(levels):g}, "
                         f"but target '{t.target_name}' knows its score at sigma = 0 only (it is not "
                         "noise-conditional)")
    if len(levels) > 1 and not conditional:
        bad("model", f"objective {t.objective_name} trains at {len(levels)} noise levels; model {t.model_name} is not "
                     "noise-conditional")
    if conditional and min(levels) <= 0:
        bad("objective", f"model {t.model_name} is noise-conditional, so objective {t.objective_name} needs a noise "
                         "level > 0 (set sigma; an objective says which levels it trains with noise_levels())")
    _check_memory(t)
    try:
        build_network(model, target.event_shape, t.spec.seed)
    except ValueError as exc:
        bad("model", f"cannot build model {t.model_name} for target '{t.target_name}': {exc}")
    if _is_data_set(target):
        n = len(target.train_split())
        if t.spec.batch_size > n:
            bad("batch_size", f"batch_size {t.spec.batch_size} is larger than the training split of target "
                              f"'{t.target_name}' ({n} points); use at most {n}")


def _check_requires(host, t: Training) -> None:
    """Each capability the objective requires, of the model (MODEL_CAPABILITIES) or of the target."""
    m_caps, t_caps = model_provides(t.model), frozenset(t.target.provides)
    for need in traits("objective", t.objective).requires:
        if need in MODEL_CAPABILITIES and need not in m_caps:
            setting = traits("model", t.model).provides_with.get(need)
            options = f" (for {t.model_name}: set {setting})" if setting else ""
            raise ConfigError(f"objective {t.objective_name} requires {need}, which model {t.model_name} does not "
                              f"provide{options}; it provides: {', '.join(sorted(m_caps)) or 'nothing'}",
                              file=t.file, key="objective")
        if need not in MODEL_CAPABILITIES and need not in t_caps:
            why = " (a data set has samples only)" if _is_data_set(t.target) else ""
            usable = [n for n in host.names("objective") if set(traits("objective", host.get("objective", n)).requires)
                      <= set(MODEL_CAPABILITIES) | t_caps]
            raise ConfigError(f"objective {t.objective_name} requires {need}, which target '{t.target_name}' does not "
                              f"provide{why}; it provides: {', '.join(sorted(t_caps)) or 'nothing'}. Objectives "
                              f"it can train with: {', '.join(usable)}", file=t.file, key="objective")


def _check_memory(t: Training) -> None:
    """Refuse a run whose rough memory need exceeds the device's: the parameters (counted on torch's meta
    device, so nothing is allocated) and batch- or evaluation-sized tensors (:func:`scorelab.device.run_memory`)."""
    spec = t.spec
    dim = math.prod(t.target.event_shape)
    parameters = _parameter_count(t)
    weights = parameters * BYTES[spec.dtype] * PARAMETER_COPIES
    rows, key = ((spec.eval_samples, "eval_samples") if spec.eval_samples > spec.batch_size
                 else (spec.batch_size, "batch_size"))
    data = run_memory(rows, dim, spec.dtype)
    if weights > data:
        key, what = "model", f"model {t.model_name} ({parameters:,} parameters)"
    else:
        what = f"a {key} of {rows} points of dimension {dim} in {spec.dtype}"
    check_memory(weights + data, spec.device, key, t.file, what)


def _parameter_count(t: Training) -> int:
    """The parameters of the model's network for the target, built on torch's meta device (shapes only,
    nothing allocated); 0 when it cannot be built there (the real build that follows says why)."""
    try:
        with torch.device("meta"):
            network = t.model.build(tuple(t.target.event_shape))
    except Exception as exc:  # a third-party model may not build on the meta device: not an error here
        if P.too_large(exc):
            raise ConfigError(f"model {t.model_name} is too large to build for target '{t.target_name}' (a size "
                              "overflows what torch can hold)", file=t.file, key="model") from None
        return 0
    return sum(p.numel() for p in network.parameters())


def _is_data_set(target) -> bool:
    return "data_splits" in target.provides


def _check_values(spec: TrainSpec, file) -> None:
    def bad(key, msg):
        raise ConfigError(msg, file=file, key=key)

    if not re.fullmatch(r"[\w .\-]+", spec.name):
        bad("name", f"use letters, digits, spaces, '.', '_' or '-' (it names the MLflow experiment), got {spec.name!r}")
    for key in ("steps", "batch_size", "checkpoint_every", "log_every"):
        if getattr(spec, key) < 1:
            bad(key, f"must be >= 1, got {getattr(spec, key)}")
    if spec.eval_every is not None and spec.eval_every < 1:
        bad("eval_every", f"must be >= 1, got {spec.eval_every}")
    if spec.eval_samples < 2:
        bad("eval_samples", f"must be >= 2, got {spec.eval_samples}")
    P.check_range(spec.ema, "ema", file, at_least=0, below=1, why="the decay of the weight average; 0 = no averaging")
    if spec.grad_clip is not None:
        P.check_range(spec.grad_clip, "grad_clip", file, above=0, why="or null for no clipping")
    P.check_seed(spec.seed, "seed", file)
    P.check_range(spec.cpu_threads, "cpu_threads", file, at_least=0, at_most=MAX_CPU_THREADS,
                  why="0 leaves torch's default")
    check_device(spec.device, file)
    if spec.register_as is not None and not re.fullmatch(r"[\w\-. ]+", spec.register_as):
        bad("register_as", f"use letters, digits, spaces, '.', '_' or '-', got {spec.register_as!r}")


def _check_optim(opt: OptimizerSpec, sch: ScheduleSpec, spec: TrainSpec, file) -> None:
    P.check_range(opt.lr, "optimizer.lr", file, above=0)
    P.check_range(opt.weight_decay, "optimizer.weight_decay", file, at_least=0)
    if len(opt.betas) != 2 or not all(math.isfinite(b) and 0 <= b < 1 for b in opt.betas):
        raise ConfigError(f"expected two finite numbers in [0, 1), got {opt.betas}", file=file, key="optimizer.betas")
    P.check_range(opt.momentum, "optimizer.momentum", file, at_least=0, below=1)
    if not 0 <= sch.warmup < spec.steps:
        raise ConfigError(f"must be in [0, steps) = [0, {spec.steps}), got {sch.warmup}", file=file,
                          key="schedule.warmup")
    P.check_range(sch.final, "schedule.final", file, at_least=0, at_most=1, why="a fraction of lr")

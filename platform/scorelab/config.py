"""Comparison configs: YAML in, a validated :class:`Comparison` out, before any work starts.

Every error names the file, the key path and what would be valid (see :mod:`scorelab.params`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from . import params as P
from .errors import ConfigError
from .training.export import MODEL_URI


@dataclass
class InitSpec:
    """Initial chains, shared by every sampler: N(center, scale^2 I), U[center +- scale]^d, or exact
    samples of the target (``target``: for stationarity and mixing comparisons; scale and center unused)."""

    distribution: Literal["gaussian", "uniform", "target"] = "gaussian"
    scale: float = 1.0
    center: float = 0.0


@dataclass
class CostWeightSpec:
    vjp: float
    jvp: float
    curvature: float = 1.0


@dataclass
class ComparisonSpec:
    """The keys of a comparison config (its schema: the dataclass fields)."""

    name: str
    target: Any
    samplers: list
    budget: float
    metrics: list
    chains: int = 1000
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    score: str = "exact"
    device: str = "auto"
    dtype: Literal["float32", "float64"] = "float32"
    init: dict = field(default_factory=dict)
    checkpoints: int = 12
    cost_weights: Literal["auto"] | dict = "auto"
    reference_seed: int = 12345
    tuning_seeds: list[int] | None = None  # default when a sampler sweeps: seeds + 1000
    primary_metric: str | None = None  # default: the first metric
    quality_multiple: float = 1.5  # quality is reached at primary metric <= multiple x its floor
    cost_resolution: float = 0.02  # relative precision of the cost at which quality is reached
    baseline: str | None = None  # default: langevin, when compared
    cpu_threads: int = 1  # torch threads on the CPU (0: torch's default); small per-step tensors gain nothing from more


@dataclass
class SamplerSetting:
    """One point of a sampler's sweep. ``name`` is the row it belongs to: the plugin's name, or the
    entry's ``as`` (one plugin compared as two rows, e.g. exact and estimated curvature)."""

    name: str
    cls: type
    params: dict
    label: str  # e.g. "langevin[step_size=0.05]", for run names

    def make(self) -> Any:
        return self.cls(**self.params)


@dataclass
class Comparison:
    file: str | None
    spec: ComparisonSpec
    target: Any
    init: InitSpec
    metrics: dict[str, Any]
    samplers: list[SamplerSetting]
    cost_weights: CostWeightSpec | None
    raw: dict
    tuning_seeds: list[int] = field(default_factory=list)
    primary: str = ""
    baseline: str | None = None

    def __getattr__(self, key):  # budget, chains, seeds, ... read through to the spec
        return getattr(self.spec, key)


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    file = str(path)
    if not path.is_file():
        raise ConfigError("no such config file", file=file)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"not valid YAML{where}: {getattr(exc, 'problem', exc)}", file=file) from None
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of keys at the top level", file=file)
    return data


def load_comparison(path: str | Path, host=None) -> Comparison:
    return parse_comparison(load_yaml(path), file=str(path), host=host)


def parse_comparison(raw: dict, file: str | None = None, host=None) -> Comparison:
    if host is None:
        from .plugins import host as default_host

        host = default_host()
    (top,) = P.check_params(ComparisonSpec, raw, "", file)
    spec = P.instantiate(ComparisonSpec, top, "", file)
    _check_values(spec, file)

    target = P.build(host, "target", spec.target, "target", file)
    (init_params,) = P.check_params(InitSpec, spec.init, "init", file)
    init = InitSpec(**init_params)
    if init.scale <= 0:
        raise ConfigError(f"must be > 0, got {init.scale}", file=file, key="init.scale")

    exact = spec.score == "exact"
    if not exact and not MODEL_URI.fullmatch(spec.score):
        raise ConfigError(f"unknown score source '{spec.score}'. Valid: exact, or a trained model's MLflow URI "
                          "(runs:/<run-id>/model, models:/<name>/<version>)", file=file, key="score")
    if exact and "exact_score" not in target.provides:
        raise ConfigError(f"target '{target.name}' has no exact score; give a trained model", file=file, key="score")

    metrics = _metrics(spec, host, target, file)
    samplers = _sampler_settings(spec, host, target, file)
    names = {s.name for s in samplers}
    tuning_seeds = _tuning_seeds(spec, samplers, file)
    primary = spec.primary_metric or next(iter(metrics))
    if primary not in metrics:
        raise ConfigError(P.unknown_choice("metric", primary, metrics) + " (primary_metric must be one of 'metrics')",
                          file=file, key="primary_metric")
    if spec.quality_multiple < 1:
        raise ConfigError(f"must be >= 1 (a multiple of the quality floor), got {spec.quality_multiple}",
                          file=file, key="quality_multiple")
    baseline = spec.baseline or ("langevin" if "langevin" in names else None)
    if baseline is not None and baseline not in names:
        raise ConfigError(P.unknown_choice("baseline sampler", baseline, names) + " (the baseline must be compared)",
                          file=file, key="baseline")

    return Comparison(file, spec, target, init, metrics, samplers, _cost_weights(spec, file), raw, tuning_seeds,
                      primary, baseline)


def _metrics(spec: ComparisonSpec, host, target, file: str | None) -> dict[str, Any]:
    if not isinstance(spec.metrics, list) or not spec.metrics:
        raise ConfigError("expected a non-empty list of metrics", file=file, key="metrics")
    metrics = {}
    for i, entry in enumerate(spec.metrics):
        metric = P.build(host, "metric", entry, f"metrics[{i}]", file)
        _check_requires(metric, set(target.provides) | {"reference"}, f"metrics[{i}]", file,
                        f"target '{target.name}'")
        metrics[metric.name] = metric
    return metrics


def _sampler_settings(spec: ComparisonSpec, host, target, file: str | None) -> list[SamplerSetting]:
    """Every setting of every sampler entry (a list value is a sweep), checked by its class, labelled."""
    if not isinstance(spec.samplers, list) or not spec.samplers:
        raise ConfigError("expected a non-empty list of samplers", file=file, key="samplers")
    samplers: list[SamplerSetting] = []
    for i, entry in enumerate(spec.samplers):
        path = f"samplers[{i}]"
        name, params = P.split_entry(entry, path, file)
        cls = P.resolve_class(host, "sampler", name, path, file)
        row = _row_name(params.pop("as", cls.name), cls, samplers, host, path, file)
        for setting in P.check_params(cls, params, path, file, sweep=True):
            sampler = P.instantiate(cls, setting, path, file)  # the class's own value checks, now
            if spec.score == "exact":  # a setting may require more than its class; models: make_source
                _check_requires(sampler, set(target.provides), path, file,
                                f"the exact score of target '{target.name}'")
            samplers.append(SamplerSetting(row, cls, setting, row))
    _label(samplers)
    return samplers


def _tuning_seeds(spec: ComparisonSpec, samplers: list[SamplerSetting], file: str | None) -> list[int]:
    """The seeds sweeps are tuned on: given, or the evaluation seeds + 1000 when a row sweeps."""
    names = {s.name for s in samplers}
    swept = any(sum(s.name == n for s in samplers) > 1 for n in names)
    tuning_seeds = spec.tuning_seeds
    if tuning_seeds is None:
        tuning_seeds = [s + 1000 for s in spec.seeds] if swept else []
    if set(tuning_seeds) & set(spec.seeds):
        both = sorted(set(tuning_seeds) & set(spec.seeds))
        raise ConfigError(f"tuning seeds must differ from evaluation seeds; both have {both}",
                          file=file, key="tuning_seeds")
    if swept and not tuning_seeds:
        raise ConfigError("a sweep needs tuning seeds (the best setting is chosen on them, then evaluated on 'seeds')",
                          file=file, key="tuning_seeds")
    return tuning_seeds


def _cost_weights(spec: ComparisonSpec, file: str | None) -> CostWeightSpec | None:
    if not isinstance(spec.cost_weights, dict):
        return None  # auto: timed on the run's device
    (w,) = P.check_params(CostWeightSpec, spec.cost_weights, "cost_weights", file)
    for k, v in w.items():
        if v <= 0:
            raise ConfigError(f"must be > 0, got {v}", file=file, key=f"cost_weights.{k}")
    return CostWeightSpec(**w)


def _check_values(spec: ComparisonSpec, file: str | None) -> None:
    def bad(key, msg):
        raise ConfigError(msg, file=file, key=key)

    if not re.fullmatch(r"[\w .\-]+", spec.name):
        bad("name", f"use letters, digits, spaces, '.', '_' or '-' (it names the MLflow experiment), got {spec.name!r}")
    if not spec.budget > 0:
        bad("budget", f"must be > 0 (cost units: score evaluations), got {spec.budget}")
    if spec.chains < 2:
        bad("chains", f"must be >= 2, got {spec.chains}")
    if not spec.seeds:
        bad("seeds", "must list at least one seed")
    if len(set(spec.seeds)) != len(spec.seeds):
        bad("seeds", f"seeds repeat: {spec.seeds}")
    if spec.cpu_threads < 0:
        bad("cpu_threads", f"must be >= 0 (0 leaves torch's default), got {spec.cpu_threads}")
    if not 0 < spec.cost_resolution <= 0.5:
        bad("cost_resolution", f"must be in (0, 0.5] (a relative precision: 0.02 is 2 %), got {spec.cost_resolution}")
    if spec.checkpoints < 1:
        bad("checkpoints", f"must be >= 1, got {spec.checkpoints}")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", spec.device):
        bad("device", f"expected auto, cpu, cuda, cuda:N or mps, got {spec.device!r}")


def _check_requires(obj: Any, provides: set, path: str, file: str | None, what: str) -> None:
    missing = [r for r in getattr(obj, "requires", ()) if r not in provides]
    if missing:
        raise ConfigError(
            f"{obj.name} requires {', '.join(missing)}, which {what} does not provide "
            f"(it provides: {', '.join(sorted(provides)) or 'nothing'})", file=file, key=path)


def _row_name(row: Any, cls: type, earlier: list[SamplerSetting], host, path: str, file: str | None) -> str:
    """A sampler entry's row: its plugin's name, or ``as`` (``as`` is a Python keyword, so it can never
    be a hyperparameter). One row holds one plugin, and a row never takes another plugin's name."""
    key = f"{path}.as"
    if not isinstance(row, str) or not re.fullmatch(r"[A-Za-z][\w\-]*", row):
        raise ConfigError(f"expected a row name of letters, digits, '_' or '-', got {row!r}", file=file, key=key)
    other = next((s.cls.name for s in earlier if s.name == row and s.cls is not cls), None)
    if other is not None:
        raise ConfigError(f"row '{row}' already holds sampler '{other}'; give this {cls.name} entry another "
                          "name with 'as'", file=file, key=key)
    if row != cls.name and row in host.names("sampler"):
        raise ConfigError(f"'{row}' is another sampler plugin's name; choose a row name that is not",
                          file=file, key=key)
    return row


def _short(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _label(settings: list[SamplerSetting]) -> None:
    """Name each setting by what tells it apart from the sampler's other settings:
    ``langevin[step_size=0.05]``, or just ``annealed_langevin`` when it has one setting."""
    by_name: dict[str, list[SamplerSetting]] = {}
    for s in settings:
        by_name.setdefault(s.name, []).append(s)
    for name, group in by_name.items():
        keys = [k for k in dict.fromkeys(k for s in group for k in s.params)
                if len({repr(s.params.get(k)) for s in group}) > 1]
        seen: dict[str, int] = {}
        for s in group:
            shown = ",".join(f"{k}={_short(s.params[k])}" for k in keys if k in s.params)
            s.label = f"{name}[{shown}]" if shown else name
            seen[s.label] = seen.get(s.label, 0) + 1
            if seen[s.label] > 1:  # the same setting listed twice
                s.label = f"{s.label}#{seen[s.label]}"

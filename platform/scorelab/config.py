"""Comparison configs: YAML in, a validated :class:`Comparison` out, before any work starts.

Every error names the file, the key path and what would be valid (see :mod:`scorelab.params`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from . import params as P
from .contracts import traits
from .errors import ConfigError
from .store import MODEL_URI

#: The most checkpoints a comparison takes (their costs are a list, built whole before the run).
MAX_CPU_THREADS = 4096
MAX_CHECKPOINTS = 10_000


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
    baseline: str | None = None  # the row speedups are measured against; default: the first sampler row listed
    cpu_threads: int = 1  # torch threads on the CPU (0: torch's default); small per-step tensors gain nothing from more
    # The step loop eager (none), compiled by torch.compile (inductor; cuda_graph adds CUDA graphs), or (auto)
    # compiled only when the run is long enough and faster on its first steps; same counts and random stream.
    compile: Literal["none", "inductor", "cuda_graph", "auto"] = "none"
    # A run's random numbers: a torch.Generator seeded with the seed (generator), or counter-based numbers keyed by
    # it (keyed), made inside a compiled step's kernel, for the samplers that declare keyed_rng (scorelab.rng).
    rng: Literal["generator", "keyed"] = "generator"
    # Chains per block (auto: all of them when they fit the device, else as many as fit): a run whose chains do not
    # fit steps them a block after another and is measured as one run (chain.run_blocks).
    chain_block: Literal["auto"] | int = "auto"


@dataclass
class SamplerSetting:
    """One point of a sampler's sweep. ``name`` is the row it belongs to: the plugin's name, or the
    entry's ``as`` (one plugin compared as two rows, e.g. exact and estimated curvature)."""

    name: str
    cls: type
    params: dict
    label: str  # e.g. "langevin[step_size=0.05]", for run names
    plugin: str = ""  # the name the sampler's class is registered under

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
    target_name: str = ""  # the name the target's class is registered under
    block: int = 0  # chains per block, resolved from chain_block by parse_comparison: chains when they all fit

    @property
    def blocked(self) -> bool:
        """Whether the chains run in blocks (:func:`scorelab.chain.run_blocks`)."""
        return self.block < self.spec.chains

    def __getattr__(self, key):  # budget, chains, seeds, ... read through to the spec
        return spec_attribute(self, key)


def spec_attribute(obj, key: str):
    """``obj.spec.key``, for a record that reads its config's keys through to its spec. Private and
    dunder names, and ``spec`` itself, are never forwarded: copy and pickle look those up on an
    instance whose ``spec`` is not set yet, and forwarding them would recurse without end."""
    if key.startswith("_") or key == "spec":
        raise AttributeError(key)
    return getattr(obj.spec, key)


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    file = str(path)
    if path.is_dir():
        found = ", ".join(sorted(p.name for p in path.glob("*.yaml"))) or "none"
        raise ConfigError(f"a directory, not a config file (its .yaml files: {found})", file=file)
    if not path.is_file():
        raise ConfigError("no such config file", file=file)
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a byte-order mark some editors write is fine
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text (saved as UTF-16, or not a text file?): save the config as UTF-8",
                          file=file) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        why = getattr(exc, "problem", None) or getattr(exc, "reason", None) or str(exc).splitlines()[0]
        raise ConfigError(f"not valid YAML{where}: {why}", file=file) from None
    except RecursionError:
        raise ConfigError("not a config: nested too deeply to read", file=file) from None
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of keys at the top level", file=file)
    return data


def load_comparison(path: str | Path, host=None) -> Comparison:
    return parse_comparison(load_yaml(path), file=str(path), host=host)


def parse_comparison(raw: dict, file: str | None = None, host=None) -> Comparison:
    if host is None:
        from .plugins import host as default_host

        host = default_host()
    if "objective" in raw and "samplers" not in raw:
        raise ConfigError("this is a training config (it has 'objective' and no 'samplers'): run it with "
                          "`scorelab train`", file=file, key="objective")
    (top,) = P.check_params(ComparisonSpec, raw, "", file)
    spec = P.instantiate(ComparisonSpec, top, "", file)
    _check_values(spec, file)

    target_name, target = P.build(host, "target", spec.target, "target", file)
    (init_params,) = P.check_params(InitSpec, spec.init, "init", file)
    init = InitSpec(**init_params)
    P.check_range(init.scale, "init.scale", file, above=0)
    block = _chain_block(spec, target, file)
    _check_score(spec, target, target_name, file)

    metrics = _metrics(spec, host, target, target_name, file)
    samplers = _sampler_settings(spec, host, target, target_name, file)
    _check_blocks(spec, block, samplers, file)
    return Comparison(file, spec, target, init, metrics, samplers, _cost_weights(spec, file), raw,
                      _tuning_seeds(spec, samplers, file), _primary(spec, metrics, file),
                      _baseline(spec, samplers, file), target_name, block)


def _check_score(spec: ComparisonSpec, target, target_name: str, file: str | None) -> None:
    exact = spec.score == "exact"
    if not exact and not MODEL_URI.fullmatch(spec.score):
        raise ConfigError(f"unknown score source '{spec.score}'. Valid: exact, or a trained model's MLflow URI "
                          "(runs:/<run-id>/model, models:/<name>/<version>)", file=file, key="score")
    if exact and "exact_score" not in target.provides:
        raise ConfigError(f"target '{target_name}' has no exact score; give a trained model", file=file, key="score")


def _primary(spec: ComparisonSpec, metrics: dict[str, Any], file: str | None) -> str:
    primary = spec.primary_metric or next(iter(metrics))
    if primary not in metrics:
        raise ConfigError(P.unknown_choice("primary metric", primary, metrics, "This config's metrics")
                          + " (primary_metric names one of 'metrics')", file=file, key="primary_metric")
    return primary


def _baseline(spec: ComparisonSpec, samplers: list[SamplerSetting], file: str | None) -> str:
    """The row speedups are measured against: ``baseline``, or the first row listed."""
    names = {s.name for s in samplers}
    baseline = spec.baseline or samplers[0].name
    if baseline not in names:
        raise ConfigError(P.unknown_choice("baseline row", baseline, names, "This comparison's rows")
                          + " (without 'baseline' it is the first row listed)",
                          file=file, key="baseline")
    return baseline


def _metrics(spec: ComparisonSpec, host, target, target_name: str, file: str | None) -> dict[str, Any]:
    if not isinstance(spec.metrics, list) or not spec.metrics:
        raise ConfigError("expected a non-empty list of metrics", file=file, key="metrics")
    metrics = {}
    for i, entry in enumerate(spec.metrics):
        name, metric = P.build(host, "metric", entry, f"metrics[{i}]", file)
        _check_requires(traits("metric", metric).requires, name, set(target.provides) | {"reference"},
                        f"metrics[{i}]", file, f"target '{target_name}'")
        metrics[name] = metric
    return metrics


def _sampler_settings(spec: ComparisonSpec, host, target, target_name: str, file: str | None) -> list[SamplerSetting]:
    """Every setting of every sampler entry (a list value is a sweep), checked by its class, labelled."""
    if not isinstance(spec.samplers, list) or not spec.samplers:
        raise ConfigError("expected a non-empty list of samplers", file=file, key="samplers")
    samplers: list[SamplerSetting] = []
    listed: dict[str, str] = {}  # row -> the entry that made it
    for i, entry in enumerate(spec.samplers):
        path = f"samplers[{i}]"
        name, params = P.split_entry(entry, path, file)
        found = P.resolve(host, "sampler", name, P.name_key(entry, path), file)
        row = _row_name(params.pop("as", found.name), found.name, samplers, host, path, file)
        if row in listed:
            raise ConfigError(f"row '{row}' is made by {listed[row]} already. Compare this entry as a row of its own "
                              "with 'as: NAME', or sweep in one entry with a list of values (step_size: [0.01, 0.3])",
                              file=file, key=path)
        listed[row] = path
        for setting in P.check_params(found.cls, params, path, file, sweep=True, name=found.name,
                                      entry_keys=("as", "name")):
            # The class's own value checks, now; and a setting may require more than its class.
            sampler = P.instantiate(found.cls, setting, path, file, kind="sampler", name=found.name)
            need = traits("sampler", sampler)
            if spec.score == "exact":  # a model's capabilities are checked when it is loaded (make_source)
                _check_requires(need.requires, found.name, set(target.provides), path, file,
                                f"the exact score of target '{target_name}'")
            _check_run(need.check_run, found.name, spec, target, path, file)
            samplers.append(SamplerSetting(row, found.cls, setting, row, found.name))
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
        P.check_range(v, f"cost_weights.{k}", file, above=0, why="in score evaluations")
    return CostWeightSpec(**w)


def _check_values(spec: ComparisonSpec, file: str | None) -> None:
    def bad(key, msg):
        raise ConfigError(msg, file=file, key=key)

    if not re.fullmatch(r"[\w .\-]+", spec.name):
        bad("name", f"use letters, digits, spaces, '.', '_' or '-' (it names the MLflow experiment), got {spec.name!r}")
    P.check_range(spec.budget, "budget", file, above=0, why="cost units: score evaluations")
    if spec.chains < 2:
        bad("chains", f"must be >= 2, got {spec.chains}")
    if not spec.seeds:
        bad("seeds", "must list at least one seed")
    if len(set(spec.seeds)) != len(spec.seeds):
        bad("seeds", f"seeds repeat: {spec.seeds}")
    for key, seeds in (("seeds", spec.seeds), ("tuning_seeds", spec.tuning_seeds or []),
                       ("reference_seed", [spec.reference_seed])):
        for seed in seeds:
            P.check_seed(seed, key, file)
    # Not capped at this machine's cores: a config written on a larger machine still runs here.
    P.check_range(spec.cpu_threads, "cpu_threads", file, at_least=0, at_most=MAX_CPU_THREADS,
                  why="0 leaves torch's default")
    P.check_range(spec.cost_resolution, "cost_resolution", file, above=0, at_most=0.5,
                  why="a relative precision: 0.02 is 2 %")
    P.check_range(spec.checkpoints, "checkpoints", file, at_least=1, at_most=MAX_CHECKPOINTS,
                  why="each evaluates every metric on all chains")
    P.check_range(spec.quality_multiple, "quality_multiple", file, at_least=1, why="a multiple of the quality floor")
    if spec.chain_block != "auto":
        P.check_range(spec.chain_block, "chain_block", file, at_least=1, why="chains per block, or auto")
    check_device(spec.device, file)
    _check_compile(spec.compile, spec.device, file)


def _check_compile(mode: str, device: str, file: str | None) -> None:
    from .compiled import check_mode
    from .device import resolve_device

    reason = check_mode(mode, resolve_device(device))
    if reason:
        raise ConfigError(reason, file=file, key="compile")


def check_device(name: str, file: str | None) -> None:
    """A device name a config may give, and one this machine has."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", name):
        raise ConfigError(f"expected auto, cpu, cuda, cuda:N or mps, got {name!r}", file=file, key="device")
    from .device import unavailable

    reason = unavailable(name)
    if reason:
        raise ConfigError(reason, file=file, key="device")


def check_memory(needed: int, device: str, key: str, file: str | None, what: str) -> None:
    """Refuse a run whose rough memory estimate (``needed`` bytes, :func:`scorelab.device.run_memory`)
    exceeds the device's memory, naming the key to lower."""
    from .device import memory_shortfall

    reason = memory_shortfall(needed, device)
    if reason:
        raise ConfigError(f"{what} {reason}; lower '{key}'", file=file, key=key)


#: Tensors of all chains' size a run in blocks still holds on the device: the reference sample, the two
#: samples of the quality floor, and the chains joined at a checkpoint for the metrics.
FULL_SIZE_COPIES = 4


def _chain_block(spec: ComparisonSpec, target, file: str | None) -> int:
    """Chains per block: ``chain_block`` (at most ``chains``), or (auto) all of them when the memory
    estimate fits the device, else as many as fit; none fitting is the error naming ``chains``."""
    from .device import BYTES, memory_of, memory_shortfall, run_memory

    dim = math.prod(target.event_shape)
    what = f"{spec.chains} chains of dimension {dim} in {spec.dtype}"
    full = FULL_SIZE_COPIES * spec.chains * dim * BYTES[spec.dtype]  # beside the blocks, when there are some
    if spec.chain_block != "auto":
        block = min(spec.chain_block, spec.chains)
        beside = f" (beside {FULL_SIZE_COPIES} tensors of all {spec.chains} chains)" if block < spec.chains else ""
        check_memory(run_memory(block, dim, spec.dtype) + (full if beside else 0), spec.device, "chain_block", file,
                     f"a block of {block} chains of dimension {dim} in {spec.dtype}{beside}")
    elif memory_shortfall(run_memory(spec.chains, dim, spec.dtype), spec.device) is None:
        return spec.chains
    else:  # what stays full size on the device (reference, floor samples, joined chains) is set aside first
        block = min(max(memory_of(spec.device) - full, 0) // run_memory(1, dim, spec.dtype), spec.chains)
        if block == 0:
            check_memory(run_memory(spec.chains, dim, spec.dtype), spec.device, "chains", file, what)
    if block < spec.chains:  # run_blocks keeps the start and each checkpoint's chains on the host
        kept = spec.chains * dim * BYTES[spec.dtype] * (spec.checkpoints + 2)
        check_memory(kept, "cpu", "chains", file, f"{what}, kept on the host at each of {spec.checkpoints} "
                     "checkpoints while the run steps them in blocks,")
    return block


def _check_blocks(spec: ComparisonSpec, block: int, samplers: list[SamplerSetting], file: str | None) -> None:
    """Refuse to split the chains of a sampler whose chains interact: in blocks it would be another sampler."""
    if block >= spec.chains:
        return
    forced = spec.chain_block != "auto"
    for setting in samplers:
        if traits("sampler", setting.make()).chains_interact:
            why, fix = (("as chain_block asks", "leave chain_block at auto (all chains at once where they fit)")
                        if forced else ("as many as fit the device's memory", "use a device with more memory"))
            raise ConfigError(
                f"{setting.label} cannot run its {spec.chains} chains in blocks of {block} ({why}): its chains "
                "interact, its step using all chains at once (an ensemble's covariance, a step adapted on the "
                f"acceptance averaged over chains), so in blocks it would be another sampler. Use at most {block} "
                f"chains, or {fix}", file=file, key="chain_block" if forced else "chains")


def _check_run(check, name: str, spec: ComparisonSpec, target, path: str, file: str | None) -> None:
    """What a sampler needs of the run, checked before work instead of failing its child runs: its optional
    ``check_run(chains, event_shape, budget)``, which raises ValueError (e.g. a schedule of more levels
    than the budget has steps, an ensemble too small for its covariance)."""
    if check is None:
        return
    try:
        check(spec.chains, tuple(target.event_shape), spec.budget)
    except ValueError as exc:
        raise ConfigError(f"{name} cannot run with this config: {exc}", file=file, key=path) from None


def _check_requires(requires: tuple[str, ...], name: str, provides: set, path: str, file: str | None,
                    what: str) -> None:
    missing = [r for r in requires if r not in provides]
    if missing:
        raise ConfigError(
            f"{name} requires {', '.join(missing)}, which {what} does not provide "
            f"(it provides: {', '.join(sorted(provides)) or 'nothing'})", file=file, key=path)


def _row_name(row: Any, plugin: str, earlier: list[SamplerSetting], host, path: str, file: str | None) -> str:
    """A sampler entry's row: its plugin's name, or ``as`` (``as`` is a Python keyword, so it can never
    be a hyperparameter). One row holds one plugin, and a row never takes another plugin's name."""
    key = f"{path}.as"
    if not isinstance(row, str) or not re.fullmatch(r"[A-Za-z][\w\-]*", row):
        raise ConfigError(f"expected a row name of letters, digits, '_' or '-', got {row!r}", file=file, key=key)
    other = next((s.plugin for s in earlier if s.name == row and s.plugin != plugin), None)
    if other is not None:
        raise ConfigError(f"row '{row}' already holds sampler '{other}'; give this {plugin} entry another "
                          "name with 'as'", file=file, key=key)
    if row != plugin and row in host.names("sampler"):
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

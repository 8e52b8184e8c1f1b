"""Compiled sampler steps: a comparison's ``compile`` key, applied to ``sampler.step``.

- ``none``: the step runs eagerly, one Python dispatch per tensor operation (so does every mode for
  a sampler that declares ``compilable = False``, such as one whose step is a host-side solve).
- ``inductor``: the step is captured by ``torch.compile`` and its tensor work fused by inductor
  (CPU and CUDA).
- ``cuda_graph``: as ``inductor``, with the captured graphs replayed as CUDA graphs (CUDA only).
- ``auto``: the first steps run eagerly, timed; if the rest of the run would take longer than
  compiling, the step is compiled (``cuda_graph`` on CUDA, ``inductor`` elsewhere), the next steps
  are timed compiled, and the faster path is kept. The choice is remembered for the rest of the
  process, per sampler class, hyperparameters, chain shape and device.

What compiling keeps, so that a compiled run means what an eager one does:

- Counts and cost: the oracle's tallies are Python side effects, which Dynamo replays after each
  captured graph runs, so every call is charged as in eager mode.
- The random stream: a draw from a ``torch.Generator`` is not captured (Dynamo breaks the graph
  around it), so compiled and eager steps take the same numbers from the run's generator. A sampler
  that draws first (:class:`~scorelab.contracts.DrawsFirst`) has its ``draw`` run eagerly and its
  ``advance`` captured as one graph; any other step is captured as a graph per stretch between its
  draws, each called separately. The step loop calls a sampler that draws first for
  ``STEPS_PER_CALL`` steps at a time between checkpoints (8 on a GPU, 4 on the CPU,
  :func:`multi_step_function`, :mod:`scorelab.stepping`): their draws made first, one ``draw`` per
  step in order, their advances one graph. Fused arithmetic rounds differently (and on the CPU
  float32 linear layers are oneDNN's or summed out and a float32 tanh is computed within 5 ULP, 6
  without FMAs, :mod:`compiled_math`), so chains agree with eager ones to rounding, and a mode
  reproduces itself bit for bit per seed.
- Divergence detection, checkpoints and the budget stay in the step loop, outside the step; a call of
  several steps gives the loop each step's Info, extremes of the chains and trace record.
- Under ``cuda_graph`` a step's outputs live in the graph's memory pool until its next replay; the
  step loop copies the states it keeps beyond a step (:func:`lasting`), at checkpoints and at the end.

A step that cannot be compiled runs eagerly: a graph the backend fails to compile falls back to
the eager graph with one line on stderr, as does a step that takes more paths than
``RECOMPILE_LIMIT`` graphs, and Dynamo runs a frame it cannot trace as it is.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import statistics
import sys
import time
import types
from collections.abc import Callable
from typing import Any

import torch

from . import compiled_math
from .contracts import draws_first, traits
from .device import synchronize

MODES = ("auto", "none", "inductor", "cuda_graph")
#: The steps ``auto`` times on each path (the compiled path after its compiling step).
TRIAL_STEPS = 3
#: Eager seconds the rest of a run must be expected to take before ``auto`` spends time compiling.
WORTH_COMPILING = 20.0
#: Graphs one step function may have: samplers branch in Python on their step count (refreshes,
#: noise levels), and each branch is a graph; past this Dynamo runs the new paths eagerly, with a notice.
RECOMPILE_LIMIT = 64
#: Steps one compiled call takes, per device type, for a sampler that draws first, where no checkpoint
#: or the budget falls among them (:mod:`scorelab.stepping`): the per-call price (Dynamo's guards, the
#: step loop's bookkeeping, on a GPU the graph's launches) is paid once for them all. On the CPU 4: on
#: an Intel Xeon 4 a call was faster than one for MALA and the Gaussian (13-30 %), within 5 % either
#: way on the MLP rows; on an AMD EPYC 8 a call was as fast or faster on every row but the d = 2 MLP's, 2 %
#: slower (benchmarks/README.md). A graph of 4 steps takes longer to compile than one of one.
#: Fixed per device, not measured, so that a mode reproduces itself bit for bit per seed.
STEPS_PER_CALL = {"cuda": 8, "cpu": 4}


#: The keys of Dynamo's timings that are making steps, not running them (``CUDAGraphNode.record`` runs
#: at a step's call, outside ``compile_inner``, so neither is counted twice).
_COMPILING = ("_compile.compile_inner", "CUDAGraphNode.record")


def seconds_compiling() -> float:
    """Seconds spent making compiled steps in this process so far, by Dynamo's own tally (0 where this
    torch keeps none): ``torch.compile``'s compiling, and under ``cuda_graph`` the recording of each
    CUDA graph (at a graph's second call, after its warm-up call). A run subtracts what its steps
    spent, so that its wall time is sampling's: the first seed of a comparison compiles and records,
    the next reuse the graphs."""
    try:  # Dynamo's own record, kept per compile; not a public API, so its absence is no error
        from torch._dynamo.utils import compilation_time_metrics
    except ImportError:
        return 0.0
    return sum(sum(compilation_time_metrics.get(key, ())) for key in _COMPILING)


def steps_per_call(device: torch.device) -> int:
    """Steps one compiled call takes on ``device`` (:data:`STEPS_PER_CALL`; 1 for a device not listed)."""
    return STEPS_PER_CALL.get(torch.device(device).type, 1)

_auto_choices: dict[tuple, str] = {}


def check_mode(mode: str, device: torch.device | str) -> str | None:
    """Why ``mode`` cannot run on ``device`` (None when it can)."""
    if mode not in MODES:
        return f"expected one of {', '.join(MODES)}, got {mode!r}"
    if mode == "cuda_graph" and torch.device(device).type != "cuda":
        return f"cuda_graph needs a CUDA device, and the run's device is {torch.device(device)}; use inductor or auto"
    return None


def step_function(sampler: Any, mode: str, device: torch.device, horizon: float = math.inf) -> Callable:
    """``sampler.step`` run as ``mode`` says: a callable ``(state, oracle, generator) -> (state, info)``.
    ``horizon``, the cost (in cost units) the steps will be run to (a run's budget, or more where later
    runs reuse what this one compiles), lets ``auto`` judge whether compiling can pay for itself."""
    problem = check_mode(mode, device)
    if problem:
        raise ValueError(f"compile: {problem}")
    if mode == "none" or not traits("sampler", sampler).compilable:
        return sampler.step
    if mode == "auto":
        return _Auto(sampler, auto_mode(device), device, horizon)
    return _compiled(sampler, mode)


def multi_step_function(sampler: Any, mode: str, device: torch.device, k: int,
                        project: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Callable | None:
    """``k`` steps of a sampler that draws first, in one compiled call; None where steps are not
    compiled (``none``, a sampler not compilable) or the sampler does not draw first. A callable
    ``(state, oracle, generator) -> (state, infos, lows, highs, projections)``: the state after the
    steps, each step's Info, each step's smallest and largest chain coordinate (for divergence), and
    each step's ``project(state.x)`` stacked (None without ``project``).

    The steps' draws are made first, one ``draw`` per step in order (a ``draw`` depends on the state's
    shapes alone, :class:`~scorelab.contracts.DrawsFirst`), so the random stream is the eager one. Under
    ``auto`` the step loop calls it only once ``auto`` has chosen the compiled path (:func:`compiled_now`)."""
    if mode == "none" or not traits("sampler", sampler).compilable or not draws_first(sampler):
        return None
    mode = auto_mode(device) if mode == "auto" else mode

    def draws(state, generator):
        return tuple(sampler.draw(state, generator) for _ in range(k))

    return _runner(f"{type(sampler).__name__}.advance", mode, _several_steps_of(type(sampler)), draws,
                   (sampler.advance, project))


def _several_steps(advance, project, state, oracle, draws):
    """``advance`` once per draw; each step's Info, chain extremes and projection gathered."""
    infos, lows, highs, seen = [], [], [], []
    for d in draws:
        state, info = advance(state, oracle, d)
        low, high = torch.aminmax(state.x.detach())
        infos.append(info)
        lows.append(low)
        highs.append(high)
        if project is not None:
            seen.append(project(state.x))
    return state, infos, torch.stack(lows), torch.stack(highs), torch.stack(seen) if seen else None


@functools.cache
def _several_steps_of(cls: type) -> Callable:
    """:func:`_several_steps` with code of its own for sampler class ``cls``. Dynamo keeps compiled
    graphs, and counts them against ``RECOMPILE_LIMIT``, per code object: one shared by every sampler
    would fill with all their graphs, as ``cls.advance``'s holds only its class's. (A
    ``functools.partial`` would not do: Dynamo compiles a wrapper of its own, one code object again.)"""
    code = _several_steps.__code__.replace(co_name=f"{cls.__name__}_several_steps")
    return types.FunctionType(code, _several_steps.__globals__, code.co_name)


def compiled_now(step: Callable) -> bool:
    """Whether ``step`` (from :func:`step_function`) runs compiled from here on: for ``auto``, once it
    has chosen the compiled path."""
    return not isinstance(step, _Auto) or step.chosen is step.compiled


def auto_mode(device: torch.device) -> str:
    """The compiled mode ``auto`` tries on ``device``."""
    return "cuda_graph" if device.type == "cuda" else "inductor"


def _compiled(sampler: Any, mode: str) -> Callable:
    """``sampler.step`` compiled; for a sampler that draws first, ``draw`` eager and ``advance`` compiled."""
    if draws_first(sampler):
        return _runner(f"{type(sampler).__name__}.advance", mode, sampler.advance, sampler.draw)
    return _runner(f"{type(sampler).__name__}.step", mode, sampler.step, lambda state, generator: generator)


def _runner(who: str, mode: str, function: Callable, randomness: Callable, leading: tuple = ()) -> Callable:
    """``function(*leading, state, oracle, randomness(state, generator))`` with ``function`` compiled as
    ``mode`` and ``randomness`` (a sampler's draws, or the generator itself) run eagerly; ``who`` names
    it in notices."""
    compiled = torch.compile(function, backend=_backend(mode), dynamic=None)
    settings = torch._dynamo.config.patch(suppress_errors=True, **_limits())  # made once: reentered every call

    def run(state, oracle, generator):
        _compiling.append(who)
        try:
            drawn = randomness(state, generator)
            if mode == "cuda_graph":  # a new step: the last step's outputs are its inputs, read before overwritten
                torch.compiler.cudagraph_mark_step_begin()
            with settings:
                return compiled(*leading, state, oracle, drawn)
        finally:
            _compiling.pop()

    return run


def _limits() -> dict[str, int]:
    """Dynamo's recompile limits, per step function and in all, raised to ours (named
    ``cache_size_limit`` and ``accumulated_cache_size_limit`` in older torch)."""
    config = torch._dynamo.config
    per, total = (("recompile_limit", "accumulated_recompile_limit") if hasattr(config, "recompile_limit")
                  else ("cache_size_limit", "accumulated_cache_size_limit"))
    return {per: RECOMPILE_LIMIT, total: max(getattr(config, total), 4 * RECOMPILE_LIMIT)}


#: The sampler method being run compiled, "Class.step" or "Class.advance" (for the notices).
_compiling: list[str] = []
_told: set[tuple[str, str]] = set()


def _notice(what: str, text: str) -> None:
    """One line on stderr, once per sampler and kind of event in the process."""
    who = _compiling[-1] if _compiling else "a sampler's step"
    if (who, what) not in _told:
        _told.add((who, what))
        print(f"scorelab: {who} {text}", file=sys.stderr)


class _RecompileLimitNotice(logging.Filter):
    """Dynamo's multi-line warning that a step function hit its recompile limit (after which it runs
    eagerly), said instead as scorelab's one line naming the sampler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _compiling or not str(record.msg).startswith("torch._dynamo hit config."):
            return True  # not a sampler step of ours: Dynamo's own warning stands
        limit = f"{record.args[0]} ({record.args[1]})" if len(record.args or ()) >= 2 else "recompile limit"
        _notice("limit", f"hit Dynamo's {limit}: one compiled graph per path its Python takes (refreshes, "
                         "noise levels); its other paths run eagerly")
        return False


logging.getLogger("torch._dynamo.convert_frame").addFilter(_RecompileLimitNotice())


@functools.cache
def _backend(mode: str) -> Callable:
    """Inductor, with CUDA graphs for ``cuda_graph``; a graph it fails to compile runs eagerly. One per
    mode for the process: Dynamo reuses what it compiled only for the same backend object."""
    from torch._inductor import compile_fx as inductor

    def backend(graph: torch.fx.GraphModule, example_inputs: list) -> Callable:
        try:
            patches = {"triton.cudagraphs": mode == "cuda_graph"}
            if hasattr(torch._inductor.config.cpp, "enable_floating_point_contract_flag"):  # not in older torch
                # FMAs in inductor's CPU code (its default keeps multiply and add apart): most of the
                # compiled tanh's loop is Horner steps (1.27 -> 1.01 ms on 1e4 x 256, benchmarks/README.md)
                patches["cpp.enable_floating_point_contract_flag"] = "fast"
            return inductor.compile_fx(compiled_math.rewrite(graph), example_inputs, config_patches=patches)
        except (torch._dynamo.exc.RestartAnalysis, torch._dynamo.exc.SkipFrame):
            raise  # Dynamo's own control flow (trace again, or leave the frame eager), not a failure
        except Exception as exc:  # any failure of the compiler: the graph's eager code is always right
            _notice("failed", f"could not be compiled ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}); running it eagerly")
            return graph.forward

    return backend


def lasting(state: Any, mode: str) -> Any:
    """``state`` as something that outlives the next step. A CUDA graph's outputs live in its memory
    pool and the graph's next replay overwrites them, so under ``cuda_graph`` (or ``auto`` on CUDA) a
    state kept past its step (a checkpoint's, the run's last) is copied; otherwise it is returned as is."""
    if mode in ("cuda_graph", "auto") and state.x.device.type == "cuda":
        return copy.deepcopy(state)
    return state


def setting_key(sampler: Any, x: torch.Tensor) -> tuple:
    """What ``auto``'s choice is remembered by: the sampler's class and hyperparameters, the chains'
    shape, dtype and device."""
    return type(sampler), repr(sampler), tuple(x.shape), x.dtype, str(x.device)


def settled_mode(sampler: Any, mode: str, x: torch.Tensor) -> str:
    """The mode a run of ``sampler`` on chains like ``x`` settled on: for ``auto``, the compiled mode
    if it kept the compiled path, else ``none``; any other mode as given. A replay of a segment of the
    run uses it, so it steps as the run did after its first, timed steps."""
    if mode != "auto":
        return mode
    return auto_mode(x.device) if _auto_choices.get(setting_key(sampler, x)) == "compiled" else "none"


class _Auto:
    """Eager or compiled, whichever runs this setting's steps faster, remembered per setting and shape.

    The first steps run eagerly and are timed; when what is left of the horizon would take less eager
    time than compiling costs (``WORTH_COMPILING`` seconds), the run stays eager (not remembered: a
    longer run of the setting may pay). Otherwise the step is compiled (that step untimed), the next
    steps are timed compiled, and the faster path is kept and remembered."""

    def __init__(self, sampler: Any, mode: str, device: torch.device, horizon: float):
        self.sampler, self.device, self.horizon = sampler, device, horizon
        self.compiled = _compiled(sampler, mode)
        self.key: tuple | None = None
        self.times: dict[str, list[float]] = {"eager": [], "compiled": []}
        self.chosen: Callable | None = None
        self.start_cost: float | None = None
        self.warm = False  # the compiled path has been traced and compiled

    def __call__(self, state, oracle, generator):
        if self.chosen is not None:
            return self.chosen(state, oracle, generator)
        if self.key is None:
            self.key = setting_key(self.sampler, state.x)
            if self.key in _auto_choices:
                return self._choose(_auto_choices[self.key])(state, oracle, generator)
            self.start_cost = oracle.cost
        eager, fused = self.times["eager"], self.times["compiled"]
        if len(eager) < TRIAL_STEPS:
            out, seconds = self._timed(self.sampler.step, state, oracle, generator)
            eager.append(seconds)
            return out
        if not self.warm:  # the first step that reaches the compiled path: compiling, not timed
            if not self._compile_pays(oracle.cost):  # this run is short; a longer one of this setting may pay
                self.chosen = self.sampler.step
                return self.chosen(state, oracle, generator)
            self.warm = True
            return self.compiled(state, oracle, generator)
        out, seconds = self._timed(self.compiled, state, oracle, generator)
        fused.append(seconds)
        if len(fused) == TRIAL_STEPS:
            self._choose(min(self.times, key=lambda p: statistics.median(self.times[p])))
        return out

    def _timed(self, step: Callable, *args):
        """``step(*args)`` and its seconds, less any spent making it (a CUDA graph's recording)."""
        synchronize(self.device)  # only while timing the first steps
        t0, making = time.perf_counter(), seconds_compiling()
        out = step(*args)
        synchronize(self.device)
        return out, time.perf_counter() - t0 - (seconds_compiling() - making)

    def _compile_pays(self, cost: float) -> bool:
        per_step = (cost - self.start_cost) / TRIAL_STEPS
        steps_left = (self.horizon - cost) / per_step if per_step > 0 else math.inf
        return statistics.median(self.times["eager"]) * steps_left > WORTH_COMPILING

    def _choose(self, path: str) -> Callable:
        _auto_choices[self.key] = path
        self.chosen = self.compiled if path == "compiled" else self.sampler.step
        return self.chosen

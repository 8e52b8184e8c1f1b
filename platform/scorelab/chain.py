"""The step loop: one sampler, one set of chains, one budget. No tracking, no config.

Everything per step stays on the device. The host reads back only at checkpoints (costs the
runner chose), where the callback sees the state; divergence is tracked on the device step by step,
so it is reported at the cost where it happened, read at the next checkpoint.

Diverged, the one definition: some chain coordinate is NaN, infinite, or larger in magnitude than
the run's ``bound`` (the runner sets it far outside anything the target or the start could
produce: a chain at 1e19 is finite in float32 and diverged all the same).

Chains too many for the device's memory together run in blocks (:func:`run_blocks`): each block is a
:func:`run_chain` of its own, one after another from the same generator, joined into one run.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from .compiled import lasting, seconds_compiling
from .contracts import finished
from .device import synchronize
from .oracle import Counts, ScoreOracle
from .stepping import Moved, Stepper, Stepping


@dataclass
class Checkpoint:
    cost: float
    steps: int
    state: Any
    info: dict[str, float]  # each Info field averaged over chains and over steps since the last checkpoint
    wall_time: float  # seconds spent sampling so far (checkpoint work excluded)
    counts: Counts  # calls so far, so the cost can be re-priced with other weights
    stepping: Stepping | None = None  # how the loop was stepping, for a replay from here (None: run in blocks)


@dataclass
class ChainResult:
    state: Any
    steps: int
    cost: float
    counts: Counts
    wall_time: float  # seconds sampling, compiling excluded
    diverged_at: float | None  # cost at the first step that produced NaN/inf, if any
    compile_seconds: float = 0.0  # seconds spent compiling this run's steps (recording CUDA graphs too)


class _InfoMeans:
    """Running sums of Info fields on the device, element by element: one in-place add per tensor field
    and step, the mean over chains taken at checkpoints, where they are read back to the host. (A mean
    per field and step took three eager ops each, about a tenth of a compiled MALA step, d = 50,
    1000 chains, on one CPU core.)"""

    def __init__(self):
        self.sums: dict[str, Any] = {}
        self.n = 0

    def add(self, info: Any) -> None:
        if info is None:
            return
        for k, v in _fields(info):
            self._add_value(k, v)
        self.n += 1

    def add_steps(self, infos: Sequence[Any]) -> None:
        """Several steps' Info at once: a tensor field whose shape holds over them is summed over the
        steps in one operation, then added."""
        if not infos or infos[0] is None:
            return
        if len(infos) == 1:
            self.add(infos[0])
            return
        for column in zip(*(_fields(info) for info in infos), strict=True):
            k, values = column[0][0], [v for _, v in column]
            if all(isinstance(v, torch.Tensor) and v.shape == values[0].shape for v in values):
                self._add_tensor(k, torch.stack(values).detach().sum(0, dtype=_sum_dtype(values[0])))
            else:
                for v in values:
                    self._add_value(k, v)
        self.n += len(infos)

    def _add_value(self, k: str, v: Any) -> None:
        if isinstance(v, torch.Tensor):
            self._add_tensor(k, v.detach())
        elif isinstance(v, int | float):
            self.sums[k] = self.sums.get(k, 0.0) + v

    def _add_tensor(self, k: str, v: torch.Tensor) -> None:
        total, dtype = self.sums.get(k), _sum_dtype(v)
        if total is None:
            self.sums[k] = v.to(dtype, copy=True)
        elif isinstance(total, torch.Tensor) and total.shape == v.shape:
            total.add_(v)
        else:  # a field whose shape or type changed: it goes on as one number, the sum of its means
            self.sums[k] = torch.as_tensor(total, dtype=dtype, device=v.device).mean() + v.to(dtype).mean()

    def pop(self) -> dict[str, float]:
        out = {k: float(v.mean() if isinstance(v, torch.Tensor) else v) / self.n for k, v in self.sums.items()} \
            if self.n else {}
        self.sums, self.n = {}, 0
        return out


def _sum_dtype(v: torch.Tensor) -> torch.dtype:
    """What an Info field is summed in: float64 for float64, float32 for everything else."""
    return torch.float64 if v.dtype == torch.float64 else torch.float32


def _fields(info: Any) -> list[tuple[str, Any]]:
    """An Info's (name, value) pairs, the values as they are: dataclasses.asdict deep-copies every tensor
    (measured at about a fifth of a compiled MALA step, d = 50, 1000 chains, on one CPU core)."""
    if dataclasses.is_dataclass(info):
        return [(f.name, getattr(info, f.name)) for f in dataclasses.fields(info)]
    return list(info._asdict().items())


class _Divergence:
    """The first step after which some chain coordinate was NaN, infinite or beyond ``limit`` in
    magnitude, tracked on the device. Each step writes its chains' smallest and largest coordinate into
    buffers, one reduction with no temporary; every ``CHUNK`` steps, and when read, the buffers are
    folded into the first such step: NaN fails every comparison, so "not (-limit <= min and max <=
    limit)". (Folded at every step, that was eight eager ops: the loop's time over a bare Langevin loop's
    was 1.27 and 1.28 against 1.17 and 1.15 after this change, 1000 x 50 chains on one CPU core, by
    ``benchmarks/step_loop.py``, figures in benchmarks/README.md; on a GPU each op is a kernel launch.)"""

    CHUNK = 256

    def __init__(self, x: torch.Tensor, limit: float):
        self.limit = limit
        self.lows = self.highs = x.new_empty(0)
        self.n = 0  # steps in the buffers
        self.before = 0  # steps folded
        self.first = torch.full((), -1, dtype=torch.long, device=x.device)

    def add(self, x: torch.Tensor) -> None:
        self._make_room(1, x)
        torch.aminmax(x.detach(), out=(self.lows[self.n], self.highs[self.n]))
        self.n += 1

    def add_call(self, moved: Moved) -> None:
        """The steps of one call of the step loop: one step's chains, or several steps' extremes."""
        if moved.extremes is None:
            self.add(moved.state.x)
        else:
            self.add_steps(*moved.extremes)

    def add_steps(self, lows: torch.Tensor, highs: torch.Tensor) -> None:
        """Several steps at once, each step's smallest and largest coordinate (``lows``, ``highs``)."""
        k = len(lows)
        self._make_room(k, lows)
        self.lows[self.n : self.n + k].copy_(lows)
        self.highs[self.n : self.n + k].copy_(highs)
        self.n += k

    def _make_room(self, k: int, like: torch.Tensor) -> None:
        """Space for ``k`` more steps in buffers of ``like``'s dtype and device."""
        if self.n + k > len(self.lows) or (like.dtype, like.device) != (self.lows.dtype, self.lows.device):
            self._fold()  # full, or the chains' dtype or device changed
            self.lows, self.highs = like.new_empty(max(self.CHUNK, k)), like.new_empty(max(self.CHUNK, k))

    def first_step(self) -> int:
        """The index of the first step out of bounds (-1: none yet); reads the device."""
        self._fold()
        return int(self.first)

    def _fold(self) -> None:
        if self.n == 0:
            return
        bad = ~((-self.limit <= self.lows[: self.n]) & (self.highs[: self.n] <= self.limit))
        at = torch.where(bad.any(), self.before + bad.to(torch.uint8).argmax(), -1)  # argmax: the first maximum
        self.first = torch.where(self.first < 0, at, self.first)
        self.before, self.n = self.before + self.n, 0


class Trace(Protocol):
    """What the step loop records of every step's chains (:class:`scorelab.ess.Tracer`)."""

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """A step's record of its chains: tensor work on the device, traced into compiled steps."""

    def keep(self, records: torch.Tensor) -> None:
        """Store consecutive steps' records, stacked along a first dimension."""


def run_chain(
    sampler: Any,
    oracle: ScoreOracle,
    x0: torch.Tensor,
    budget: float,
    generator: torch.Generator,
    checkpoints: Sequence[float] = (),
    callback: Callable[[Checkpoint], None] | None = None,
    *,
    bound: float = math.inf,
    trace: Trace | None = None,
    compile: str = "none", compile_horizon: float | None = None,
) -> ChainResult:
    """Run ``sampler`` from ``x0`` until the oracle's cost reaches ``budget`` (or the sampler sets
    ``state.finished``, or the chains diverge: see the module docstring for ``bound``). ``callback``
    runs after init and at each checkpoint; ``trace`` records every step's chains on the device (for
    the effective sample size). ``compile`` runs the step eagerly or compiled (:mod:`scorelab.compiled`),
    with the same counts and random stream, one step a call or several (:mod:`scorelab.stepping`);
    ``auto`` judges whether compiling pays over ``compile_horizon`` (default ``budget``; more in blocks)."""
    device = x0.device
    limit = min(bound, torch.finfo(x0.dtype).max) if x0.is_floating_point() else bound
    pending = sorted(c for c in checkpoints if c <= budget)
    infos = _InfoMeans()
    divergence = _Divergence(x0, limit)
    step_costs: list[float] = []
    clock = _SamplingClock(compile)
    state = sampler.init(x0, oracle, budget)
    stepper = Stepper(sampler, compile, device, budget if compile_horizon is None else compile_horizon,
                      None if trace is None else trace.project)
    diverged_at = None

    def checkpoint() -> bool:
        """Sync, check divergence, call back. True when the chains have diverged."""
        nonlocal diverged_at
        synchronize(device)
        clock.stop()
        bad = divergence.first_step()
        if bad >= 0:
            diverged_at = step_costs[bad]
        elif callback is not None:
            callback(Checkpoint(oracle.cost, len(step_costs), lasting(state, compile), infos.pop(), clock.seconds,
                                dataclasses.replace(oracle.counts), stepper.stepping(_stop(pending, budget))))
        clock.start()  # the callback's time, and what it compiled (a replay's steps), are not the run's
        return bad >= 0

    checkpoint()
    while oracle.cost < budget and not finished(state):
        moved = stepper(state, oracle, generator, _stop(pending, budget))
        state = moved.state
        infos.add_steps(moved.infos)
        step_costs += moved.costs
        divergence.add_call(moved)
        if trace is not None:
            trace.keep(moved.records)
        due = _passed(pending, oracle.cost)
        done = oracle.cost >= budget or finished(state)
        if (due or done) and checkpoint():
            break
    return ChainResult(lasting(state, compile), len(step_costs), oracle.cost, oracle.counts, clock.seconds,
                       diverged_at, clock.compile_seconds)


class _SamplingClock:
    """A run's seconds sampling, read at checkpoints: the time since ``start`` less what was spent
    meanwhile compiling the run's steps and recording their CUDA graphs (Dynamo's tally, a host-side
    sum, :func:`~scorelab.compiled.seconds_compiling`; none for an eager run), which is kept apart."""

    def __init__(self, compile: str):
        self.compiled = compile != "none"
        self.seconds = self.compile_seconds = 0.0
        self.start()

    def start(self) -> None:
        self._t0, self._compiled = time.perf_counter(), seconds_compiling() if self.compiled else 0.0

    def stop(self) -> None:
        compiling = seconds_compiling() - self._compiled if self.compiled else 0.0
        self.compile_seconds += compiling
        self.seconds += time.perf_counter() - self._t0 - compiling


def _stop(pending: list[float], budget: float) -> float:
    """The cost no call may reach before its last step: the next checkpoint's, or the budget."""
    return min(pending[:1] + [budget])


def _passed(pending: list[float], cost: float) -> bool:
    """Whether ``cost`` reached the next checkpoint; those it reached are taken off ``pending``."""
    due = bool(pending) and cost >= pending[0]
    while pending and cost >= pending[0]:
        pending.pop(0)
    return due


@dataclass
class Chains:
    """The state a run in blocks reports: all its chains (each block's sampler state stays with the block)."""

    x: torch.Tensor


def run_blocks(
    make_sampler: Callable[[], Any],
    make_oracle: Callable[[], ScoreOracle],
    x0: torch.Tensor,
    block: int,
    budget: float,
    generator: torch.Generator,
    checkpoints: Sequence[float] = (),
    callback: Callable[[Checkpoint], None] | None = None,
    *,
    bound: float = math.inf,
    compile: str = "none",
) -> ChainResult:
    """:func:`run_chain` on ``x0`` a block of ``block`` chains at a time, for chains that do not fit on the
    device together; measured as one run. ``x0`` stays where it is (the host); each block is moved to the
    generator's device (the run's) and run by a fresh ``make_sampler()`` and ``make_oracle()``, each block's
    checkpoints and final chains kept on the host.

    The blocks draw one after another from ``generator``: a run in blocks is reproducible per seed, but a
    different draw from the same run unblocked. When all blocks are done, ``callback`` sees each checkpoint
    once, in cost order, its state a :class:`Chains` of every block's chains on the run's device, its cost,
    steps and counts the blocks' own (every block makes the same calls), its info their mean over chains
    and its wall time the sum over blocks. A block that diverges caps the run: the blocks after it run only
    to its cost, the run is diverged at the earliest cost any block diverged at (where it would have been
    unblocked), and the checkpoints before that cost are delivered with all chains. With one block
    (``block >= len(x0)``) this is :func:`run_chain`."""
    if block < 1:
        raise ValueError(f"block must be >= 1 chain, got {block}")
    device = generator.device
    if block >= len(x0):
        return run_chain(make_sampler(), make_oracle(), x0.to(device), budget, generator, checkpoints, callback,
                         bound=bound, compile=compile)
    kept: list[list[Checkpoint]] = []  # per block, its checkpoints with the chains on the host
    results: list[ChainResult] = []
    until = budget  # once a block diverges, the rest run only as far: one of them may diverge sooner
    for start in range(0, len(x0), block):
        seen: list[Checkpoint] = []
        like_this = max(1, (len(x0) - start) // block)  # blocks of this size from here (a smaller last compiles anew)
        result = run_chain(make_sampler(), make_oracle(), x0[start:start + block].to(device), until, generator,
                           checkpoints, lambda cp, seen=seen: seen.append(_on_host(cp)), bound=bound, compile=compile,
                           compile_horizon=until * like_this)
        kept.append(seen)
        results.append(dataclasses.replace(result, state=Chains(_host_copy(result.state.x))))
        if result.diverged_at is not None:
            until = min(until, result.diverged_at)
    diverged_at = min((r.diverged_at for r in results if r.diverged_at is not None), default=None)
    if callback is not None:
        # zip stops at the shortest list: the checkpoints every block that ran reached (a diverged block's
        # stop before its divergence).
        for cps in zip(*kept, strict=False):
            joined = _joined(cps, device)
            if diverged_at is None or joined.cost < diverged_at:
                callback(joined)
    return _joined_result(results, device)


def _on_host(cp: Checkpoint) -> Checkpoint:
    """A block's checkpoint with a copy of its chains on the host (its sampler state dropped)."""
    return dataclasses.replace(cp, state=Chains(_host_copy(cp.state.x)))


def _host_copy(x: torch.Tensor) -> torch.Tensor:
    """x on the host, copied even when it is there already: a sampler may reuse its state's memory."""
    return x.to("cpu", copy=True)


def _joined(cps: Sequence[Checkpoint], device: torch.device) -> Checkpoint:
    """One checkpoint of a run in blocks from each block's. Every block makes the same calls, so cost, steps
    and counts are the first block's; a sampler whose calls follow the chains' values may spend more in one
    block than in another, and then the run is charged the largest cost (and that block's counts)."""
    most = max(cps, key=lambda cp: cp.cost)  # the first block's when they agree
    n = [len(cp.state.x) for cp in cps]
    # Weighted by block size: the mean over all chains, as run_chain's info is (the last block may be smaller).
    info = {k: sum(m * cp.info[k] for m, cp in zip(n, cps, strict=True)) / sum(n) for k in cps[0].info}
    x = torch.cat([cp.state.x for cp in cps]).to(device)
    return Checkpoint(most.cost, most.steps, Chains(x), info, sum(cp.wall_time for cp in cps), most.counts)


def _joined_result(results: Sequence[ChainResult], device: torch.device) -> ChainResult:
    """One result of a run in blocks: where a diverged run stopped (its earliest diverging block), else as
    :func:`_joined`."""
    diverged = [r for r in results if r.diverged_at is not None]
    most = min(diverged, key=lambda r: r.diverged_at) if diverged else max(results, key=lambda r: r.cost)
    x = torch.cat([r.state.x for r in results]).to(device)
    return ChainResult(Chains(x), most.steps, most.cost, most.counts, sum(r.wall_time for r in results),
                       most.diverged_at, sum(r.compile_seconds for r in results))

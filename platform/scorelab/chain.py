"""The step loop: one sampler, one set of chains, one budget. No tracking, no config.

Everything per step stays on the device. The host reads back only at checkpoints (costs the
runner chose), where the callback sees the state; divergence is tracked on the device step by step,
so it is reported at the cost where it happened, read at the next checkpoint.

Diverged, the one definition: some chain coordinate is NaN, infinite, or larger in magnitude than
the run's ``bound`` (the runner sets it far outside anything the target or the start could
produce: a chain at 1e19 is finite in float32 and diverged all the same).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .compiled import lasting, step_function
from .contracts import finished
from .device import synchronize
from .oracle import Counts, ScoreOracle


@dataclass
class Checkpoint:
    cost: float
    steps: int
    state: Any
    info: dict[str, float]  # each Info field averaged over chains and over steps since the last checkpoint
    wall_time: float  # seconds spent sampling so far (checkpoint work excluded)
    counts: Counts  # calls so far, so the cost can be re-priced with other weights


@dataclass
class ChainResult:
    state: Any
    steps: int
    cost: float
    counts: Counts
    wall_time: float
    diverged_at: float | None  # cost at the first step that produced NaN/inf, if any


class _InfoMeans:
    """Running sums of Info fields on the device; averaged on the host at checkpoints."""

    def __init__(self):
        self.sums: dict[str, Any] = {}
        self.n = 0

    def add(self, info: Any) -> None:
        if info is None:
            return
        items = dataclasses.asdict(info) if dataclasses.is_dataclass(info) else info._asdict()
        for k, v in items.items():
            if isinstance(v, torch.Tensor):
                v = v.detach().float().mean()
            elif not isinstance(v, int | float):
                continue
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.n += 1

    def pop(self) -> dict[str, float]:
        out = {k: float(v) / self.n for k, v in self.sums.items()} if self.n else {}
        self.sums, self.n = {}, 0
        return out


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
    on_step: Callable[[Any], None] | None = None,
    compile: str = "none",
) -> ChainResult:
    """Run ``sampler`` from ``x0`` until the oracle's cost reaches ``budget`` (or the sampler sets
    ``state.finished``, or the chains diverge: see the module docstring for ``bound``). ``callback``
    runs after init and at each checkpoint; ``on_step(state)`` after every step, for work that stays
    on the device (tracing projections for the effective sample size). ``compile`` runs the step
    eagerly or compiled (:mod:`scorelab.compiled`), with the same counts and random stream."""
    device = x0.device
    limit = min(bound, torch.finfo(x0.dtype).max) if x0.is_floating_point() else bound
    pending = sorted(c for c in checkpoints if c <= budget)
    infos = _InfoMeans()
    first_bad = torch.full((), -1, dtype=torch.long, device=device)
    step_costs: list[float] = []
    wall, t0 = 0.0, time.perf_counter()
    state = sampler.init(x0, oracle, budget)
    step = step_function(sampler, compile, device, budget)
    steps, diverged_at = 0, None

    def checkpoint() -> bool:
        """Sync, check divergence, call back. True when the chains have diverged."""
        nonlocal wall, t0, diverged_at
        synchronize(device)
        wall += time.perf_counter() - t0
        bad = int(first_bad)
        if bad >= 0:
            diverged_at = step_costs[bad]
        elif callback is not None:
            callback(Checkpoint(oracle.cost, steps, lasting(state, compile), infos.pop(), wall,
                                dataclasses.replace(oracle.counts)))
        t0 = time.perf_counter()
        return bad >= 0

    checkpoint()
    while oracle.cost < budget and not finished(state):
        state, info = step(state, oracle, generator)
        infos.add(info)
        step_costs.append(oracle.cost)
        if on_step is not None:
            on_step(state)
        # One reduction: NaN fails every comparison, so "not (max |x| <= limit)" catches NaN, inf and blow-up.
        first_bad = torch.where((first_bad < 0) & ~(state.x.abs().amax() <= limit), steps, first_bad)
        steps += 1
        due = bool(pending) and oracle.cost >= pending[0]
        while pending and oracle.cost >= pending[0]:
            pending.pop(0)
        done = oracle.cost >= budget or finished(state)
        if (due or done) and checkpoint():
            break
    return ChainResult(lasting(state, compile), steps, oracle.cost, oracle.counts, wall, diverged_at)

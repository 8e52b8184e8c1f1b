"""How the step loop moves a sampler on: one step a call, or, compiled, several.

A compiled sampler that draws first (:func:`scorelab.compiled.multi_step_function`) may take
``compiled.STEPS_PER_CALL`` steps a call where none of them but the last reaches the loop's next stop
(a checkpoint or the budget), as predicted from the calls the last single step made. Whether it does
is measured, as ``auto`` measures compiling: the first such stretch of a setting's run times
``TRIAL_STEPS`` single steps, then (after one untimed call that compiles) ``TRIAL_STEPS`` calls of
several, and keeps the faster per step, remembered for the setting (sampler, hyperparameters, chain
shape, dtype, device, mode) for the rest of the process. Fewer calls save their overhead (Dynamo's
guards, the loop's bookkeeping, on a GPU the launches); a graph of several steps is not always as fast
per step as the graph of one (on the CPU, inductor fuses one step's last layer into the next one's first).

The calls are checked after each call of several: if they were not as predicted (a refresh among the
steps), the steps' costs are known in sum only (each is put at its share of it, and a stop among
them is reached after them), and the sampler goes on in single steps for the rest of the run.

Which way a call goes follows from the counts, the stop and a little history (:class:`Stepping`),
which a checkpoint keeps: a replay from it (:mod:`scorelab.crossing`) steps as the run did, through
the same compiled graphs, and lands on the run's numbers to the bit.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from . import compiled
from .compiled import TRIAL_STEPS, compiled_now, multi_step_function, step_function
from .device import synchronize
from .oracle import Counts, ScoreOracle, price

#: Whether calls of several steps were the faster, per setting (see the module docstring).
_choices: dict[tuple, bool] = {}
_now = time.perf_counter  # the measuring clock


@dataclass(frozen=True)
class Stepping:
    """Where the choice between single steps and calls of several stands: what a replay needs to step
    as the run did from a checkpoint."""

    per_step: Counts | None = None  # the calls the last single step made (None: no step yet)
    several: bool | None = None  # calls of several steps chosen (None: not yet measured)
    timed_singles: int = 0  # single steps the measurement has taken so far
    timed_calls: int = 0  # calls of several the measurement has taken so far (the first untimed)
    stop: float = math.inf  # the cost no call may reach before its last step: the next checkpoint or the budget


@dataclass
class Moved:
    """What one call moved: the state after it and, per step, its Info, cost and calls."""

    state: Any
    infos: list[Any]
    costs: list[float]
    counts: list[Counts | None]  # None for the steps of a call whose calls were not as predicted
    extremes: tuple[torch.Tensor, torch.Tensor] | None  # each step's smallest and largest coordinate (several)
    records: torch.Tensor | None  # each step's ``project(state.x)``, stacked (with ``project``)


class Steps:
    """``sampler``'s steps as ``compile`` runs them, one or several a call (see the module docstring).
    ``x`` is what the chains are like (shape, dtype, device); ``project`` maps each step's chains to a
    record, computed in the compiled graph; ``stepping`` resumes the choice where a checkpoint left it
    (a replay), else a run starts from what this process has measured of the setting."""

    def __init__(self, sampler: Any, compile: str, x: torch.Tensor, horizon: float = math.inf,
                 project: Callable[[torch.Tensor], torch.Tensor] | None = None, stepping: Stepping | None = None):
        self.k, self.device = compiled.STEPS_PER_CALL, x.device
        self.one = step_function(sampler, compile, x.device, horizon)
        self.many = multi_step_function(sampler, compile, x.device, self.k, project) if self.k > 1 else None
        self.project = project
        mode = compiled.auto_mode(x.device) if compile == "auto" else compile
        self.key = (*compiled.setting_key(sampler, x), mode, self.k)
        self.at = stepping or Stepping(several=_choices.get(self.key))
        self.times: dict[str, list[float]] = {"one": [], "several": []}  # seconds per step, measuring

    def stepping(self, stop: float) -> Stepping:
        return dataclasses.replace(self.at, stop=stop)

    def __call__(self, state: Any, oracle: ScoreOracle, generator: torch.Generator, stop: float) -> Moved:
        before = oracle.counts
        predicted = self._predicted(state, oracle, stop)
        if predicted is not None and (self.at.several or self.at.timed_singles >= TRIAL_STEPS):
            return self._several(state, oracle, generator, before, predicted)
        timed = predicted is not None and self.at.several is None  # measuring: a single step, timed
        t0 = self._clock(timed)
        state, info = self.one(state, oracle, generator)
        if timed:
            self.times["one"].append(self._clock(True) - t0)
            self.at = dataclasses.replace(self.at, timed_singles=self.at.timed_singles + 1)
        self.at = dataclasses.replace(self.at, per_step=_minus(oracle.counts, before))
        records = None if self.project is None else self.project(state.x)[None]
        return Moved(state, [info], [oracle.cost], [oracle.counts], None, records)

    def _predicted(self, state: Any, oracle: ScoreOracle, stop: float) -> list[Counts] | None:
        """The counts after each step of a call of several, if one may run now: it is compiled and
        running, the last single step's calls are known, a state with ``finished`` (a fixed schedule)
        ends at a step of its own, and only the call's last step may reach ``stop``."""
        per_step = self.at.per_step
        if (self.at.several is False or self.many is None or per_step is None or not compiled_now(self.one)
                or hasattr(state, "finished")):
            return None
        counts = [_plus(oracle.counts, per_step, i) for i in range(1, self.k + 1)]
        costs = [price(c, oracle.weights) for c in counts]
        return counts if costs[0] > oracle.cost and all(c < stop for c in costs[:-1]) else None

    def _several(self, state, oracle, generator, before: Counts, predicted: list[Counts]) -> Moved:
        measuring = self.at.several is None
        timed = measuring and self.at.timed_calls > 0  # the first call compiles: not timed
        t0 = self._clock(timed)
        state, infos, lows, highs, records = self.many(state, oracle, generator)
        if timed:
            self.times["several"].append((self._clock(True) - t0) / self.k)
        if measuring:
            self.at = dataclasses.replace(self.at, timed_calls=self.at.timed_calls + 1)
            if self.at.timed_calls > TRIAL_STEPS:
                self._choose()
        costs = [price(c, oracle.weights) for c in predicted]
        counts: list[Counts | None] = list(predicted)
        if oracle.counts != predicted[-1]:  # not as predicted: known in sum alone
            self.at = dataclasses.replace(self.at, several=False)
            start = price(before, oracle.weights)
            costs = [start + (oracle.cost - start) * (i + 1) / self.k for i in range(self.k)]
            counts = [None] * (self.k - 1) + [oracle.counts]
        return Moved(state, infos, costs, counts, (lows, highs), records)

    def _choose(self) -> None:
        """Calls of several or single steps, by the measured time per step; a replay takes the run's choice."""
        if self.key not in _choices:
            _choices[self.key] = statistics.median(self.times["several"]) < statistics.median(self.times["one"])
        self.at = dataclasses.replace(self.at, several=_choices[self.key])

    def _clock(self, timed: bool) -> float:
        """The time, after the device has finished its work (only while measuring)."""
        if not timed:
            return 0.0
        synchronize(self.device)
        return _now()


def _minus(a: Counts, b: Counts) -> Counts:
    return Counts(*(getattr(a, f.name) - getattr(b, f.name) for f in dataclasses.fields(Counts)))


def _plus(a: Counts, b: Counts, times: int) -> Counts:
    return Counts(*(getattr(a, f.name) + times * getattr(b, f.name) for f in dataclasses.fields(Counts)))


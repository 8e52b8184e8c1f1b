"""How the step loop moves a sampler on: one step a call, or, compiled, several.

A compiled sampler that draws first (:func:`scorelab.compiled.multi_step_function`) takes
:func:`~scorelab.compiled.steps_per_call` steps a call (8 on a GPU, 4 on the CPU) where none of them
but the last reaches the loop's next stop (a checkpoint or the budget), as predicted from the calls
the last single step made. The calls are checked after each call of several: if they were not as
predicted (a refresh among the steps), the steps' costs are known in sum only (each is put at its
share of it, the last at the oracle's cost), a stop among them is reached after them (a checkpoint
taken late, the budget passed by part of a call), and the sampler goes on in single steps for the
rest of the run.

Which way a call goes follows from the counts, the stop and a little history (:class:`Stepping`),
which a checkpoint keeps: a replay from it (:mod:`scorelab.crossing`) steps as the run did and lands
on the run's numbers to the bit (it checks that it does).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .compiled import compiled_now, multi_step_function, step_function, steps_per_call
from .oracle import Counts, ScoreOracle, price


@dataclass(frozen=True)
class Stepping:
    """Where the choice between single steps and calls of several stands: what a replay needs to step
    as the run did from a checkpoint."""

    per_step: Counts | None = None  # the calls the last single step made (None: no step yet, or one a call)
    several: bool = True  # calls of several steps allowed (off once their calls were not as predicted)
    stop: float = math.inf  # the next checkpoint's cost or the budget when the checkpoint was taken (for a replay)


@dataclass
class Moved:
    """What one call moved: the state after it and, per step, its Info, cost and calls."""

    state: Any
    infos: list[Any]
    costs: list[float]
    counts: list[Counts | None]  # None for the steps of a call whose calls were not as predicted
    extremes: tuple[torch.Tensor, torch.Tensor] | None  # each step's smallest and largest coordinate (several)
    records: torch.Tensor | None  # each step's ``project(state.x)``, stacked (with ``project``)


class Stepper:
    """``sampler``'s steps as ``compile`` runs them on ``device``, one or several a call (see the module
    docstring). ``project`` maps each step's chains to a record, computed in the compiled graph;
    ``stepping`` resumes the choice where a checkpoint left it (a replay)."""

    def __init__(self, sampler: Any, compile: str, device: torch.device, horizon: float = math.inf,
                 project: Callable[[torch.Tensor], torch.Tensor] | None = None, stepping: Stepping = Stepping()):
        self.k = steps_per_call(device)
        self.one = step_function(sampler, compile, device, horizon)
        self.many = multi_step_function(sampler, compile, device, self.k, project) if self.k > 1 else None
        self.project, self.at = project, stepping

    def stepping(self, stop: float) -> Stepping:
        return dataclasses.replace(self.at, stop=stop)

    def __call__(self, state: Any, oracle: ScoreOracle, generator: torch.Generator, stop: float) -> Moved:
        if self.many is None:  # one step a call on this device: nothing to predict (the eager loop's path)
            state, info = self.one(state, oracle, generator)
            return self._single(state, info, oracle)
        before = oracle.counts
        predicted = self._predicted(state, oracle, stop)
        if predicted is not None:
            return self._several(state, oracle, generator, before, predicted)
        state, info = self.one(state, oracle, generator)
        self.at = dataclasses.replace(self.at, per_step=_minus(oracle.counts, before))
        return self._single(state, info, oracle)

    def _single(self, state: Any, info: Any, oracle: ScoreOracle) -> Moved:
        records = None if self.project is None else self.project(state.x)[None]
        return Moved(state, [info], [oracle.cost], [oracle.counts], None, records)

    def _predicted(self, state: Any, oracle: ScoreOracle, stop: float) -> list[Counts] | None:
        """The counts after each step of a call of several, if one may run now: it is compiled and
        running, the last single step's calls are known, a state with ``finished`` (a fixed schedule)
        ends at a step of its own, and only the call's last step may reach ``stop``."""
        per_step = self.at.per_step
        if (not self.at.several or self.many is None or per_step is None or not compiled_now(self.one)
                or hasattr(state, "finished")):
            return None
        counts = [_plus(oracle.counts, per_step, i) for i in range(1, self.k + 1)]
        costs = [price(c, oracle.weights) for c in counts]
        return counts if costs[0] > oracle.cost and all(c < stop for c in costs[:-1]) else None

    def _several(self, state, oracle, generator, before: Counts, predicted: list[Counts]) -> Moved:
        state, infos, lows, highs, records = self.many(state, oracle, generator)
        costs = [price(c, oracle.weights) for c in predicted]
        counts: list[Counts | None] = list(predicted)
        if oracle.counts != predicted[-1]:  # not as predicted: known in sum alone
            self.at = dataclasses.replace(self.at, several=False)
            start = price(before, oracle.weights)
            costs = [start + (oracle.cost - start) * (i + 1) / self.k for i in range(self.k - 1)] + [oracle.cost]
            counts = [None] * (self.k - 1) + [oracle.counts]
        return Moved(state, infos, costs, counts, (lows, highs), records)


def _minus(a: Counts, b: Counts) -> Counts:
    return Counts(*(getattr(a, f.name) - getattr(b, f.name) for f in dataclasses.fields(Counts)))


def _plus(a: Counts, b: Counts, times: int) -> Counts:
    return Counts(*(getattr(a, f.name) + times * getattr(b, f.name) for f in dataclasses.fields(Counts)))


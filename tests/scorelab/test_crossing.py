"""The crossing of the primary metric, resolved to the step: replay and budget ladder."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from scorelab.chain import Checkpoint, run_chain
from scorelab.crossing import Snapshot, budget_ladder, replay
from scorelab.efficiency import cost_to_reach
from scorelab.oracle import CostWeights, Counts, ScoreOracle
from scorelab.schedules import log_spaced_checkpoints
from scorelab.sources import ExactScore
from scorelab_builtins.samplers import Mala
from scorelab_builtins.targets import Gaussian
from tests.helpers import several_a_call

H = 0.01  # x_k = (1 - H)^k x_0 under the noiseless step on N(0, I)


@dataclass
class _State:
    x: torch.Tensor


@dataclass
class GradientFlow:
    """x <- x + H s(x), plus noise that a replay must reproduce from the generator (it is scaled to
    leave the crossing where the noiseless recursion puts it)."""

    def init(self, x0, oracle, budget):
        return _State(x0)

    def step(self, state, oracle, generator):
        z = torch.randn(state.x.shape, generator=generator, dtype=state.x.dtype)
        return _State(state.x + H * oracle.score(state.x) + 1e-12 * z), None


def _metric(x: torch.Tensor) -> float:
    return float(x.abs().max())


def test_a_replay_finds_the_crossing_to_its_resolution_where_checkpoints_cannot():
    source = ExactScore(Gaussian(dim=2).to("cpu", torch.float64))
    x0 = torch.full((4, 2), 10.0, dtype=torch.float64)
    threshold, budget, resolution = 1.0, 2000, 0.02
    exact = math.ceil(math.log(threshold / 10.0) / math.log(1 - H))  # 230 steps = 230 NFE
    seen, snapshot = [], None
    generator = torch.Generator().manual_seed(0)

    def on_checkpoint(cp):
        nonlocal snapshot
        seen.append((cp.cost, _metric(cp.state.x)))
        if seen[-1][1] > threshold:
            snapshot = Snapshot.take(cp, generator)

    run_chain(GradientFlow(), ScoreOracle(source), x0, budget, generator, log_spaced_checkpoints(budget, 6),
              on_checkpoint)
    coarse = cost_to_reach(seen, threshold)
    assert coarse - exact > 0.2 * exact  # the checkpoint grid alone is off by more than 20 %
    until = next(p for p in seen if p[0] > snapshot.cost)
    points = replay(GradientFlow(), source, CostWeights(), snapshot, until, _metric, resolution)
    fine = cost_to_reach(sorted(seen + [(c, v) for c, v, _ in points]), threshold)
    assert exact <= fine <= exact * (1 + resolution) + 1
    assert all(isinstance(n, Counts) and n.nfe == c for c, _, n in points)  # counts kept for re-pricing


def test_a_replay_that_does_not_reproduce_is_refused():
    source = ExactScore(Gaussian(dim=2).to("cpu", torch.float64))
    state = _State(torch.full((4, 2), 10.0, dtype=torch.float64))
    checkpoint = Checkpoint(0.0, 0, state, {}, 0.0, Counts())
    snapshot = Snapshot.take(checkpoint, torch.Generator().manual_seed(0))
    assert replay(GradientFlow(), source, CostWeights(), snapshot, (50, 123.0), _metric, 0.02) is None


def test_the_budget_ladder_brackets_the_least_budget_that_reaches():
    calls = []

    def run_at(b):  # quality 10 / b: reaches 0.01 from a budget of 1000 on
        calls.append(b)
        return (b, 10 / b, Counts(nfe=round(b))) if b >= 50 else None  # under 50: too small to run

    points = budget_ladder(run_at, 10_000, 0.01, smallest=20, resolution=0.02)
    found = cost_to_reach(sorted((c, v) for c, v, _ in points), 0.01)
    assert 1000 <= found <= 1000 * 1.02
    assert len(calls) <= 12  # bisection, not a sweep of every budget


@pytest.mark.slow
def test_a_replay_of_a_compiled_run_steps_as_it_did_and_lands_on_its_numbers(monkeypatch):
    # float32 MALA adapting its step, whose chains from calls of several steps differ from single steps'
    # in the last bits: a replay lands on the run's value only by stepping as the run did (from 10, its
    # first call of several), and gives every step its point
    several_a_call(monkeypatch)
    target = Gaussian(dim=20, condition_number=10.0).to("cpu", torch.float32)
    x0 = torch.randn(64, 20, generator=torch.Generator().manual_seed(0))
    generator, kept = torch.Generator().manual_seed(1), {}

    def metric(x):
        return float(x.double().square().mean())

    def on_checkpoint(cp):
        kept[cp.cost] = Snapshot.take(cp, generator), metric(cp.state.x)

    mala = Mala(step_size=0.05, warmup=100)
    run_chain(mala, ScoreOracle(ExactScore(target)), x0, 120, generator, [10, 40, 80], on_checkpoint,
              compile="inductor")
    for start, end in ((10, 40), (40, 80)):
        points = replay(mala, ExactScore(target), CostWeights(), kept[start][0], (end, kept[end][1]), metric,
                        resolution=1e-6, compile="inductor")
        assert points is not None
        assert [c for c, _, _ in points] == list(range(start + 1, end))  # a point after every step

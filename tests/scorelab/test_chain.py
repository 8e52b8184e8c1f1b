"""The step loop's report of a sampler's Info (each field's mean over chains and over the steps since
the last checkpoint, whatever the field's type) and of divergence (the cost of the first step whose
chains left the bound)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import pytest
import torch

from scorelab import chain
from scorelab.chain import run_chain
from scorelab.oracle import ScoreOracle
from scorelab.sources import ExactScore
from scorelab_builtins.targets import Gaussian
from tests.helpers import Ula, variant

CHAINS = 4


@dataclass
class Diagnostics:
    per_chain: torch.Tensor  # float64, one per chain
    accepted: torch.Tensor  # bool, one per chain
    level: torch.Tensor  # one number, as a tensor
    step_size: float
    reshaped: torch.Tensor  # one number at every third step, one per chain at the others
    mixed: float | torch.Tensor  # a Python number at even steps, a tensor per chain at odd ones


def diagnostics(t: int) -> Diagnostics:
    i = torch.arange(CHAINS)
    return Diagnostics(per_chain=t * (i + 1.0).double(), accepted=(i + t) % 3 == 0, level=torch.tensor(t ** 2),
                       step_size=0.5 * t,
                       reshaped=torch.tensor(10.0 * (t + 1)) if t % 3 == 0 else (t + 1) * (i + 1.0),
                       mixed=0.25 * t if t % 2 == 0 else t + i.double())


def expected(steps: range) -> dict[str, float]:
    """Each field's mean over chains, then over ``steps``, worked out in Python."""
    def over_chains(v):
        return v.double().mean().item() if isinstance(v, torch.Tensor) else v
    fields = [vars(diagnostics(t)) for t in steps]
    return {k: statistics.fmean(over_chains(f[k]) for f in fields) for k in fields[0]}


def test_checkpoints_report_each_info_fields_mean_over_chains_and_steps():
    def step(self, state, oracle, generator):
        new, _ = Ula.step(self, state, oracle, generator)
        self.t = getattr(self, "t", -1) + 1
        return new, diagnostics(self.t)

    seen = []
    oracle = ScoreOracle(ExactScore(Gaussian(dim=2)))
    run_chain(variant("Diagnosed", step=step)(), oracle, torch.zeros(CHAINS, 2), 7, torch.Generator().manual_seed(0),
              checkpoints=[4], callback=lambda cp: seen.append(cp.info))
    assert seen[0] == {}  # after init: no step yet
    for info, steps in zip(seen[1:], (range(0, 3), range(3, 6)), strict=True):
        assert info == pytest.approx(expected(steps), rel=1e-6)


def _breaking_at(k: int, value: float):
    """Ula that sets one coordinate of one chain to ``value`` after its ``k``-th step (from 0) and on."""
    def step(self, state, oracle, generator):
        new, info = Ula.step(self, state, oracle, generator)
        self.t = getattr(self, "t", -1) + 1
        if self.t >= k:
            new.x[1, 0] = value
        return new, info
    return variant("Breaking", step=step)()


@pytest.mark.parametrize("chunk", [3, 256], ids=["folded every 3 steps", "one fold"])
@pytest.mark.parametrize(("k", "value"), [(7, math.nan), (4, -math.inf), (10, 1e7), (5, 1e7), (8, math.nan),
                                          (2, 1e6)])
def test_divergence_is_the_cost_of_the_first_step_out_of_bounds(monkeypatch, chunk, k, value):
    monkeypatch.setattr(chain._Divergence, "CHUNK", chunk)
    oracle = ScoreOracle(ExactScore(Gaussian(dim=2)))
    result = run_chain(_breaking_at(k, value), oracle, torch.zeros(CHAINS, 2), 40, torch.Generator().manual_seed(0),
                       checkpoints=[6, 20], bound=1e6)
    if value == 1e6:  # at the bound, not past it
        assert result.diverged_at is None and result.cost == 40
    else:
        assert result.diverged_at == k + 2  # init and each step cost one score evaluation
        assert result.cost == (6 if k + 2 <= 6 else 20)  # the run stops at the checkpoint that reads it


@pytest.mark.parametrize("chunk", [3, 256], ids=["folded every 3 steps", "one fold"])
@pytest.mark.parametrize("bad", [0, 2, 8, 9, 12, None])
def test_divergence_counts_steps_added_singly_and_several_at_once_alike(monkeypatch, chunk, bad):
    # as the step loop adds them: a single step, 8 from one compiled call, one, then 4
    monkeypatch.setattr(chain._Divergence, "CHUNK", chunk)
    xs = [torch.zeros(CHAINS, 2) for _ in range(14)]
    if bad is not None:
        xs[bad][1, 0] = math.nan
    divergence = chain._Divergence(xs[0], 1e6)

    def several(block):
        lows, highs = zip(*(torch.aminmax(x) for x in block), strict=True)
        divergence.add_steps(torch.stack(lows), torch.stack(highs))

    divergence.add(xs[0])
    several(xs[1:9])
    divergence.add(xs[9])
    several(xs[10:])
    assert divergence.first_step() == (-1 if bad is None else bad)


def test_info_of_several_steps_at_once_is_the_sum_of_each_steps():
    infos = [diagnostics(t) for t in range(5)]
    one_by_one, at_once = chain._InfoMeans(), chain._InfoMeans()
    for info in infos:
        one_by_one.add(info)
    at_once.add(infos[0])
    at_once.add_steps(infos[1:])
    assert at_once.n == one_by_one.n == 5
    assert at_once.pop() == pytest.approx(one_by_one.pop(), rel=1e-6)

"""adaptive_langevin: rejected attempts leave a chain where it was, steps follow the local smoothness,
and rejected Brownian increments are kept, so the noise a chain follows is exactly Brownian."""

from __future__ import annotations

import math

import pytest
import torch

from scorelab.oracle import ScoreOracle
from scorelab.sources import ExactScore
from scorelab_builtins.kernels import BrownianMemory
from scorelab_builtins.samplers import AdaptiveLangevin
from scorelab_builtins.targets import GMM


def _broad_and_sharp():
    """A smooth mode N(-20, 3^2) and a sharp one N(20, 0.05^2), 600 chains started at each."""
    target = GMM(weights=[0.5, 0.5], means=[[-20.0], [20.0]], stds=[3.0, 0.05])
    x0 = torch.cat([torch.full((600, 1), -20.0), torch.full((600, 1), 20.0)]).double()
    return target, x0


def test_rejected_attempts_leave_the_chain_where_it_was():
    target, x0 = _broad_and_sharp()
    oracle, sampler, g = ScoreOracle(ExactScore(target)), AdaptiveLangevin(), torch.Generator().manual_seed(0)
    state = sampler.init(x0, oracle, math.inf)
    rejected_total = 0
    for _ in range(30):
        before = state.x
        state, info = sampler.step(state, oracle, g)
        rejected = info.accepted == 0
        rejected_total += int(rejected.sum())
        assert torch.equal(state.x[rejected], before[rejected])
        assert (state.x[~rejected] != before[~rejected]).all()
    assert rejected_total > 1000  # plenty of rejections were exercised (about a third of the attempts)


def test_the_step_grows_where_the_score_is_smooth_and_shrinks_near_a_sharp_mode():
    target, x0 = _broad_and_sharp()
    oracle, sampler, g = ScoreOracle(ExactScore(target)), AdaptiveLangevin(), torch.Generator().manual_seed(0)
    state = sampler.init(x0, oracle, math.inf)
    for _ in range(100):
        state, _ = sampler.step(state, oracle, g)
    broad, sharp = state.step[:600], state.step[600:]
    # Both started at h = 0.01. Measured medians: 0.18 in the broad mode, 7e-4 in the sharp one.
    assert broad.median() > 10 * sampler.initial_step
    assert sharp.median() < sampler.initial_step / 5
    # No chain is thrown out of the sharp mode (its standard deviation is 0.05). Without the growth
    # limit, an accidentally tiny error estimate let h jump far past stability and one chain left.
    assert ((state.x[600:] - 20).abs() < 0.5).all()


@pytest.mark.slow
@pytest.mark.parametrize("depth", [8, 2])
def test_rejected_increments_are_kept_so_the_path_stays_brownian(depth):
    """An adversary refuses every increment larger than 0.8 sqrt(h) (down to h = 1e-3) and halves h.
    With memory, the increments a chain finally uses over a unit of time still sum to N(0, 1); with
    the increments thrown away, the same refusals leave a variance of about 0.2. A depth of 2 forces
    the stack to join pieces when full, which must not change the law either. Over n = 5000 chains
    the sample variance has standard error sqrt(2 / n) = 0.02; we allow 5 (0.1, against 0.8 lost)."""
    n, horizon = 5000, 1.0
    g = torch.Generator().manual_seed(0)
    like = torch.zeros(n, 1, dtype=torch.float64)
    memory = BrownianMemory.empty(like, depth)
    t, w = torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
    wanted = torch.full((n,), 0.1, dtype=torch.float64)
    for i in range(2000):
        if i % 50 == 0 and (t > horizon - 1e-9).all():
            break
        h, dw, memory = memory.take(torch.minimum(wanted, horizon - t).clamp(min=0), g)
        refused = (dw[:, 0].abs() > 0.8 * h.sqrt()) & (h > 1e-3)
        t, w = t + torch.where(refused, 0, h), w + torch.where(refused, 0, dw[:, 0])
        memory = memory.give_back(h, dw, refused)
        wanted = torch.where(refused, h / 2, 0.1)
    assert (t > horizon - 1e-9).all()
    assert abs(float(w.var()) - 1.0) < 5 * math.sqrt(2 / n)
    assert abs(float(w.mean())) < 5 * math.sqrt(1 / n)


def test_bad_hyperparameters_are_clear_errors():
    with pytest.raises(ValueError, match="initial_step"):
        AdaptiveLangevin(initial_step=10.0)
    with pytest.raises(ValueError, match="min_step <= max_step"):
        AdaptiveLangevin(min_step=1.0, max_step=0.1)
    with pytest.raises(ValueError, match="memory"):
        AdaptiveLangevin(memory=1)

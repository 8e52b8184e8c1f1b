"""The kit's 100-D moment check can fail: a sampler whose variance is 20 % off over half the
coordinates, and right elsewhere, fails it, and the same sampler without the error passes."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from scorelab.testing import check_sampler


@dataclass
class State:
    x: torch.Tensor


@dataclass
class ExactFromScore:
    """Each step a fresh draw from the Gaussian target, read off two scores (for N(mu, v),
    s(x) - s(x + 1) = 1 / v and mu = x + v s(x)), with the variance of the upper half of the
    coordinates (the wider ones in the kit's 100-D target; none in 1-D) scaled by ``inflate``."""

    inflate: float = 1.0

    def init(self, x0, oracle, budget):
        return State(x0)

    def step(self, state, oracle, generator):
        x = state.x
        s0, s1 = oracle.score(x), oracle.score(x + 1)
        v = 1 / (s0 - s1)
        scale = torch.ones(x.shape[-1], dtype=x.dtype, device=x.device)
        scale[(x.shape[-1] + 1) // 2:] = self.inflate
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        return State(x + v * s0 + (v * scale).sqrt() * z), None


def test_exact_draws_pass_and_a_variance_20_percent_off_on_half_the_coordinates_fails():
    assert check_sampler(ExactFromScore).ok

    report = check_sampler(ExactFromScore, params={"inflate": 1.2})
    failed = {f.check: f.message for f in report.failures}
    assert list(failed) == ["moments on a 100-D Gaussian"], str(report)  # 1-D has no upper half to inflate
    assert "variances are 1.1" in failed["moments on a 100-D Gaussian"]  # 1.2 within sampling error
    assert "over the 50 coordinates with v from 1.01 to 2" in failed["moments on a 100-D Gaussian"]
    # One coordinate's tolerance at 200 chains (5 sd of its variance ratio, 0.5, plus the allowance) hides a
    # 20 % error: the pooled band is what catches it.
    assert "(coordinate" not in failed["moments on a 100-D Gaussian"]

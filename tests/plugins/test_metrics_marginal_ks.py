"""max_marginal_ks against scipy's two-sample KS statistic, its floor, and a missing tail."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp

from scorelab_builtins.metrics import MaxMarginalKS
from scorelab_builtins.metrics.marginal_ks import ks_statistics
from scorelab_builtins.targets import Funnel


@pytest.mark.parametrize("n, m", [(300, 300), (250, 410)])
def test_equals_scipy_per_coordinate_ties_included(n, m):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g, dtype=torch.float64)
    y = 0.2 + 1.3 * torch.randn(m, 4, generator=g, dtype=torch.float64)
    x[:, 3], y[:, 3] = x[:, 3].round(), y[:, 3].round()  # a coordinate with many ties
    ours = ks_statistics(x, y)
    theirs = [ks_2samp(x[:, i].numpy(), y[:, i].numpy()).statistic for i in range(4)]
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=0, atol=1e-12)
    assert MaxMarginalKS()(x, y) == pytest.approx(max(theirs), abs=1e-12)


def test_floor_follows_kolmogorov_and_a_missing_tail_is_seen():
    funnel = Funnel(dim=5)
    n = 4000
    a = funnel.sample(n, torch.Generator().manual_seed(1))
    b = funnel.sample(n, torch.Generator().manual_seed(2))
    floor = MaxMarginalKS()(a, b)
    # Each coordinate: sqrt(n/2) KS ~ Kolmogorov (99.9 % quantile 1.95), so the worst of 5 is under
    # 1.95 sqrt(2/n) = 0.044 with probability > 0.995; and above 0.3 sqrt(2/n) almost surely.
    assert 0.3 * math.sqrt(2 / n) < floor < 1.95 * math.sqrt(2 / n)
    # A sampler that never enters the neck: v's lower tail (v < -3, a sixth of the mass) is missing.
    necked = a[a[:, 0] > -3.0]
    assert MaxMarginalKS()(necked, b) > 0.12  # the missing mass, 0.159, less sampling noise


def test_diverged_samples_give_nan():
    x = torch.zeros(10, 2, dtype=torch.float64)
    x[0, 0] = float("nan")
    assert math.isnan(MaxMarginalKS()(x, torch.zeros(10, 2, dtype=torch.float64)))

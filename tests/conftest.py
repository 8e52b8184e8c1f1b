"""Shared fixtures: a fresh plugin host per test, and a temporary MLflow store."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

import scorelab_builtins
from scorelab.plugins import PluginHost
from scorelab.sources import ExactScore

# The tests' tensors are small: one intra-op thread is many times faster than two contending for a
# shared 2-core machine (KSD of 400 points: 14 ms against 360 ms). Every test module relies on this.
torch.set_num_threads(1)


@pytest.fixture
def host() -> PluginHost:
    """A host with only the built-ins, registered the way the entry point would."""
    h = PluginHost()
    h.add(scorelab_builtins, "builtins", "scorelab", "test")
    return h


@pytest.fixture
def tracking_uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


class CountingSource:
    """The exact score of a target, counting the calls that really reach it. With ``learned`` it also
    plays a model with a second-order head (score and diagonal from one call)."""

    def __init__(self, target, learned=False):
        self.inner = ExactScore(target)
        self.provides = self.inner.provides | ({"second_order_head"} if learned else set())
        self.calls = Counter()

    def score(self, x, sigma=None):
        self.calls["score"] += 1
        return self.inner.score(x, sigma)

    def hess_diag(self, x, sigma=None):
        self.calls["hess_diag"] += 1
        return self.inner.hess_diag(x, sigma)

    def score_and_diag(self, x, sigma=None):
        self.calls["score_and_diag"] += 1
        return self.inner.score(x, sigma), self.inner.hess_diag(x, sigma)

    def log_prob_and_score(self, x):
        self.calls["log_prob"] += 1
        return self.inner.log_prob_and_score(x)


@pytest.fixture
def counting_source():
    """The class :class:`CountingSource`, for tests that count what reaches a score source."""
    return CountingSource

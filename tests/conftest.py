"""Shared fixtures: a fresh plugin host per test, and a temporary MLflow store; the suite's time by
tier. Shared helpers that are not fixtures live in tests/helpers.py.

Tiers: tests marked ``slow`` (statistical checks on long chains or large samples, and trainings) and
the rest. Every run prints the seconds each tier took, summed over the tests (with ``-n``, over all
workers: more than the wall time); ``-m "not slow"`` runs the fast tier alone.
"""

from __future__ import annotations

import pytest
import torch

import scorelab_builtins
from scorelab import compiled
from scorelab.plugins import PluginHost

# The tests' tensors are small: one intra-op thread is many times faster than two contending for a
# shared 2-core machine (KSD of 400 points: 14 ms against 360 ms). Every test module relies on this.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def one_step_a_call_on_the_cpu(monkeypatch):
    """Compiled CPU runs take one step a call in the suite (``several_a_call`` in tests/helpers.py for
    more), where scorelab takes 4 (``scorelab.compiled.STEPS_PER_CALL``): a graph of several steps
    compiles for longer, and the tests compile many small runs. The path of several a call is the same
    code for any number, and its tests set 8, as on a GPU."""
    monkeypatch.setitem(compiled.STEPS_PER_CALL, "cpu", 1)


@pytest.fixture
def host() -> PluginHost:
    """A host with only the built-ins, registered the way the entry point would."""
    h = PluginHost()
    h.add(scorelab_builtins, "builtins", "scorelab", "test")
    return h


@pytest.fixture
def tracking_uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"



class TierClock:
    """Adds up each test's setup, call and teardown seconds by tier, and prints the totals at the end."""

    TIERS = ("slow", "not slow")

    def __init__(self):
        self.seconds = dict.fromkeys(self.TIERS, 0.0)
        self.tests = {tier: set() for tier in self.TIERS}

    def pytest_runtest_logreport(self, report):
        tier = "slow" if "slow" in report.keywords else "not slow"
        self.seconds[tier] += report.duration
        self.tests[tier].add(report.nodeid)

    def pytest_terminal_summary(self, terminalreporter):
        terminalreporter.write_sep("-", "time by tier (the tests' seconds; under -n, summed over workers)")
        for tier in self.TIERS:
            terminalreporter.write_line(f"{tier:>8}: {self.seconds[tier]:7.1f} s over {len(self.tests[tier])} tests")


def pytest_configure(config):
    # Registered as a plugin so that it sees every test of the run, examples/ included.
    config.pluginmanager.register(TierClock(), "scorelab-tier-clock")

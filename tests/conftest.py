"""Shared fixtures: a fresh plugin host per test, and a temporary MLflow store."""

from __future__ import annotations

import pytest
import torch

import scorelab_builtins
from scorelab.plugins import PluginHost

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

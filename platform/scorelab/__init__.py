"""scorelab: sampling from score-based models, samplers as plugins, compared at honestly counted cost.

Importing ``scorelab`` is cheap: it loads neither torch nor any plugin. The public names below
are imported on first use.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "ScoreOracle": "scorelab.oracle",
    "CostWeights": "scorelab.oracle",
    "hookimpl": "scorelab.hookspecs",
    "API_VERSION": "scorelab.hookspecs",
    "PluginHost": "scorelab.plugins",
    "TargetBase": "scorelab.targets",
    "DrawsFirst": "scorelab.contracts",
    "ConfigError": "scorelab.errors",
    "ScorelabError": "scorelab.errors",
    "PluginError": "scorelab.errors",
    "run_chain": "scorelab.chain",
    "geometric_sigmas": "scorelab.schedules",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'scorelab' has no attribute {name!r}")

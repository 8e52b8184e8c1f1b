"""``scorelab check-plugin``: passes on an installed plugin that conforms, fails with a readable
message on each deliberately broken one (installed here as fake entry points); the hook API version."""

from __future__ import annotations

import importlib.metadata
import json
import math
import types

import pytest
import torch

import scorelab.plugins
import scorelab_builtins
from scorelab.cli import main
from scorelab.hookspecs import API_VERSION, hookimpl
from tests.helpers import Info, NoStep, State, Ula, variant

# The broken plugins of the issue: each one's class and a line the output must contain.
BROKEN = {
    "missing_step": (NoStep, "LOAD ERROR: sampler 'missing_step' (NoStep) rejected: has no method 'step'"),
    "wrong_return": (variant("StateOnly", step=lambda self, s, o, g: Ula.step(self, s, o, g)[0]),
                     "step 1 returned a State; step must return a pair (state, info)"),
    "nan_output": (variant("Exploding", step=lambda self, s, o, g: (State(s.x * math.nan, s.score), Info(1.0))),
                   "step 1 produced NaN or inf in 8 of 8 chains"),
    "global_random": (variant("GlobalRandom", noise=lambda self, s, g: torch.randn(s.x.shape, dtype=s.x.dtype)),
                      "FAIL reproducible under a fixed generator: two runs with the same generator seed gave "
                      "different chains"),
    "freeloader": (variant("Freeloader", step=lambda self, s, o, g: (State(s.x, o._ScoreOracle__source.score(s.x)),
                                                                      Info(0.0))),
                   "FAIL honest cost (calls counted = calls made): the sampler called the score source's score"),
    "shrinking": (variant("Shrinking", step=lambda self, s, o, g: (State(s.x[:-1], s.score[:-1]), Info(0.1))),
                  "step 1 changed the shape of the chains from (8, 3) to (7, 3)"),
}


def _plugin(name: str, cls: type, version=None) -> types.ModuleType:
    module = types.ModuleType(f"scorelab_{name}")

    @hookimpl
    def register_samplers(register):
        register(cls, name=name)

    module.register_samplers = register_samplers
    if version is not None:
        module.SCORELAB_API_VERSION = version
    return module


class _EntryPoint:
    def __init__(self, name, module, dist_name):
        self.name, self.value, self._module = name, module.__name__, module
        self.dist = types.SimpleNamespace(name=dist_name, version="0.0.1")

    def load(self):
        return self._module


@pytest.fixture
def installed(monkeypatch):
    """Install plugin modules as fake entry points of group 'scorelab', beside the built-ins."""

    def install(**modules):
        eps = [_EntryPoint("builtins", scorelab_builtins, "scorelab")]
        eps += [_EntryPoint(name, module, f"scorelab-{name}") for name, module in modules.items()]
        monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: eps if group == "scorelab" else [])
        monkeypatch.setattr(scorelab.plugins, "_HOST", None)  # `scorelab plugins` loads afresh

    return install


@pytest.mark.parametrize("name", list(BROKEN))
def test_check_plugin_fails_each_broken_plugin_readably(name, installed, capsys):
    cls, expected = BROKEN[name]
    installed(**{name: _plugin(name, cls)})
    assert main(["check-plugin", f"scorelab-{name}", "--quick"]) == 1  # by package name
    out = capsys.readouterr().out
    assert expected in out, out
    assert out.strip().endswith(f"FAIL: {name}") and "Traceback" not in out


def test_check_plugin_passes_a_conforming_plugin(installed, capsys):
    installed(good=_plugin("good", Ula, version=API_VERSION))
    assert main(["check-plugin", "good"]) == 0
    out = capsys.readouterr().out
    assert "sampler 'good' (Ula) passes the scorelab conformance checks" in out and out.strip().endswith("PASS: good")
    assert "moments on Gaussians" not in out  # the moment checks ran (no --quick)


def test_check_plugin_on_builtins_checks_what_it_is_asked(capsys):
    # Every built-in is checked by the parametrised test in test_testing_kit.py, through the same function.
    assert main(["check-plugin", "builtins", "--only", "gaussian", "--only", "mean_error"]) == 0
    out = capsys.readouterr().out
    assert "target 'gaussian' (Gaussian) passes" in out and "metric 'mean_error' (MeanError) passes" in out
    assert "langevin" not in out


def test_check_plugin_params_and_unknown_names(installed, capsys):
    installed(good=_plugin("good", Ula))
    assert main(["check-plugin", "good", "--only", "good", "--quick", "--params", '{"step_size": "big"}']) == 1
    assert "FAIL typed hyperparameters: field 'step_size': expected float, got 'big' (given value)" in (
        capsys.readouterr().out)
    assert main(["check-plugin", "nonexistent"]) == 2
    assert "no installed plugin 'nonexistent'. Installed plugins: builtins, good" in capsys.readouterr().err
    assert main(["check-plugin", "good", "--only", "other"]) == 1
    assert "--only names no class of this plugin; it registers: good" in capsys.readouterr().out
    # One class registered: --params applies to it without --only; several: --only names which.
    assert main(["check-plugin", "good", "--quick", "--params", '{"step_size": "big"}']) == 1
    assert "field 'step_size': expected float, got 'big' (given value)" in capsys.readouterr().out
    assert main(["check-plugin", "builtins", "--params", "{}"]) == 2
    assert "--params applies to one class, and 'builtins' registers " in capsys.readouterr().err


def test_example_plugin_passes(capsys):
    try:
        importlib.metadata.distribution("scorelab-kinetic-langevin")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("scorelab-kinetic-langevin is not installed: run the README's test command")
    assert main(["check-plugin", "kinetic_langevin"]) == 0
    assert "PASS: kinetic_langevin" in capsys.readouterr().out


# -- the hook API version --------------------------------------------------------------------------

def test_plugin_for_another_hook_api_version_is_refused_with_a_message(installed, capsys):
    installed(future=_plugin("future", Ula, version=API_VERSION + 1))
    assert main(["check-plugin", "future"]) == 1
    out = capsys.readouterr().out
    assert (f"LOAD ERROR: written for scorelab hook API version {API_VERSION + 1}, this scorelab has version "
            f"{API_VERSION}; update the plugin (docs/plugins.md lists what changed)") in out


def test_plugin_declaring_the_current_version_or_none_is_loaded(installed, capsys):
    installed(current=_plugin("current", Ula, version=API_VERSION), undeclared=_plugin("undeclared", Ula))
    assert main(["plugins", "--json"]) == 0
    listing = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert listing["current"]["errors"] == [] and listing["undeclared"]["errors"] == []
    assert listing["current"]["registers"] == {"sampler": ["current"]}


def test_trace_shows_the_hook_calls_of_a_plugin(installed, monkeypatch, capsys):
    installed(traced=_plugin("traced", Ula))
    monkeypatch.setenv("SCORELAB_TRACE_PLUGINS", "1")
    monkeypatch.setenv("SCORELAB_LOAD_PLUGINS", "traced")
    assert main(["plugins"]) == 0
    captured = capsys.readouterr()
    assert "register_samplers" in captured.err and "traced" in captured.out

"""The plugin host: loading, naming, duplicates, contract checks, broken plugins, selection."""

from __future__ import annotations

import importlib.metadata
import types
from dataclasses import dataclass

import pytest

import scorelab_builtins
from scorelab.hookspecs import hookimpl
from scorelab.plugins import PluginHost


def _module(name: str, **hooks) -> types.ModuleType:
    module = types.ModuleType(name)
    for key, fn in hooks.items():
        setattr(module, key, fn)
    return module


@dataclass
class GoodSampler:
    step_size: float = 0.1

    def init(self, x0, oracle, budget):
        return x0

    def step(self, state, oracle, generator):
        return state, None


@dataclass
class NoStep:
    def init(self, x0, oracle, budget):
        return x0


def test_builtins_register_every_kind(host):
    assert {"langevin", "annealed_langevin"} <= set(host.names("sampler"))
    assert {"gaussian", "gmm"} <= set(host.names("target"))
    assert {"sliced_wasserstein", "mmd"} <= set(host.names("metric"))
    (info,) = host.plugins
    assert info.errors == [] and info.package == "scorelab"


def test_names_are_normalised(host):
    assert host.get("sampler", "Annealed-Langevin") is host.get("sampler", "annealed_langevin")


def test_a_duplicate_name_is_an_error_on_the_second_and_the_first_is_kept(host):
    """No plugin can switch a built-in off by registering its name: the built-in is kept everywhere."""
    builtin = host.get("sampler", "langevin")

    @hookimpl
    def register_samplers(register):
        register(GoodSampler, name="langevin")

    info = host.add(_module("clash", register_samplers=register_samplers), "clash", "clashpkg", "9.9")
    assert "registered by both 'builtins' (scorelab test) and 'clash' (clashpkg 9.9)" in info.errors[0]
    assert host.get("sampler", "langevin") is builtin and getattr(GoodSampler, "name", None) != "langevin"


def test_an_unknown_name_names_the_plugins_that_failed_to_load(host):
    info = host.add(_module("broken"), "broken", "brokenpkg", "1.0")
    info.errors.append("failed to import broken: ImportError: no module named torchsde")
    with pytest.raises(KeyError, match="unknown sampler 'sde_sampler'.*failed to load.*brokenpkg.*torchsde"):
        host.get("sampler", "sde_sampler")


def test_the_plugins_command_fails_when_a_plugin_has_an_error(host, monkeypatch, capsys):
    import scorelab.plugins
    from scorelab.cli import main

    monkeypatch.setattr(scorelab.plugins, "host", lambda: host)
    assert main(["plugins"]) == 0
    host.add(_module("broken"), "broken", "brokenpkg", "1.0").errors.append("failed to import broken: ImportError")
    assert main(["plugins", "--json"]) == 1
    assert "failed to import broken" in capsys.readouterr().out


def test_sampler_without_step_is_rejected_naming_plugin_and_method(host):
    @hookimpl
    def register_samplers(register):
        register(NoStep, name="half_done")
        register(GoodSampler, name="fine")

    info = host.add(_module("halfpkg", register_samplers=register_samplers), "halfpkg")
    assert info.errors == ["sampler 'half_done' (NoStep) rejected: has no method 'step'"]
    assert "fine" in host.names("sampler") and "half_done" not in host.names("sampler")


def test_non_dataclass_is_rejected(host):
    class Plain:
        def init(self, x0, oracle, budget): ...
        def step(self, state, oracle, generator): ...

    @hookimpl
    def register_samplers(register):
        register(Plain)

    info = host.add(_module("plainpkg", register_samplers=register_samplers), "plainpkg")
    assert "is not a dataclass" in info.errors[0]


def test_misspelled_hook_is_reported_and_plugin_skipped(host):
    @hookimpl
    def register_sampler(register):  # missing the final 's'
        register(GoodSampler)

    info = host.add(_module("typo", register_sampler=register_sampler), "typo")
    assert "register_sampler" in info.errors[0]
    assert "good_sampler" not in host.names("sampler")


def test_hook_that_raises_is_reported(host):
    @hookimpl
    def register_samplers(register):
        raise RuntimeError("boom")

    info = host.add(_module("raiser", register_samplers=register_samplers), "raiser")
    # One error: the hook, the exception, and where it was raised (the decorator is the code's first line).
    raised_at = f"{register_samplers.__code__.co_filename}:{register_samplers.__code__.co_firstlineno + 2}"
    assert info.errors == [f"register_samplers raised RuntimeError: boom (at {raised_at})"]
    assert "langevin" in host.names("sampler")  # everything else keeps working


def test_api_version_mismatch_is_refused(host):
    module = _module("future", SCORELAB_API_VERSION=99)
    info = host.add(module, "future")
    assert "hook API version 99" in info.errors[0]


class _FakeEntryPoint:
    def __init__(self, name, load, dist_name="pkg"):
        self.name, self._load, self.value = name, load, f"{name}_module"
        self.dist = types.SimpleNamespace(name=dist_name, version="1.0")

    def load(self):
        return self._load()


def _fake_entry_points(monkeypatch, eps):
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: eps if group == "scorelab" else [])


def test_plugin_failing_on_import_is_reported_and_skipped(monkeypatch):
    def broken():
        raise ImportError("No module named 'missing_dependency'")

    _fake_entry_points(monkeypatch, [
        _FakeEntryPoint("builtins", lambda: scorelab_builtins, "scorelab"),
        _FakeEntryPoint("broken", broken, "brokenpkg"),
    ])
    h = PluginHost().load_entry_points()
    broken_info = next(p for p in h.plugins if p.name == "broken")
    assert "failed to import broken_module: ImportError: No module named 'missing_dependency'" in broken_info.errors[0]
    assert "langevin" in h.names("sampler")


def test_load_plugins_env_restricts_loading(monkeypatch):
    @hookimpl
    def register_samplers(register):
        register(GoodSampler, name="extra")

    loaded = []
    extra = _module("extra", register_samplers=register_samplers)
    _fake_entry_points(monkeypatch, [
        _FakeEntryPoint("builtins", lambda: loaded.append("builtins") or scorelab_builtins, "scorelab"),
        _FakeEntryPoint("extra", lambda: loaded.append("extra") or extra, "extra-pkg"),
    ])
    monkeypatch.setenv("SCORELAB_LOAD_PLUGINS", "extra-pkg")  # by package name; entry point names work too
    h = PluginHost().load_entry_points()
    assert loaded == ["extra"]  # the other entry point is not even imported
    assert h.names("sampler") == ["extra"]


def test_load_plugins_env_says_what_it_left_out(monkeypatch):
    _fake_entry_points(monkeypatch, [_FakeEntryPoint("builtins", lambda: scorelab_builtins, "scorelab")])
    monkeypatch.setenv("SCORELAB_LOAD_PLUGINS", "builtins,bultins_typo")
    h = PluginHost().load_entry_points()
    typo = next(p for p in h.plugins if p.name == "bultins_typo")
    assert typo.errors == ["SCORELAB_LOAD_PLUGINS=builtins,bultins_typo names 'bultins_typo', which is no installed "
                           "plugin's entry point or package; installed: builtins"]
    monkeypatch.setenv("SCORELAB_LOAD_PLUGINS", "nothing_installed")
    h = PluginHost().load_entry_points()
    with pytest.raises(KeyError, match="SCORELAB_LOAD_PLUGINS=nothing_installed loads only the plugins it names; "
                                       "unset it to load every installed one") as err:
        h.entry("sampler", "langevin")
    assert "failed to load" not in str(err.value)  # the name matched nothing: no plugin failed


def test_installed_entry_point_is_found():
    h = PluginHost().load_entry_points({"builtins"})
    assert [p.name for p in h.plugins] == ["builtins"] and "gmm" in h.names("target")


def test_trace_env_prints_hook_calls(monkeypatch, capsys):
    monkeypatch.setenv("SCORELAB_TRACE_PLUGINS", "1")
    h = PluginHost()
    h.add(scorelab_builtins, "builtins")
    assert "register_samplers" in capsys.readouterr().err


def test_metric_without_call_is_rejected(host):
    """Every class is callable (calling it builds an instance), so the check looks for __call__ on the class."""

    @dataclass
    class NoCall:
        bins: int = 10

    @dataclass
    class WithCall(NoCall):
        def __call__(self, samples, reference, target=None):
            return 0.0

    @hookimpl
    def register_metrics(register):
        register(NoCall, name="uncallable")
        register(dataclass(type("Inherited", (WithCall,), {})), name="inherited")

    info = host.add(_module("metricpkg", register_metrics=register_metrics), "metricpkg")
    assert info.errors == ["metric 'uncallable' (NoCall) rejected: has no method '__call__'"]
    assert "inherited" in host.names("metric") and "uncallable" not in host.names("metric")

"""Plugin traits: declared once (scorelab.contracts), checked the same way at registration, in a config
and by the kit, per instance where they follow the hyperparameters; the host writes nothing into a
plugin class, and the core takes the baseline from the config."""

from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass

import pytest

from scorelab.config import parse_comparison
from scorelab.contracts import TRAITS, traits
from scorelab.errors import ConfigError, PluginError
from scorelab.hookspecs import hookimpl
from scorelab.testing import check_sampler


@dataclass
class State:
    x: object


@dataclass
class Still:
    """Stays where it starts, paying one score a step; ``needs`` adds a capability to what it requires."""

    needs: str = ""

    def __post_init__(self):
        self.requires = (self.needs,) if self.needs else ()

    def init(self, x0, oracle, budget):
        return State(x0)

    def step(self, state, oracle, generator):
        oracle.score(state.x)
        return State(state.x), None


def _register(host, *classes, **named):
    @hookimpl
    def register_samplers(register):
        for cls in classes:
            register(cls)
        for name, cls in named.items():
            register(cls, name=name)

    module = types.ModuleType("traitpkg")
    module.register_samplers = register_samplers
    return host.add(module, "traitpkg")


def _config(sampler: dict, **top) -> dict:
    return {"name": "t", "target": "gaussian", "budget": 10, "chains": 4, "seeds": [0], "metrics": ["mean_error"],
            "samplers": [sampler], **top}


def test_registration_writes_nothing_into_the_class_and_the_config_carries_the_registered_name(host):
    info = _register(host, Still, quiet=Still)
    assert info.errors == [] and {"still", "quiet"} <= set(host.names("sampler"))
    assert "name" not in vars(Still)  # the host keeps the name
    comp = parse_comparison(_config({"name": "quiet"}), host=host)
    assert [(s.name, s.plugin) for s in comp.samplers] == [("quiet", "quiet")] and comp.target_name == "gaussian"


def test_a_declared_name_is_still_the_registered_name(host):
    named = dataclass(type("Anything", (Still,), {"name": "my_still"}))
    _register(host, named)
    assert host.get("sampler", "my_still") is named


def test_a_wrong_trait_on_the_class_is_refused_at_registration(host):
    bad = dataclass(type("Bad", (Still,), {"requires": ("telepathy",), "chains_interact": "yes"}))
    info = _register(host, bad)
    (error,) = info.errors
    assert error.startswith("sampler 'bad' (Bad) rejected: requires unknown capabilities ['telepathy']")
    assert "chains_interact must be True or False, got 'yes'" in error


def test_a_trait_that_follows_the_hyperparameters_is_checked_per_instance_in_config_and_kit(host):
    _register(host, Still)  # the class requires nothing: registration cannot see the instance's value
    with pytest.raises(ConfigError) as raised:
        parse_comparison(_config({"name": "still", "needs": "telepathy"}), host=host)
    assert raised.value.key == "samplers[0]" and "requires unknown capabilities ['telepathy']" in str(raised.value)

    report = check_sampler(Still, params={"needs": "telepathy"}, gaussian=False)
    assert "requires unknown capabilities ['telepathy']" in report.failures[0].message


def test_the_kit_reads_requires_from_the_instance(host):
    needs_mixture = check_sampler(Still, params={"needs": "mixture"}, gaussian=False)
    assert needs_mixture.ok and any(s.startswith("running it: it requires ['mixture']") for s in needs_mixture.skipped)
    assert not any(s.startswith("running it") for s in check_sampler(Still, gaussian=False).skipped)


def test_a_config_refuses_a_setting_whose_requirement_the_target_lacks(host):
    _register(host, Still)
    with pytest.raises(ConfigError, match="still requires mixture, which the exact score of target 'gaussian'"):
        parse_comparison(_config({"name": "still", "needs": "mixture"}), host=host)


def test_traits_fill_defaults_and_name_what_is_wrong():
    assert traits("sampler", Still()) == TRAITS["sampler"]()
    assert traits("metric", object()).discrepancy is True
    with pytest.raises(PluginError, match="sampler SimpleNamespace: requires must be a tuple of capability names, "
                                          "got 'log_prob'"):
        traits("sampler", types.SimpleNamespace(requires="log_prob"))


def test_every_trait_has_a_type_a_default_and_a_meaning():
    for record in TRAITS.values():
        for f in dataclasses.fields(record):
            assert f.metadata["help"] and callable(f.metadata["read"]), (record.__name__, f.name)
            assert f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def test_the_baseline_is_the_first_row_unless_the_config_names_one(host):
    two = _config({"name": "mala", "step_size": 0.1}) | {
        "samplers": [{"name": "mala", "step_size": 0.1}, {"name": "langevin", "step_size": 0.1}]}
    assert parse_comparison(two, host=host).baseline == "mala"
    assert parse_comparison(two | {"baseline": "langevin"}, host=host).baseline == "langevin"
    with pytest.raises(ConfigError, match="without 'baseline' it is the first row listed"):
        parse_comparison(two | {"baseline": "ozaki_langevin"}, host=host)

"""``scorelab describe``: every hyperparameter's type, default and meaning, read from the plugin itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from scorelab.describe import parameters, summary
from scorelab.plugins import KINDS


@dataclass
class Base:
    """A base a plugin shares its fields through."""

    step_size: float = 0.1  # the step h
    probes: int = 1  # Rademacher probes per estimate


@dataclass
class ThirdParty(Base):
    """Langevin with a twist: the first paragraph is the summary.

    Not this one."""

    step_size: float = 0.05  # the step h, smaller here
    method: Literal["a", "b"] = "a"  # which twist
    scale: float = field(default=2.0, metadata={"help": "the help in metadata wins"})  # not this comment
    undocumented: int = 3
    weights: list = field(default_factory=lambda: [1, 2])

    def step(self, state):  # a comment on a method line is no field's meaning
        x: int = 1  # nor is one inside a method
        return x


def test_meanings_come_from_comments_metadata_and_bases():
    got = {p.name: p for p in parameters(ThirdParty)}
    assert list(got) == ["step_size", "probes", "method", "scale", "undocumented", "weights"]
    assert (got["step_size"].default, got["step_size"].meaning) == ("0.05", "the step h, smaller here")
    assert got["probes"].meaning == "Rademacher probes per estimate"  # from the base
    assert (got["method"].type, got["method"].meaning) == ("'a' | 'b'", "which twist")
    assert got["scale"].meaning == "the help in metadata wins"
    assert got["undocumented"].meaning == "" and got["weights"].default == "[1, 2]"
    assert "x" not in got and summary(ThirdParty) == "Langevin with a twist: the first paragraph is the summary."


def test_every_builtin_hyperparameter_has_a_meaning(host):
    missing = [f"{kind} {name}.{p.name}" for kind in KINDS for name in host.names(kind)
               for p in parameters(host.get(kind, name)) if not p.meaning]
    assert missing == []


def test_the_command_shows_a_fixed_step_mala_and_refuses_unknown_names(capsys):
    from scorelab.cli import main

    assert main(["describe", "mala"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("mala (sampler") and "warmup" in out and "0 keeps" in out
    assert main(["describe", "malla"]) == 2
    assert "did you mean 'mala'?" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["sampler", "target"])
def test_the_command_can_be_asked_for_one_kind(kind, capsys):
    from scorelab.cli import main

    name = {"sampler": "langevin", "target": "gaussian"}[kind]
    assert main(["describe", name, "--kind", kind, "--json"]) == 0
    assert f'"kind": "{kind}"' in capsys.readouterr().out

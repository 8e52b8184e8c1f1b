"""Measured cost weights: their structure, never their timing.

Most tests run on a fake clock that advances only inside the source's calls, or replace the
per-round ratios outright, so weights, spreads and call counts are exact numbers; one runs on the
real clock and checks the weights against the ratios it timed, never a time.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scorelab import cost
from scorelab.cost import measure_cost_weights
from scorelab.oracle import CostWeights
from scorelab.sources import ExactScore


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class MeteredSource:
    """score = -x, each call charged ``seconds`` on the fake clock, an exact curvature ``curvature``."""

    def __init__(self, clock, provides=(), seconds=1.0, curvature=3.0):
        self.clock, self.provides, self.seconds, self.curvature = clock, frozenset(provides), seconds, curvature
        self.calls = {"score": 0, "hess_diag": 0}
        self.sigmas = []

    def score(self, x, sigma=None):
        self.calls["score"] += 1
        self.sigmas.append(sigma)
        self.clock.now += self.seconds
        return -x

    def hess_diag(self, x, sigma=None):
        self.calls["hess_diag"] += 1
        self.sigmas.append(sigma)
        self.clock.now += self.curvature
        return -torch.ones_like(x)


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(cost, "perf_counter", c)
    return c


@pytest.fixture
def x():
    return torch.randn(6, 3)


def with_ratios(monkeypatch, **ratios):
    """Make every round's ratios to a score the given ones (per kind, one value a round)."""
    monkeypatch.setattr(cost, "_ratios", lambda *args: {k: np.asarray(v, dtype=float) for k, v in ratios.items()})


def test_products_cheaper_than_a_score_are_charged_one(clock, x, monkeypatch):
    # Timing noise on a tiny batch can make a product look cheaper than the score it returns.
    with_ratios(monkeypatch, vjp=[0.4, 0.9, 1.6], vjp_probe=[0.5, 0.5, 0.6], jvp=[0.3, 0.2, 0.1],
                jvp_probe=[0.8, 0.7, 0.9], curvature=[0.5, 0.4, 0.6])
    m = measure_cost_weights(MeteredSource(clock, {"exact_hess_diag"}), x, rounds=3)
    assert (m.weights.vjp, m.weights.jvp) == (1.0, 1.0)
    assert m.spread["vjp"] == (1.0, 1.3) and m.spread["jvp"] == (1.0, 1.0)
    assert m.weights.curvature == 0.5  # not floored: an exact curvature does not return the score too


def test_the_dearer_of_bare_product_and_probe_is_charged_with_its_spread(clock, x, monkeypatch):
    with_ratios(monkeypatch, vjp=[2, 3, 4, 5, 6], vjp_probe=[3, 4, 5, 6, 7], jvp=[9, 8, 7, 6, 5],
                jvp_probe=[1, 2, 3, 4, 5], curvature=[1, 1, 1, 1, 1])
    m = measure_cost_weights(MeteredSource(clock, {"exact_hess_diag"}), x, rounds=5)
    assert (m.weights.vjp, m.spread["vjp"]) == (5.0, (4.0, 6.0))
    assert (m.weights.jvp, m.spread["jvp"]) == (7.0, (6.0, 8.0))


def test_times_are_divided_by_the_score_time(clock, x):
    # On the fake clock a product costs exactly its one score evaluation, a curvature its own time.
    m = measure_cost_weights(MeteredSource(clock, {"exact_hess_diag"}, seconds=2.0, curvature=3.0), x, rounds=5)
    assert m.weights == CostWeights(vjp=1.0, jvp=1.0, curvature=1.5)
    assert m.spread["curvature"] == (1.5, 1.5)


def test_a_source_without_exact_curvature_is_charged_one_and_never_asked(clock, x):
    source = MeteredSource(clock, curvature=3.0)
    m = measure_cost_weights(source, x, rounds=5)
    assert m.weights.curvature == 1.0 and m.spread["curvature"] == (1.0, 1.0)
    assert source.calls["hess_diag"] == 0


def test_a_noise_conditional_source_is_timed_at_a_noise_level(clock, x):
    source = MeteredSource(clock, {"noise_conditional", "exact_hess_diag"})
    measure_cost_weights(source, x, rounds=3)
    assert source.sigmas and all(s is not None and s > 0 for s in source.sigmas)
    plain = MeteredSource(clock, {"exact_hess_diag"})
    measure_cost_weights(plain, x, rounds=3)
    assert set(plain.sigmas) == {None}


def test_each_round_makes_the_same_calls(clock, x):
    # Every call lasts >= min_seconds, so one call per sample: a round is one score, a bare VJP, a
    # VJP probe, a bare JVP and a JVP probe (five score evaluations) and one exact curvature.
    counts = {}
    for rounds in (3, 7):
        source = MeteredSource(clock, {"exact_hess_diag"})
        m = measure_cost_weights(source, x, rounds=rounds, min_seconds=0.5)
        assert m.rounds == rounds and set(m.repeats.values()) == {1}
        counts[rounds] = source.calls
    assert counts[7]["score"] - counts[3]["score"] == 4 * 5
    assert counts[7]["hess_diag"] - counts[3]["hess_diag"] == 4 * 1


def test_calls_per_sample_grow_until_a_sample_lasts_min_seconds(clock, x):
    source = MeteredSource(clock, {"exact_hess_diag"}, seconds=0.001, curvature=0.001)
    m = measure_cost_weights(source, x, rounds=3, min_seconds=0.02)
    assert all(r * 0.001 >= 0.02 for r in m.repeats.values())


def test_as_params_names_every_weight_and_its_spread(clock, x):
    m = measure_cost_weights(MeteredSource(clock, {"exact_hess_diag"}, curvature=3.0), x, rounds=3)
    params = m.as_params()
    assert set(params) == {f"cost_weight.{k}{s}" for k in ("vjp", "jvp", "curvature") for s in ("", ".low", ".high")}
    assert params["cost_weight.curvature"] == m.weights.curvature == 3.0
    assert params["cost_weight.vjp.high"] == m.spread["vjp"][1]


def test_real_timing_summarises_the_ratios_it_timed(host, monkeypatch):
    # On the real clock, only what does not depend on the machine's speed: every kind was timed in
    # every round, and the weights are the module docstring's summary of exactly those ratios (VJP and
    # JVP the dearer median of bare product and probe, each ratio floored at 1; curvature its own median).
    timed, real_ratios = {}, cost._ratios

    def recording(*args):
        timed.update(real_ratios(*args))
        return timed

    monkeypatch.setattr(cost, "_ratios", recording)
    target = host.get("target", "gaussian")(dim=5, condition_number=10.0).to(torch.device("cpu"), torch.float32)
    m = measure_cost_weights(ExactScore(target), torch.randn(50, 5), rounds=5, min_seconds=0.002)
    assert set(timed) == {"vjp", "vjp_probe", "jvp", "jvp_probe", "curvature"}
    assert all(len(r) == 5 and np.isfinite(r).all() and (r > 0).all() for r in timed.values())
    for kind in ("vjp", "jvp"):
        medians = [float(np.median(np.maximum(timed[k], 1.0))) for k in (kind, f"{kind}_probe")]
        assert getattr(m.weights, kind) == max(medians)
    assert m.weights.curvature == float(np.median(timed["curvature"]))


def test_rounds_must_be_positive(x):
    with pytest.raises(ValueError, match="rounds"):
        measure_cost_weights(MeteredSource(FakeClock()), x, rounds=0)

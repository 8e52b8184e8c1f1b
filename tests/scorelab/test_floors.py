"""Quality floors: positive, shrinking with the sample size, drawn from the right sets."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from scorelab.floors import quality_floor
from scorelab_builtins.metrics import (
    KSD,
    MMD,
    NLL,
    CovarianceError,
    EnergyDistance,
    MeanError,
    ModeWeightError,
    SlicedWasserstein,
)
from scorelab_builtins.targets import GMM, Gaussian, TwoMoons


def quickstart() -> GMM:
    return GMM(weights=[0.8, 0.2], means=[[-5.0, -5.0], [5.0, 5.0]], stds=[1.0, 1.0])


DISCREPANCIES = [SlicedWasserstein, MMD, EnergyDistance, KSD, MeanError, CovarianceError, ModeWeightError]


@pytest.mark.parametrize("cls", DISCREPANCIES, ids=lambda c: c.name)
def test_floors_are_positive_and_shrink_with_n(cls):
    # From n = 250 to 4000 (16x), a floor falls like 1/sqrt(n) (SWD, moment and mode-weight errors:
    # to ~0.25, SWD with a slowly growing log factor), like 1/n (MMD^2 and energy distance, whose RMS
    # is the spread of a degenerate U-statistic: ~0.06), or, for KSD subsampled to 2000 points, like
    # sqrt(250/2000) = 0.35. Each floor is an RMS over 5 pairs, itself uncertain by ~1/sqrt(2*5) =
    # 30%; requiring < 0.6 leaves room for that on the slowest case.
    target, metric = quickstart(), cls()
    small, large = quality_floor(metric, target, 250, 1), quality_floor(metric, target, 4000, 1)
    assert 0 < large < 0.6 * small
    assert quality_floor(metric, target, 250, 1) == small  # seeded: the same floor every time


def test_nll_floor_is_the_entropy():
    # The modes are 14 standard deviations apart, so the mixture's entropy is, to ~1e-10, that of one
    # 2-D standard Gaussian plus that of the weights: log(2 pi e) + H(0.8, 0.2) = 3.338. The floor is
    # the mean over 5 * 4000 exact samples (nll is not a discrepancy). Var(log p(X)) = Var(chi^2_2) / 4
    # + Var(log w_K) = 1 + 0.8 * 0.2 * log(4)^2 = 1.31 (sd 1.14; 1.142 measured on 1e5 samples), so
    # the standard error is 0.008; allowed 4 of them.
    w = torch.tensor([0.8, 0.2])
    entropy = math.log(2 * math.pi * math.e) - float((w * w.log()).sum())
    assert quality_floor(NLL(), quickstart(), 4000, 1) == pytest.approx(entropy, abs=4 * 1.14 / math.sqrt(5 * 4000))


@dataclass
class FirstCoordinateGap:
    """mean(samples[:, 0]) - mean(reference[:, 0]): signed, so the floor's expectation is exact."""

    name = "first_coordinate_gap"

    def __call__(self, samples, reference, target=None) -> float:
        return float(samples[:, 0].mean() - reference[:, 0].mean())


def test_floor_against_a_fixed_reference():
    # N(0, I) in 2-D, sets of n = 50; the metric's value is v = m_a - m_b on the first coordinate. Two
    # fresh exact sets: v ~ N(0, 2/n). Each exact set against a reference recentred to mean exactly 0:
    # v ~ N(0, 1/n). The floor is sqrt(mean of R values v^2), and v^2 / E[v^2] is chi^2_1 (mean 1,
    # variance 2), so floor^2 has a relative standard error sqrt(2 / R) = 4.5 % at R = 1000 repeats; 5 of
    # them are allowed. A reference ignored (fresh sets read 2/n) or one drawn afresh would be 100 % off.
    target, n, repeats = Gaussian(dim=2), 50, 1000
    tolerance = 5 * math.sqrt(2 / repeats)
    reference = target.sample(n, torch.Generator().manual_seed(7))
    centred = reference - reference.mean(0)
    against = quality_floor(FirstCoordinateGap(), target, n, 8, reference=centred, repeats=repeats)
    assert against**2 == pytest.approx(1 / n, rel=tolerance)
    fresh = quality_floor(FirstCoordinateGap(), target, n, 8, repeats=repeats)
    assert fresh**2 == pytest.approx(2 / n, rel=tolerance)
    with pytest.raises(ValueError, match="reference itself"):
        quality_floor(SlicedWasserstein(), target, n, 7, reference=reference)


@dataclass
class Spy:
    """A metric that records what it is given."""

    name = "spy"

    def __post_init__(self):
        self.calls = []

    def __call__(self, samples, reference, target=None) -> float:
        self.calls.append((samples, reference))
        return 1.0


def rows(x: torch.Tensor) -> set:
    return {tuple(r.tolist()) for r in x.reshape(len(x), -1)}


def test_data_set_floors_use_held_out_points_against_held_out_or_training_points():
    target = TwoMoons(size=1000, held_out=0.2)  # 200 held-out points, 800 for training
    held, train = rows(target.held_out_split()), rows(target.train_split())
    spy = Spy()
    assert quality_floor(spy, target, 100, 0, repeats=3) == 1.0
    for a, b in spy.calls:  # 2n <= 200: two disjoint held-out halves
        assert len(a) == len(b) == 100 and rows(a) | rows(b) <= held and not rows(a) & rows(b)
    spy = Spy()
    quality_floor(spy, target, 500, 0, reference=target.sample(500, torch.Generator().manual_seed(0)), repeats=2)
    for a, b in spy.calls:  # too few held-out points: all of them against 500 training points
        assert rows(a) == held and len(b) == 500 and rows(b) <= train
    assert not torch.equal(spy.calls[0][1], spy.calls[1][1])  # a new training subset each time


def test_bad_arguments():
    with pytest.raises(ValueError, match="n must be"):
        quality_floor(MeanError(), quickstart(), 1, 0)
    with pytest.raises(ValueError, match="repeats"):
        quality_floor(MeanError(), quickstart(), 10, 0, repeats=0)

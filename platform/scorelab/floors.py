"""Quality floors: what a metric reads when the samples are exact, at the sample size of a run.

A sampler cannot be asked to beat the noise of its own sample size, so reports speak in multiples of
the floor. The floor of ``metric`` at size ``n`` is estimated from ``repeats`` independent pairs of
sample sets:

- an **analytic target**: two independent exact sets of ``n`` points each (``target.sample``); with
  ``reference`` given, each exact set is compared with that fixed reference instead (so the floor is
  what an exact sampler would read against the very reference a comparison uses);
- a **data set** (capability ``data_splits``): when the held-out split has at least 2n points, two
  disjoint random n-subsets of it; otherwise (the usual case: the 8x8 digits hold out 359 images)
  the held-out points (at most n of them) against a random subset of at most n training points.
  Held-out points play the samples, so a memorisation check such as ``digits_nn_copy`` reads its
  false-alarm rate, not the 100% it would read on training points; both sets are then smaller
  than n when the splits are, which makes the floor that of the smaller sets (lenient for metrics
  that shrink with n). ``reference`` is not used for data sets: it is drawn from the held-out
  split, and overlapping sets would read too good a floor.

The pairs' values v_1..v_R are summarised by their root mean square, sqrt(mean v_r^2): positive for
every discrepancy, also for unbiased ones (MMD^2, energy distance) whose expectation under exact
samples is 0 and whose values are noise around it, and close to the mean for biased ones (SWD, KSD
as a V-statistic, FD), where the noise is small next to the bias. A metric whose value is not a
discrepancy (``nll``: an entropy estimate, possibly negative) says so with the trait
``discrepancy = False`` (:class:`scorelab.contracts.MetricTraits`); its floor is the mean.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .contracts import traits


def quality_floor(metric: Any, target: Any, n: int, generator_seed: int, reference: torch.Tensor | None = None,
                  *, repeats: int = 5) -> float:
    """The value of ``metric`` for exact samples of size ``n`` (see the module docstring).

    ``generator_seed`` seeds every draw; use one different from the reference's, or the first
    exact set would be the reference itself (refused when it happens).
    """
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if "data_splits" in target.provides:
        pairs = _data_set_pairs(target, n, generator_seed, repeats)
    else:
        pairs = _exact_pairs(target, n, generator_seed, repeats, reference)
    values = [float(metric(a, b, target)) for a, b in pairs]
    if not traits("metric", metric).discrepancy:
        return sum(values) / len(values)
    return math.sqrt(sum(v * v for v in values) / len(values))


def _exact_pairs(target, n, seed, repeats, reference):
    device = reference.device if reference is not None else _device(target)
    g = torch.Generator(device).manual_seed(seed)
    for _ in range(repeats):
        a = target.sample(n, g)
        if reference is None:
            yield a, target.sample(n, g)
            continue
        if a.shape == reference.shape and torch.equal(a, reference):
            raise ValueError(f"the exact samples drawn with generator_seed={seed} are the reference itself: "
                             "use a seed other than the reference's")
        yield a, reference


def _data_set_pairs(target, n, seed, repeats):
    held, train = target.held_out_split(), target.train_split()
    g = torch.Generator().manual_seed(seed)  # index choices on the CPU: the same on every device
    for _ in range(repeats):
        perm = torch.randperm(len(held), generator=g).to(held.device)
        if len(held) >= 2 * n:
            yield held[perm[:n]], held[perm[n : 2 * n]]
        else:
            pick = torch.randperm(len(train), generator=g)[:n].to(train.device)
            yield held[perm[:n]], train[pick]


def _device(target) -> torch.device:
    """The device of the target's tensors (where its ``sample`` draws), the CPU if it holds none."""
    for value in vars(target).values():
        if isinstance(value, torch.Tensor):
            return value.device
    return torch.device("cpu")

"""``check_metric``: a metric against the Metric contract, on a two-mode mixture with known answers.

The kit's target is 0.7 N((-2, 0), I) + 0.3 N((2, 0), I/2) in 2-D, with exact moments, mode
assignment, log density and score, so a metric may require any of ``mixture``, ``moments``,
``log_prob``, ``exact_score``. Samples from the target itself must score better (lower) than samples
from a clearly different distribution (shifted, wider, all in one mode); the metric must return a
Python float, accept samples and references of different sizes and float32 or float64, be
deterministic, leave its inputs unchanged, and run on every device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from scorelab.contracts import traits

from ._common import check_contract, class_and_params, kit_devices, new_report, same, single_threaded
from ._known import DiagonalMixture
from ._report import Fail, Report, call

KIT_PROVIDES = DiagonalMixture.provides | {"reference"}


def kit_mixture(device=None, dtype=torch.float64) -> DiagonalMixture:
    return DiagonalMixture([0.7, 0.3], [[-2.0, 0.0], [2.0, 0.0]], [[1.0, 1.0], [0.5, 0.5]], dtype, device)


def _sets(device, dtype):
    """(samples from the target, an independent reference, samples from a different distribution)."""
    t = kit_mixture()
    good = t.sample(600, torch.Generator().manual_seed(1))
    reference = t.sample(500, torch.Generator().manual_seed(2))
    z = torch.randn(600, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    bad = torch.tensor([2.5, 1.5], dtype=torch.float64) + 1.5 * z  # one wide mode, off to the side
    return tuple(v.to(device=device, dtype=dtype) for v in (good, reference, bad))


@single_threaded
def check_metric(metric: Any, *, params: dict | None = None, devices: Sequence[str | torch.device] | None = None
                 ) -> Report:
    """Check a metric class (or instance) against the Metric contract; returns a :class:`Report`."""
    cls, params = class_and_params(metric, params)
    report = new_report("metric", cls)
    make = check_contract(report, "metric", cls, params)
    if make is None:
        return report
    missing = set(traits("metric", make()).requires) - KIT_PROVIDES  # this instance's
    if missing:
        report.skip("running it", f"it requires {sorted(missing)}, which the kit's mixture target does not provide")
        return report

    cpu = torch.device("cpu")
    ok = False
    with report.check("returns a float; lower for the right distribution"):
        _check_values(make, cpu, torch.float64)
        ok = True
    if not ok:
        report.skip("everything else", "it needs the metric to return values")
        return report
    with report.check("deterministic, and leaves its inputs unchanged"):
        good, ref, _ = _sets(cpu, torch.float64)
        g0, r0 = good.clone(), ref.clone()
        a = call("metric(samples, reference, target)", make(), good, ref, kit_mixture())
        b = call("metric(samples, reference, target)", make(), good, ref, kit_mixture())
        if not same(good, g0) or not same(ref, r0):
            raise Fail("calling the metric changed the samples or the reference in place; work on copies "
                       "(the runner passes the live chains)")
        if a != b:
            raise Fail(f"two calls on the same inputs gave {a!r} and {b!r}: fix the seed of any randomness "
                       "(projections, subsampling) in a field, so curves over checkpoints are comparable")
    with report.check("float32 samples"):
        _check_values(make, cpu, torch.float32)
    for device in kit_devices(devices):
        if device.type != "cpu":
            with report.check(f"runs on {device}"):
                _check_values(make, device, torch.float32)
    if not torch.cuda.is_available() and devices is None:
        report.skip("runs on cuda", "no CUDA device here")
    return report


def _check_values(make, device, dtype) -> None:
    good, reference, bad = _sets(device, dtype)
    target = kit_mixture(device, dtype)
    m = make()
    right = call("metric(samples, reference, target)", m, good, reference, target)
    wrong = call("metric(samples, reference, target)", m, bad, reference, target)
    for v in (right, wrong):
        if isinstance(v, bool) or not isinstance(v, float | int):
            raise Fail(f"it returned a {type(v).__name__}; a metric returns a Python float (float(value)), "
                       "which the runner logs without touching the device again")
    if not (math.isfinite(right) and math.isfinite(wrong)):
        raise Fail(f"it returned {right!r} and {wrong!r} for finite samples on {device} ({dtype})")
    if not right < wrong:
        raise Fail(f"samples from the target scored {right:.4g} and samples from a different distribution "
                   f"{wrong:.4g} on {device} ({dtype}; 600 samples, 500 reference points): lower must be better")

"""``check_target``: a target (a distribution or a data set) against the Target contract.

Always: ``event_shape``, ``provides``, ``sample(n, generator)`` (shape, finite, reproducible, uses the
generator), ``to(device, dtype)``. For each capability the target provides, the method behind it:
``log_prob`` and ``score`` agree with each other (autograd), the noisy score agrees with the noisy
log density (a target that is not noise-conditional must refuse sigma > 0 instead), ``hess_diag``
agrees with the derivative of the score, ``mean`` and ``covariance`` agree with the samples,
``component_log_probs`` with ``log_prob``. Data-set targets provide none of these
and get the sampling checks only.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

import torch

from scorelab.contracts import CAPABILITIES

from ._common import check_contract, class_and_params, kit_devices, new_report, same, single_threaded
from ._report import Fail, Report, call
from ._watch import scrambled_global_rng

N = 4000  # samples for the moment checks
Z = 5.0

_METHOD_OF = {"exact_score": "score", "log_prob": "log_prob", "exact_hess_diag": "hess_diag",
              "mixture": "component_log_probs"}


@single_threaded
def check_target(target: Any, *, params: dict | None = None, devices: Sequence[str | torch.device] | None = None
                 ) -> Report:
    """Check a target class (or instance) against the Target contract; returns a :class:`Report`."""
    cls, params = class_and_params(target, params)
    report = new_report("target", cls)
    make = check_contract(report, "target", cls, params)
    if make is None:
        return report

    t = None
    with report.check("event_shape and provides"):
        t = _check_declarations(make())
    if t is None:
        return report
    x = None
    with report.check("sample(n, generator)"):
        x = _check_sample(make, t)
    if x is None:
        report.skip("everything else", "it needs sample to work")
        return report
    with report.check("reproducible under a fixed generator, and uses it"):
        _check_randomness(make)
    tf = None  # a float64 copy on the CPU for the exact checks below
    with report.check("to(device, dtype) moves its samples"):
        tf = _check_to(make, torch.device("cpu"))
    for device in kit_devices(devices):
        if device.type != "cpu":
            with report.check(f"runs on {device}"):
                _check_to(make, device)
    if not torch.cuda.is_available() and devices is None:
        report.skip("runs on cuda", "no CUDA device here")

    if tf is None:
        report.skip("the checks of what it provides", "they need to(device, dtype) to work")
        return report
    provides = set(t.provides)
    xs = x.to(torch.float64)
    if "log_prob" in provides:
        with report.check("log_prob"):
            _check_log_prob(tf, xs)
    if "exact_score" in provides:
        with report.check("score is the gradient of log_prob" if "log_prob" in provides else "score"):
            _check_score(tf, xs, sigma=0.0, with_log_prob="log_prob" in provides)
    if "noise_conditional" in provides:
        with report.check("noisy score s(x, sigma)"):
            _check_score(tf, xs, sigma=0.7, with_log_prob="log_prob" in provides and _takes_sigma(tf.log_prob))
    elif "exact_score" in provides:
        with report.check("refuses a noise level (not noise-conditional)"):
            _check_refuses_sigma(tf, xs, provides)
    if "exact_hess_diag" in provides:
        with report.check("hess_diag is the diagonal of the score's Jacobian"):
            _check_hess_diag(tf, xs)
    if "moments" in provides:
        with report.check("mean and covariance match the samples"):
            _check_moments(tf)
    if "mixture" in provides:
        with report.check("mixture components"):
            _check_mixture(tf, xs, "log_prob" in provides)
    return report


def _check_declarations(t: Any) -> Any:
    shape = getattr(t, "event_shape", None)
    if not isinstance(shape, tuple) or not shape or not all(isinstance(s, int) and s > 0 for s in shape):
        raise Fail(f"event_shape is {shape!r}; it must be a non-empty tuple of positive ints, e.g. (2,) or (1, 8, 8)")
    provides = getattr(t, "provides", None)
    if provides is None or isinstance(provides, str):
        raise Fail(f"provides is {provides!r}; it must be a set of capability names (subclass "
                   "scorelab.targets.TargetBase to derive it from the methods the target defines)")
    unknown = set(provides) - CAPABILITIES.keys()
    if unknown:
        raise Fail(f"provides unknown capabilities {sorted(unknown)}; known: {sorted(CAPABILITIES)}")
    missing = [f"{cap} (needs {m})" for cap, m in _METHOD_OF.items()
               if cap in provides and not callable(getattr(t, m, None))]
    if "moments" in provides and (getattr(t, "mean", None) is None or getattr(t, "covariance", None) is None):
        missing.append("moments (needs mean and covariance)")
    if "mixture" in provides and getattr(t, "mixture_weights", None) is None:
        missing.append("mixture (needs mixture_weights)")
    if missing:
        raise Fail("it provides capabilities without what they need: " + ", ".join(missing))
    return t


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device).manual_seed(seed)


def _check_sample(make, t) -> torch.Tensor:
    n = 300
    x = call(f"sample({n}, generator)", t.sample, n, _generator(torch.device("cpu"), 0))
    if not isinstance(x, torch.Tensor):
        raise Fail(f"sample returned a {type(x).__name__}; it must return a tensor")
    if tuple(x.shape) != (n, *t.event_shape):
        raise Fail(f"sample({n}) returned shape {tuple(x.shape)}; expected ({n}, *event_shape) = "
                   f"{(n, *t.event_shape)}")
    if not x.is_floating_point():
        raise Fail(f"sample returned {x.dtype}; samples must be floating point (chains are)")
    if not torch.isfinite(x).all():
        raise Fail("sample returned NaN or inf")
    one = call("sample(1, generator)", t.sample, 1, _generator(torch.device("cpu"), 0))
    if tuple(one.shape) != (1, *t.event_shape):
        raise Fail(f"sample(1) returned shape {tuple(one.shape)}; expected {(1, *t.event_shape)}")
    return x


def _check_randomness(make) -> None:
    cpu = torch.device("cpu")
    with scrambled_global_rng(1):
        a = make().sample(200, _generator(cpu, 3))
    with scrambled_global_rng(2):
        b = make().sample(200, _generator(cpu, 3))
    if not same(a, b):
        raise Fail("two calls with the same generator seed gave different samples: draw every random number "
                   "with generator=generator (not torch's, NumPy's or Python's global generator)")
    c = make().sample(200, _generator(cpu, 4))
    if same(a, c):
        raise Fail("different generator seeds gave the same samples: sample must use the generator it is given")


def _check_to(make, device: torch.device) -> Any:
    for dtype in (torch.float32, torch.float64):
        t = call(f"to({device}, {dtype})", make().to, device, dtype)
        if t is None:
            raise Fail("to(device, dtype) returned None; return the target (self) so it can be chained")
        x = call(f"sample after to({device}, {dtype})", t.sample, 50, _generator(device, 0))
        if x.device.type != device.type or x.dtype != dtype:
            raise Fail(f"after to({device}, {dtype}), sample returned {x.dtype} on {x.device}: move every "
                       "tensor the target holds in to() (scorelab.targets.TargetBase does it for tensor attributes)")
    return t


def _takes_sigma(fn) -> bool:
    try:
        return len(inspect.signature(fn).parameters) >= 2
    except (TypeError, ValueError):
        return False


def _check_log_prob(t, x: torch.Tensor) -> None:
    lp = call("log_prob(x)", t.log_prob, x)
    if not isinstance(lp, torch.Tensor) or tuple(lp.shape) != (len(x),):
        got = tuple(lp.shape) if isinstance(lp, torch.Tensor) else type(lp).__name__
        raise Fail(f"log_prob of {len(x)} points returned {got}; expected one value per point, shape ({len(x)},)")
    if not torch.isfinite(lp).all():
        raise Fail("log_prob is NaN or inf at the target's own samples")


def _check_score(t, x: torch.Tensor, sigma: float, with_log_prob: bool) -> None:
    args = (x,) if sigma == 0.0 else (x, sigma)
    s = call(f"score(x{', sigma' if sigma else ''})", t.score, *args)
    if not isinstance(s, torch.Tensor) or s.shape != x.shape:
        got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
        raise Fail(f"score(x) returned {got}; the score has the shape of x, {tuple(x.shape)}")
    if not torch.isfinite(s).all():
        raise Fail("score is NaN or inf at the target's own samples")
    if with_log_prob:
        y = x[:64].clone().requires_grad_(True)
        lp = t.log_prob(y) if sigma == 0.0 else t.log_prob(y, sigma)
        (g,) = torch.autograd.grad(lp.sum(), y)
        err = (g - s[:64]).abs().max()
        scale = g.abs().max().clamp(min=1.0)
        if err > 1e-6 * scale:
            raise Fail(f"score(x{', sigma' if sigma else ''}) differs from the gradient of log_prob by up to "
                       f"{float(err):.3g}" + (f" at sigma = {sigma}" if sigma else "")
                       + ": the score must be grad log p (of p convolved with N(0, sigma^2 I) for sigma > 0)")


def _check_refuses_sigma(t, x: torch.Tensor, provides: set) -> None:
    """A target that knows its score at sigma = 0 only must not answer at sigma > 0 with that score."""
    methods = [m for cap, m in _METHOD_OF.items() if cap in provides and cap != "mixture"]
    for method in methods:
        fn = getattr(t, method)
        if not _takes_sigma(fn):
            continue  # score(x) alone cannot be asked for a noise level
        try:
            fn(x[:8], 0.7)
        except Exception:  # any refusal will do; a ValueError is what the docs ask for
            continue
        raise Fail(f"{method}(x, sigma=0.7) returned a value, but the target does not provide noise_conditional "
                   "(noise_conditional = False): raise a ValueError for sigma != 0 (TargetBase.check_noiseless "
                   "does it), or the sigma = 0 answer passes for that of the target convolved with N(0, sigma^2 I)")


def _check_hess_diag(t, x: torch.Tensor) -> None:
    y = x[:32]
    h = call("hess_diag(x)", t.hess_diag, y)
    if not isinstance(h, torch.Tensor) or h.shape != y.shape:
        got = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
        raise Fail(f"hess_diag(x) returned {got}; expected the shape of x, {tuple(y.shape)}")
    flat = y.reshape(len(y), -1)
    d = flat.shape[1]
    coords = range(d) if d <= 8 else [round(i * (d - 1) / 7) for i in range(8)]
    z = flat.clone().requires_grad_(True)
    s = t.score(z.reshape(y.shape)).reshape(len(y), -1)
    for i in coords:
        # Each point's score depends on that point only, so the gradient of the sum over points of
        # s_i gives every point's row i of its Jacobian (plain autograd: no torch.func import).
        (row,) = torch.autograd.grad(s[:, i].sum(), z, retain_graph=True)
        err = (row[:, i] - h.reshape(len(y), -1)[:, i]).abs().max()
        if err > 1e-6 * row[:, i].abs().max().clamp(min=1.0):
            raise Fail(f"hess_diag differs from d score_i / d x_i (by autograd) by up to {float(err):.3g} at "
                       f"coordinate {i}")


def _check_moments(t) -> None:
    x = t.sample(N, _generator(torch.device("cpu"), 11)).to(torch.float64)
    flat = x.reshape(N, -1)
    d = flat.shape[1]
    mean = torch.as_tensor(t.mean, dtype=torch.float64).reshape(-1)
    cov = torch.as_tensor(t.covariance, dtype=torch.float64).reshape(d, d)
    if mean.numel() != d:
        raise Fail(f"mean has {mean.numel()} entries for an event of {d}")
    k = min(d, 10)  # the first coordinates: enough to catch a wrong formula, cheap in any dimension
    xc = flat[:, :k] - flat[:, :k].mean(0)
    se_mean = (cov.diagonal()[:k] / N).sqrt()
    if ((flat[:, :k].mean(0) - mean[:k]).abs() > Z * se_mean + 1e-12).any():
        raise Fail(f"the mean of {N} samples is {flat[:, :k].mean(0).tolist()}, the declared mean "
                   f"{mean[:k].tolist()} (more than {Z:g} standard errors apart)")
    prod = xc[:, :, None] * xc[:, None, :]
    emp = prod.mean(0)
    se = prod.std(0) / math.sqrt(N)  # from the samples: right for non-Gaussian targets too
    bad = (emp - cov[:k, :k]).abs() > Z * se + 1e-9
    if bad.any():
        i, j = (int(v) for v in bad.nonzero()[0])
        raise Fail(f"covariance[{i}, {j}] is {float(cov[i, j]):.4g}, the samples give {float(emp[i, j]):.4g} "
                   f"(more than {Z:g} standard errors apart)")


def _check_mixture(t, x: torch.Tensor, with_log_prob: bool) -> None:
    w = torch.as_tensor(t.mixture_weights, dtype=torch.float64)
    if w.ndim != 1 or abs(float(w.sum()) - 1) > 1e-6 or (w < 0).any():
        raise Fail(f"mixture_weights must be a vector of non-negative weights summing to 1, got {w.tolist()}")
    c = call("component_log_probs(x)", t.component_log_probs, x)
    if tuple(c.shape) != (len(x), len(w)):
        raise Fail(f"component_log_probs returned shape {tuple(c.shape)}; expected (n, components) = "
                   f"{(len(x), len(w))}")
    if with_log_prob:
        err = (torch.logsumexp(c, 1) - t.log_prob(x)).abs().max()
        if err > 1e-6:
            raise Fail(f"logsumexp of component_log_probs differs from log_prob by up to {float(err):.3g}: "
                       "component k should be log w_k + log p_k(x)")

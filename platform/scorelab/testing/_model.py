"""``check_model``: a score-network builder against the Model contract.

``build(event_shape)`` is tried on vector data ``(2,)`` and then on an image ``(1, 8, 8)``; a model
made for one kind of data refuses the other with a ValueError, and at least one must build. The
network is called as the built-in ones are: ``model(x)``, or ``model(x, sigma)`` when it is
``noise_conditional`` (sigma a number, or one per sample: both are used, by samplers and by
objectives). Checked: the output is the score's shape, finite, on the input's device and dtype;
parameters get gradients; samples do not influence each other (in eval mode); the same input gives
the same output; one sample works; float64 and every device; the weights survive a state_dict
round trip (how a trained model is saved and reloaded). A ``second_order`` network's
``score_and_diag`` and an ``energy`` network's ``log_prob`` are checked the same way.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ._common import check_contract, class_and_params, kit_devices, new_report, single_threaded
from ._report import Fail, Report, call

SHAPES = ((2,), (1, 8, 8))


@single_threaded
def check_model(model: Any, *, params: dict | None = None, event_shape: tuple[int, ...] | None = None,
                devices: Sequence[str | torch.device] | None = None) -> Report:
    """Check a model class (or instance) against the Model contract; returns a :class:`Report`.
    ``event_shape`` fixes the data shape to build for (default: the first of (2,) and (1, 8, 8) that builds)."""
    cls, params = class_and_params(model, params)
    report = new_report("model", cls)
    make = check_contract(report, "model", cls, params)
    if make is None:
        return report
    shape = None
    with report.check("build(event_shape) returns an nn.Module"):
        shape = _pick_shape(make, event_shape)
    if shape is None:
        return report
    cpu = torch.device("cpu")
    ok = False
    with report.check(f"score of shape x on {shape}, with gradients"):
        _check_outputs(make, shape, cpu, torch.float32)
        ok = True
    if not ok:
        report.skip("everything else", "it needs the network's output to be right")
        return report
    with report.check("samples are independent; deterministic in eval mode"):
        _check_independence(make, shape)
    with report.check("one sample"):
        _check_outputs(make, shape, cpu, torch.float32, n=1)
    with report.check("float64"):
        _check_outputs(make, shape, cpu, torch.float64)
    with report.check("state_dict round trip"):
        _check_state_dict(make, shape)
    for device in kit_devices(devices):
        if device.type != "cpu":
            with report.check(f"runs on {device}"):
                _check_outputs(make, shape, device, torch.float32)
    if not torch.cuda.is_available() and devices is None:
        report.skip("runs on cuda", "no CUDA device here")
    return report


def _pick_shape(make, event_shape) -> tuple[int, ...]:
    errors = []
    for shape in (event_shape,) if event_shape is not None else SHAPES:
        try:
            net = make().build(shape)
        except Exception as exc:
            errors.append(f"build({shape}) raised {type(exc).__name__}: {exc}")
            continue
        if not isinstance(net, nn.Module):
            raise Fail(f"build({shape}) returned a {type(net).__name__}; it must return a torch.nn.Module")
        if not any(True for _ in net.parameters()):
            raise Fail(f"the network built for {shape} has no parameters: there is nothing to train")
        return shape
    raise Fail("; ".join(errors) + " (pass event_shape= to the check for other data)")


def _noise_conditional(net: nn.Module) -> bool:
    flag = getattr(net, "noise_conditional", None)
    if flag is not None:
        return bool(flag)
    try:  # no flag: a second required parameter of forward means it wants sigma
        ps = list(inspect.signature(net.forward).parameters.values())
    except (TypeError, ValueError):
        return False
    return len(ps) >= 2 and ps[1].default is inspect.Parameter.empty


def _inputs(shape, n, device, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((n, *shape), generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
    sigma_each = (0.1 + torch.rand(n, generator=g, dtype=torch.float64)).to(device=device, dtype=dtype)
    return x, sigma_each


def _calls(net, x, sigma_each):
    """(description, output) of every way the runner and objectives call this network."""
    if not _noise_conditional(net):
        return [("model(x)", lambda: net(x))]
    return [("model(x, sigma) with sigma a float", lambda: net(x, 0.5)),
            ("model(x, sigma) with one sigma per sample, shape (n,)", lambda: net(x, sigma_each))]


def _check_tensor(what: str, out, x: torch.Tensor, shape=None) -> None:
    shape = tuple(x.shape) if shape is None else shape
    if not isinstance(out, torch.Tensor):
        raise Fail(f"{what} returned a {type(out).__name__}; expected a tensor of shape {shape}")
    if tuple(out.shape) != shape:
        raise Fail(f"{what} returned shape {tuple(out.shape)}; expected {shape}")
    if out.device != x.device or out.dtype != x.dtype:
        raise Fail(f"{what} returned {out.dtype} on {out.device} for {x.dtype} input on {x.device}")
    if not torch.isfinite(out).all():
        raise Fail(f"{what} returned NaN or inf")


def _check_outputs(make, shape, device, dtype, n: int = 6) -> None:
    net = call(f"build({shape})", make().build, shape).to(device=device, dtype=dtype)
    x, sigma_each = _inputs(shape, n, device, dtype)
    total = 0
    for what, fn in _calls(net, x, sigma_each):
        out = call(what, fn)
        _check_tensor(what, out, x)
        total = total + out.sum()
    sigma = 0.5 if _noise_conditional(net) else None
    args = (x,) if sigma is None else (x, sigma)
    if getattr(net, "second_order", False):
        pair = call("score_and_diag(x, ...)", net.score_and_diag, *args)
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise Fail("score_and_diag must return a pair (score, diagonal of the score Jacobian)")
        for part, name in zip(pair, ("score", "diagonal"), strict=True):
            _check_tensor(f"score_and_diag's {name}", part, x)
            total = total + part.sum()
    if getattr(net, "energy", False):
        lp = call("log_prob(x, ...)", net.log_prob, *args)
        _check_tensor("log_prob", lp, x, shape=(n,))
        total = total + lp.sum()
    call("backward through the output", total.backward)
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    if not grads:
        raise Fail("no parameter gets a gradient from the network's output")
    if not all(torch.isfinite(g).all() for g in grads):
        raise Fail("parameters get NaN or inf gradients")


def _check_independence(make, shape) -> None:
    net = make().build(shape).eval()
    x, sigma_each = _inputs(shape, 4, torch.device("cpu"), torch.float32)
    moved = x.clone()
    moved[0] += 1.0
    with torch.no_grad():
        for (what, fn), (_, fn_moved) in zip(_calls(net, x, sigma_each), _calls(net, moved, sigma_each),
                                             strict=True):
            a, again, b = fn(), fn(), fn_moved()
            if not torch.equal(a, again):
                raise Fail(f"{what} gave different outputs for the same input in eval mode (dropout or random "
                           "features left on?)")
            if not torch.allclose(a[1:], b[1:], rtol=1e-5, atol=1e-6):
                raise Fail(f"{what}: changing sample 0 changed the output for other samples; each sample's score "
                           "must depend on that sample only (normalise per sample, e.g. GroupNorm, not BatchNorm "
                           "in training mode)")


def _check_state_dict(make, shape) -> None:
    a = make().build(shape)
    b = make().build(shape)
    with torch.no_grad():
        for p in a.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel()), dtype=p.dtype))
    call("load_state_dict", b.load_state_dict, a.state_dict())
    x, sigma_each = _inputs(shape, 4, torch.device("cpu"), torch.float32)
    a.eval(), b.eval()
    with torch.no_grad():
        for (what, fa), (_, fb) in zip(_calls(a, x, sigma_each), _calls(b, x, sigma_each), strict=True):
            if not torch.equal(fa(), fb()):
                raise Fail(f"{what}: a network rebuilt and loaded with another's state_dict gives different "
                           "outputs; register every learned tensor as an nn.Parameter or buffer")

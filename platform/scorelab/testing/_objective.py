"""``check_objective``: a training objective against the Objective contract.

The kit calls ``loss(model, batch, generator)`` with a small linear score network that follows the
built-in networks' call convention (``model.noise_conditional``, ``model(x, sigma)`` with sigma a
number or one per sample, ``model.second_order`` and ``model.score_and_diag``), on a batch from a
Gaussian. An objective that needs the target's exact score (``requires = ("exact_score",)``) gets
the Gaussian through ``bind(target)``, as the trainer does. Checked: a finite scalar that the model's
parameters get finite, non-zero gradients from; reproducible under a fixed generator; the batch left
unchanged; float64, image-shaped batches and every device. What the loss estimates is the plugin's
own tests' business: the kit cannot know the right value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from scorelab.contracts import traits

from ._common import check_contract, class_and_params, kit_devices, new_report, same, single_threaded
from ._known import DiagonalGaussian, TinyScoreModel
from ._report import Fail, Report, call
from ._watch import scrambled_global_rng

_SUPPLIED = {"noise_conditional", "second_order_head", "exact_score"}


@single_threaded
def check_objective(objective: Any, *, params: dict | None = None,
                    devices: Sequence[str | torch.device] | None = None) -> Report:
    """Check an objective class (or instance) against the Objective contract; returns a :class:`Report`."""
    cls, params = class_and_params(objective, params)
    report = new_report("objective", cls)
    make = check_contract(report, "objective", cls, params)
    if make is None:
        return report
    declared = traits("objective", make())  # this instance's: a trait may follow the hyperparameters
    requires = set(declared.requires)
    if requires - _SUPPLIED:
        report.skip("computing a loss", f"it requires {sorted(requires - _SUPPLIED)}; the kit supplies only "
                    f"{sorted(_SUPPLIED)}")
        return report
    if "exact_score" in requires and declared.bind is None:
        with report.check("exact_score objectives have bind(target)"):
            raise Fail("it requires exact_score but has no bind(target) method: the trainer hands an objective "
                       "its target through bind(target)")
        return report
    if declared.noise_levels is not None:
        with report.check("noise_levels()"):
            levels = call("noise_levels()", declared.noise_levels)
            if not isinstance(levels, list | tuple) or not levels or not all(
                    isinstance(v, int | float) and v >= 0 for v in levels):
                raise Fail(f"noise_levels() returned {levels!r}; expected a non-empty list of noise levels >= 0")

    cpu = torch.device("cpu")
    ok = False
    with report.check("loss is a finite scalar with gradients for the model"):
        _loss(make, requires, cpu, torch.float32, (2,))
        ok = True
    if not ok:
        report.skip("everything else", "it needs loss to work")
        return report
    with report.check("reproducible under a fixed generator"):
        with scrambled_global_rng(1):
            a = _loss(make, requires, cpu, torch.float32, (2,))
        with scrambled_global_rng(2):
            b = _loss(make, requires, cpu, torch.float32, (2,))
        if not same(a, b):
            raise Fail(f"two calls with the same generator seed gave {float(a):.6g} and {float(b):.6g}: draw every "
                       "random number with generator=generator")
    with report.check("float64"):
        _loss(make, requires, cpu, torch.float64, (2,))
    with report.check("image-shaped batch (1, 4, 4)"):
        _loss(make, requires, cpu, torch.float32, (1, 4, 4))
    for device in kit_devices(devices):
        if device.type != "cpu":
            with report.check(f"runs on {device}"):
                _loss(make, requires, device, torch.float32, (2,))
    if not torch.cuda.is_available() and devices is None:
        report.skip("runs on cuda", "no CUDA device here")
    return report


def _loss(make, requires: set, device, dtype, shape: tuple[int, ...]) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    model = TinyScoreModel(shape, g, noise_conditional="noise_conditional" in requires,
                           second_order="second_order_head" in requires).to(device=device, dtype=dtype)
    n = torch.Size(shape).numel()
    target = DiagonalGaussian(torch.full(shape, 0.5, dtype=torch.float64),
                              torch.linspace(0.5, 2.0, n, dtype=torch.float64).reshape(shape)).to(device, dtype)
    batch = (target.mean + target.variance.sqrt() * torch.randn((64, *shape), generator=g, dtype=torch.float64)
             .to(device=device, dtype=dtype))
    before = batch.clone()
    objective = make()
    if "exact_score" in requires:
        call("bind(target)", objective.bind, target)
    loss = call("loss(model, batch, generator)", objective.loss, model, batch, torch.Generator(device).manual_seed(5))
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        got = f"a tensor of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else f"a {type(loss).__name__}"
        raise Fail(f"loss returned {got}; it must return a scalar (0-d) tensor, e.g. the mean over the batch")
    if loss.device.type != device.type or loss.dtype != dtype:
        raise Fail(f"on a {dtype} batch on {device} the loss is {loss.dtype} on {loss.device}")
    if not torch.isfinite(loss):
        raise Fail(f"loss is {float(loss)} on a well-behaved Gaussian batch")
    if not loss.requires_grad:
        raise Fail("the loss does not require grad: it must be computed from the model's output (no .detach(), "
                   "no torch.no_grad()) so training can differentiate it")
    call("loss.backward()", loss.backward)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads or all(float(gr.abs().max()) == 0 for gr in grads):
        raise Fail("the model's parameters get no gradient from the loss")
    if not all(torch.isfinite(gr).all() for gr in grads):
        raise Fail("the model's parameters get NaN or inf gradients from the loss")
    if not same(batch, before):
        raise Fail("loss changed the batch in place; noise the batch into a new tensor (x = batch + sigma * z)")
    return loss.detach()

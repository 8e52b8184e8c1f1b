"""Cost to reach a 10 % covariance error on ill-conditioned Gaussians, every sampler against tuned Langevin.

The target is N(0, Sigma) in d = 50 with variances log-spaced from 1 down to 1/kappa (kappa = 1000),
axis-aligned and rotated by a fixed random orthogonal matrix. Chains start next to the mode,
x0 ~ N(0, 0.01^2 I) (drawn from the run's seed; exactly at the mode RMSprop's first step would be
~1/damping), so the covariance has to grow into the target's, and the wide directions are the slow
ones. The error is the ``covariance_error`` metric, |C_hat - C|_F / |C|_F; with n chains its floor
is sqrt(15.2 / n) (6.2 % at the default 4000), under the 10 % threshold. A run reaches the threshold
at the first cost c where the error is under it and stays under it until 2c (or the cost cap): a sampler whose
stationary law is off by more than 10 % passes through the target on its way out from the mode,
and must not be credited for that.

Each sampler runs a small sweep of its main hyperparameter on a tuning seed; the setting that reaches
10 % for the least cost is then run on the evaluation seeds, and the table reports the median cost
over those seeds (min-max in brackets) and the speedup over plain Langevin tuned the same way.
Chains are checked every 2 % of cost, so costs carry that resolution. One-shot samplers (the ODE,
annealed Langevin) are run at a ladder of budgets/tolerances and report the cheapest run whose final
samples are under 10 %. "not reached" means no setting got there within the budget.

Cost is in score evaluations, cost = NFE + w_vjp VJP + w_jvp JVP + w_curv CURV, with the weights fixed
by ``--weights`` (default 3, 4, 1: the CPU figures in references.md; reproducible) or ``measured`` on
this device and batch. Steps/s are wall-clock for the best setting on the device used.

    python benchmarks/illconditioned.py                    # the full table (~50 min on a busy 2-core CPU)
    python benchmarks/illconditioned.py --quick            # fewer settings and seeds, a smoke run
    python benchmarks/illconditioned.py --device cuda      # steps/s on a GPU
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from scorelab.cost import measure_cost_weights
from scorelab.device import device_name, resolve_device, synchronize
from scorelab.oracle import CostWeights, ScoreOracle
from scorelab.sources import ExactScore
from scorelab_builtins.metrics import CovarianceError
from scorelab_builtins.samplers import (
    AdaptiveLangevin,
    AnnealedLangevin,
    CurvatureStepLangevin,
    HessianDiagLangevin,
    Langevin,
    Mala,
    OzakiLangevin,
    ProbabilityFlowODE,
    RmspropLangevin,
)
from scorelab_builtins.targets import Gaussian

DIM, KAPPA, THRESHOLD = 50, 1000.0, 0.10
V_MIN = 1 / KAPPA
LIMIT = 2 * V_MIN  # ULA's stability limit on the stiffest direction


@dataclass
class Entry:
    """One row of the table: a sampler and its sweep. ``one_shot`` samplers are judged at the end."""

    label: str
    settings: list[tuple[str, Callable[[], object]]]
    one_shot: bool = False


def sweeps(quick: bool) -> list[Entry]:
    def pick(values):
        return values[1::2] if quick else values

    def curv(cls, source, steps, **kw):
        return [(f"{source}, h={h:g}", lambda h=h: cls(step_size=h, curvature=source, **kw)) for h in pick(steps)]

    return [
        Entry("langevin", [(f"h={f:g}x limit", lambda f=f: Langevin(step_size=f * LIMIT))
                           for f in pick([0.5, 0.8, 0.9, 0.95, 0.99])]),
        Entry("mala", [(f"warm-up {w}", lambda w=w: Mala(step_size=V_MIN, warmup=w))
                       for w in pick([25, 50, 100, 200])]),
        Entry("rmsprop_langevin", [(f"h={h:g}, alpha={a:g}", lambda h=h, a=a: RmspropLangevin(step_size=h, alpha=a))
                                   for h in pick([0.01, 0.03, 0.05]) for a in (0.99, 0.999)]),
        Entry("hessian_diag_langevin (exact)", curv(HessianDiagLangevin, "exact", [0.02, 0.05, 0.1, 0.2, 0.3],
                                                    refresh_every=50)),
        Entry("hessian_diag_langevin (hutchinson)", [
            *curv(HessianDiagLangevin, "hutchinson", [0.02, 0.05, 0.1, 0.2, 0.3], refresh_every=10, ema=0.8),
            *[(f"hutchinson x8, h={h:g}", lambda h=h: HessianDiagLangevin(step_size=h, probes=8, refresh_every=10,
                                                                          ema=0.8)) for h in pick([0.02, 0.1, 0.3])]]),
        # Small h too: rotated, a large h makes the Ozaki step a diagonal Newton step, which diverges there.
        Entry("ozaki_langevin (exact)", curv(OzakiLangevin, "exact", [0.001, 0.002, 0.005, 0.05, 0.3, 1.0, 5.0],
                                             refresh_every=50)),
        Entry("ozaki_langevin (hutchinson)", curv(OzakiLangevin, "hutchinson",
                                                  [0.001, 0.002, 0.005, 0.05, 0.3, 1.0, 5.0],
                                                  refresh_every=10, ema=0.8)),
        Entry("adaptive_langevin", [(f"abs_tol={t:g}", lambda t=t: AdaptiveLangevin(abs_tol=t, initial_step=1e-3))
                                    for t in pick([0.001, 0.003, 0.01, 0.03])]),
        Entry("curvature_step_langevin (power)", [
            (f"c={c:g}", lambda c=c: CurvatureStepLangevin(method="power", step_scale=c, refresh_every=20))
            for c in pick([0.5, 1.0, 1.5, 1.9])]),
        Entry("curvature_step_langevin (secant)", [
            (f"c={c:g}", lambda c=c: CurvatureStepLangevin(method="secant", step_scale=c))
            for c in pick([0.05, 0.1, 0.2, 0.5])]),
        Entry("probability_flow_ode", [(f"rtol=atol={t:g}", lambda t=t: ProbabilityFlowODE(rtol=t, atol=t))
                                       for t in pick([1e-1, 3e-2, 1e-2, 1e-3])], one_shot=True),
        Entry("annealed_langevin (ncsn)", [
            (f"{T}/level", lambda T=T: AnnealedLangevin(sigma_max=3.0, sigma_min=0.01, levels=10, epsilon=1e-4,
                                                        steps_per_level=T)) for T in pick([10, 30, 100, 300])],
              one_shot=True),
        Entry("annealed_langevin (hessian_diag exact)", [
            (f"{T}/level", lambda T=T: AnnealedLangevin(sigma_max=3.0, sigma_min=0.01, levels=10, epsilon=0.1,
                                                        step_rule="constant", preconditioner="hessian_diag",
                                                        curvature="exact", steps_per_level=T))
            for T in pick([2, 5, 10, 30])], one_shot=True),
    ]


@dataclass
class Outcome:
    cost: float | None  # cost at which the error first fell under the threshold (None: never)
    steps: int
    seconds: float  # sampling wall time (error checks excluded)
    final_error: float


def start(chains: int, seed: int, device) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (0.01 * torch.randn(chains, DIM, generator=g)).to(device)


def run(make, target, chains, budget, weights, seed, device) -> Outcome:
    """Step until the covariance error has been under THRESHOLD from some cost c up to 2c (checked
    every 2 % of cost), the budget is spent, the sampler finishes, or the chains diverge."""
    oracle = ScoreOracle(ExactScore(target), weights)
    sampler = make()
    generator = torch.Generator(device).manual_seed(seed)
    metric = CovarianceError()
    state = sampler.init(start(chains, seed, device), oracle, budget)
    steps, seconds, check_at, error, under_since = 0, 0.0, 1.0, math.inf, None
    while oracle.cost < budget and not getattr(state, "finished", False):
        synchronize(device)
        t0 = time.perf_counter()
        state, _ = sampler.step(state, oracle, generator)
        synchronize(device)
        seconds += time.perf_counter() - t0
        steps += 1
        finished = getattr(state, "finished", False)
        if oracle.cost >= check_at or finished:
            error = metric(state.x, state.x, target)
            if not math.isfinite(error):
                return Outcome(None, steps, seconds, error)  # diverged: never reaches it
            if error >= THRESHOLD:
                under_since = None
            elif under_since is None:
                under_since = oracle.cost
            if under_since is not None and (oracle.cost >= 2 * under_since or finished):
                return Outcome(under_since, steps, seconds, error)
            check_at = oracle.cost * 1.02
    return Outcome(under_since, steps, seconds, error)  # under since then to the end of the budget, or never


def evaluate(entry: Entry, target, chains, budget, weights, tuning_seed, seeds, device):
    """Tune on ``tuning_seed`` (cheapest cost to threshold), then run the best setting on ``seeds``."""
    tuned = []
    for label, make in entry.settings:
        out = run(make, target, chains, budget, weights, tuning_seed, device)
        tuned.append((math.inf if out.cost is None else out.cost, label, make))
    best_cost, label, make = min(tuned, key=lambda t: t[0])
    if not math.isfinite(best_cost):
        return label, [], None
    outs = [run(make, target, chains, budget, weights, s, device) for s in seeds]
    return label, outs, make


def fmt_cost(outs: list[Outcome]) -> str:
    costs = [o.cost for o in outs if o.cost is not None]
    if len(costs) < len(outs) or not costs:
        reached = f"{len(costs)}/{len(outs)} seeds" if outs else "no setting"
        return f"not reached ({reached})"
    return f"{statistics.median(costs):.0f} [{min(costs):.0f}-{max(costs):.0f}]"


def speedup(outs: list[Outcome], base: list[Outcome]) -> str:
    if not outs or any(o.cost is None for o in outs + base):
        return "-"
    return f"{statistics.median(o.cost for o in base) / statistics.median(o.cost for o in outs):.1f}x"


def steps_per_second(make, target, chains, weights, device, steps=50) -> float:
    oracle = ScoreOracle(ExactScore(target), weights)
    sampler = make()
    state, g = sampler.init(start(chains, 0, device), oracle, math.inf), torch.Generator(device).manual_seed(0)
    state, _ = sampler.step(state, oracle, g)  # warm-up
    if getattr(state, "finished", False):
        return math.nan
    synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        state, _ = sampler.step(state, oracle, g)
    synchronize(device)
    return steps / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--chains", type=int, default=4000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--tuning-seed", type=int, default=100)
    p.add_argument("--budget", type=float, default=4000.0, help="cost cap per run")
    p.add_argument("--weights", default="3,4,1", help="w_vjp,w_jvp,w_curv, or 'measured'")
    p.add_argument("--quick", action="store_true", help="every other setting, one evaluation seed")
    p.add_argument("--only", nargs="*", help="rows whose label starts with one of these")
    p.add_argument("--threads", type=int, default=1, help="torch threads on the CPU (1 is fastest on a busy box)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    seeds = args.seeds[:1] if args.quick else args.seeds
    targets = {rot: Gaussian(dim=DIM, condition_number=KAPPA, rotate=rot).to(device, torch.float32)
               for rot in (False, True)}
    if args.weights == "measured":
        weights = measure_cost_weights(ExactScore(targets[True]), torch.randn(args.chains, DIM, device=device))
    else:
        vjp, jvp, curv = (float(w) for w in args.weights.split(","))
        weights = CostWeights(vjp=vjp, jvp=jvp, curvature=curv)

    entries = sweeps(args.quick)
    if args.only:
        entries = [e for e in entries if e.label == "langevin" or any(e.label.startswith(o) for o in args.only)]
    print(f"device: {device_name(device)}; d={DIM}, kappa={KAPPA:g}, {args.chains} chains from N(0, 0.01^2 I), "
          f"threshold {THRESHOLD:.0%} covariance error; tuning seed {args.tuning_seed}, evaluation seeds {seeds}; "
          f"cost weights vjp={weights.vjp:.2f} jvp={weights.jvp:.2f} curvature={weights.curvature:.2f}; "
          f"cost cap {args.budget:g}", flush=True)
    rows, base = [], {}
    for entry in entries:
        cells, rate = [entry.label], None
        for rot, target in targets.items():
            started = time.perf_counter()
            label, outs, make = evaluate(entry, target, args.chains, args.budget, weights, args.tuning_seed, seeds,
                                         device)
            if entry.label == "langevin":
                base[rot] = outs
            cells += [label, fmt_cost(outs), speedup(outs, base.get(rot, []))]
            if make is not None and not rot:
                rate = steps_per_second(make, target, args.chains, weights, device)
            print(f"  {entry.label} {'rotated' if rot else 'axis-aligned'}: best {label}, "
                  f"{fmt_cost(outs)} ({time.perf_counter() - started:.0f} s)", flush=True)
        cells.append("-" if rate is None or math.isnan(rate) else f"{rate:.0f}")
        rows.append(cells)
    head = ["sampler", "best setting (axis)", "cost to 10% (axis)", "speedup", "best setting (rotated)",
            "cost to 10% (rotated)", "speedup", f"steps/s ({device_name(device)})"]
    print()
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for cells in rows:
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

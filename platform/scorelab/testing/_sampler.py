"""``check_sampler``: a sampler class against the Sampler contract and against known answers.

Short runs (a few steps on a few chains) check the shape of what ``init`` and ``step`` return,
batching, dtypes, devices, reproducibility, that every score call was paid for, and that ``step``
does not synchronise with the host. Two long runs check the chains' moments on Gaussians with known
answers: N(1, 2) in 1-D with many chains, and N(1, diag(v)) in 100-D with v from 0.5 to 2, both
started from N(0, I).

A sampler declares what the checks should expect from it with optional attributes, its traits
(:class:`scorelab.contracts.SamplerTraits`), read from the instance the checks build, so a trait that
follows the hyperparameters is honoured:

- ``stationary_variance(self, variance) -> float``: the per-coordinate variance its chains reach on
  N(mu, variance) at its hyperparameters, when that differs from ``variance`` (ULA:
  ``variance / (1 - h / (2 * variance))``). The moment checks then allow only sampling error and
  a 2 % allowance instead of 10 %.
- ``deterministic = True``: it draws no random numbers (an ODE integrator), so a different generator
  may give the same chains.
- ``chains_interact = True``: chains share information (e.g. a step size adapted on the acceptance
  averaged over chains), so moving one chain may move the others.
- ``host_syncs = "why"``: ``step`` reads device values on the host by design (e.g. a solver that runs
  on the host); the no-sync check then reports what it found as skipped, with the reason.
- ``requires``: capabilities beyond the kit's Gaussian score source skip the runs, with the reason.

The 100-D check pools its coordinates into bands of increasing variance: each band's average
variance ratio has a standard error of sqrt(2 / (chains - 1) / coordinates), so with 200 chains
and two bands of 50 the band tolerance is 5 standard errors (0.07) plus the allowance: a variance
20 % off over half the coordinates fails (about 2 standard errors past 0.17) even at the default 10 %
allowance, where one coordinate's tolerance (0.6) would hide it.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from scorelab.contracts import SamplerTraits, draws_first, finished, traits
from scorelab.oracle import CostWeights
from scorelab.rng import KeyedStream

from ._common import check_contract, class_and_params, fields_of_record, kit_devices, new_report, same, single_threaded
from ._known import SAMPLER_CAPABILITIES, CountingOracle, CountingSource, DiagonalGaussian
from ._report import Fail, Report, call
from ._watch import HostSyncWatch, scrambled_global_rng

SHORT_BUDGET = 100.0  # what init is told in the short runs; they stop after SHORT_STEPS steps anyway
SHORT_STEPS = 5
GAUSSIANS = ((1, 4000), (100, 200))  # (dimension, chains) of the moment checks
BANDS = 2  # the 100-D check's coordinates, sorted by variance, pooled into this many bands
Z = 5.0  # statistical tolerances are Z standard errors: a false alarm has probability < 1e-6 per check


@dataclass
class _Run:
    x0: torch.Tensor
    xs: list[torch.Tensor]  # state.x after init, then after each step
    infos: list[Any]
    state: Any
    oracle: CountingOracle
    source: CountingSource
    syncs: list[str]
    cost_after_init: float


def _short_gaussian(shape: tuple[int, ...], device, dtype) -> DiagonalGaussian:
    n = math.prod(shape)
    variance = torch.linspace(0.5, 2.0, n, dtype=torch.float64).reshape(shape)
    return DiagonalGaussian(torch.full(shape, 0.5, dtype=torch.float64), variance).to(device, dtype)


def _start(chains: int, shape: tuple[int, ...], device, dtype, seed: int = 1234) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn((chains, *shape), generator=g, dtype=torch.float64).to(device=device, dtype=dtype)


def _run(make: Callable[[], Any], x0: torch.Tensor, seed: int, *, steps: int = SHORT_STEPS,
         budget: float = SHORT_BUDGET, target: DiagonalGaussian | None = None, watch: bool = False,
         keyed: bool = False) -> _Run:
    device, dtype = x0.device, x0.dtype
    target = target or _short_gaussian(tuple(x0.shape[1:]), device, dtype)
    source = CountingSource(target)
    oracle = CountingOracle(source)
    sampler = make()
    before = _fields(sampler)
    x_in = x0.clone()
    generator = KeyedStream(seed, device) if keyed else torch.Generator(device).manual_seed(seed)
    state = call("init(x0, oracle, budget)", sampler.init, x_in, oracle, budget)
    _check_state(state, x0, "init")
    xs, infos, syncs = [state.x.detach().clone()], [], []
    cost_after_init = oracle.cost
    for k in range(1, steps + 1):
        if finished(state):
            break
        sync_watch = HostSyncWatch(device)
        if watch:
            with sync_watch:
                out = call(f"step {k}", sampler.step, state, oracle, generator)
        else:
            out = call(f"step {k}", sampler.step, state, oracle, generator)
        syncs += [e for e in sync_watch.events if e not in syncs]
        state, info = _unpack(out, k)
        _check_state(state, x0, f"step {k}")
        _check_info(info, x0, k)
        xs.append(state.x.detach().clone())
        infos.append(info)
    if not same(x_in, x0):
        raise Fail("init or step changed the x0 tensor it was given, in place; the runner hands the same initial "
                   "chains to its checkpoints and plots: copy before updating (x = x0 + ..., or x0.clone())")
    if _fields(sampler) != before:
        raise Fail(f"running it changed the sampler's own fields ({before} -> {_fields(sampler)}); keep everything "
                   "that changes from step to step in the state, so one instance can run any number of chains")
    return _Run(x0, xs, infos, state, oracle, source, syncs, cost_after_init)


def _fields(obj) -> dict:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else {}


def _unpack(out: Any, k: int) -> tuple[Any, Any]:
    if not isinstance(out, tuple) or len(out) != 2:
        got = f"a tuple of {len(out)}" if isinstance(out, tuple) else f"a {type(out).__name__}"
        raise Fail(f"step {k} returned {got}; step must return a pair (state, info), info a dataclass of "
                   "per-step diagnostics or None")
    return out


def _check_state(state: Any, x0: torch.Tensor, where: str) -> None:
    x = getattr(state, "x", None)
    if not isinstance(x, torch.Tensor):
        raise Fail(f"the state {where} returned ({type(state).__name__}) has no tensor attribute 'x': the state "
                   "must hold all chains as one tensor in state.x")
    if x.shape != x0.shape:
        raise Fail(f"{where} changed the shape of the chains from {tuple(x0.shape)} to {tuple(x.shape)}; state.x "
                   f"must keep one row per chain ({x0.shape[0]} chains) and the event shape {tuple(x0.shape[1:])}")
    if x.device != x0.device:
        raise Fail(f"{where} moved the chains from {x0.device} to {x.device}; create every tensor on the chains' "
                   "device (device=state.x.device)")
    if x.dtype != x0.dtype:
        raise Fail(f"{where} changed the chains' dtype from {x0.dtype} to {x.dtype}; create tensors with "
                   "dtype=state.x.dtype (a float64 constant tensor promotes float32 chains)")
    if x.requires_grad:
        raise Fail(f"state.x after {where} requires grad: the chains keep an autograd graph of their history. "
                   "Use oracle.vjp / oracle.jvp for derivatives, and detach what you keep")
    bad = ~torch.isfinite(x)
    if bad.any():
        rows = bad.reshape(len(x), -1).any(1)
        raise Fail(f"{where} produced NaN or inf in {int(rows.sum())} of {len(x)} chains (on a well-conditioned "
                   "Gaussian with exact score, from finite chains)")
    finished = getattr(state, "finished", False)
    if not isinstance(finished, bool):
        raise Fail(f"state.finished after {where} is a {type(finished).__name__}; it must be a Python bool "
                   "(the runner reads it every step, and reading a tensor would synchronise)")


def _check_info(info: Any, x0: torch.Tensor, k: int) -> None:
    if info is None:
        return
    fields = fields_of_record(info)
    if fields is None:
        raise Fail(f"step {k} returned info of type {type(info).__name__}; info must be a dataclass (or "
                   "NamedTuple) of per-step diagnostics, or None: the runner logs its fields by name")
    n = x0.shape[0]
    for key, value in fields.items():
        if isinstance(value, bool | int | float):
            continue
        if not isinstance(value, torch.Tensor):
            raise Fail(f"info.{key} is a {type(value).__name__}; info fields must be numbers or tensors "
                       "(the runner averages them)")
        if value.device != x0.device:
            raise Fail(f"info.{key} is on {value.device}, the chains on {x0.device}: keep diagnostics on the "
                       "chains' device (the runner reads them only at checkpoints)")
        if value.ndim > 0 and value.shape[0] != n:
            raise Fail(f"info.{key} has shape {tuple(value.shape)}: use a scalar or one value per chain "
                       f"(leading dimension {n})")


@single_threaded
def check_sampler(
    sampler: Any,
    *,
    params: dict | None = None,
    devices: Sequence[str | torch.device] | None = None,
    gaussian: bool = True,
    rel_tol: float | None = None,
    budget: float = 800.0,
) -> Report:
    """Check a sampler class (or instance) against the Sampler contract; returns a :class:`Report`.

    Parameters
    ----------
    sampler : the class (built with its defaults, or ``params``) or an instance.
    params : hyperparameters for the checks, e.g. a step size suited to the Gaussians the checks use.
    devices : devices to run on; default the CPU, and CUDA when present.
    gaussian : run the two moment checks (the slow part, ~1 s each).
    rel_tol : allowed relative bias of the moments on top of sampling error; default 0.1, or 0.02
        for a sampler that declares ``stationary_variance``.
    budget : cost budget of each moment run, in score evaluations.
    """
    cls, params = class_and_params(sampler, params)
    report = new_report("sampler", cls)
    make = check_contract(report, "sampler", cls, params)
    if make is None:
        return report
    with report.check("init and step signatures"):
        _check_signatures(cls)
    declared = traits("sampler", make())  # this instance's: a trait may follow the hyperparameters
    missing = set(declared.requires) - SAMPLER_CAPABILITIES
    if missing:
        report.skip("running it", f"it requires {sorted(missing)}, which the kit's Gaussian score source does not "
                    f"provide (it provides {sorted(SAMPLER_CAPABILITIES)})")
        return report
    if report.ok and _check_short_runs(report, make, declared, devices):
        _check_moments(report, make, gaussian, budget, rel_tol)
        _check_keyed(report, declared, make, gaussian, budget, rel_tol)
    return report


def _check_short_runs(report: Report, make, declared: SamplerTraits, devices) -> bool:
    """The contract on a few steps of a few chains, on the CPU and every other device; False when init
    and step do not work at all (nothing else can then be checked)."""
    cpu = torch.device("cpu")
    base: _Run | None = None
    with report.check("init and step (state, info, finite chains)"):
        base = _run(make, _start(8, (3,), cpu, torch.float64), seed=0, watch=True)
    if base is None:
        report.skip("everything else", "it needs init and step to work")
        return False

    with report.check("honest cost (calls counted = calls made)"):
        _check_cost(base)
    _check_syncs(report, declared, base, cpu)
    _check_batching(report, declared, make)
    _check_randomness(report, declared, make)
    with report.check("float32 chains stay float32"):
        _run(make, _start(8, (3,), cpu, torch.float32), seed=0)
    _check_devices(report, declared, make, devices)
    return True


def _check_devices(report: Report, declared: SamplerTraits, make, devices) -> None:
    for device in kit_devices(devices):
        if device.type == "cpu":
            continue
        run = None
        with report.check(f"runs on {device} (chains, info and state stay there)"):
            run = _run(make, _start(8, (3,), device, torch.float32), seed=0, watch=True)
        if run is not None:
            _check_syncs(report, declared, run, device)
    if not torch.cuda.is_available() and devices is None:
        report.skip("runs on cuda", "no CUDA device here")


def _check_moments(report: Report, make, gaussian: bool, budget: float, rel_tol: float | None) -> None:
    if not gaussian:
        report.skip("moments on Gaussians", "gaussian=False")
        return
    for dim, chains in GAUSSIANS:
        with report.check(f"moments on a {dim}-D Gaussian"):
            _check_gaussian(make, dim, chains, budget, rel_tol)


def _check_keyed(report: Report, declared: SamplerTraits, make, gaussian: bool, budget: float,
                 rel_tol: float | None) -> None:
    """A sampler that declares ``keyed_rng`` runs on a keyed stream (:mod:`scorelab.rng`): its chains
    are reproducible per key, differ between keys, and keep the moments it has on a generator."""
    if not declared.keyed_rng:  # an option a sampler takes up, not a check: nothing to report
        return
    x0 = _start(8, (3,), torch.device("cpu"), torch.float32)
    with report.check("draws from a keyed stream (it declares keyed_rng)"):
        if not draws_first(make()):
            raise Fail("it declares keyed_rng but does not split its step into draw and advance (scorelab.DrawsFirst): "
                       "a compiled step takes a keyed stream's tickets as inputs of its graph, drawn before it")
        try:
            with scrambled_global_rng(11):
                a = _run(make, x0, seed=7, keyed=True)
            with scrambled_global_rng(22):
                b = _run(make, x0, seed=7, keyed=True)
            c = _run(make, x0, seed=8, keyed=True)
        except Fail as e:
            raise Fail(f"{e}. A sampler that declares keyed_rng = True draws with scorelab.rng's normal_draws and "
                       "uniform_draws and makes its numbers with normal_from and uniform_from, never with torch's "
                       "random functions") from None
        if len(a.xs) != len(b.xs) or not all(same(p, q) for p, q in zip(a.xs, b.xs, strict=True)):
            raise Fail("two runs with the same key gave different chains: some draws come from elsewhere")
        if not declared.deterministic and all(same(p, q) for p, q in zip(a.xs, c.xs, strict=False)):
            raise Fail("two keys gave the same chains: the keyed stream's draws are not used")
    if gaussian:
        dim, chains = GAUSSIANS[0]
        with report.check(f"moments on a {dim}-D Gaussian, from a keyed stream"):
            _check_gaussian(make, dim, chains, budget, rel_tol, keyed=True)


def _check_signatures(cls: type) -> None:
    methods = [("init", ("x0", "oracle", "budget")), ("step", ("state", "oracle", "generator"))]
    if draws_first(cls):
        methods += [("draw", ("state", "generator")), ("advance", ("state", "oracle", "draws"))]
    for method, args in methods:
        try:
            inspect.signature(getattr(cls, method)).bind(None, *args)
        except TypeError:
            sig = inspect.signature(getattr(cls, method))
            raise Fail(f"{method}{sig} cannot be called as {method}({', '.join(args)})") from None
        except ValueError:  # no signature (a C function): the runs will tell
            pass


_PAID_ROUTES = ("oracle.score, oracle.vjp, oracle.jvp, oracle.hess_diag, oracle.exact_hess_diag, "
                "oracle.score_and_learned_diag or oracle.log_prob_and_score")


def _check_cost(run: _Run) -> None:
    _check_unpaid(run.source.watch)
    _check_counts(run)
    steps = len(run.xs) - 1
    if steps and run.oracle.cost <= run.cost_after_init and not finished(run.state):
        raise Fail(f"{steps} steps cost nothing: the runner stops at the budget or when state.finished is set, "
                   "so this sampler would never stop")


def _check_unpaid(watch) -> None:
    """Calls that reached the source or target with no oracle call in progress, and derivatives sought
    through the oracle's outputs (which carry none)."""
    if watch.unpaid:
        calls = ", ".join(f"{where} {n} time(s)" for where, n in watch.unpaid.items())
        raise Fail(f"the sampler called {calls} with no oracle call in progress: it reached the score source (or "
                   "the target) behind the oracle, through its private attributes, and nothing was charged. "
                   f"Call the oracle's public methods instead ({_PAID_ROUTES}), which charge for what they compute")
    if watch.differentiated:
        calls = ", ".join(f"{where} {n} time(s)" for where, n in watch.differentiated.items())
        raise Fail(f"the sampler called {calls} with tensors that carry derivatives (they require grad, are "
                   "forward-mode duals, or are traced by torch.func): it tried to differentiate through the oracle, "
                   "which would get a VJP or JVP for the price of one evaluation. The oracle's outputs carry no "
                   "derivatives (that gives zeros or an error): use oracle.vjp, oracle.jvp or oracle.hess_diag, "
                   "which compute them and charge for it")


def _check_counts(run: _Run) -> None:
    """The oracle's counts equal the calls that reached its source, at the weights it was built with."""
    c, s = run.oracle.counts, run.source
    problems = []
    if s.evaluations != c.nfe:
        problems.append(f"{s.evaluations} score evaluations reached the score source, the oracle charged {c.nfe}")
    if s.products != c.vjp + c.jvp:
        problems.append(f"{s.products} VJPs/JVPs were computed, the oracle charged {c.vjp + c.jvp}")
    if s.curvature != c.curvature:
        problems.append(f"{s.curvature} exact curvature calls were made, the oracle charged {c.curvature}")
    reweighted = run.oracle.weights != CostWeights()
    if reweighted:
        problems.append(f"the oracle's cost weights were changed from {CostWeights()} to {run.oracle.weights}")
    if not problems:
        return
    if s.evaluations > c.nfe or s.products > c.vjp + c.jvp or s.curvature > c.curvature:
        what = "lowered the oracle's private counts"
    else:
        what = "changed the oracle's private cost weights" if reweighted else "changed the oracle's private counts"
    raise Fail("; ".join(problems) + f". The sampler {what}, so its cost no longer matches what it computed. "
               f"Leave the oracle's state alone and pay for every call through its public methods ({_PAID_ROUTES})")


def _check_syncs(report: Report, declared: SamplerTraits, run: _Run, device: torch.device) -> None:
    name = f"no host syncs in step ({device.type})"
    excuse = declared.host_syncs
    if excuse:
        report.skip(name, f"the sampler declares host_syncs = {excuse!r}; seen: {'; '.join(run.syncs) or 'none'}")
        return
    with report.check(name):
        if run.syncs:
            raise Fail("step reads device values on the host, which stalls a GPU every step: " + "; ".join(run.syncs))


def _check_batching(report: Report, declared: SamplerTraits, make) -> None:
    cpu, f64 = torch.device("cpu"), torch.float64
    with report.check("one chain"):
        _run(make, _start(1, (3,), cpu, f64), seed=0)
    with report.check("event shape (2, 3) (images, not only vectors)"):
        _run(make, _start(4, (2, 3), cpu, f64), seed=0)
    if declared.chains_interact:
        report.skip("chains are independent", "the sampler declares chains_interact = True")
    else:
        with report.check("chains are independent"):
            x0 = _start(6, (3,), cpu, f64)
            moved = x0.clone()
            moved[0] += 0.5
            with scrambled_global_rng(0):  # the same global state for both: only the moved chain differs
                a = _run(make, x0, seed=3)
            with scrambled_global_rng(0):
                b = _run(make, moved, seed=3)
            for k, (xa, xb) in enumerate(zip(a.xs, b.xs, strict=False)):
                if not torch.allclose(xa[1:], xb[1:], rtol=1e-10, atol=1e-12):
                    raise Fail(f"moving chain 0 at the start changed the other chains by step {k}: chains must not "
                               "share statistics (a mean over chains, a norm over the whole batch); reduce over "
                               "event dimensions only, or declare chains_interact = True if this is by design")
    if declared.deterministic:
        report.skip("each chain draws its own noise", "the sampler declares deterministic = True")
    else:
        with report.check("each chain draws its own noise"):
            x0 = _start(1, (3,), cpu, f64).expand(6, 3).clone()
            run = _run(make, x0, seed=5)
            if len(run.xs) > 1 and torch.equal(run.xs[-1][0], run.xs[-1][1]):
                raise Fail("chains started at one point are still identical after the steps: draw noise with the "
                           "chains' shape (torch.randn(state.x.shape, generator=generator, ...)), not one draw "
                           "broadcast over chains; a sampler that uses no randomness declares deterministic = True")


def _check_randomness(report: Report, declared: SamplerTraits, make) -> None:
    cpu = torch.device("cpu")
    x0 = _start(8, (3,), cpu, torch.float64)
    with report.check("reproducible under a fixed generator"):
        with scrambled_global_rng(11):
            a = _run(make, x0, seed=7)
        with scrambled_global_rng(22):
            b = _run(make, x0, seed=7)
        if len(a.xs) != len(b.xs) or not all(same(p, q) for p, q in zip(a.xs, b.xs, strict=True)):
            raise Fail("two runs with the same generator seed gave different chains: the sampler draws random "
                       "numbers from a global source (torch.randn without generator=, numpy.random, random); "
                       "pass generator=generator to every torch random function")
    if declared.deterministic:
        report.skip("uses the generator it is given", "the sampler declares deterministic = True")
        return
    with report.check("uses the generator it is given"):
        with scrambled_global_rng(0):
            a = _run(make, x0, seed=7)
        with scrambled_global_rng(0):
            b = _run(make, x0, seed=8)
        if len(a.xs) > 1 and all(same(p, q) for p, q in zip(a.xs, b.xs, strict=False)):
            raise Fail("different generator seeds gave identical chains: the generator passed to step is not used. "
                       "Draw noise with generator=generator; a sampler that uses no randomness declares "
                       "deterministic = True")
    if draws_first(make()):
        with report.check("draw depends on the state's shapes alone"):
            _check_draws_ahead(make, x0)


def _check_draws_ahead(make, x0: torch.Tensor) -> None:
    """A DrawsFirst's ``draw`` from the same generator state gives the same numbers, and moves the
    generator as far, for its first state and for one steps later: compiled, the step loop makes
    several steps' draws ahead, from the state before them."""
    later = _run(make, x0, seed=7)
    sampler = make()
    first = sampler.init(x0.clone(), CountingOracle(CountingSource(_short_gaussian(tuple(x0.shape[1:]), x0.device,
                                                                                   x0.dtype))), SHORT_BUDGET)
    draws, ends = [], []
    for state in (first, later.state):
        generator = torch.Generator(x0.device).manual_seed(5)
        draws.append(call("draw(state, generator)", sampler.draw, state, generator))
        ends.append(generator.get_state())
    a, b = (d if isinstance(d, tuple) else (d,) for d in draws)
    if len(a) != len(b) or not all(same(p, q) for p, q in zip(a, b, strict=False)) or not same(*ends):
        raise Fail(f"draw gave other numbers (or took more or fewer) for the state after {len(later.xs) - 1} steps "
                   "than for the first state, from the same generator state: compiled, the step loop makes several "
                   "steps' draws ahead from the state before them, so draw may depend on the state's shapes, dtype "
                   "and device alone; what depends on its values (a step size, a schedule) belongs in advance")


def _check_gaussian(make, dim: int, chains: int, budget: float, rel_tol: float | None, keyed: bool = False) -> None:
    """The chains' moments after a run from N(0, I) to the budget, against a Gaussian's (or what the
    sampler declares it settles at), within Z standard errors of their sample size plus an allowance.
    ``keyed``: drawn from a keyed stream (:mod:`scorelab.rng`), not a ``torch.Generator``."""
    mean, var, what = _gaussian(dim, chains, budget)
    sampler = make()
    declared = traits("sampler", sampler).stationary_variance
    expected, allowance = _expected_variance(declared, var, what, rel_tol)
    x, steps, cost = _sample_to_budget(sampler, DiagonalGaussian(mean, var).to(torch.device("cpu"), torch.float32),
                                       _start(chains, (dim,), torch.device("cpu"), torch.float32, seed=99), budget,
                                       keyed)
    bad = ~torch.isfinite(x).all(1)
    if bad.any():
        raise Fail(f"on {what}, {int(bad.sum())} chains hold NaN or inf after {steps} steps (cost {cost:g})")
    problems = _coordinate_problems(x, mean, expected, var, allowance)
    if dim > 1:
        problems += _band_problems(x, mean, expected, var, allowance)
    if problems:
        bias = ("its declared stationary_variance" if declared is not None
                else "no declared bias (a sampler whose bias is known declares stationary_variance(variance); "
                     "ULA's is variance / (1 - h / (2 variance)))")
        raise Fail(f"on {what} after {steps} steps: " + "; ".join(problems)
                   + f". Tolerance: {Z:g} standard errors plus {allowance:.0%} for {bias}")


def _gaussian(dim: int, chains: int, budget: float) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(mean, variance, description) of the check's target: N(1, 2) in 1-D, else N(1, diag(v)) with v
    log-spaced from 0.5 to 2, in float64."""
    f64 = torch.float64
    if dim == 1:
        return (torch.ones(1, dtype=f64), torch.full((1,), 2.0, dtype=f64),
                f"N(1, 2) in 1-D ({chains} chains from N(0, 1), budget {budget:g})")
    return (torch.ones(dim, dtype=f64), torch.logspace(math.log10(0.5), math.log10(2.0), dim, dtype=f64),
            f"N(1, diag(v)) in {dim}-D, v from 0.5 to 2 ({chains} chains from N(0, I), budget {budget:g})")


def _expected_variance(declared, var: torch.Tensor, what: str, rel_tol: float | None) -> tuple[torch.Tensor, float]:
    """(the variance each coordinate should reach, the allowance on top of sampling error)."""
    if declared is None:
        return var, 0.1 if rel_tol is None else rel_tol
    expected = torch.tensor([float(call("stationary_variance(v)", declared, float(v))) for v in var],
                            dtype=torch.float64)
    if not torch.isfinite(expected).all() or (expected <= 0).any():
        raise Fail(f"stationary_variance declares {expected.tolist()[:3]}... on {what}: the sampler is unstable "
                   "at these hyperparameters; pass params= with a stable setting to the check")
    return expected, 0.02 if rel_tol is None else rel_tol


def _sample_to_budget(sampler, target: DiagonalGaussian, x0: torch.Tensor, budget: float, keyed: bool = False
                      ) -> tuple[torch.Tensor, int, float]:
    """(the chains in float64, steps taken, cost) after running to the budget or until finished."""
    oracle = CountingOracle(CountingSource(target))
    generator = KeyedStream(2024) if keyed else torch.Generator().manual_seed(2024)
    state = call("init", sampler.init, x0, oracle, budget)
    steps, cap = 0, int(20 * budget) + 100
    while oracle.cost < budget and not finished(state):
        if steps >= cap:
            raise Fail(f"after {steps} steps the cost is {oracle.cost:g} of a budget of {budget:g} and "
                       "state.finished is not set: a comparison would never end")
        state, _ = call(f"step {steps + 1}", sampler.step, state, oracle, generator)
        steps += 1
    return state.x.detach().to(torch.float64), steps, oracle.cost


def _coordinate_problems(x: torch.Tensor, mean: torch.Tensor, expected: torch.Tensor, var: torch.Tensor,
                         allowance: float) -> list[str]:
    """The worst coordinate's mean (in standard deviations) and variance ratio, each within its own
    tolerance: loose in 100-D (a few hundred chains), they catch one coordinate far off."""
    n, dim = x.shape
    mean_err = ((x.mean(0) - mean) / expected.sqrt()).abs()
    var_ratio = x.var(0) / expected
    mean_tol = Z / math.sqrt(n) + allowance
    var_tol = Z * math.sqrt(2 / (n - 1)) + allowance
    problems = []
    i = int(mean_err.argmax())
    if mean_err[i] > mean_tol:
        problems.append(f"mean {float(x[:, i].mean()):.4g} where {float(mean[i]):.4g} is expected"
                        + (f" (coordinate {i})" if dim > 1 else "")
                        + f": off by {float(mean_err[i]):.3g} sd, more than {mean_tol:.3g}")
    j = int((var_ratio - 1).abs().argmax())
    if abs(float(var_ratio[j]) - 1) > var_tol:
        problems.append(f"variance {float(x[:, j].var()):.4g} where {float(expected[j]):.4g} is expected"
                        + (f" (coordinate {j}, v = {float(var[j]):.3g})" if dim > 1 else "")
                        + f": ratio {float(var_ratio[j]):.3f}, outside 1 ± {var_tol:.3f}")
    return problems


def _band_problems(x: torch.Tensor, mean: torch.Tensor, expected: torch.Tensor, var: torch.Tensor,
                   allowance: float) -> list[str]:
    """Means and variance ratios pooled over bands of coordinates of increasing variance: independent
    coordinates make a band's averages BANDS / dim times as variable as one coordinate's, so a bias over a
    band is caught that one coordinate's sampling error would hide."""
    n, dim = x.shape
    problems = []
    for band in torch.arange(dim).tensor_split(BANDS):  # v increases with the coordinate
        k = len(band)
        mean_err = float(((x[:, band].mean(0) - mean[band]) / expected[band].sqrt()).mean())
        var_ratio = float((x[:, band].var(0) / expected[band]).mean())
        mean_tol = Z / math.sqrt(n * k) + allowance
        var_tol = Z * math.sqrt(2 / (n - 1) / k) + allowance
        where = f"over the {k} coordinates with v from {float(var[band[0]]):.3g} to {float(var[band[-1]]):.3g}"
        if abs(mean_err) > mean_tol:
            problems.append(f"means are off by {mean_err:+.3g} sd on average {where}, more than {mean_tol:.3g}")
        if abs(var_ratio - 1) > var_tol:
            problems.append(f"variances are {var_ratio:.3f} times the expected ones on average {where}, "
                            f"outside 1 ± {var_tol:.3f}")
    return problems

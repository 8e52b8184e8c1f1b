"""The conformance kit (scorelab.testing): every registered built-in passes it, and each deliberately
broken plugin fails it with a readable message naming the check and what to do."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import pytest
import torch

import scorelab_builtins
from scorelab.cli.check_plugin import check_entry
from scorelab.contracts import DrawsFirst, draws_first
from scorelab.plugins import PluginHost
from scorelab.testing import check_metric, check_model, check_objective, check_sampler, check_target
from tests.helpers import Info, NoStep, State, Ula, variant

# Built-ins whose fields have no defaults and that declare no example_params: the settings to check.
NEEDS_PARAMS = {("target", "gmm"): {"weights": [0.7, 0.3], "means": [[-2.0, 0.0], [2.0, 1.0]], "stds": [1.0, 0.5]}}


def _builtins() -> PluginHost:
    host = PluginHost()
    host.add(scorelab_builtins, "builtins", "scorelab", "test")
    return host


_HOST = _builtins()
_REGISTERED = [(kind, name) for kind in ("sampler", "objective", "model", "target", "metric")
               for name in _HOST.names(kind)]


@pytest.mark.parametrize(("kind", "name"), _REGISTERED, ids=[f"{k}:{n}" for k, n in _REGISTERED])
def test_every_registered_builtin_passes_the_kit(kind, name):
    cls = _HOST.get(kind, name)
    params = None if getattr(cls, "example_params", None) else NEEDS_PARAMS.get((kind, name))
    report = check_entry(_HOST, kind, name, params=params)  # what `scorelab check-plugin builtins` runs
    assert report.ok, str(report)
    unbuilt = [s for s in report.skipped if s.startswith("building and running it")]
    assert not unbuilt, f"{kind} '{name}' was not run: declare example_params on it ({unbuilt[0]})"


# -- broken variants of helpers.Ula, a sampler that passes ----------------------------------------

def _failures(report) -> dict[str, str]:
    return {f.check: f.message for f in report.failures}


def test_the_reference_sampler_passes_quickly():
    report = check_sampler(Ula, gaussian=False)
    assert report.ok, str(report)
    assert "honest cost (calls counted = calls made)" in report.passed


def _advance(self, state, oracle, z):
    h = self.step_size
    x = state.x + h * state.score + math.sqrt(2 * h) * z
    return State(x, oracle.score(x)), Info(h)


def _split(name: str, bases: tuple[type, ...], **methods) -> type:
    """A dataclass named ``name`` of ``bases`` (DrawsFirst and Ula, in either order) with ``methods``."""
    return dataclass(type(name, bases, methods))


def test_a_sampler_that_draws_first_passes_the_kit():
    split = _split("Split", (DrawsFirst, Ula), draw=lambda self, s, g: self.noise(s, g), advance=_advance)
    assert draws_first(split)
    report = check_sampler(split, gaussian=False)
    assert report.ok, str(report)


BROKEN = {
    "missing step": (NoStep, "contract", "has no method 'step'"),
    "wrong return type": (
        variant("StateOnly", step=lambda self, s, o, g: Ula.step(self, s, o, g)[0]),
        "init and step (state, info, finite chains)", "step 1 returned a State; step must return a pair (state, info)"),
    "NaN output": (
        variant("Exploding", step=lambda self, s, o, g: (State(s.x / 0.0 * 0.0, s.score), Info(1.0))),
        "init and step (state, info, finite chains)", "step 1 produced NaN or inf in 8 of 8 chains"),
    "ignores the generator": (
        variant("GlobalRandom", noise=lambda self, s, g: torch.randn(s.x.shape, dtype=s.x.dtype)),
        "reproducible under a fixed generator", "draws random numbers from a global source"),
    "own fixed generator": (
        variant("OwnGenerator", noise=lambda self, s, g: torch.randn(
            s.x.shape, generator=torch.Generator().manual_seed(0), dtype=s.x.dtype)),
        "uses the generator it is given", "different generator seeds gave identical chains"),
    "calls the score without the oracle": (
        variant("Freeloader", init=lambda self, x0, o, b: State(x0, o._source.score(x0))),
        "init and step (state, info, finite chains)", "has no attribute '_source'. A sampler reaches the score only "
        "through the oracle's public methods"),
    "differentiates through oracle.score": (
        variant("SneakyVjp", init=lambda self, x0, o, b: State(x0, o.score(x0.clone().requires_grad_(True))
                                                                .detach())),
        "honest cost (calls counted = calls made)", "the sampler called oracle.score 1 time(s) with tensors that "
        "carry derivatives"),
    "changes the batch size": (
        variant("Shrinking", step=lambda self, s, o, g: (State(s.x[:-1], s.score[:-1]), Info(0.1))),
        "init and step (state, info, finite chains)", "step 1 changed the shape of the chains from (8, 3) to (7, 3)"),
    "syncs with the host": (
        variant("Syncing", noise=lambda self, s, g: Ula.noise(self, s, g) * float(s.x.abs().max() > 0)),
        "no host syncs in step (cpu)", "__float__ at test_testing_kit.py"),
    "one noise draw for all chains": (
        variant("SharedNoise", noise=lambda self, s, g: torch.randn(
            s.x.shape[1:], generator=g, dtype=s.x.dtype).expand_as(s.x)),
        "each chain draws its own noise", "chains started at one point are still identical"),
    "chains share a statistic": (
        variant("Centring", noise=lambda self, s, g: Ula.noise(self, s, g) + 0 * s.x.mean(0)
                 + 0.1 * (s.x - s.x.mean(0))),
        "chains are independent", "moving chain 0 at the start changed the other chains"),
    "promotes the dtype": (
        variant("Promoting", noise=lambda self, s, g: Ula.noise(self, s, g) + torch.zeros(1, dtype=torch.float64)),
        "float32 chains stay float32", "changed the chains' dtype from torch.float32 to torch.float64"),
    "info is a dict": (
        variant("DictInfo", step=lambda self, s, o, g: (Ula.step(self, s, o, g)[0], {"step_size": 0.1})),
        "init and step (state, info, finite chains)", "info must be a dataclass (or NamedTuple)"),
    "a step that costs nothing": (
        variant("Free", step=lambda self, s, o, g: (State(s.x + 0.01 * s.score, s.score), Info(0.01))),
        "honest cost (calls counted = calls made)", "5 steps cost nothing"),
    "draws first without advance": (
        _split("HalfSplit", (DrawsFirst, Ula), draw=lambda self, s, g: self.noise(s, g)),
        "contract", "is a DrawsFirst without a method 'advance'"),
    "draws first and overrides step": (
        _split("Overriding", (Ula, DrawsFirst), draw=lambda self, s, g: self.noise(s, g), advance=_advance),
        "contract", "is a DrawsFirst that overrides step"),
    "draws by the state's values": (
        _split("ValueDraws", (DrawsFirst, Ula), draw=lambda self, s, g: self.noise(s, g) * s.x.abs().clamp(max=1),
               advance=_advance),
        "draw depends on the state's shapes alone", "draw gave other numbers (or took more or fewer) for the state "
        "after 5 steps than for the first state"),
    "changes x0 in place": (
        variant("InPlace", init=lambda self, x0, o, b: State(x0.mul_(2.0), o.score(x0))),
        "init and step (state, info, finite chains)", "changed the x0 tensor it was given, in place"),
}


# -- samplers that get a score, or a derivative of it, without paying: each route is closed or caught ----

_UNPAID = "honest cost (calls counted = calls made)"
_CRASH = "init and step (state, info, finite chains)"


def _autograd_through_score(self, x0, oracle, budget):
    x = x0.clone().requires_grad_(True)
    s = oracle.score(x)
    (vjp,) = torch.autograd.grad((s * s).sum(), x)  # would be a VJP for one NFE; the output has no graph
    return State(x0, s + 0 * vjp)


def _func_vjp_around_score(self, x0, oracle, budget):
    s, pullback = torch.func.vjp(oracle.score, x0)  # pullback gives zeros
    return State(x0, s + 0 * pullback(torch.ones_like(x0))[0])


def _func_jvp_around_score(self, x0, oracle, budget):
    s, jv = torch.func.jvp(oracle.score, (x0,), (torch.ones_like(x0),))  # jv is zeros
    return State(x0, s + 0 * jv)


def _dual_into_score(self, x0, oracle, budget):
    import torch.autograd.forward_ad as fwAD

    with fwAD.dual_level():
        s = fwAD.unpack_dual(oracle.score(fwAD.make_dual(x0, torch.ones_like(x0)))).primal  # no tangent
    return State(x0, s.clone())


def _autograd_through_log_prob(self, x0, oracle, budget):
    x = x0.clone().requires_grad_(True)
    log_p, _ = oracle.log_prob_and_score(x)
    (s,) = torch.autograd.grad(log_p.sum(), x)  # the score from the value: refused
    return State(x0, s)


def _func_grad_of_log_prob(self, x0, oracle, budget):
    hvp = torch.func.grad(lambda y: (oracle.log_prob_and_score(y)[1] ** 2).sum())(x0)  # zeros
    return State(x0, oracle.score(x0) + 0 * hvp)


def _lower_counts(self, x0, oracle, budget):
    state = Ula.init(self, x0, oracle, budget)
    oracle._ScoreOracle__tally.nfe -= 1
    return state


def _zero_weights(self, x0, oracle, budget):
    from scorelab.oracle import CostWeights

    oracle._ScoreOracle__weights = CostWeights(0.0, 0.0, 0.0)
    return Ula.init(self, x0, oracle, budget)


def _zero_counts_snapshot(self, x0, oracle, budget):
    state = Ula.init(self, x0, oracle, budget)
    oracle.counts.nfe = 0
    return state


CHEATS = {
    "autograd through oracle.score": (
        variant("AutogradVjp", init=_autograd_through_score), _CRASH, "element 0 of tensors does not require grad"),
    "torch.func.vjp around oracle.score": (
        variant("FuncVjp", init=_func_vjp_around_score), _UNPAID,
        "the sampler called oracle.score 1 time(s) with tensors that carry derivatives"),
    "torch.func.jvp around oracle.score": (
        variant("FuncJvp", init=_func_jvp_around_score), _UNPAID,
        "the sampler called oracle.score 1 time(s) with tensors that carry derivatives"),
    "forward-mode dual into oracle.score": (
        variant("DualScore", init=_dual_into_score), _UNPAID,
        "the sampler called oracle.score 1 time(s) with tensors that carry derivatives"),
    "autograd through log_prob_and_score": (
        variant("AutogradLogProb", init=_autograd_through_log_prob), _CRASH,
        "element 0 of tensors does not require grad"),
    "torch.func through log_prob_and_score": (
        variant("FuncLogProb", init=_func_grad_of_log_prob), _UNPAID,
        "the sampler called oracle.log_prob_and_score 1 time(s) with tensors that carry derivatives"),
    "reaches the source": (
        variant("SourceDigger", init=lambda self, x0, o, b: State(x0, o._ScoreOracle__source.score(x0))), _UNPAID,
        "the sampler called the score source's score 1 time(s) with no oracle call in progress"),
    "reaches the target through the source": (
        variant("TargetDigger", init=lambda self, x0, o, b: State(x0, o._ScoreOracle__source.target.score(x0))),
        _UNPAID, "the sampler called the target's score 1 time(s) with no oracle call in progress"),
    "lowers the counts": (
        variant("CountLowerer", init=_lower_counts), _UNPAID,
        "6 score evaluations reached the score source, the oracle charged 5. The sampler lowered the oracle's "
        "private counts"),
    "zeroes the cost weights": (
        variant("WeightZeroer", init=_zero_weights), _UNPAID, "the oracle's cost weights were changed"),
    "writes to the counts snapshot": (
        variant("SnapshotWriter", init=_zero_counts_snapshot), _CRASH, "cannot assign to field 'nfe'"),
    "resets the oracle": (
        variant("Resetter", init=lambda self, x0, o, b: o.reset() or Ula.init(self, x0, o, b)), _CRASH,
        "has no attribute 'reset'"),
}
BROKEN.update(CHEATS)


@pytest.mark.parametrize("case", list(CHEATS))
def test_every_unpaid_route_is_closed_or_caught(case):
    """A cheat either fails the honest-cost check with what it did and what to call instead, or crashes
    because the route is closed (the oracle's outputs carry no derivatives; the source is not an attribute)."""
    cls, check, _ = CHEATS[case]
    failures = _failures(check_sampler(cls, gaussian=False))
    if check == _UNPAID:
        assert "oracle.vjp" in failures[check]  # says what to call instead
    else:
        assert check in failures and _UNPAID not in failures  # the run crashed: nothing else was judged


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_sampler_fails_with_a_readable_message(case):
    cls, check, fragment = BROKEN[case]
    report = check_sampler(cls, gaussian=False)
    assert not report.ok
    failures = _failures(report)
    assert check in failures, str(report)
    assert fragment in failures[check], str(report)
    text = str(report)
    assert text.startswith(f"sampler {cls.__name__} FAILS the scorelab conformance checks")
    assert f"FAIL {check}: " in text and "Traceback" not in text
    with pytest.raises(AssertionError, match="FAILS the scorelab conformance checks"):
        report.assert_ok()


def test_a_sampler_that_raises_is_reported_with_the_place_in_its_code():
    def step(self, state, oracle, generator):
        raise RuntimeError("shapes do not match")

    report = check_sampler(variant("Raising", step=step), gaussian=False)
    message = _failures(report)["init and step (state, info, finite chains)"]
    assert message.startswith("step 1 raised RuntimeError: shapes do not match (at ")
    assert "test_testing_kit.py" in message and "in step)" in message


# -- moments on Gaussians, and declared bias --------------------------------------------------------

def test_ula_at_a_large_step_fails_unless_it_declares_its_bias():
    """ULA at h = 0.8 on N(1, 2): variance 2 / (1 - 0.2) = 2.5, 25 % above 2 (stable: 0.8 < 2 x 0.5)."""
    report = check_sampler(Ula, params={"step_size": 0.8})
    message = _failures(report)["moments on a 1-D Gaussian"]
    assert "variance" in message and "no declared bias" in message and "stationary_variance" in message

    def stationary_variance(self, v):
        return v / (1 - self.step_size / (2 * v))

    declared = variant("DeclaredUla", stationary_variance=stationary_variance)
    report = check_sampler(declared, params={"step_size": 0.8})
    assert report.ok, str(report)

    wrong = variant("WrongDeclaration", stationary_variance=lambda self, v: v / (1 - self.step_size / v))
    report = check_sampler(wrong, params={"step_size": 0.8})
    assert "its declared stationary_variance" in _failures(report)["moments on a 1-D Gaussian"]


def test_a_sampler_that_ignores_the_score_fails_the_moment_checks():
    ignorant = variant("Ignorant", init=lambda self, x0, o, b: State(x0, torch.zeros_like(x0) + 0 * o.score(x0)),
                        step=lambda self, s, o, g: (State(s.x + math.sqrt(2 * self.step_size) * self.noise(s, g),
                                                          0 * o.score(s.x)), Info(self.step_size)))
    report = check_sampler(ignorant)
    assert "mean" in _failures(report)["moments on a 1-D Gaussian"]
    assert "moments on a 100-D Gaussian" in _failures(report)


def test_declarations_turn_checks_into_reasoned_skips():
    @dataclass
    class Declared(variant("Centring2", noise=BROKEN["chains share a statistic"][0].noise)):
        chains_interact = True
        host_syncs = "reads the acceptance rate on the host (for the test)"

    report = check_sampler(Declared, gaussian=False)
    assert report.ok, str(report)
    assert any("chains_interact = True" in s for s in report.skipped)


def test_required_fields_without_params_are_skipped_not_failed():
    NeedsStep = dataclass(type("NeedsStep", (), {"__annotations__": {"step_size": float}, "init": Ula.init,
                                                  "step": Ula.step, "noise": Ula.noise}))  # no default

    report = check_sampler(NeedsStep)
    assert report.ok and "example_params" in report.skipped[0]
    assert check_sampler(NeedsStep, params={"step_size": 0.01}, gaussian=False).ok

    with_example = dataclass(type("WithExample", (NeedsStep,), {"example_params": {"step_size": 0.01}}))
    assert check_sampler(with_example, gaussian=False).ok


def test_untyped_or_unconfigurable_fields_fail_the_contract():
    @dataclass
    class TensorField(Ula):
        scale: torch.Tensor = dataclasses.field(default_factory=lambda: torch.ones(1))

    report = check_sampler(TensorField, gaussian=False)
    assert "which a YAML config cannot give" in _failures(report)["typed hyperparameters"]

    @dataclass
    class WrongDefault(Ula):
        steps: int = 0.5

    assert "expected int, got 0.5" in _failures(check_sampler(WrongDefault, gaussian=False))["typed hyperparameters"]


# -- the other kinds ---------------------------------------------------------------------------------

def test_broken_targets_fail():
    from scorelab_builtins.targets import Gaussian

    @dataclass
    class GlobalRandomGaussian(Gaussian):
        def sample(self, n, generator):
            return torch.randn(n, self.dim, dtype=torch.float64)

    report = check_target(GlobalRandomGaussian)
    assert "same generator seed gave different samples" in _failures(report)[
        "reproducible under a fixed generator, and uses it"]

    @dataclass
    class WrongScore(Gaussian):
        def score(self, x, sigma=0.0):
            return 2 * super().score(x, sigma)

    report = check_target(WrongScore)
    assert "differs from the gradient of log_prob" in _failures(report)["score is the gradient of log_prob"]


def test_broken_metrics_fail():
    from scorelab_builtins.metrics import MeanError

    @dataclass
    class TensorMetric(MeanError):
        def __call__(self, samples, reference, target=None):
            return torch.tensor(super().__call__(samples, reference, target))

    report = check_metric(TensorMetric)
    assert "returns a Python float" in _failures(report)["returns a float; lower for the right distribution"]

    @dataclass
    class HigherIsBetter(MeanError):
        def __call__(self, samples, reference, target=None):
            return -super().__call__(samples, reference, target)

    report = check_metric(HigherIsBetter)
    assert "lower must be better" in _failures(report)["returns a float; lower for the right distribution"]


def test_broken_objectives_and_models_fail():
    from scorelab_builtins.models import MLP
    from scorelab_builtins.objectives import DSM

    @dataclass
    class PerSample(DSM):
        def loss(self, model, batch, generator):
            return super().loss(model, batch, generator).expand(len(batch))

    report = check_objective(PerSample)
    assert "it must return a scalar (0-d) tensor" in _failures(report)[
        "loss is a finite scalar with gradients for the model"]

    class Mixing(torch.nn.Module):
        noise_conditional = False

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def forward(self, x, sigma=None):
            return self.w * (x - x.mean(0))

    @dataclass
    class MixingModel(MLP):
        def build(self, event_shape):
            return Mixing()

    report = check_model(MixingModel)
    assert "changing sample 0 changed the output for other samples" in _failures(report)[
        "samples are independent; deterministic in eval mode"]

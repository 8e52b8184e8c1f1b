"""The contracts of the five plugin kinds, and the checks the host, configs and the kit share.

Every plugin class is a dataclass: its fields are its hyperparameters (typed, with defaults), which
is how configs set them and how runs log them. Besides its methods, a plugin may declare optional
attributes (its *traits*): what it ``requires`` of the score source or target, how the kit should
run it, how a comparison must measure it. Each kind's traits are declared once here, as a typed
record with defaults and one line of meaning per field (:class:`SamplerTraits`, ...), and read in
one place, :func:`traits`; :func:`trait_problems` is the check that registration (on the class),
configs (on each built instance, since a trait may follow the hyperparameters) and the conformance
kit run alike. A trait that is absent, or None, takes its default.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .errors import PluginError

if TYPE_CHECKING:  # annotations only: importing the contracts stays cheap
    import torch

#: What a score source, target or data set can offer, and what plugins may require.
CAPABILITIES = {
    "noise_conditional": "the score can be evaluated at a noise level, s(x, sigma)",
    "exact_score": "the target's exact score is known (analytic targets)",
    "log_prob": "log p(x) is available (analytic targets, energy-parametrised models)",
    "exact_hess_diag": "the exact diagonal of the score Jacobian is known",
    "second_order_head": "a learned head gives the diagonal of the score Jacobian for free",
    "mixture": "the target is a mixture with known components (for mode-weight metrics)",
    "moments": "the target's exact mean and covariance are known",
    "reference": "reference samples to compare against (exact samples, or a data set's held-out split)",
    "data_splits": "the target is a data set split into training and held-out points (train_split(), held_out_split())",
    "labels": "the data set's points have integer class labels (train_labels(), held_out_labels())",
}

KINDS = ("sampler", "objective", "model", "target", "metric")


@runtime_checkable
class Sampler(Protocol):
    """A Markov chain on all chains at once. ``init`` returns a state whose ``x`` holds the chains
    (one batched tensor on the device); ``step`` returns the next state and an Info record of
    per-step diagnostics (a dataclass of tensors). ``budget`` is in cost units (see ScoreOracle).
    A sampler gets scores only through the oracle, which counts and charges every call."""

    def init(self, x0: torch.Tensor, oracle: Any, budget: float) -> Any: ...

    def step(self, state: Any, oracle: Any, generator: torch.Generator) -> tuple[Any, Any]: ...


class DrawsFirst:
    """Base of a sampler whose step draws all its random numbers first: it defines ``draw(state,
    generator)``, the step's random numbers (a tensor or a tuple of them), and ``advance(state, oracle,
    draws)``, the rest of the step, which draws nothing; its ``step`` is one then the other, and is not
    overridden. ``draw`` depends on the state's shapes, dtype and device alone, not on its values or
    step count. A compiled step (:mod:`scorelab.compiled`) runs ``draw`` eagerly and captures
    ``advance`` as one graph: a draw from a ``torch.Generator`` cannot be captured, so a step that
    draws as it goes is captured as one graph per stretch between draws, each called separately. And
    the step loop may make several steps' draws from the state before them, then advance them all in
    one compiled call."""

    def step(self, state: Any, oracle: Any, generator: torch.Generator) -> tuple[Any, Any]:
        return self.advance(state, oracle, self.draw(state, generator))


def draws_first(sampler: Any) -> bool:
    """Whether ``sampler`` (a class or an instance) is a :class:`DrawsFirst` whose step is its ``draw``
    then its ``advance``."""
    cls = sampler if isinstance(sampler, type) else type(sampler)
    return issubclass(cls, DrawsFirst) and cls.step is DrawsFirst.step \
        and all(callable(getattr(cls, m, None)) for m in ("draw", "advance"))


@runtime_checkable
class Objective(Protocol):
    """A training loss: a scalar tensor for a batch of data. Optional: ``noise_levels()`` (the sigmas
    the model learns, 0 for the data itself; used to check the model and to evaluate it) and
    ``bind(target)`` (called before training, for objectives that need the target, e.g. its exact score)."""

    def loss(self, model: torch.nn.Module, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


@runtime_checkable
class Model(Protocol):
    """Builds a score network for data of a given shape; noise-conditional ones are called model(x, sigma).
    The network has a ``noise_conditional`` flag; optional ``second_order`` (with ``score_and_diag(x,
    sigma)``) and ``energy`` (with ``log_prob(x, sigma)``). The model class may list ``provides``."""

    def build(self, event_shape: tuple[int, ...]) -> torch.nn.Module: ...


@runtime_checkable
class Target(Protocol):
    """A distribution or data set. Optional: log_prob(x), score(x, sigma), hess_diag(x, sigma),
    mean and covariance; their presence is what the target ``provides``."""

    event_shape: tuple[int, ...]

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor: ...


@runtime_checkable
class Metric(Protocol):
    """Sample quality against a reference; lower is better. Returns a float."""

    def __call__(self, samples: torch.Tensor, reference: torch.Tensor, target: Any) -> float: ...


REQUIRED_METHODS = {
    "sampler": ("init", "step"),
    "objective": ("loss",),
    "model": ("build",),
    "target": ("sample", "to"),
    "metric": ("__call__",),
}


def _defines(cls: type, method: str) -> bool:
    """Whether ``cls`` or a base other than ``object`` defines ``method``: every class is callable (its
    metaclass's ``__call__`` builds instances), so only the class dicts tell whether instances are."""
    return any(method in vars(base) for base in cls.__mro__ if base is not object)


def contract_problems(kind: str, cls: Any) -> list[str]:
    """What is wrong with ``cls`` as a plugin of ``kind`` (an empty list when nothing is): its shape, and
    the traits it declares on the class (those that follow the hyperparameters are checked per instance)."""
    if not isinstance(cls, type):
        return [f"expected a class, got {type(cls).__name__}"]
    problems = []
    if not dataclasses.is_dataclass(cls):
        problems.append("is not a dataclass (its hyperparameters must be typed dataclass fields)")
    for method in REQUIRED_METHODS[kind]:
        if not callable(getattr(cls, method, None)) or not _defines(cls, method):
            problems.append(f"has no method '{method}'")
    if kind == "sampler" and issubclass(cls, DrawsFirst):
        problems += [f"is a DrawsFirst without a method '{m}' (draw(state, generator) takes the step's random "
                     "numbers, advance(state, oracle, draws) does the rest)"
                     for m in ("draw", "advance") if not callable(getattr(cls, m, None))]
        if cls.step is not DrawsFirst.step:
            problems.append("is a DrawsFirst that overrides step: its step is draw, then advance (a compiled run "
                            "calls those two); put the work in advance")
    return problems + trait_problems(kind, cls)


# -- traits: the optional attributes of each kind ----------------------------------------------------
# A record per kind declares them: type, default, and one line of meaning each (``metadata["help"]``, as
# for a plugin's own fields). A field's ``metadata["read"]`` turns a declared value into the field's type,
# or raises ValueError saying what is wrong with it.

def _capabilities(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, tuple | list | set | frozenset) or not all(
            isinstance(v, str) for v in value):
        raise ValueError(f"must be a tuple of capability names, got {value!r}")
    unknown = sorted(set(value) - CAPABILITIES.keys())
    if unknown:
        raise ValueError(f"unknown capabilities {unknown}; known: {sorted(CAPABILITIES)}")
    return tuple(value)


def _capability_set(value: Any) -> frozenset[str]:
    return frozenset(_capabilities(value))


def _of_type(tp: type, what: str) -> Callable[[Any], Any]:
    def read(value: Any) -> Any:
        if not isinstance(value, tp):
            raise ValueError(f"must be {what}, got {value!r}")
        return value
    return read


def _function(value: Any) -> Callable:
    if not callable(value):
        raise ValueError(f"must be a method, got {value!r}")
    return value


def _settings(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError(f"must be a dict of capability name -> setting (both strings), got {value!r}")
    _capabilities(tuple(value))
    return value


def _trait(default: Any, read: Callable[[Any], Any], meaning: str) -> Any:
    factory = {"default_factory": lambda: type(default)(default)} if isinstance(default, dict) else {"default": default}
    return field(**factory, metadata={"read": read, "help": meaning})


_flag = _of_type(bool, "True or False")


def _requires() -> Any:
    return _trait((), _capabilities, "capabilities it needs (see CAPABILITIES), checked before any work; may "
                  "follow the hyperparameters (set it in __post_init__)")


@dataclass(frozen=True)
class CommonTraits:
    """What a plugin of any kind may declare."""

    name: str = _trait("", _of_type(str, "a string"), "the name it registers under when register() is given none "
                       "(default: its class name in snake_case)")
    example_params: dict = _trait({}, _of_type(dict, "a dict of hyperparameters"), "hyperparameters the "
                                  "conformance kit and check-plugin build it with (an explicit params= wins)")


@dataclass(frozen=True)
class SamplerTraits(CommonTraits):
    """A sampler's optional attributes."""

    requires: tuple[str, ...] = _requires()
    chains_interact: bool = _trait(False, _flag, "chains share information by design (a step adapted on the "
                                   "acceptance averaged over chains): the kit skips 'chains are independent'")
    deterministic: bool = _trait(False, _flag, "it draws no random numbers (an ODE solver): the kit skips its "
                                 "checks that the generator is used")
    host_syncs: str = _trait("", _of_type(str, "a string saying why"), "why step reads device values on the host by "
                             "design ('' when it does not): the kit's no-sync check becomes a skip with this reason")
    compilable: bool = _trait(True, _flag, "its step is tensor work a compiler can capture; False (a host-side "
                              "solver) runs it eagerly whatever the comparison's compile key says")
    keyed_rng: bool = _trait(False, _flag, "it draws through scorelab.rng (normal_draws, uniform_draws) and makes "
                             "its numbers with normal_from and uniform_from, so a comparison's rng: keyed reaches "
                             "it; False: it is given a torch.Generator whatever the comparison's rng key says")
    budget_bound: bool = _trait(False, _flag, "init plans the run from the budget (a schedule split over it): a "
                                "comparison finds its cost to quality by a ladder of budgets, not by replaying")
    stationary_variance: Callable[[float], float] | None = _trait(
        None, _function, "the per-coordinate variance its chains settle at on N(mu, variance) at these "
        "hyperparameters: the kit's Gaussian checks allow sampling error and 2 % around it instead of 10 %")
    check_run: Callable[[int, tuple[int, ...], float], None] | None = _trait(
        None, _function, "check_run(chains, event_shape, budget) raises ValueError for a run these "
        "hyperparameters cannot do: a config refuses it before any work")


@dataclass(frozen=True)
class ObjectiveTraits(CommonTraits):
    """An objective's optional attributes."""

    requires: tuple[str, ...] = _requires()
    noise_levels: Callable[[], Sequence[float]] | None = _trait(
        None, _function, "noise_levels() lists the sigmas the model learns, 0 for the data itself (default [0])")
    bind: Callable[[Any], None] | None = _trait(
        None, _function, "bind(target) is called before training, for objectives that need the target "
        "(its exact score)")


@dataclass(frozen=True)
class ModelTraits(CommonTraits):
    """A model builder's optional attributes."""

    provides: frozenset[str] | None = _trait(
        None, _capability_set, "capabilities its networks have at these hyperparameters (default: "
        "noise_conditional when noise_conditional is true)")
    noise_conditional: bool = _trait(False, _flag, "its networks are called model(x, sigma)")
    provides_with: dict = _trait({}, _settings, "for a capability it can be set to provide, the setting that "
                                 "does it (log_prob: 'energy: true'), named in errors that ask for it")


@dataclass(frozen=True)
class TargetTraits(CommonTraits):
    """A target's optional attributes (its capabilities are ``provides``, part of the Target contract)."""


@dataclass(frozen=True)
class MetricTraits(CommonTraits):
    """A metric's optional attributes."""

    requires: tuple[str, ...] = _requires()
    discrepancy: bool = _trait(True, _flag, "it measures a distance to the reference (its quality floor is "
                               "then a root mean square, and 'reached quality' applies); False for an estimate "
                               "such as a likelihood, whose floor is a mean and which has no quality threshold")


TRAITS: dict[str, type] = {"sampler": SamplerTraits, "objective": ObjectiveTraits, "model": ModelTraits,
                           "target": TargetTraits, "metric": MetricTraits}


def _declared(plugin: Any, key: str) -> Any:
    """What ``plugin`` declares for trait ``key``; None when nothing (or, on a class, a property: its value
    follows the instance's hyperparameters, so only an instance can tell)."""
    if isinstance(plugin, type) and isinstance(inspect.getattr_static(plugin, key, None), property):
        return None
    return getattr(plugin, key, None)


def _read(kind: str, plugin: Any) -> tuple[dict[str, Any], list[str]]:
    values, problems = {}, []
    for f in dataclasses.fields(TRAITS[kind]):
        declared = _declared(plugin, f.name)
        if declared is None:
            continue
        try:
            values[f.name] = f.metadata["read"](declared)
        except ValueError as exc:
            problems.append(f"{f.name} {exc}")
    return values, problems


def trait_problems(kind: str, plugin: Any) -> list[str]:
    """What is wrong with the traits ``plugin`` (a class or an instance) declares as a ``kind``."""
    return _read(kind, plugin)[1]


def declared_name(kind: str, plugin: Any) -> str:
    """The name ``plugin`` declares; '' when it declares none (or one that is not a string, which
    :func:`trait_problems` reports)."""
    return _read(kind, plugin)[0].get("name", "")


def traits(kind: str, plugin: Any) -> Any:
    """The traits of ``plugin`` (an instance, or a class for what it declares on the class) as a ``kind``:
    a :class:`SamplerTraits`, :class:`ObjectiveTraits`, ... with every default filled in. Raises
    :class:`~scorelab.errors.PluginError` naming what is wrong with a declared value.

    >>> traits("metric", object()).discrepancy
    True
    """
    values, problems = _read(kind, plugin)
    if problems:
        label = plugin.__name__ if isinstance(plugin, type) else type(plugin).__name__
        raise PluginError(f"{kind} {label}: " + "; ".join(problems))
    return TRAITS[kind](**values)


def hyperparameters(obj: Any) -> dict[str, Any]:
    """The hyperparameters of a plugin instance, as logged to MLflow."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.init}


def finished(state: Any) -> bool:
    """Whether a sampler's state ends its run before the budget is spent (its optional ``finished``, a
    Python bool, for a sampler with a fixed schedule)."""
    return bool(getattr(state, "finished", False))

"""The contracts of the five plugin kinds, and the check the host runs on every registered class.

Every plugin class is a dataclass: its fields are its hyperparameters (typed, with defaults), which
is how configs set them and how runs log them. Capabilities a plugin relies on are declared in a
class attribute ``requires`` (a tuple of names from :data:`CAPABILITIES`), so a mismatch is a config
error before any work starts instead of a crash mid-run.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, runtime_checkable

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
    """What is wrong with ``cls`` as a plugin of ``kind`` (an empty list when nothing is)."""
    if not isinstance(cls, type):
        return [f"expected a class, got {type(cls).__name__}"]
    problems = []
    if not dataclasses.is_dataclass(cls):
        problems.append("is not a dataclass (its hyperparameters must be typed dataclass fields)")
    for method in REQUIRED_METHODS[kind]:
        if not callable(getattr(cls, method, None)) or not _defines(cls, method):
            problems.append(f"has no method '{method}'")
    unknown = set(getattr(cls, "requires", ())) - CAPABILITIES.keys()
    if unknown:
        problems.append(f"requires unknown capabilities {sorted(unknown)}; known: {sorted(CAPABILITIES)}")
    return problems


def hyperparameters(obj: Any) -> dict[str, Any]:
    """The hyperparameters of a plugin instance, as logged to MLflow."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.init}

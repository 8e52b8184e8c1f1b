"""Help for writing targets: a base class that moves tensor attributes and derives ``provides``."""

from __future__ import annotations

import dataclasses

import torch

from .contracts import traits

_OPTIONAL = {
    "exact_score": "score",
    "log_prob": "log_prob",
    "exact_hess_diag": "hess_diag",
    "mixture": "component_log_probs",
    "data_splits": "train_split",
    "labels": "train_labels",
}


class TargetBase:
    """Subclass with a dataclass of hyperparameters; keep tensors as attributes set in
    ``__post_init__`` and ``to(device, dtype)`` moves them all. ``provides`` lists what the target
    offers, from the methods it defines. An analytic target's ``score(x, sigma)`` is the score of the
    target convolved with N(0, sigma^2 I), so it is noise-conditional too, unless it sets
    ``noise_conditional = False`` (see below)."""

    event_shape: tuple[int, ...]

    #: Whether ``score(x, sigma)`` (and ``log_prob``, ``hess_diag``) is that of the target convolved
    #: with N(0, sigma^2 I) for every sigma >= 0. A target that knows its score only at sigma = 0 sets
    #: ``noise_conditional = False`` as a plain class attribute (no annotation, or it becomes a
    #: dataclass field): ``provides`` then omits ``noise_conditional``, so an oracle refuses a noise
    #: level, configs refuse samplers that require one, and the conformance kit checks that its methods
    #: refuse sigma != 0 (see :meth:`check_noiseless`) instead of checking a noisy score.
    noise_conditional: bool = True

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        for key, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                to_dtype = dtype if (dtype is not None and value.is_floating_point()) else value.dtype
                setattr(self, key, value.to(device=device, dtype=to_dtype))
        return self

    @property
    def provides(self) -> frozenset[str]:
        caps = {cap for cap, method in _OPTIONAL.items() if callable(getattr(self, method, None))}
        if "exact_score" in caps and self.noise_conditional:
            caps.add("noise_conditional")
        if getattr(self, "mean", None) is not None and getattr(self, "covariance", None) is not None:
            caps.add("moments")
        return frozenset(caps)

    def check_noiseless(self, sigma) -> None:
        """Raise ``ValueError`` unless ``sigma`` is 0: for the methods of a target with
        ``noise_conditional = False``, which would otherwise pass the sigma = 0 answer off as the
        noisy one. A Python number is checked on the host for free; a tensor is read (a host sync)."""
        if isinstance(sigma, int | float) and sigma == 0:
            return
        if isinstance(sigma, torch.Tensor) and not bool(sigma.ne(0).any()):
            return
        raise ValueError(
            f"target {traits('target', self).name or type(self).__name__!r} is not noise-conditional: it has no "
            f"closed-form score of its density convolved with N(0, sigma^2 I), so sigma must be 0 (got {sigma!r})")

    @property
    def dim(self) -> int:
        n = 1
        for s in self.event_shape:
            n *= s
        return n

    def describe(self) -> dict:
        """Hyperparameters, for run params."""
        if not dataclasses.is_dataclass(self):
            return {}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

"""Known answers the checks run plugins against, and the meters that watch what a sampler pays.

- :class:`DiagonalGaussian`: N(mu, diag(v)) over any event shape, as a score source that offers every
  capability a sampler may require (exact noisy score, log density, exact and "learned" curvature).
- :class:`CountingSource` and :class:`CountingOracle`: the source a sampler's oracle wraps counts the
  calls that actually reach it, so they can be compared with what the oracle charged, and notes the
  calls that reach it, or the target behind it, with no oracle call in progress (unpaid).
- :class:`DiagonalMixture`: a two-mode mixture with exact moments and mode weights, for metrics.
- :class:`TinyScoreModel`: a linear score network with the built-in call convention, for objectives.
"""

from __future__ import annotations

import math
from collections import Counter

import torch
import torch.autograd.forward_ad as fwAD
from torch import nn

from scorelab.oracle import ScoreOracle

SAMPLER_CAPABILITIES = frozenset(
    {"noise_conditional", "exact_score", "log_prob", "exact_hess_diag", "second_order_head", "moments"})


def _per_chain(sigma, x: torch.Tensor) -> torch.Tensor | float:
    """sigma as something that broadcasts against x: a number, or a per-chain tensor reshaped (n, 1, ...)."""
    if sigma is None:
        return 0.0
    if isinstance(sigma, torch.Tensor) and sigma.ndim > 0:
        return sigma.reshape(-1, *([1] * (x.ndim - 1)))
    return sigma


class DiagonalGaussian:
    """N(mean, diag(variance)) with ``mean`` and ``variance`` tensors of the event shape.

    ``score(x, sigma)`` is the exact score of the target convolved with N(0, sigma^2 I).
    """

    provides = SAMPLER_CAPABILITIES

    def __init__(self, mean: torch.Tensor, variance: torch.Tensor):
        self.mean, self.variance = mean, variance
        self.event_shape = tuple(mean.shape)

    def to(self, device=None, dtype=None) -> DiagonalGaussian:
        return DiagonalGaussian(self.mean.to(device=device, dtype=dtype), self.variance.to(device=device, dtype=dtype))

    def _var(self, x, sigma):
        s = _per_chain(sigma, x)
        return self.variance + s * s

    def score(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        return -(x - self.mean) / self._var(x, sigma)

    def hess_diag(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        return (-1.0 / self._var(x, sigma)).expand_as(x)

    def score_and_diag(self, x: torch.Tensor, sigma=None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.score(x, sigma), self.hess_diag(x, sigma)

    def log_prob(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        var = self._var(x, sigma)
        terms = (x - self.mean) ** 2 / var + torch.log(2 * math.pi * var)
        return -0.5 * terms.expand_as(x).reshape(len(x), -1).sum(1)

    def log_prob_and_score(self, x: torch.Tensor, sigma=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Both from one evaluation, as the oracle charges one NFE for them."""
        var = self._var(x, sigma)
        diff = x - self.mean
        score = -diff / var
        terms = -diff * score + torch.log(2 * math.pi * var)
        return -0.5 * terms.expand_as(x).reshape(len(x), -1).sum(1), score


class _Watch:
    """What the kit's oracle is doing, shared by it, its source and the target behind that: a call that
    reaches the source or the target while no oracle call is in progress was not paid for."""

    def __init__(self):
        self.active = 0  # oracle calls in progress
        self.product = 0  # VJPs and JVPs in progress
        self.unpaid: Counter[str] = Counter()  # "the score source's score" -> calls made outside the oracle
        self.differentiated: Counter[str] = Counter()  # oracle method -> calls given derivative-carrying tensors


def _carries_derivatives(value) -> bool:
    """A tensor through which a caller hopes to differentiate: it requires grad (with grad enabled), is a
    forward-mode dual, or is traced by a torch.func transform (grad, vjp, jvp)."""
    if not isinstance(value, torch.Tensor):
        return False
    traced = getattr(torch._C._functorch, "is_gradtrackingtensor", None)
    return ((value.requires_grad and torch.is_grad_enabled()) or fwAD.unpack_dual(value).tangent is not None
            or bool(traced and traced(value)))


class WatchedTarget:
    """A target (or source) whose score, log density and curvature note the calls made while no oracle
    call is in progress; every other attribute is the target's own."""

    WATCHED = frozenset({"score", "log_prob", "hess_diag", "score_and_diag", "log_prob_and_score"})

    def __init__(self, target, watch: _Watch):
        self._target, self._watch = target, watch

    def __getattr__(self, name: str):
        if name in ("_target", "_watch"):  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        value = getattr(self._target, name)
        if name not in self.WATCHED:
            return value
        watch = self._watch

        def watched(*args, **kwargs):
            if not watch.active:
                watch.unpaid[f"the target's {name}"] += 1
            return value(*args, **kwargs)

        return watched


class CountingSource:
    """Wraps a source and counts the calls that reach it: the calls a sampler actually made.

    ``watch`` is shared with the :class:`CountingOracle` around it, which raises ``watch.active`` for
    the length of every call (so a call that arrives at other times was not paid for) and
    ``watch.product`` while it computes a VJP or JVP (so a score evaluated inside one is counted as part
    of that product). ``target`` is the source as a watched target, where
    :class:`scorelab.sources.ExactScore` keeps its target.
    """

    def __init__(self, source):
        self.__inner = source
        self.watch = _Watch()
        self.target = WatchedTarget(source, self.watch)
        self.provides = source.provides
        self.reset()

    def reset(self) -> None:
        self.scores = 0  # evaluations outside VJPs and JVPs
        self.products = 0  # VJPs and JVPs (one score evaluation each, under a torch.func transform)
        self.curvature = 0
        self.score_and_diag_calls = 0
        self.log_prob_calls = 0

    def _arrive(self, name: str) -> None:
        if not self.watch.active:
            self.watch.unpaid[f"the score source's {name}"] += 1

    def score(self, x, sigma=None):
        self._arrive("score")
        if self.watch.product:
            self.products += 1
        else:
            self.scores += 1
        return self.__inner.score(x, sigma)

    def hess_diag(self, x, sigma=None):
        self._arrive("hess_diag")
        self.curvature += 1
        return self.__inner.hess_diag(x, sigma)

    def score_and_diag(self, x, sigma=None):
        self._arrive("score_and_diag")
        self.score_and_diag_calls += 1
        return self.__inner.score_and_diag(x, sigma)

    def log_prob_and_score(self, x):
        self._arrive("log_prob_and_score")
        self.log_prob_calls += 1
        return self.__inner.log_prob_and_score(x)

    @property
    def evaluations(self) -> int:
        """Calls the oracle charges as one NFE each."""
        return self.scores + self.score_and_diag_calls + self.log_prob_calls


class CountingOracle(ScoreOracle):
    """A ScoreOracle (same methods, same counts, same cost) that tells its CountingSource when one of
    its calls is in progress and when that call is a VJP or JVP, and notes calls given tensors that
    carry derivatives (the oracle cuts them, so whoever passed them gets nothing back)."""

    __slots__ = ("__watch",)

    def __init__(self, source: CountingSource, weights=None):
        super().__init__(source, *(() if weights is None else (weights,)))
        self.__watch = source.watch

    def __paid(self, name: str, method, *args, product: bool = False, **kwargs):
        watch = self.__watch
        if any(_carries_derivatives(a) for a in args):
            watch.differentiated[f"oracle.{name}"] += 1
        watch.active += 1
        watch.product += product
        try:
            return method(*args, **kwargs)
        finally:
            watch.active -= 1
            watch.product -= product

    def score(self, x, sigma=None):
        return self.__paid("score", super().score, x, sigma)

    def vjp(self, x, v, sigma=None):
        return self.__paid("vjp", super().vjp, x, v, sigma, product=True)

    def jvp(self, x, v, sigma=None):
        return self.__paid("jvp", super().jvp, x, v, sigma, product=True)

    def hess_diag(self, x, sigma=None, **kwargs):
        return self.__paid("hess_diag", super().hess_diag, x, sigma, **kwargs)

    def exact_hess_diag(self, x, sigma=None):
        return self.__paid("exact_hess_diag", super().exact_hess_diag, x, sigma)

    def score_and_learned_diag(self, x, sigma=None):
        return self.__paid("score_and_learned_diag", super().score_and_learned_diag, x, sigma)

    def log_prob_and_score(self, x):
        return self.__paid("log_prob_and_score", super().log_prob_and_score, x)


class DiagonalMixture:
    """sum_k w_k N(means_k, diag(variances_k)) in d dimensions, with everything a metric may ask for:
    exact moments, mode assignment (``component_log_probs``), log density and exact noisy score."""

    provides = frozenset({"exact_score", "noise_conditional", "log_prob", "mixture", "moments"})
    name = "kit_mixture"

    def __init__(self, weights, means, variances, dtype=torch.float64, device=None):
        kw = {"dtype": dtype, "device": device}
        self.mixture_weights = torch.as_tensor(weights, **kw)
        self.means = torch.as_tensor(means, **kw)
        self.variances = torch.as_tensor(variances, **kw)
        self.event_shape = (self.means.shape[1],)

    def to(self, device=None, dtype=None) -> DiagonalMixture:
        dtype = dtype or self.means.dtype
        return DiagonalMixture(self.mixture_weights, self.means, self.variances, dtype, device)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        k = torch.multinomial(self.mixture_weights, n, replacement=True, generator=generator)
        z = torch.randn((n, self.event_shape[0]), generator=generator, dtype=self.means.dtype,
                        device=self.means.device)
        return self.means[k] + z * self.variances[k].sqrt()

    def component_log_probs(self, x: torch.Tensor, sigma=0.0) -> torch.Tensor:
        var = self.variances[None] + sigma**2  # (1, K, d)
        diff = x[:, None] - self.means[None]
        logn = -0.5 * (diff * diff / var + torch.log(2 * math.pi * var)).sum(-1)
        return torch.log(self.mixture_weights) + logn

    def log_prob(self, x: torch.Tensor, sigma=0.0) -> torch.Tensor:
        return torch.logsumexp(self.component_log_probs(x, sigma), dim=1)

    def score(self, x: torch.Tensor, sigma=0.0) -> torch.Tensor:
        r = torch.softmax(self.component_log_probs(x, sigma), dim=1)  # (n, K)
        g = -(x[:, None] - self.means[None]) / (self.variances[None] + sigma**2)
        return (r[..., None] * g).sum(1)

    @property
    def mean(self) -> torch.Tensor:
        return self.mixture_weights @ self.means

    @property
    def covariance(self) -> torch.Tensor:
        w, mu = self.mixture_weights, self.means
        second = torch.einsum("k,kd,ke->de", w, mu, mu) + torch.diag(w @ self.variances)
        return second - torch.outer(self.mean, self.mean)


class TinyScoreModel(nn.Module):
    """s(x, sigma) = (A x + b) / (1 + sigma^2) on flattened x, with the built-in networks' call
    convention: flags ``noise_conditional`` (then ``forward(x, sigma)``, sigma a number or one per
    sample) and ``second_order`` (then ``score_and_diag(x, sigma)`` adds a learned diagonal c)."""

    energy = False

    def __init__(self, event_shape: tuple[int, ...], generator: torch.Generator, *,
                 noise_conditional: bool = False, second_order: bool = False):
        super().__init__()
        d = math.prod(event_shape)
        self.event_shape = tuple(event_shape)
        self.noise_conditional, self.second_order = noise_conditional, second_order
        self.A = nn.Parameter(-torch.eye(d) + 0.1 * torch.randn(d, d, generator=generator))
        self.b = nn.Parameter(0.1 * torch.randn(d, generator=generator))
        self.c = nn.Parameter(-torch.ones(d))

    def _scale(self, x: torch.Tensor, sigma) -> torch.Tensor | float:
        if sigma is None:
            return 1.0
        s = _per_chain(torch.as_tensor(sigma, dtype=x.dtype, device=x.device), x)
        return 1 / (1 + s * s)

    def forward(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        out = (x.reshape(len(x), -1) @ self.A.T + self.b).reshape(x.shape)
        return out * self._scale(x, sigma)

    def score_and_diag(self, x: torch.Tensor, sigma=None) -> tuple[torch.Tensor, torch.Tensor]:
        return self(x, sigma), self.c.reshape(self.event_shape).expand_as(x) * self._scale(x, sigma)

"""Integrators of the Langevin diffusion dx = M s(x) dt + sqrt(2M) dW: one step from x, given s(x).

- ``euler_maruyama``: x + h (M s(x) + Gamma) + sqrt(2h) M^(1/2) z, with M the identity, a diagonal
  (a tensor broadcast against x) or a metric (``preconditioners``); Gamma the divergence of a
  position-dependent M, where a sampler accounts for it.
- ``local_linearisation`` (Ozaki): the linear SDE fitted at x, with diagonal curvature c, solved exactly.
- ``euler_heun``: the Euler–Maruyama and stochastic Heun steps from the same Brownian increment, the
  pair an error control compares.

Every function is pure and draws nothing: the noise comes in (``normal_like`` draws it from the run's
generator; a step that draws first takes ``normal_draws`` and turns them into normals with
``normal_from``), so a sampler decides the order of its random draws. Each case keeps one arithmetic
form (operation order, sqrt or power, fused or not): the forms round differently, and the built-in
samplers are pinned bitwise to the form each had before the kernels were shared.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from scorelab import rng


def normal_like(x: torch.Tensor, generator: torch.Generator | rng.KeyedStream) -> torch.Tensor:
    """z ~ N(0, I) of x's shape, dtype and device, from ``generator``: ``normal_from(normal_draws(x,
    generator), x)``.

    On the CPU in float64 the numbers come from :func:`box_muller`: torch's own float64 normals are
    drawn one element at a time there (17-24 ns each on one core, ``benchmarks/kernels_vs_xla.py``;
    float32 and CUDA draws are vectorised and stay torch's)."""
    return normal_from(normal_draws(x, generator), x)


def normal_draws(x: torch.Tensor, generator: torch.Generator | rng.KeyedStream) -> torch.Tensor:
    """What :func:`normal_like` takes from ``generator``: uniform pairs on the CPU in float64, the normals
    themselves otherwise, and a ticket from a keyed stream (:mod:`scorelab.rng`). A sampler that draws
    first (``scorelab.DrawsFirst``) draws these, and its ``advance`` turns them into normals with
    :func:`normal_from`, inside its compiled graph."""
    if isinstance(generator, rng.KeyedStream) or not (x.dtype == torch.float64 and x.device.type == "cpu"):
        return rng.normal_draws(x, generator)
    return uniform_pairs(x.numel(), generator)


def normal_from(draws: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Standard normals of x's shape from :func:`normal_draws`' numbers (drawn for x)."""
    if x.dtype == torch.float64 and x.device.type == "cpu" and not rng.is_ticket(draws):
        return box_muller(draws, x.shape)
    return rng.normal_from(draws, x)


def uniform_pairs(n: int, generator: torch.Generator) -> torch.Tensor:
    """(2, ceil(n / 2)) float64 uniforms in [0, 1) with 53 random bits, on the CPU: the (u, v) pairs
    :func:`box_muller` turns into ``n`` normals."""
    return torch.rand((2, (n + 1) // 2), generator=generator, dtype=torch.float64)


def box_muller(uv: torch.Tensor, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """Standard normals of ``shape`` from uniform pairs (u, v) (:func:`uniform_pairs`) by the
    Box–Muller transform, as whole-tensor operations a compiled step fuses: r = sqrt(-2 log(1 - u))
    and t = 2 pi v give the independent normals r cos t and r sin t. With 53-bit u the largest |z|
    is sqrt(2 log 2^53) = 8.6, as for torch's own float64 draws."""
    return torch.cat(rng.box_muller_pair(uv[0], uv[1]))[: math.prod(shape)].reshape(shape)


def _sqrt(v):
    return math.sqrt(v) if isinstance(v, int | float) else torch.sqrt(v)


def euler_maruyama(x: torch.Tensor, score: torch.Tensor, h, z: torch.Tensor, m=None, *,
                   divergence: torch.Tensor | None = None, fused: bool = False) -> torch.Tensor:
    """x + h (M s + Gamma) + sqrt(2h) M^(1/2) z: one Euler–Maruyama step of preconditioned Langevin.

    ``h`` is a float or a tensor broadcast against x (one step per chain, or per coordinate: a
    diagonal M that scales drift and noise alike may be passed as the effective step h M). ``m`` is
    None (M = I), a tensor (diagonal M) or a metric with ``mul`` and ``sqrt_mul`` acting on chains
    flattened to (n, d). ``fused`` (float h, M = I only) adds in place with fused multiply-adds: two
    fewer temporaries, and rounding of its own.

    >>> x, s, z = torch.zeros(2, 3), torch.ones(2, 3), torch.zeros(2, 3)
    >>> euler_maruyama(x, s, 0.5, z)[0].tolist()
    [0.5, 0.5, 0.5]
    """
    if fused:
        return torch.add(x, score, alpha=h).add_(z, alpha=math.sqrt(2 * h))
    noise = _noise(h, z, m)
    if divergence is not None:
        return x + h * (precondition(score, m) + divergence) + noise
    if isinstance(m, torch.Tensor):
        return x + h * m * score + noise  # (h M) s: the effective step times the score
    return x + h * precondition(score, m) + noise


def precondition(v: torch.Tensor, m=None) -> torch.Tensor:
    """M v for M = I (None), a diagonal tensor, or a metric."""
    if m is None:
        return v
    return m * v if isinstance(m, torch.Tensor) else m.mul(v)


def _noise(h, z: torch.Tensor, m) -> torch.Tensor:
    """sqrt(2h) M^(1/2) z."""
    if m is None:
        return _sqrt(2 * h) * z
    if isinstance(m, torch.Tensor):
        return torch.sqrt(2 * h * m) * z
    return (2 * h) ** 0.5 * m.sqrt_mul(z)


def local_linearisation(x: torch.Tensor, score: torch.Tensor, c: torch.Tensor, h: float,
                        z: torch.Tensor) -> torch.Tensor:
    """The Ozaki step: dy = (s(x) - c (y - x)) dt + sqrt(2) dW solved exactly over h, elementwise,

        x + (1 - exp(-h c)) / c * s(x) + sqrt((1 - exp(-2 h c)) / c) * z,

    for a curvature c > 0 (clipped and damped). ULA with step h where c -> 0; N(x + s/c, 1/c) where h c >> 1."""
    mean_gain = -torch.expm1(-h * c) / c  # accurate as hc -> 0
    variance = -torch.expm1(-2 * h * c) / c
    return x + mean_gain * score + variance.sqrt() * z


def euler_heun(x: torch.Tensor, score: torch.Tensor, h, noise: torch.Tensor,
               score_at: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_EM, x_Heun) from the same noise sqrt(2M) dW (one more score, at x_EM):

        x_EM = x + h s(x) + noise,    x_Heun = x + h (s(x) + s(x_EM)) / 2 + noise."""
    x_em = x + h * score + noise
    return x_em, x + 0.5 * h * (score + score_at(x_em)) + noise

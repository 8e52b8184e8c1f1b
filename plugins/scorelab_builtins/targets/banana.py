"""``banana``: the twisted Gaussian, a 2-D density along a curved ridge.

With s = ``scale`` and b = ``curvature``,

    x1 ~ N(0, s^2),    x2 | x1 ~ N(b (x1^2 - s^2), 1),

    log p(x) = -x1^2 / (2 s^2) - u^2 / 2 - log(2 pi s),    u = x2 - b (x1^2 - s^2).

It tests a sampler on a curved ridge: the density is narrow (width 1) across a parabola and wide
(s) along it, and the direction and stiffness of the ridge change along the chain. The score is
(-x1 / s^2 + 2 b x1 u, -u); the Hessian diagonal is (-1 / s^2 + 2 b u - 4 b^2 x1^2, -1), so the
stiffness in x1 grows like 4 b^2 x1^2 out along the arms (37 times 1 / s^2 at x1 = s, 145 times at
x1 = 2 s with the defaults), and a step size or preconditioner fitted near the middle fails at the
tips. log p is not concave: the x1 entry is positive on the inner side of the ridge near its middle
(u > (1 / s^2 + 4 b^2 x1^2) / (2 b), about 0.17 at x1 = 0), so a curvature preconditioner must
clamp it.

Exact moments: E x = 0, since E x2 = b (E x1^2 - s^2) = 0; Cov(x1, x2) = b E x1^3 = 0;
Var x2 = 1 + b^2 Var(x1^2) = 1 + 2 b^2 s^4. With the defaults (b = 0.03, s = 10) the covariance is
diag(100, 19). The moments miss the curvature altogether: a Gaussian with this covariance is a
different distribution, which is what a moment metric cannot see and a score-based one can.

Not noise-conditional: the density convolved with N(0, sigma^2 I) has no closed form, so ``score``,
``log_prob`` and ``hess_diag`` take sigma = 0 only.

Reference: H. Haario, E. Saksman and J. Tamminen, "Adaptive proposal distribution for random walk
Metropolis algorithm", Computational Statistics 14(3), 375-395 (1999); their twisted Gaussian is this
density mirrored (x2 -> -x2), with unit-variance coordinates added in higher dimensions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._noiseless import NoiselessTarget


@dataclass
class Banana(NoiselessTarget):
    curvature: float = 0.03  # b: the ridge x2 = b (x1^2 - s^2); 0 is an axis-aligned Gaussian
    scale: float = 10.0  # s: standard deviation of x1 along the ridge (across it, x2 has 1)

    name = "banana"

    def __post_init__(self):
        if not (math.isfinite(self.curvature) and self.curvature >= 0):
            raise ValueError(f"curvature must be >= 0 (and finite), got {self.curvature}")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"scale must be > 0 (and finite), got {self.scale}")
        self.event_shape = (2,)
        dtype = torch.float64  # built exactly; the runner casts to the run's dtype
        b, s2 = self.curvature, self.scale**2
        self._mean = torch.zeros(2, dtype=dtype)
        self._variances = torch.tensor([s2, 1 + 2 * b * b * s2 * s2], dtype=dtype)

    def _parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x1 and u = x2 - b (x1^2 - s^2), the offset from the ridge."""
        x1, x2 = x[..., 0], x[..., 1]
        return x1, x2 - self.curvature * (x1 * x1 - self.scale**2)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        like = self._mean
        z = torch.randn((n, 2), generator=generator, device=like.device, dtype=like.dtype)
        x1 = self.scale * z[:, 0]
        return torch.stack([x1, self.curvature * (x1 * x1 - self.scale**2) + z[:, 1]], -1)

    def _log_prob(self, x1: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return -0.5 * (x1 * x1 / self.scale**2 + u * u) - math.log(2 * math.pi * self.scale)

    def _score(self, x1: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return torch.stack([-x1 / self.scale**2 + 2 * self.curvature * x1 * u, -u], -1)

    def _hess_diag(self, x1: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        b = self.curvature
        h11 = -1 / self.scale**2 + 2 * b * u - 4 * b * b * x1 * x1
        return torch.stack([h11, torch.full_like(u, -1.0)], -1)

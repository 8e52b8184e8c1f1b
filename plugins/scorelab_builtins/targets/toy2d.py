"""2-D toy data sets generated in code: ``two_moons``, ``swiss_roll``, ``checkerboard``, ``rings``.

Each draws ``size`` points once from ``seed`` (float64), adds Gaussian ``noise``, and splits off a
``held_out`` fraction (see ``_dataset``). Shapes follow the usual definitions (scikit-learn's
``make_moons``; the FFJORD checkerboard and rings); all lie within about [-3, 3]^2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._dataset import DataSetTarget


@dataclass
class _Toy2D(DataSetTarget):
    """The fields every toy set has; a subclass re-declares one only to change its default."""

    size: int = 10_000  # points drawn once, before the held-out split
    noise: float = 0.05  # standard deviation of the Gaussian noise added to each point
    held_out: float = 0.2  # fraction split off once as the reference sample set for metrics
    seed: int = 0  # seed of the draw and of the split

    def __post_init__(self):
        self._check_split()
        if self.size < 2:
            raise ValueError(f"size must be >= 2, got {self.size}")
        if self.noise < 0:
            raise ValueError(f"noise must be >= 0, got {self.noise}")
        g = torch.Generator().manual_seed(self.seed)
        points = self._draw(self.size, g)
        self._set_points(points + self.noise * torch.randn(points.shape, generator=g, dtype=torch.float64))

    def _draw(self, n: int, g: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


def _u(n, g):
    return torch.rand(n, generator=g, dtype=torch.float64)


@dataclass
class TwoMoons(_Toy2D):
    name = "two_moons"

    def _draw(self, n, g):
        t = math.pi * _u(n, g)
        upper = torch.rand(n, generator=g) < 0.5
        x = torch.where(upper, t.cos(), 1 - t.cos())
        y = torch.where(upper, t.sin(), 0.5 - t.sin())
        return torch.stack([x - 0.5, y - 0.25], -1) * 1.5


@dataclass
class SwissRoll(_Toy2D):
    name = "swiss_roll"

    def _draw(self, n, g):
        t = 1.5 * math.pi * (1 + 2 * _u(n, g))
        return torch.stack([t * t.cos(), t * t.sin()], -1) / 5


@dataclass
class Checkerboard(_Toy2D):
    noise: float = 0.0  # standard deviation of the Gaussian noise added (0: sharp squares)

    name = "checkerboard"

    def _draw(self, n, g):
        x1 = 4 * _u(n, g) - 2
        x2 = _u(n, g) - 2 * torch.randint(0, 2, (n,), generator=g).double() + torch.floor(x1) % 2
        return torch.stack([x1, x2], -1) * 1.5


@dataclass
class Rings(_Toy2D):
    rings: int = 4  # concentric circles, radii evenly spaced up to 3

    name = "rings"

    def _draw(self, n, g):
        if self.rings < 1:
            raise ValueError(f"rings must be >= 1, got {self.rings}")
        radii = torch.arange(1, self.rings + 1, dtype=torch.float64) * 3 / self.rings
        k = torch.multinomial(radii / radii.sum(), n, replacement=True, generator=g)  # even density per length
        t = 2 * math.pi * _u(n, g)
        return radii[k, None] * torch.stack([t.cos(), t.sin()], -1)

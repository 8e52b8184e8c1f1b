"""``gaussian``: N(mean, Sigma) in any dimension, with a chosen condition number.

Sigma = Q diag(v) Q^T with variances v log-spaced from ``scale**2`` down to ``scale**2 /
condition_number``; Q is the identity, or (``rotate``) a fixed random orthogonal matrix drawn from
``rotation_seed``. Ill-conditioned and rotated Gaussians are the standard test of preconditioning:
a diagonal preconditioner can undo the first and not the second.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._base import MixtureTarget

#: The largest rotated Gaussian: its dim x dim rotation costs dim^3 work to draw and dim^2 per chain
#: per score, so beyond this the target alone would stall a comparison.
MAX_ROTATED_DIM = 4096


@dataclass
class Gaussian(MixtureTarget):
    dim: int = 2  # dimension d
    condition_number: float = 1.0  # largest / smallest variance (>= 1), variances log-spaced between
    scale: float = 1.0  # standard deviation of the widest direction
    mean_value: float = 0.0  # every coordinate's mean
    rotate: bool = False  # turn the axes by a fixed random rotation (no diagonal preconditioner undoes it)
    rotation_seed: int = 0  # seed of the rotation

    name = "gaussian"

    def __post_init__(self):
        if self.dim < 1:
            raise ValueError(f"dim must be >= 1, got {self.dim}")
        if self.condition_number < 1:
            raise ValueError(f"condition_number must be >= 1, got {self.condition_number}")
        if self.scale <= 0:
            raise ValueError(f"scale must be > 0, got {self.scale}")
        if self.rotate and self.dim > MAX_ROTATED_DIM:
            raise ValueError(f"rotate needs dim <= {MAX_ROTATED_DIM} (the rotation is a dense dim x dim matrix, "
                             f"drawn by a QR factorisation), got {self.dim}")
        exps = torch.linspace(0.0, 1.0, self.dim, dtype=torch.float64)
        variances = self.scale**2 * float(self.condition_number) ** (-exps)
        Q = None
        if self.rotate:
            g = torch.Generator().manual_seed(self.rotation_seed)
            A = torch.randn(self.dim, self.dim, generator=g, dtype=torch.float64)
            Q, R = torch.linalg.qr(A)
            Q = Q * torch.sign(torch.diagonal(R))  # Haar-distributed
        mean = torch.full((1, self.dim), self.mean_value)
        self._set_components([1.0], mean, None if Q is None else Q[None], variances[None])

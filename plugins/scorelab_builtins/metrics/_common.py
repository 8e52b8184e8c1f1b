"""What every metric does to its inputs: flatten to (n, d), move to one device in float64, check shapes."""

from __future__ import annotations

import torch


def as_matrix(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` as an (n, d) float64 matrix on ``device``; images and other event shapes are flattened."""
    return x.detach().reshape(len(x), -1).to(device=device, dtype=torch.float64)


def pair(samples: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples and reference as float64 matrices on the samples' device, checked to share a dimension."""
    x, y = as_matrix(samples, samples.device), as_matrix(reference, samples.device)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"samples have dimension {x.shape[1]}, the reference {y.shape[1]}")
    return x, y


def finite(x: torch.Tensor) -> bool:
    """Whether every entry is finite. Metrics return nan for diverged chains rather than a number
    that looks meaningful (an argmax or a sort would happily rank NaNs)."""
    return bool(torch.isfinite(x).all())


def subsample(x: torch.Tensor, max_points: int, generator: torch.Generator) -> torch.Tensor:
    """At most ``max_points`` rows of ``x`` without replacement. The permutation is drawn on the CPU
    so the choice does not depend on the device."""
    if len(x) <= max_points:
        return x
    idx = torch.randperm(len(x), generator=generator)[:max_points]
    return x[idx.to(x.device)]

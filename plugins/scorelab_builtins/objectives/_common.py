"""What the objectives share: calling a network with or without a noise level, noising a batch,
per-sample squared norms, projection vectors. Losses are means over the batch of per-sample values,
with the conventional 1/2 on squared norms (so ESM = 1/2 E|s - grad log p|^2)."""

from __future__ import annotations

from typing import Literal

import torch


def call(model, x: torch.Tensor, sigma) -> torch.Tensor:
    """The model's score at x: s(x, sigma) for noise-conditional networks, s(x) otherwise."""
    return model(x, sigma) if model.noise_conditional else model(x)


def call_with_diag(model, x: torch.Tensor, sigma) -> tuple[torch.Tensor, torch.Tensor]:
    """(score, learned Hessian diagonal) from a network with a second-order head."""
    if not callable(getattr(model, "score_and_diag", None)) or not getattr(model, "second_order", False):
        raise ValueError("this objective needs a network with a second-order head (second_order: true)")
    return model.score_and_diag(x, sigma) if model.noise_conditional else model.score_and_diag(x)


def sq(x: torch.Tensor) -> torch.Tensor:
    """Per-sample squared norm over the event dims, shape (n,)."""
    return x.reshape(len(x), -1).pow(2).sum(-1)


def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample inner product over the event dims, shape (n,)."""
    return (a * b).reshape(len(a), -1).sum(-1)


def randn(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


def per_sample(sigma: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """An (n,) tensor of noise levels shaped to broadcast over ``like``'s event dims."""
    return sigma.reshape(-1, *([1] * (like.ndim - 1)))


def perturb(batch: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """batch + sigma * z (the data itself when sigma is 0: nothing is drawn)."""
    return batch if sigma == 0 else batch + sigma * randn(batch, generator)


def projections(like: torch.Tensor, kind: Literal["gaussian", "rademacher"], generator) -> torch.Tensor:
    """Random directions v with E[v v^T] = I: standard normal, or +-1 entries."""
    if kind == "gaussian":
        return randn(like, generator)
    bits = torch.randint(0, 2, like.shape, generator=generator, device=like.device)
    return bits.to(like.dtype) * 2 - 1


def check_sigma(sigma: float, *, positive: bool = False) -> None:
    if sigma < 0 or (positive and sigma == 0):
        raise ValueError(f"sigma must be {'> 0' if positive else '>= 0'}, got {sigma}")


#: The most noise levels an objective trains: the schedule is a list, built whole when the config is
#: checked, so a typo such as 10^18 would hang the check instead of being refused.
MAX_LEVELS = 10_000


def check_levels(sigma_max: float, sigma_min: float, levels: int) -> None:
    if not 0 < sigma_min <= sigma_max:
        raise ValueError(f"need 0 < sigma_min <= sigma_max, got {sigma_min} and {sigma_max}")
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    if levels > MAX_LEVELS:
        raise ValueError(f"levels must be <= {MAX_LEVELS}, got {levels}")
    if levels > 1 and sigma_min == sigma_max:
        raise ValueError("several levels need sigma_min < sigma_max")


def draw_levels(sigmas: list[float], batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One noise level per sample, uniform over ``sigmas``, shape (n,)."""
    table = torch.tensor(sigmas, dtype=batch.dtype, device=batch.device)
    if len(sigmas) == 1:
        return table.expand(len(batch))
    return table[torch.randint(0, len(sigmas), (len(batch),), generator=generator, device=batch.device)]

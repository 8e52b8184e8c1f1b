"""Shapes of per-chain quantities: chains are the first dimension of every state tensor."""

from __future__ import annotations

import torch


def batch_shape(x: torch.Tensor) -> tuple[int, ...]:
    """Shape of a per-chain quantity broadcast against ``x``: (n, 1, ..., 1)."""
    return (x.shape[0],) + (1,) * (x.ndim - 1)


def chain_norm(x: torch.Tensor) -> torch.Tensor:
    """Euclidean norm of each chain's state, shaped to broadcast against ``x``."""
    return x.flatten(1).norm(dim=1).reshape(batch_shape(x))

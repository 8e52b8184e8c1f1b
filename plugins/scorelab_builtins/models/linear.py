"""``linear``: the score model s(x) = A x + b, the exact family for Gaussian data.

Each objective's optimum over this family has a closed form on Gaussian data (the score of the
data, or of the noised data for denoising objectives), which is what the objective tests check; as a
trained source it is a Gaussian fit. Starts at A = -I / data_scale^2, b = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._net import event_size


class LinearScore(nn.Module):
    noise_conditional = False
    energy = False
    second_order = False

    def __init__(self, event_shape, data_scale: float):
        super().__init__()
        d = event_size(event_shape)
        self.event_shape = tuple(event_shape)
        self.A = nn.Parameter(-torch.eye(d) / data_scale**2)
        self.b = nn.Parameter(torch.zeros(d))

    def forward(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        flat = x.reshape(len(x), -1)
        return (flat @ self.A.T + self.b).reshape(x.shape)


@dataclass
class Linear:
    data_scale: float = 1.0  # the data's typical spread, > 0: training starts at A = -I / data_scale^2, b = 0

    name = "linear"
    noise_conditional = False
    provides = frozenset()

    def __post_init__(self):
        if not self.data_scale > 0:
            raise ValueError(f"data_scale must be > 0, got {self.data_scale}")

    def build(self, event_shape: tuple[int, ...]) -> nn.Module:
        return LinearScore(event_shape, self.data_scale)

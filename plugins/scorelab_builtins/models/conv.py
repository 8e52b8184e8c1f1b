"""``conv``: a small noise-conditional convolutional score network for small images (C, H, W).

A 3x3 convolution in, ``blocks`` residual blocks (GroupNorm, SiLU, 3x3 convolution, plus a
per-channel shift from the sigma embedding), a 3x3 convolution out; preconditioned as in ``_net``.
Made for the 8x8 ``digits`` images; padding keeps any H x W.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._net import MAX_DEPTH, ScoreNet, SigmaEmbedding


class _Block(nn.Module):
    def __init__(self, channels: int, embedding: int):
        super().__init__()
        self.norm = nn.GroupNorm(min(8, channels), channels)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.shift = nn.Linear(embedding, channels)

    def forward(self, h, emb):
        return h + self.conv(nn.functional.silu(self.norm(h) + self.shift(emb)[:, :, None, None]))


class ConvNet(ScoreNet):
    def __init__(self, event_shape, channels, blocks, embedding, second_order, data_scale):
        super().__init__(event_shape, noise_conditional=True, data_scale=data_scale, second_order=second_order)
        c = event_shape[0]
        self.embed = SigmaEmbedding(embedding)
        self.inp = nn.Conv2d(c, channels, 3, padding=1)
        self.blocks = nn.ModuleList(_Block(channels, embedding) for _ in range(blocks))
        self.out = nn.Conv2d(channels, c * (2 if second_order else 1), 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def trunk(self, x_in: torch.Tensor, sigma: torch.Tensor):
        emb = self.embed(sigma)
        h = self.inp(x_in)
        for block in self.blocks:
            h = block(h, emb)
        out = self.out(nn.functional.silu(h))
        if self.second_order:
            return out.chunk(2, dim=1)
        return out, None


@dataclass
class Conv:
    channels: int = 32  # feature channels of the trunk, >= 1; GroupNorm needs <= 8 or a multiple of 8
    blocks: int = 3  # residual blocks (GroupNorm, SiLU, 3x3 conv, sigma shift), 0 to 1000
    embedding: int = 16  # sinusoidal features of log sigma (even, >= 2) that shift each block's channels
    second_order: bool = False  # also a head for the diagonal of the score Jacobian (doubles the output channels)
    data_scale: float = 0.5  # sigma_d, the data's typical spread in x's units, > 0 (sets _net's c_in, c_out)

    name = "conv"
    noise_conditional = True
    provides_with = {"second_order_head": "second_order: true"}  # named in an error that asks for the head

    def __post_init__(self):
        if self.channels < 1 or self.blocks < 0:
            raise ValueError(f"need channels >= 1 and blocks >= 0, got {self.channels} and {self.blocks}")
        if self.blocks > MAX_DEPTH:
            raise ValueError(f"blocks must be <= {MAX_DEPTH}, got {self.blocks}")
        if not self.data_scale > 0:
            raise ValueError(f"data_scale must be > 0, got {self.data_scale}")
        if self.embedding < 2 or self.embedding % 2:
            raise ValueError(f"embedding must be an even number >= 2, got {self.embedding}")

    @property
    def provides(self) -> frozenset[str]:
        return frozenset({"noise_conditional", *(["second_order_head"] if self.second_order else [])})

    def build(self, event_shape: tuple[int, ...]) -> nn.Module:
        if len(event_shape) != 3:
            raise ValueError(f"conv needs image data shaped (channels, height, width), got event shape "
                             f"{tuple(event_shape)}; use mlp for vector data")
        return ConvNet(tuple(event_shape), self.channels, self.blocks, self.embedding, self.second_order,
                       self.data_scale)

"""Data sets as targets: a fixed set of points split once into a training part and a held-out part.

A data set has no density and no exact score, so it ``provides`` nothing: objectives that need an
exact score refuse it, and comparisons on it need a trained model as their score source. Training
reads ``train_split()``; ``sample(n, generator)`` hands out held-out points, so a comparison's
reference (and any metric's) is data the model never saw. The quality floor is the metric between
two disjoint halves of the held-out split.
"""

from __future__ import annotations

import torch

from scorelab.targets import TargetBase


class DataSetTarget(TargetBase):
    """Subclasses are dataclasses with ``held_out`` (fraction) and ``seed`` fields that call
    ``_set_points(points)`` in ``__post_init__``."""

    held_out: float  # fraction split off once as the reference sample set for metrics, in (0, 1)
    seed: int  # seed of the data draw and of the held-out split

    def _check_split(self) -> None:
        if not 0 < self.held_out < 1:
            raise ValueError(f"held_out must be a fraction in (0, 1), got {self.held_out}")

    def _set_points(self, points: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        """Split ``points`` (and their ``labels``, if any) once, by a permutation drawn from ``seed``."""
        g = torch.Generator().manual_seed(self.seed)
        perm = torch.randperm(len(points), generator=g)
        n_held = max(1, round(self.held_out * len(points)))
        if n_held >= len(points):
            raise ValueError(f"held_out={self.held_out} leaves no training points out of {len(points)}")
        self.held_out_points = points[perm[:n_held]].contiguous()
        self.train_points = points[perm[n_held:]].contiguous()
        if labels is not None:
            self.held_out_label_values = labels[perm[:n_held]].contiguous()
            self.train_label_values = labels[perm[n_held:]].contiguous()
        self.event_shape = tuple(points.shape[1:])

    def train_split(self) -> torch.Tensor:
        """The points to train on."""
        return self.train_points

    def held_out_split(self) -> torch.Tensor:
        """The points kept out of training: the reference for metrics."""
        return self.held_out_points

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` held-out points in random order: without repetition up to the split's size; beyond it
        the split is repeated (each point used as evenly as possible)."""
        data = self.held_out_points
        rounds = -(-n // len(data))
        idx = torch.cat([torch.randperm(len(data), generator=generator, device=generator.device)
                         for _ in range(rounds)])[:n]
        return data[idx.to(data.device)]

    def describe(self) -> dict:
        return {**super().describe(), "train_points": len(self.train_points),
                "held_out_points": len(self.held_out_points)}

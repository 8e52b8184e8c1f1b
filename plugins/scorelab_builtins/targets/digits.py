"""``digits``: the 8x8 handwritten digits that scikit-learn ships (1,797 images, no download).

Pixels 0..16 are scaled to [-1, 1]; images are (1, 8, 8), each with its digit as label. A
``held_out`` fraction is split off once from ``seed`` and is the reference for metrics (see
``_dataset``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from ._dataset import DataSetTarget


@dataclass
class Digits(DataSetTarget):
    held_out: float = 0.2  # fraction of the 1,797 images kept as the reference for metrics
    seed: int = 0  # seed of the held-out split

    name = "digits"

    def __post_init__(self):
        self._check_split()
        images, labels = _load()
        self._set_points((images / 8.0 - 1.0)[:, None], labels)  # indexed copies: the cache stays as read

    def train_labels(self) -> torch.Tensor:
        """The digit (0-9) of each training image."""
        return self.train_label_values

    def held_out_labels(self) -> torch.Tensor:
        """The digit (0-9) of each held-out image."""
        return self.held_out_label_values


@functools.cache
def _load() -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) as scikit-learn ships them, read once per process: parsing its file takes a
    fifth of a second, and configs, the trainer and the kit each build the target."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # pragma: no cover - depends on the environment
        raise ValueError("the digits data set needs scikit-learn (pip install scikit-learn)") from None
    digits = load_digits()
    return torch.as_tensor(digits.images, dtype=torch.float64), torch.as_tensor(digits.target, dtype=torch.long)

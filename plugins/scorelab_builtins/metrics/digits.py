"""Metrics for image data sets such as the 8x8 digits: ``digits_fd`` and ``digits_nn_copy``.

``digits_fd`` is an FID for small images: the Frechet distance between Gaussians fitted to the
features of the samples and of the reference,

    FD = |mu_x - mu_y|^2 + tr(C_x + C_y - 2 (C_x^(1/2) C_y C_x^(1/2))^(1/2)),

in the penultimate layer (32 features) of a small MLP classifier trained once on the target's
training split and cached on disk (see ``_classifier``; Heusel et al. 2017 use Inception-v3 features
of natural images in the same formula). With n points per side the estimate carries a positive bias
of order tr(C) / n, hence the quality floor.

``digits_nn_copy`` is a memorisation check: the fraction of samples whose nearest training point
(Euclidean, in the data's own units) is closer than a threshold. The threshold, unless fixed, is the
``quantile`` (default 1%) quantile of the same distance for the held-out points: a sample counts as
a copy when it is closer to a training image than 99% of genuinely new images of the data set are.
So a sampler that produces new digits scores about ``quantile`` (its false-alarm rate; the quality
floor says the same) and one that returns training images, or training images plus small noise,
scores near 1. On the 8x8 digits (pixels scaled to [-1, 1], 20% held out, seed 0) the threshold
measured 1.21, against a median nearest-training distance of 2.07 for held-out images and a smallest
one of 0.66 (the tests check the definitions, not these figures); a training image with independent
noise of standard deviation s per pixel lies about 8 s from it, so noise up to s ~ 0.15 (1.2 of
the 16 grey levels) still counts as a copy. Lower is better for both.

Both need only a data set with ``train_split()`` (capability ``data_splits``); ``digits_fd`` also
needs its labels (``train_labels()``, capability ``labels``) to train the classifier. Nothing is
specific to the digits beyond the names: any data set of flattened points works.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from . import _classifier
from ._common import as_matrix, finite, pair

# Rows of features or distances computed at once: memory stays bounded for any number of samples.
_ROWS = 1 << 14

_THRESHOLDS: dict[tuple[str, float], float] = {}


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """FD between Gaussians fitted (mean, unbiased covariance) to the rows of ``a`` and ``b``. The
    trace of the matrix square root is taken from the eigenvalues of the symmetric C_a^(1/2) C_b
    C_a^(1/2) (the same as those of C_a C_b), so singular covariances are fine."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    w, v = torch.linalg.eigh(ca)
    root_a = (v * w.clamp(min=0).sqrt()) @ v.T
    m = root_a @ cb @ root_a
    cross = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()
    return ((mu_a - mu_b) ** 2).sum() + ca.trace() + cb.trace() - 2 * cross


def features(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([net.features(x[i : i + _ROWS]) for i in range(0, len(x), _ROWS)])


def nearest_distance(x: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """For each row of ``x``, the Euclidean distance to the nearest row of ``points``."""
    rows = max(1, (_ROWS * 64) // len(points))
    return torch.cat([
        torch.cdist(x[i : i + rows], points, compute_mode="donot_use_mm_for_euclid_dist").min(1).values
        for i in range(0, len(x), rows)
    ])


def copy_threshold(target, quantile: float) -> float:
    """The ``quantile`` quantile of the distances from held-out points to their nearest training
    point; computed once per data set and remembered."""
    cpu = torch.device("cpu")
    train, held = as_matrix(target.train_split(), cpu), as_matrix(target.held_out_split(), cpu)
    h = hashlib.sha256(train.to(torch.float32).numpy().tobytes())
    h.update(held.to(torch.float32).numpy().tobytes())
    key = (h.hexdigest(), quantile)
    if key not in _THRESHOLDS:
        _THRESHOLDS[key] = float(torch.quantile(nearest_distance(held, train), quantile))
    return _THRESHOLDS[key]


@dataclass
class DigitsFD:
    """Frechet distance between samples and reference in the features of a classifier trained on
    the target's training split (an FID for small images)."""

    requires = ("data_splits", "labels")
    name = "digits_fd"

    def __call__(self, samples: torch.Tensor, reference: torch.Tensor, target=None) -> float:
        x, y = pair(samples, reference)
        if len(x) < 2 or len(y) < 2:
            raise ValueError("digits_fd needs at least 2 samples and 2 reference points")
        if not finite(x):
            return float("nan")
        train = target.train_split()
        if train[0].numel() != x.shape[1]:
            raise ValueError(f"samples have dimension {x.shape[1]}, the target's training points {train[0].numel()}")
        net = _classifier.classifier(train, target.train_labels(), x.device)
        return float(frechet_distance(features(net, x), features(net, y)).clamp(min=0))


@dataclass
class DigitsNNCopy:
    """Fraction of samples closer to their nearest training point than ``threshold``.

    Parameters
    ----------
    quantile : with ``threshold`` None, the threshold is this quantile of the held-out points'
        distances to their nearest training point (the false-alarm rate on genuinely new data).
    threshold : a fixed threshold in the units of the data; None (default) derives it as above.
    """

    quantile: float = 0.01  # None threshold: it is this quantile of held-out points' nearest-training distances; (0, 1)
    threshold: float | None = None  # fixed copy distance in the data's units, > 0; None derives it from quantile

    requires = ("data_splits",)
    name = "digits_nn_copy"

    def __post_init__(self):
        if not 0 < self.quantile < 1:
            raise ValueError(f"quantile must be in (0, 1), got {self.quantile}")
        if self.threshold is not None and not self.threshold > 0:
            raise ValueError(f"threshold must be > 0 or None, got {self.threshold}")

    def __call__(self, samples: torch.Tensor, reference: torch.Tensor, target=None) -> float:
        x = as_matrix(samples, samples.device)
        if len(x) < 1:
            raise ValueError("digits_nn_copy needs at least one sample")
        if not finite(x):
            return float("nan")
        train = as_matrix(target.train_split(), x.device)
        if train.shape[1] != x.shape[1]:
            raise ValueError(f"samples have dimension {x.shape[1]}, the target's training points {train.shape[1]}")
        threshold = self.threshold if self.threshold is not None else copy_threshold(target, self.quantile)
        return float((nearest_distance(x, train) < threshold).to(torch.float64).mean())

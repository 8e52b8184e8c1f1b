"""``mode_weight_error``: whether samples are spread over a mixture's modes in the right proportions.

Each sample goes to the component with the largest joint log density log w_k + log p_k(x) (the
target's ``component_log_probs``); the metric is the total variation distance between the
fractions per component and the true weights, 0.5 * sum_k |w_hat_k - w_k|, in [0, 1]. It sees what
moment and distance metrics at small sample sizes miss: a sampler stuck in the mode it started in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._common import finite


@dataclass
class ModeWeightError:
    """Total variation distance between the sample's mode fractions and the mixture weights."""

    requires = ("mixture",)
    name = "mode_weight_error"

    def __call__(self, samples: torch.Tensor, reference: torch.Tensor, target=None) -> float:
        w = target.mixture_weights
        x = samples.reshape(len(samples), -1).to(device=w.device, dtype=w.dtype)  # the target's dtype
        if not finite(x):
            return float("nan")
        assigned = target.component_log_probs(x).argmax(-1)
        frac = torch.bincount(assigned, minlength=len(w)).to(torch.float64) / len(x)
        return float(0.5 * (frac - w.to(torch.float64)).abs().sum())

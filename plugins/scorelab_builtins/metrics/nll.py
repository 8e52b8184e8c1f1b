"""``nll``: the mean negative log-likelihood of the samples under the target's true density.

    NLL = -1/n sum_i log p(x_i),

in nats. For exact samples its expectation is the target's entropy H(p); for samples with law q
it is the cross entropy E_q[-log p] = H(q) + KL(q || p).

A lower NLL is **not** automatically better quality: samples collapsed onto the mode(s) have a
lower cross entropy than exact samples (the extreme, every sample at the mode, gives -log p_max,
below H(p)), and so do chains stuck in the heavier mode of a mixture. NLL is readable only against
its quality floor, the NLL of an exact sample of the same size (an estimate of H(p), with standard
error sd(log p(X)) / sqrt(n)): values well above it mean mass where p is small (too wide, wrong
modes, not yet converged); values well below it mean too little spread. Read it with a distance
(``ksd``, ``energy_distance``, ``sliced_wasserstein``) beside it, never alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._common import finite


@dataclass
class NLL:
    """Mean negative log-likelihood -mean(log p(samples)) under the target's exact density (nats).
    Lower is not always better: see the module docstring."""

    requires = ("log_prob",)
    name = "nll"
    discrepancy = False  # an entropy estimate for exact samples: its quality floor is a mean (scorelab.floors)

    def __call__(self, samples: torch.Tensor, reference: torch.Tensor, target=None) -> float:
        if len(samples) < 1:
            raise ValueError("nll needs at least one sample")
        if not finite(samples):
            return float("nan")
        return float(-target.log_prob(samples.detach()).to(torch.float64).mean())

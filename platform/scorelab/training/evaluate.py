"""Evaluation figures at checkpoints, computed with the weight-averaged network on fixed data.

For targets with an exact score: the explicit score-matching error at each noise level the
objective trains (relative: E|s - s*|^2 / E|s*|^2 on samples of the noised target, so levels are
comparable). For every target: the objective's loss on held-out data (data sets) or on fixed fresh
samples, with a fixed generator so checkpoints are comparable.
"""

from __future__ import annotations

import torch

from .loop import Trainer

EVAL_SEED = 2_147_483_647


class Evaluator:
    def __init__(self, trainer: Trainer, samples: int):
        self.trainer = trainer
        target, device = trainer.target, trainer.device
        g = torch.Generator(device).manual_seed(EVAL_SEED)
        data_set = "data_splits" in target.provides
        self.data = target.held_out_split()[:samples] if data_set else target.sample(samples, g)
        # A target whose score is known at sigma = 0 only (noise_conditional = False) is compared there only.
        noisy = "noise_conditional" in target.provides
        self.levels = [sigma for sigma in trainer.training.noise_levels if noisy or sigma == 0]
        self.exact = "exact_score" in target.provides and bool(self.levels)
        self.noise = torch.randn(self.data.shape, generator=g, device=device, dtype=self.data.dtype)

    def __call__(self) -> dict[str, float]:
        network = self.trainer.ema.network
        out = {"eval_loss": self._eval_loss(network)}
        if self.exact:
            for sigma, (err, rel) in esm_errors(network, self.trainer.target, self.data, self.noise,
                                                self.levels).items():
                out[f"esm/sigma_{sigma:.4g}"] = err
                out[f"esm_relative/sigma_{sigma:.4g}"] = rel
        return out

    def _eval_loss(self, network) -> float:
        g = torch.Generator(self.trainer.device).manual_seed(EVAL_SEED)
        with torch.enable_grad():  # ism and ssm differentiate with respect to x
            return float(self.trainer.objective.loss(network, self.data, g).detach())


def esm_errors(network, target, x, noise, levels) -> dict[float, tuple[float, float]]:
    """{sigma: (1/2 E|s - s*|^2, E|s - s*|^2 / E|s*|^2)} on x + sigma * noise."""
    out = {}
    for sigma in levels:
        xs = x + sigma * noise
        s = network(xs, sigma) if network.noise_conditional else network(xs)
        exact = target.score(xs, sigma)
        err = (s.detach() - exact).reshape(len(x), -1).pow(2).sum(-1).mean()
        norm = exact.reshape(len(x), -1).pow(2).sum(-1).mean()
        out[sigma] = (0.5 * float(err), float(err / norm))
    return out

"""An exponential moving average of a network's weights (the copy that is evaluated and saved)."""

from __future__ import annotations

import copy

import torch


class EMA:
    """``decay`` with the usual warm-up min(decay, (1 + n) / (10 + n)) over the first updates, so a
    short run is not dominated by its initial weights; decay 0 tracks the weights exactly."""

    def __init__(self, network: torch.nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.network = copy.deepcopy(network).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, network: torch.nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for avg, p in zip(self.network.parameters(), network.parameters(), strict=True):
            avg.lerp_(p.detach(), 1 - d)
        for avg, b in zip(self.network.buffers(), network.buffers(), strict=True):
            avg.copy_(b)

    def state_dict(self) -> dict:
        return {"updates": self.updates, "network": self.network.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.updates = state["updates"]
        self.network.load_state_dict(state["network"])

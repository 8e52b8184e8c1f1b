"""The training step loop: one network, one objective, one generator; no tracking, no config files.

Everything a checkpoint needs to continue bit for bit lives in :class:`Trainer` (weights, the
weight average, optimiser and schedule state, the generator, the step and the running loss sum), so
a resumed run draws the same batches and noise as an uninterrupted one. Per step nothing is read
back to the host: the loss is summed on the device and read at log intervals.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from ..contracts import traits
from .ema import EMA
from .optim import make_optimizer, make_schedule
from .spec import Training, build_network


class Trainer:
    def __init__(self, training: Training, device: torch.device):
        self.training = training
        self.device = device
        self.dtype = getattr(torch, training.dtype)
        self.target = training.target.to(device, self.dtype)
        self.objective = training.objective
        bind = traits("objective", self.objective).bind
        if bind is not None:
            bind(self.target)
        net = build_network(training.model, self.target.event_shape, training.seed)
        self.network = net.to(device=device, dtype=self.dtype).train()
        self.ema = EMA(self.network, training.ema)
        self.optimizer = make_optimizer(training.optimizer, self.network.parameters())
        self.schedule = make_schedule(training.schedule, self.optimizer, training.steps)
        self.generator = torch.Generator(device).manual_seed(training.seed)
        self.data = self.target.train_split() if "data_splits" in self.target.provides else None
        self.step = 0
        self.loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        self.loss_count = 0
        self._seconds_before, self._clock = 0.0, time.perf_counter()  # training time of earlier sessions

    def batch(self) -> torch.Tensor:
        """A training batch: rows of the training split drawn with replacement, or fresh samples of an
        analytic target."""
        n = self.training.batch_size
        if self.data is None:
            return self.target.sample(n, self.generator)
        idx = torch.randint(0, len(self.data), (n,), generator=self.generator, device=self.device)
        return self.data[idx]

    def train_step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.objective.loss(self.network, self.batch(), self.generator)
        loss.backward()
        if self.training.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.training.grad_clip)
        self.optimizer.step()
        self.schedule.step()
        self.ema.update(self.network)
        self.loss_sum += loss.detach()
        self.loss_count += 1
        self.step += 1

    def pop_loss(self) -> float:
        """Mean loss since the last call (one read from the device)."""
        mean = float(self.loss_sum) / max(self.loss_count, 1)
        self.loss_sum.zero_()
        self.loss_count = 0
        return mean

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def run(self, until: int, on_step: Callable[[Trainer], None]) -> None:
        """Step until ``until`` steps are done, calling ``on_step`` after each (it decides when to log,
        evaluate and checkpoint: the only place the host looks at the run)."""
        while self.step < until:
            self.train_step()
            on_step(self)

    # -- checkpoints ---------------------------------------------------------------------------
    @property
    def seconds(self) -> float:
        """Training time of the run so far: this session's and, after a resume, the earlier sessions' up
        to the checkpoint it resumed from (the steps replayed after it are counted once, here)."""
        return self._seconds_before + time.perf_counter() - self._clock

    def state_dict(self) -> dict:
        return {
            "seconds": self.seconds,
            "step": self.step,
            "network": self.network.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "generator": self.generator.get_state(),
            "loss_sum": self.loss_sum.detach().cpu(),
            "loss_count": self.loss_count,
        }

    def load_state_dict(self, state: dict) -> None:
        self.step = state["step"]
        self.network.load_state_dict(state["network"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.generator.set_state(state["generator"])
        self.loss_sum = state["loss_sum"].to(self.device)
        self.loss_count = state["loss_count"]
        self._seconds_before, self._clock = float(state.get("seconds", 0.0)), time.perf_counter()

"""Stability of measured cost weights: the same weights measured several times in one process.

Two sources, measured in turn (so load changes reach both): the exact score of a d = 50, kappa = 1000
rotated Gaussian, and a small MLP score network (2 -> 256 -> 256 -> 2). For each, every
measurement is printed, then per kind the median and the largest relative deviation from it.

    python benchmarks/cost_weights.py [--device auto] [--chains 4000] [--measurements 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from scorelab.cost import measure_cost_weights
from scorelab.device import device_name, resolve_device
from scorelab.sources import ExactScore
from scorelab_builtins.targets import Gaussian

KINDS = ("vjp", "jvp", "curvature")


class MLPScore:
    """An untrained MLP as a score source: what a learned 2-D score costs, with no exact curvature."""

    provides = frozenset()

    def __init__(self, device: torch.device, dtype: torch.dtype):
        torch.manual_seed(0)
        layers = [torch.nn.Linear(2, 256), torch.nn.SiLU(), torch.nn.Linear(256, 256), torch.nn.SiLU(),
                  torch.nn.Linear(256, 2)]
        self.net = torch.nn.Sequential(*layers).to(device, dtype).requires_grad_(False)

    def score(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        return self.net(x)


def report(label: str, measurements: list) -> None:
    print(f"\n{label}")
    for i, m in enumerate(measurements):
        cells = "  ".join(f"{k} {getattr(m.weights, k):6.2f} [{m.spread[k][0]:6.2f}, {m.spread[k][1]:6.2f}]"
                          for k in KINDS)
        print(f"  #{i + 1}  {cells}")
    for k in KINDS:
        values = [getattr(m.weights, k) for m in measurements]
        median = statistics.median(values)
        deviation = max(abs(v / median - 1) for v in values)
        print(f"  {k:9s} median {median:6.2f}   max deviation from median {deviation:6.1%}")


RUN_TIME = "With the defaults: about 30 s on a 2-core CPU (measured 2026-11-30)."


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=RUN_TIME)
    p.add_argument("--device", default="auto", help="default: %(default)s")
    p.add_argument("--chains", type=int, default=4000, help="default: %(default)s")
    p.add_argument("--measurements", type=int, default=5, help="default: %(default)s")
    p.add_argument("--threads", type=int, default=1, help="torch threads on the CPU (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=None, help="measure_cost_weights' default when not given")
    p.add_argument("--min-seconds", type=float, default=None, help="measure_cost_weights' default when not given")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    options = {k: v for k, v in (("rounds", args.rounds), ("min_seconds", args.min_seconds)) if v is not None}
    gaussian = Gaussian(dim=50, condition_number=1000, rotate=True).to(device, torch.float32)
    g = torch.Generator(device).manual_seed(0)
    sources = {
        "gaussian d=50 kappa=1000 rotated, exact score":
            (ExactScore(gaussian), torch.randn(args.chains, 50, generator=g, device=device)),
        "MLP 2-256-256-2 score network":
            (MLPScore(device, torch.float32), torch.randn(args.chains, 2, generator=g, device=device)),
    }
    print(f"device: {device_name(device)}; torch threads {torch.get_num_threads()}; {args.chains} chains, float32; "
          f"{args.measurements} measurements per source, alternating sources; options {options or 'default'}")
    results = {label: [] for label in sources}
    seconds = {label: [] for label in sources}
    for _ in range(args.measurements):
        for label, (source, x) in sources.items():
            t0 = time.perf_counter()
            results[label].append(measure_cost_weights(source, x, **options))
            seconds[label].append(time.perf_counter() - t0)
    for label, measurements in results.items():
        report(label, measurements)
        print(f"  seconds per measurement: {', '.join(f'{s:.2f}' for s in seconds[label])}; "
              f"calls per sample {measurements[-1].repeats}")


if __name__ == "__main__":
    main()

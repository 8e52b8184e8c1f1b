"""Steps/s of scorelab's step loop against a bare Langevin loop on the same target and device.

The bare loop is the floor: the same update with the target's score called directly, no oracle,
no divergence tracking. The ratio is scorelab's overhead per step: after a warm-up, ``--repeats``
rounds run each loop once, the order alternating; the median and min-max of each loop's steps/s and
of the per-round ratio of times are printed.

    python benchmarks/step_loop.py --device auto --chains 10000 --dim 100
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from peers import positive

from scorelab.chain import run_chain
from scorelab.device import device_name, resolve_device, synchronize
from scorelab.oracle import ScoreOracle
from scorelab.sources import ExactScore
from scorelab_builtins.samplers import Langevin
from scorelab_builtins.targets import Gaussian


def bare(target, x, steps, h, generator):
    s = target.score(x, 0.0)
    for _ in range(steps):
        z = torch.randn(x.shape, generator=generator, device=x.device)
        x = torch.add(x, s, alpha=h).add_(z, alpha=math.sqrt(2 * h))
        s = target.score(x, 0.0)
    return x


def timed(fn, device) -> float:
    synchronize(device)
    t0 = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - t0


RUN_TIME = "With the defaults: about 25 s on a 2-core CPU (measured 2026-11-30)."


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=RUN_TIME)
    p.add_argument("--device", default="auto", help="default: %(default)s")
    p.add_argument("--chains", type=positive, default=10_000, help="default: %(default)s")
    p.add_argument("--dim", type=positive, default=100, help="default: %(default)s")
    p.add_argument("--steps", type=positive, default=500, help="default: %(default)s")
    p.add_argument("--repeats", type=positive, default=3, help="default: %(default)s")
    args = p.parse_args()
    device = resolve_device(args.device)
    target = Gaussian(dim=args.dim, condition_number=10.0).to(device, torch.float32)
    x0 = torch.randn(args.chains, args.dim, device=device)
    h = 0.01

    def ours():
        oracle = ScoreOracle(ExactScore(target))
        run_chain(Langevin(step_size=h), oracle, x0, args.steps + 1, torch.Generator(device).manual_seed(0))

    def floor():
        bare(target, x0, args.steps, h, torch.Generator(device).manual_seed(0))

    ours(), floor()  # warm-up
    times = {"bare loop": [], "scorelab loop": []}
    for r in range(args.repeats):  # interleaved, the order alternating
        for name, fn in [("bare loop", floor), ("scorelab loop", ours)][:: 1 if r % 2 else -1]:
            times[name].append(timed(fn, device))
    print(f"device {device_name(device)}, {args.chains} chains, d={args.dim}, {args.steps} steps, "
          f"{args.repeats} interleaved rounds; steps/s median (min-max)")
    for name, ts in times.items():
        rates = [args.steps / t for t in ts]
        print(f"{name:<14} {statistics.median(rates):10.0f} ({min(rates):.0f}-{max(rates):.0f})")
    ratios = [a / b for a, b in zip(times["scorelab loop"], times["bare loop"], strict=True)]
    print(f"scorelab / bare loop time, per round: median {statistics.median(ratios):.3f} "
          f"({min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()

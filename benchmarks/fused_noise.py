"""Noise drawn eagerly against noise made inside the compiled step: ULA on peers.py's diagonal Gaussian.

A compiled scorelab step on a comparison's default ``rng: generator`` takes its noise from
``torch.randn`` with the run's generator, drawn eagerly (``scorelab.DrawsFirst``): the normals are
written to memory and read back by the step. On ``rng: keyed`` (``scorelab.rng``) a draw is a ticket
and the normals are made by Philox-4x32-10 and Box–Muller inside the compiled graph, never stored.
This measures the bare update both ways (peers.py measures the samplers), beside inductor's own
in-graph normals:

- ``randn``: ``torch.randn`` then the compiled update, k steps a call (the k normals drawn first,
  as scorelab's compiled loop does);
- ``keyed``: k tickets from a ``scorelab.rng.KeyedStream``, then the compiled update with its normals
  made in the graph (``scorelab.rng.normals``), k steps a call;
- ``inductor``: ``torch.randn`` inside the compiled update, which inductor makes in its own kernel
  code (on a GPU Triton's Philox, with the hardware's 32-bit multiplies) from torch's global
  generator, not the run's: the native ceiling for ``keyed``, not a stream scorelab could use as is.

    python benchmarks/fused_noise.py                            # CPU: 1e4 x 100 chains, one core
    python benchmarks/fused_noise.py --device cuda --chains 1000000

The script first checks the keyed normals' first four moments against N(0, 1) at the run's size
(``tests/scorelab/test_rng.py`` checks Philox against its known answers). Method as peers.py's:
warm-up, ``--repeats`` interleaved rounds, median and min-max, per-round ratio to ``randn`` at one
step a call.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from peers import pin_to_one_core, positive

from scorelab import rng
from scorelab.device import device_name, resolve_device, synchronize


def seconds_of(f, device: torch.device) -> float:
    synchronize(device)
    t0 = time.perf_counter()
    f()
    synchronize(device)
    return time.perf_counter() - t0


def check_moments(z: torch.Tensor) -> str:
    """Mean, variance, skewness and excess kurtosis against 0, 1, 0, 0, each within 5 standard errors."""
    z = z.double().flatten()
    n = z.numel()
    m, v = z.mean().item(), z.var().item()
    c = (z - m) / math.sqrt(v)
    moments = {"mean": (m, 1 / n), "variance": (v - 1, 2 / n), "skewness": (c.pow(3).mean().item(), 6 / n),
               "excess kurtosis": (c.pow(4).mean().item() - 3, 24 / n)}
    for name, (value, var) in moments.items():
        if abs(value) > 5 * math.sqrt(var):
            raise SystemExit(f"the keyed normals' {name} is off by {value:.2e} ({n} of them)")
    return ", ".join(f"{k} {v:+.1e}" for k, (v, _) in moments.items())


def contenders(x0, mean, variance, h: float, k: int, generator) -> dict:
    noise = math.sqrt(2 * h)

    def update(x, s, z):
        x = x + h * s + noise * z
        return x, (mean - x) / variance

    def by_randn(x, s, zs):
        for z in zs:
            x, s = update(x, s, z)
        return x, s

    def by_keyed(x, s, tickets):
        for ticket in tickets:
            x, s = update(x, s, rng.normals(ticket, x.shape, x.dtype))
        return x, s

    def by_inductor(x, s):  # inductor's own in-graph normals: seeded from torch's global generator
        for _ in range(k):
            x, s = update(x, s, torch.randn(x.shape, device=x.device, dtype=x.dtype))
        return x, s

    randn_call, keyed_call = torch.compile(by_randn, dynamic=False), torch.compile(by_keyed, dynamic=False)
    inductor_call = torch.compile(by_inductor, dynamic=False)
    draw = {"device": x0.device, "dtype": x0.dtype, "generator": generator}

    def run_randn(steps):
        x, s = x0, (mean - x0) / variance
        for _ in range(steps // k):
            x, s = randn_call(x, s, [torch.randn(x0.shape, **draw) for _ in range(k)])
        return x

    def run_keyed(steps):
        x, s, stream = x0, (mean - x0) / variance, rng.KeyedStream(0, x0.device)
        for _ in range(steps // k):
            x, s = keyed_call(x, s, [stream.ticket() for _ in range(k)])
        return x

    def run_inductor(steps):
        x, s = x0, (mean - x0) / variance
        for _ in range(steps // k):
            x, s = inductor_call(x, s)
        return x

    return {f"randn, {k}/call": run_randn, f"keyed, {k}/call": run_keyed, f"inductor, {k}/call": run_inductor}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    p.add_argument("--chains", type=positive, default=10_000, help="(default: %(default)s)")
    p.add_argument("--dim", type=positive, default=100, help="(default: %(default)s)")
    p.add_argument("--steps", type=positive, default=96, help="steps a timed run (default: %(default)s)")
    p.add_argument("--repeats", type=positive, default=5, help="interleaved rounds (default: %(default)s)")
    p.add_argument("--steps-per-call", type=positive, nargs="+", default=[1, 8], metavar="K",
                   help="steps a compiled call (default: 1 8)")
    p.add_argument("--core", type=int, help="the CPU core to pin to (default: the first allowed)")
    args = p.parse_args()
    if any(args.steps % k for k in args.steps_per_call):
        p.error(f"--steps {args.steps} must be a multiple of every --steps-per-call {args.steps_per_call}")
    device = resolve_device(args.device)
    core = pin_to_one_core(args.core) if device.type == "cpu" else None
    torch.set_num_threads(1)
    generator = torch.Generator(device).manual_seed(0)
    x0 = torch.randn(args.chains, args.dim, device=device, generator=generator)
    variance = torch.logspace(-1, 0, args.dim, device=device)  # condition number 10, as peers.py's row
    mean = torch.zeros(args.dim, device=device)
    ticket = rng.KeyedStream(0, device).ticket()
    print(f"device {device_name(device)}" + (f", pinned to core {core}" if core is not None else "")
          + f"; {args.chains} x {args.dim} float32 chains; torch {torch.__version__}")
    print("keyed normals: " + check_moments(torch.compile(rng.normals, dynamic=False)(ticket, x0.shape, x0.dtype)))
    eager = {"keyed normals": lambda: rng.normals(ticket, x0.shape, x0.dtype),
             "torch.randn": lambda: torch.randn(x0.shape, device=device, generator=generator)}
    for f in eager.values():  # warm-up
        f()
    print("eagerly, one step's normals: " + ", ".join(
        f"{name} {statistics.median(1e3 * seconds_of(f, device) for _ in range(5)):.2f} ms"
        for name, f in eager.items()) + " (median of 5)")
    runs = {}
    for k in args.steps_per_call:
        runs |= contenders(x0, mean, variance, 0.01, k, generator)
    steps = args.steps

    def seconds(run):
        return seconds_of(lambda: run(steps), device)

    for run in runs.values():  # compiles, twice: a recompile on a value that changed
        seconds(run), seconds(run)
    rates = {name: [] for name in runs}
    names = list(runs)
    for r in range(args.repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            rates[name].append(steps / seconds(runs[name]))
    base = rates[names[0]]
    print(f"\n  {'':<16} {'steps/s median (min-max)':>28} {'x ' + names[0] + ' median (min-max)':>36}")
    for name, values in rates.items():
        ratios = [a / b for a, b in zip(values, base, strict=True)]
        print(f"  {name:<16} {statistics.median(values):>12.0f} ({min(values):.0f}-{max(values):.0f})"
              f"{statistics.median(ratios):>22.2f} ({min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()

"""Noise drawn eagerly against noise made inside the compiled step: ULA on peers.py's diagonal Gaussian.

A compiled scorelab step takes its noise from ``torch.randn`` with the run's generator, drawn eagerly
(``scorelab.DrawsFirst``): the normals are written to memory and read back by the step. The
alternative is a counter-based generator evaluated inside the compiled graph, keyed by one number
drawn from the run's generator, so the noise is never stored. This measures what that gains, as a
design question: scorelab's samplers do not do it (it would give the compiled steps a random stream
of their own).

- ``randn``: ``torch.randn`` then the compiled update, k steps a call (the k normals drawn first,
  as scorelab's compiled loop does);
- ``philox``: one key a call from the generator, then the compiled update with its normals made in
  the graph by Philox-4x32-10 (Salmon et al. 2011) and Box–Muller, k steps a call;
- ``inductor``: ``torch.randn`` inside the compiled update, which inductor makes in its own kernel
  code (on a GPU Triton's Philox, with the hardware's 32-bit multiplies) from torch's global
  generator, not the run's: the native ceiling for ``philox``, not a stream scorelab could use as is.

    python benchmarks/fused_noise.py                            # CPU: 1e4 x 100 chains, one core
    python benchmarks/fused_noise.py --device cuda --chains 1000000

Philox is written with int64 torch ops (torch has no unsigned 32-bit multiply the compiler takes),
each 32 x 32-bit product split so no intermediate passes 2^63. The script first checks it against
Philox's published known-answer vectors, and the normals' first four moments against N(0, 1) at the
run's size. Method as peers.py's: warm-up, ``--repeats`` interleaved rounds, median and min-max,
per-round ratio to ``randn`` at one step a call.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from peers import pin_to_one_core, positive

from scorelab.device import device_name, resolve_device, synchronize

MASK = 0xFFFFFFFF
# Philox-4x32-10's multipliers and key increments, and known answers: (counter, key) -> output.
MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)
BUMPS = (0x9E3779B9, 0xBB67AE85)
KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((MASK,) * 4, (MASK, MASK), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def mulhilo(a: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The high and low 32 bits of a * m, for a < 2^32 held in int64: m split in 16-bit halves."""
    low = a * (m & 0xFFFF)
    t = a * (m >> 16) + (low >> 16)
    return t >> 16, ((t & 0xFFFF) << 16) | (low & 0xFFFF)


def philox(c: tuple, k0, k1) -> tuple:
    """Philox-4x32-10 of the counter words ``c`` under the key (k0, k1): four words of 32 bits."""
    c0, c1, c2, c3 = c
    for _ in range(10):
        hi0, lo0 = mulhilo(c0, MULTIPLIERS[0])
        hi1, lo1 = mulhilo(c2, MULTIPLIERS[1])
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0, k1 = (k0 + BUMPS[0]) & MASK, (k1 + BUMPS[1]) & MASK
    return c0, c1, c2, c3


def normals(key: torch.Tensor, step: int, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Standard normals of ``shape`` for one step: counter (i, step, 0, 0) for the i-th group of four,
    each word's top 24 bits a uniform in (0, 1), two Box–Muller pairs a group."""
    n = math.prod(shape)
    i = torch.arange((n + 3) // 4, device=key.device, dtype=torch.int64)
    zero = torch.zeros_like(i)
    words = philox((i, zero + step, zero, zero), key[0], key[1])
    u = [((w >> 8).to(dtype) + 0.5) * 2.0 ** -24 for w in words]
    pairs = []
    for a, b in ((u[0], u[1]), (u[2], u[3])):
        r, t = torch.sqrt(-2.0 * torch.log(a)), (2.0 * math.pi) * b
        pairs += [r * torch.cos(t), r * torch.sin(t)]
    return torch.stack(pairs, 1).reshape(-1)[:n].reshape(shape)


def seconds_of(f, device: torch.device) -> float:
    synchronize(device)
    t0 = time.perf_counter()
    f()
    synchronize(device)
    return time.perf_counter() - t0


def check_philox(device: torch.device) -> None:
    for counter, key, expected in KNOWN_ANSWERS:
        words = philox(tuple(torch.tensor([w], device=device) for w in counter), *key)
        got = tuple(int(w) for w in words)
        if got != expected:
            raise SystemExit(f"Philox-4x32-10 gives {[hex(w) for w in got]} for {counter}, {key}; "
                             f"expected {[hex(w) for w in expected]}")


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
            raise SystemExit(f"the Philox normals' {name} is off by {value:.2e} ({n} of them)")
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

    def by_philox(x, s, key):
        for j in range(k):
            x, s = update(x, s, normals(key, j, x.shape, x.dtype))
        return x, s

    def by_inductor(x, s):  # inductor's own in-graph normals: seeded from torch's global generator
        for _ in range(k):
            x, s = update(x, s, torch.randn(x.shape, device=x.device, dtype=x.dtype))
        return x, s

    randn_call, philox_call = torch.compile(by_randn, dynamic=False), torch.compile(by_philox, dynamic=False)
    inductor_call = torch.compile(by_inductor, dynamic=False)
    draw = {"device": x0.device, "dtype": x0.dtype, "generator": generator}

    def run_randn(steps):
        x, s = x0, (mean - x0) / variance
        for _ in range(steps // k):
            x, s = randn_call(x, s, [torch.randn(x0.shape, **draw) for _ in range(k)])
        return x

    def run_philox(steps):
        x, s = x0, (mean - x0) / variance
        for _ in range(steps // k):
            key = torch.randint(0, 2 ** 32, (2,), device=x0.device, generator=generator)
            x, s = philox_call(x, s, key)
        return x

    def run_inductor(steps):
        x, s = x0, (mean - x0) / variance
        for _ in range(steps // k):
            x, s = inductor_call(x, s)
        return x

    return {f"randn, {k}/call": run_randn, f"philox, {k}/call": run_philox, f"inductor, {k}/call": run_inductor}


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
    check_philox(device)
    generator = torch.Generator(device).manual_seed(0)
    x0 = torch.randn(args.chains, args.dim, device=device, generator=generator)
    variance = torch.logspace(-1, 0, args.dim, device=device)  # condition number 10, as peers.py's row
    mean = torch.zeros(args.dim, device=device)
    key = torch.randint(0, 2 ** 32, (2,), device=device, generator=generator)
    print(f"device {device_name(device)}" + (f", pinned to core {core}" if core is not None else "")
          + f"; {args.chains} x {args.dim} float32 chains; torch {torch.__version__}")
    print("Philox-4x32-10 known answers: ok; its normals: "
          + check_moments(torch.compile(normals, dynamic=False)(key, 0, x0.shape, x0.dtype)))
    eager = {"Philox normals": lambda: normals(key, 0, x0.shape, x0.dtype),
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

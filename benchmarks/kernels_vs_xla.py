"""Where the rows of ``peers.py`` spend their time: the kernels a step is made of, torch beside XLA.

One core (the process is pinned, as in ``peers.py``), float32 unless named: the MLP score's
256 x 256 matmul on 1e4 chains (torch's, which is MKL's; oneDNN's, which scorelab's compiled steps
call on the CPU, ``scorelab.compiled_linear``; XLA's dot), the whole layer with its bias and tanh,
the d = 2 model's input layer (2 -> 256, with its tanh) and head (256 -> 2, alone and after the tanh
of its input), which compiled steps sum out (each as torch compiles it, as a compiled sampler step
does, and XLA), the tanh alone on the same 1e4 x 256 activations (torch eager, torch compiled, the
tanh scorelab's compiled steps use on the CPU (``scorelab.compiled_math.tanh``) compiled, XLA), and
float64 standard normals for the MALA row's 1000 x 50 chains (torch's ``randn``, scorelab's
``box_muller`` eager and compiled, JAX's ``random.normal``). Each kernel is warmed up, then
``--rounds`` rounds run every contender once (order rotating); reported: the median time per call
and its min-max over rounds, and per kernel the median of per-round ratios to XLA with their min-max.

    python benchmarks/kernels_vs_xla.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from peers import load_jax, pin_to_one_core

from scorelab import compiled, compiled_linear, compiled_math
from scorelab_builtins.kernels import box_muller, uniform_pairs

CALLS = 20  # calls per timed run


def seconds_per_call(f: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    for _ in range(CALLS):
        out = f()
    if hasattr(out, "block_until_ready"):
        out.block_until_ready()
    return (time.perf_counter() - t0) / CALLS


def kernels(jax, jdev) -> dict[str, dict[str, Callable[[], object]]]:
    jnp = jax.numpy
    g = torch.Generator().manual_seed(0)
    a, w = torch.randn(10_000, 256, generator=g), torch.randn(256, 256, generator=g) / 16
    b = torch.randn(256, generator=g)
    x2, in_w = torch.randn(10_000, 2, generator=g), torch.randn(256, 2, generator=g)
    head_w, head_b = torch.randn(2, 256, generator=g) / 16, torch.randn(2, generator=g)
    ja, jw, jb, jx2, jiw, jhw, jhb = (jax.device_put(jnp.asarray(t.numpy()), jdev)
                                      for t in (a, w.T, b, x2, in_w.T, head_w.T, head_b))
    dot, tanh = jax.jit(lambda a, w: a @ w), jax.jit(jnp.tanh)
    jlayer = jax.jit(lambda a, w, b: jnp.tanh(a @ w + b))
    jhead = jax.jit(lambda a, w, b: a @ w + b)
    jtanh_head = jax.jit(lambda a, w, b: jnp.tanh(a) @ w + b)

    def both(f):
        """f compiled by torch, and as a compiled sampler step is."""
        return torch.compile(f), torch.compile(f, backend=compiled._backend("inductor"))

    torch_layer, scorelab_layer = both(lambda a: torch.tanh(torch.nn.functional.linear(a, w, b)))
    torch_input, scorelab_input = both(lambda x: torch.tanh(torch.nn.functional.linear(x, in_w, b)))
    torch_head, scorelab_head = both(lambda a: torch.nn.functional.linear(a, head_w, head_b))
    torch_tanh_head, scorelab_tanh_head = both(lambda a: torch.nn.functional.linear(torch.tanh(a), head_w, head_b))
    compiled_tanh, scorelab_tanh = both(torch.tanh)
    compiled_box_muller = torch.compile(box_muller)
    shape = (1000, 50)
    jax.config.update("jax_enable_x64", True)
    normal = jax.jit(lambda k: jax.random.normal(k, shape, dtype=jnp.float64))
    key = jax.device_put(jax.random.key(0), jdev)
    return {
        "matmul 1e4x256 @ 256x256": {"torch (MKL)": lambda: torch.nn.functional.linear(a, w),
                                     "oneDNN": lambda: compiled_linear.linear(a, w, None),
                                     "xla": lambda: dot(ja, jw)},
        "layer tanh(1e4x256 @ 256x256 + b)": {"torch compiled": lambda: torch_layer(a),
                                              "scorelab compiled": lambda: scorelab_layer(a),
                                              "xla": lambda: jlayer(ja, jw, jb)},
        "input layer tanh(1e4x2 @ 2x256 + b)": {"torch compiled": lambda: torch_input(x2),
                                                "scorelab compiled": lambda: scorelab_input(x2),
                                                "xla": lambda: jlayer(jx2, jiw, jb)},
        "head 1e4x256 @ 256x2 + b": {"torch (MKL)": lambda: torch.nn.functional.linear(a, head_w, head_b),
                                     "oneDNN": lambda: compiled_linear.linear(a, head_w, head_b),
                                     "torch compiled": lambda: torch_head(a),
                                     "scorelab compiled": lambda: scorelab_head(a),
                                     "xla": lambda: jhead(ja, jhw, jhb)},
        "tanh, then the head": {"torch compiled": lambda: torch_tanh_head(a),
                                "scorelab compiled": lambda: scorelab_tanh_head(a),
                                "xla": lambda: jtanh_head(ja, jhw, jhb)},
        "tanh 1e4x256": {"torch eager": lambda: torch.tanh(a), "torch compiled": lambda: compiled_tanh(a),
                         "scorelab compiled": lambda: scorelab_tanh(a), "xla": lambda: tanh(ja)},
        "float64 normals 1000x50": {"torch randn": lambda: torch.randn(shape, generator=g, dtype=torch.float64),
                                    "box_muller eager": lambda: box_muller(uniform_pairs(50_000, g), shape),
                                    "box_muller compiled": lambda: compiled_box_muller(uniform_pairs(50_000, g), shape),
                                    "xla": lambda: normal(key)},
    }


def tanh_ulps(jax, stride: int) -> None:
    """How far the compiled steps' tanh and XLA's are from the correctly rounded tanh, in ULP, at every
    ``stride``-th float32 from 0 up to 9.2 (where tanh rounds to 1; both are odd)."""
    scorelab_tanh = torch.compile(torch.tanh, backend=compiled._backend("inductor"), dynamic=False)
    xla_tanh = jax.jit(jax.numpy.tanh)
    top, chunk = torch.tensor(9.2).view(torch.int32).item(), 1 << 22
    counts = {"scorelab compiled": torch.zeros(17, dtype=torch.long), "xla": torch.zeros(17, dtype=torch.long)}
    for lo in range(0, top, chunk * stride):
        x = torch.arange(lo, min(lo + chunk * stride, top), stride, dtype=torch.int32).view(torch.float32)
        exact = torch.tanh(x.double()).float()
        values = {"scorelab compiled": scorelab_tanh(x), "xla": torch.tensor(np.asarray(xla_tanh(x.numpy())))}
        for name, y in values.items():
            counts[name] += torch.bincount(compiled_math.float32_ulps(y, exact).clamp_(max=16), minlength=17)
    print(f"\ntanh against the correctly rounded value, every {stride}th float32 in [0, 9.2]: "
          "how many are off by 0, 1, 2, ... ULP (the last count: 16 or more)")
    for name, n in counts.items():
        most = int(n.nonzero().max())
        print(f"  {name:<20} most {most}{'+' * (most == 16)} ULP; {n[: most + 1].tolist()}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default: %(default)s)")
    p.add_argument("--tanh-ulps", type=int, metavar="STRIDE", default=0,
                   help="instead of timing, count the tanh errors in ULP at every STRIDE-th float32 "
                        "(1: all of them, about 2 min)")
    args = p.parse_args()
    if args.tanh_ulps < 0:
        p.error(f"--tanh-ulps: a stride of 1 or more (every STRIDE-th float32), or 0 to time; got {args.tanh_ulps}")
    core = pin_to_one_core(None)
    torch.set_num_threads(1)
    peers = load_jax(torch.device("cpu"))
    if peers is None:
        raise SystemExit('this benchmark needs JAX: pip install -e ".[bench]"')
    jax, _, jdev = peers
    print(f"pinned to core {core}; torch {torch.__version__}, jax {jax.__version__}"
          + ("" if args.tanh_ulps else f"; {args.rounds} rounds"))
    if args.tanh_ulps:
        return tanh_ulps(jax, args.tanh_ulps)
    for name, contenders in kernels(jax, jdev).items():
        for f in contenders.values():  # warm-up: compile, fill caches
            seconds_per_call(f)
        times: dict[str, list[float]] = {c: [] for c in contenders}
        order = list(contenders)
        for r in range(args.rounds):
            for c in order[r % len(order):] + order[: r % len(order)]:
                times[c].append(seconds_per_call(contenders[c]))
        print(f"\n{name}")
        for c, ts in times.items():
            ratio = [t / x for t, x in zip(ts, times["xla"], strict=True)]
            print(f"  {c:<20} {1e3 * statistics.median(ts):8.3f} ms ({1e3 * min(ts):.3f}-{1e3 * max(ts):.3f})"
                  f"   time / xla {statistics.median(ratio):5.2f} ({min(ratio):.2f}-{max(ratio):.2f})")


if __name__ == "__main__":
    main()

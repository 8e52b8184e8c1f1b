"""Where the rows of ``peers.py`` spend their time: the kernels a step is made of, torch beside XLA.

One core (the process is pinned, as in ``peers.py``), float32 unless named: the MLP score's
256 x 256 matmul on 1e4 chains (torch's, which is MKL's; oneDNN's, which scorelab's compiled steps
call on the CPU, ``scorelab.compiled_linear``; XLA's dot), the whole layer with its bias and tanh
(torch compiled, scorelab compiled, XLA) and the d = 2 head (256 -> 2, narrower than what oneDNN is
given), the tanh alone on the same 1e4 x 256 activations (torch eager, torch compiled, the tanh
scorelab's compiled steps use on the CPU (``scorelab.compiled_math.tanh``) compiled, XLA), and
float64 standard normals for the MALA row's
1000 x 50 chains (torch's ``randn``, scorelab's ``box_muller`` eager and compiled, JAX's
``random.normal``). Each kernel is warmed up, then ``--rounds`` rounds run every contender once
(order rotating); reported: the median time per call and its min-max over rounds, and per kernel
the median of per-round ratios to XLA with their min-max.

    python benchmarks/kernels_vs_xla.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

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
    head_w, head_b = torch.randn(2, 256, generator=g) / 16, torch.randn(2, generator=g)
    ja, jw, jb, jhw, jhb = (jax.device_put(jnp.asarray(t.numpy()), jdev) for t in (a, w.T, b, head_w.T, head_b))
    dot, tanh = jax.jit(lambda a, w: a @ w), jax.jit(jnp.tanh)
    jlayer = jax.jit(lambda a, w, b: jnp.tanh(a @ w + b))
    jhead = jax.jit(lambda a, w, b: a @ w + b)

    def layer(a):
        return torch.tanh(torch.nn.functional.linear(a, w, b))

    torch_layer, scorelab_layer = torch.compile(layer), torch.compile(layer, backend=compiled._backend("inductor"))
    compiled_tanh, scorelab_tanh = torch.compile(torch.tanh), torch.compile(compiled_math.tanh)
    compiled_box_muller = torch.compile(box_muller)
    shape = (1000, 50)
    jax.config.update("jax_enable_x64", True)
    normal = jax.jit(lambda k: jax.random.normal(k, shape, dtype=jnp.float64))
    key = jax.device_put(jax.random.key(0), jdev)
    return {
        "matmul 1e4x256 @ 256x256": {"torch (MKL)": lambda: torch.nn.functional.linear(a, w),
                                     "oneDNN": lambda: compiled_linear.linear(a, w, None, "none"),
                                     "xla": lambda: dot(ja, jw)},
        "layer tanh(1e4x256 @ 256x256 + b)": {"torch compiled": lambda: torch_layer(a),
                                              "scorelab compiled": lambda: scorelab_layer(a),
                                              "xla": lambda: jlayer(ja, jw, jb)},
        "head 1e4x256 @ 256x2 + b": {"torch (MKL)": lambda: torch.nn.functional.linear(a, head_w, head_b),
                                     "oneDNN": lambda: compiled_linear.linear(a, head_w, head_b, "none"),
                                     "xla": lambda: jhead(ja, jhw, jhb)},
        "tanh 1e4x256": {"torch eager": lambda: torch.tanh(a), "torch compiled": lambda: compiled_tanh(a),
                         "scorelab compiled": lambda: scorelab_tanh(a), "xla": lambda: tanh(ja)},
        "float64 normals 1000x50": {"torch randn": lambda: torch.randn(shape, generator=g, dtype=torch.float64),
                                    "box_muller eager": lambda: box_muller(uniform_pairs(50_000, g), shape),
                                    "box_muller compiled": lambda: compiled_box_muller(uniform_pairs(50_000, g), shape),
                                    "xla": lambda: normal(key)},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default: %(default)s)")
    args = p.parse_args()
    core = pin_to_one_core(None)
    torch.set_num_threads(1)
    peers = load_jax(torch.device("cpu"))
    if peers is None:
        raise SystemExit('this benchmark needs JAX: pip install -e ".[bench]"')
    jax, _, jdev = peers
    print(f"pinned to core {core}; torch {torch.__version__}, jax {jax.__version__}; {args.rounds} rounds")
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

"""Where one of ``peers.py``'s rows spends a compiled step: a ``torch.profiler`` table of scorelab's
compiled loop on that row, per step.

``peers.py`` says how fast each contender is; this says what scorelab's time is made of: its
kernels (on a GPU, each with its launches a step), the eager draws, Dynamo's guards and the loop's
own ops. It is the profile behind the figures in benchmarks/README.md that name one, and on a card
the check of whether several steps a call fuse into fewer passes over the chains (the kernels a
step, and their time).

    python benchmarks/profile_step.py --row mlp64
    python benchmarks/profile_step.py --row gaussian-1e6 --device cuda --steps-per-call 1 8

The process is pinned to one core on a CPU, as ``peers.py`` is. For each K of ``--steps-per-call``
(default: what scorelab takes on the device) it warms up, times ``--steps`` steps outside the
profiler (steps/s), then profiles as many and prints the ops (CPU) or kernels (GPU) by their own
time, per step.
"""

from __future__ import annotations

import argparse
import time

import torch
from peers import ROWS, calls_of, make_problem, pin_to_one_core, positive
from torch.profiler import ProfilerActivity, profile

from scorelab import compiled
from scorelab.chain import run_chain
from scorelab.device import device_name, resolve_device, synchronize
from scorelab.oracle import ScoreOracle
from scorelab.rng import KeyedStream
from scorelab_builtins.samplers import Langevin, Mala


def run(row, problem, steps: int, device: torch.device, keyed: bool = False) -> None:
    """An init plus ``steps`` compiled steps of the row's sampler, as ``peers.py``'s compiled column
    (``keyed``: its keyed column, the noise made in the compiled step)."""
    sampler = Langevin(step_size=row.step_size) if row.sampler == "ula" else Mala(step_size=row.step_size, warmup=0)
    mode = "cuda_graph" if device.type == "cuda" else "inductor"
    numbers = KeyedStream(0, device) if keyed else torch.Generator(device).manual_seed(0)
    run_chain(sampler, ScoreOracle(problem.source), problem.x0, steps + 1, numbers, compile=mode)
    synchronize(device)


def table(prof, steps: int, device: torch.device, top: int) -> str:
    """The profile's ops by their own time, milliseconds and calls per step."""
    on_gpu = device.type == "cuda"
    events = [e for e in prof.key_averages()
              if (e.self_device_time_total if on_gpu else e.self_cpu_time_total) > 0]
    events.sort(key=lambda e: -(e.self_device_time_total if on_gpu else e.self_cpu_time_total))
    total = sum(e.self_device_time_total if on_gpu else e.self_cpu_time_total for e in events)
    lines = [f"  {'op' if not on_gpu else 'kernel':<70} {'ms a step':>10} {'share':>7} {'calls a step':>13}"]
    for e in events[:top]:
        t = e.self_device_time_total if on_gpu else e.self_cpu_time_total
        lines.append(f"  {e.key[:70]:<70} {t / 1e3 / steps:>10.3f} {t / total:>7.1%} {e.count / steps:>13.2f}")
    lines.append(f"  {'all':<70} {total / 1e3 / steps:>10.3f}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--row", choices=list(ROWS), default="gaussian", help="the peers.py row (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    p.add_argument("--chains", type=positive, help="chains (default: the row's)")
    p.add_argument("--steps", type=positive, default=49,
                   help="steps timed and profiled, rounded down to 1 + a multiple of K (default: %(default)s)")
    p.add_argument("--steps-per-call", type=positive, nargs="+", metavar="K",
                   help="compiled steps a call to profile (default: scorelab's for the device)")
    p.add_argument("--keyed", action="store_true", help="a keyed stream (rng: keyed) in place of a generator")
    p.add_argument("--top", type=positive, default=20, help="ops shown, by their own time (default: %(default)s)")
    p.add_argument("--core", type=int, help="the CPU core to pin to (default: the first allowed)")
    args = p.parse_args()
    device = resolve_device(args.device)
    core = pin_to_one_core(args.core) if device.type == "cpu" else None
    torch.set_num_threads(1)
    row = ROWS[args.row]
    problem = make_problem(row, args.chains or row.chains, device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    print(f"{args.row}: {row.what}, {len(problem.x0)} chains, {row.dtype}"
          + (", keyed stream" if args.keyed else "") + f"; device {device_name(device)}"
          + (f", pinned to core {core}" if core is not None else "") + f"; torch {torch.__version__}")
    for k in args.steps_per_call or [compiled.steps_per_call(device)]:
        # The loop learns a step's calls from a single step, then takes k a call up to the budget:
        # 1 + n k steps are all in calls of k but the first.
        steps = 1 + k * max(1, (args.steps - 1) // k)
        with calls_of(k, device):
            for _ in range(2):  # compiles, then may recompile once on a value that changed
                run(row, problem, steps, device, args.keyed)
            t0 = time.perf_counter()
            run(row, problem, steps, device, args.keyed)
            rate = steps / (time.perf_counter() - t0)
            with profile(activities=activities) as prof:
                run(row, problem, steps, device, args.keyed)
        print(f"\n{k} step(s) a call: {rate:.1f} steps/s unprofiled ({steps} steps, the first single)")
        print(table(prof, steps, device, args.top))


if __name__ == "__main__":
    main()

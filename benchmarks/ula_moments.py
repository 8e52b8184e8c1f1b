"""Plain Langevin's cost on the ill-conditioned Gaussian without sampling noise: the exact moments.

On N(0, diag(v)) the unadjusted Langevin step x <- x - h x / v + sqrt(2h) z keeps every coordinate
Gaussian, with mean m_n = a^n m_0 and variance V_n = a^(2n) (V_0 - V_inf) + V_inf, where a = 1 - h/v
and V_inf = v / (1 - h / (2v)). So the step count at which every coordinate's mean (in standard
deviations) and variance (relative) are within a tolerance is known exactly, with no chains at all:
the cost the comparison measures with 3000 chains (configs/compare_illconditioned.yaml) should sit
above it, by what sampling noise takes from the tolerance. Plain Langevin is rotation-invariant, so
the same figures hold for the rotated Gaussian up to how the start's offset projects on its axes.

    python benchmarks/ula_moments.py [--tolerance 0.1 0.079] [--steps 5e-5 1e-4 1.8e-4 2e-4]
"""

from __future__ import annotations

import argparse

import numpy as np


def steps_to_tolerance(h: float, tolerance: float, v: np.ndarray, m0: float, s0: float,
                       max_steps: int = 2_000_000) -> int | None:
    """The first step from which max over coordinates of max(|m_n|/sqrt(v), |V_n/v - 1|) <= tolerance
    (both decay monotonically once the step is stable); None if the stationary bias exceeds it."""
    a = 1 - h / v
    if np.any(np.abs(a) >= 1):
        return None
    v_inf = 2 * h / (1 - a**2)
    if np.max(np.abs(v_inf / v - 1)) > tolerance:
        return None
    for start in range(0, max_steps, 10_000):
        n = np.arange(start, start + 10_000)[:, None]
        mean_err = np.abs(a**n * m0) / np.sqrt(v)
        var_err = np.abs((a ** (2 * n) * (s0**2 - v_inf) + v_inf) / v - 1)
        ok = np.flatnonzero(np.maximum(mean_err, var_err).max(1) <= tolerance)
        if ok.size:
            return int(start + ok[0])
    return None


RUN_TIME = "With the defaults: under a second on a 2-core CPU (measured 2026-11-30)."


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=RUN_TIME)
    p.add_argument("--dim", type=int, default=20, help="default: %(default)s")
    p.add_argument("--kappa", type=float, default=1000.0, help="default: %(default)s")
    p.add_argument("--start", type=float, nargs=2, default=(2.0, 3.0), metavar=("MEAN", "SD"),
                   help="default: %(default)s")
    p.add_argument("--tolerance", type=float, nargs="+", default=[0.10, 0.079], help="default: %(default)s")
    p.add_argument("--steps", type=float, nargs="+", default=[2.5e-5, 5e-5, 1e-4, 1.5e-4, 1.8e-4, 2e-4],
                   help="default: %(default)s")
    args = p.parse_args()
    v = args.kappa ** (-np.linspace(0, 1, args.dim))
    print(f"d={args.dim}, kappa={args.kappa:g}, start N({args.start[0]:g}, {args.start[1]:g}^2) per coordinate; "
          "steps (= score evaluations) until every coordinate's mean and variance are within the tolerance")
    print("| tolerance | " + " | ".join(f"h={h:g}" for h in args.steps) + " |")
    print("|---|" + "---|" * len(args.steps))
    for tol in args.tolerance:
        cells = [steps_to_tolerance(h, tol, v, *args.start) for h in args.steps]
        print(f"| {tol:g} | " + " | ".join("biased" if c is None else f"{c:,}" for c in cells) + " |")


if __name__ == "__main__":
    main()

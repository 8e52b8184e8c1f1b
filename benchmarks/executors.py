"""Wall time of one comparison run by the local executor and by Ray on this machine, interleaved.

The comparison has 12 child runs: Langevin's two steps tuned on three seeds (6 runs), then Langevin's
best and MALA on three evaluation seeds (6 runs). Ray is started once, before the timed rounds, with
``--workers`` CPUs; each round runs the comparison once per executor, each into a fresh temporary
sqlite store (allowed for Ray on one machine). Reports each executor's median wall time with its
range, and the median of Ray's per-round time over the local one.

    python benchmarks/executors.py --workers 2 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # before MLflow is imported: no schema-creation lines

from scorelab.compare import run_comparison  # noqa: E402
from scorelab.config import parse_comparison  # noqa: E402
from scorelab.executors import LocalExecutor, RayExecutor  # noqa: E402
from scorelab.tracking import Tracker  # noqa: E402

RUN_TIME = "With the defaults: about 3 minutes on a 2-core CPU (2026-11-30)."

CONFIG = {"name": "executors", "target": {"name": "gaussian", "dim": 10, "condition_number": 10.0},
          "budget": 4000, "chains": 2000, "seeds": [0, 1, 2], "tuning_seeds": [1000, 1001, 1002],
          "checkpoints": 6, "metrics": ["mean_error", "covariance_error"], "cost_weights": {"vjp": 3, "jvp": 4},
          "samplers": [{"name": "langevin", "step_size": [0.02, 0.05]}, {"name": "mala", "warmup": 0}]}


def timed(executor) -> float:
    with tempfile.TemporaryDirectory() as store:
        tracker = Tracker(f"sqlite:///{Path(store) / 'mlflow.db'}")
        t0 = time.perf_counter()
        result = run_comparison(parse_comparison(CONFIG), tracker, executor=executor)
        assert len(result.runs) == 12, len(result.runs)
        return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=RUN_TIME)
    p.add_argument("--workers", type=int, default=2, help="CPUs given to Ray (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=2, help="default: %(default)s")
    args = p.parse_args()
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    print(f"Ray started in {time.perf_counter() - t0:.1f} s with {args.workers} CPUs; {os.cpu_count()} cores here")
    executors = {"local": LocalExecutor(), "ray": RayExecutor()}
    timed(executors["ray"])  # warm-up: Ray's workers start and import scorelab once
    times: dict[str, list[float]] = {name: [] for name in executors}
    for r in range(args.rounds):
        for name, executor in executors.items():
            times[name].append(timed(executor))
            print(f"round {r + 1}: {name:>5s} {times[name][-1]:6.1f} s", flush=True)
    ratios = [ray_t / local_t for ray_t, local_t in zip(times["ray"], times["local"], strict=True)]
    for name, ts in times.items():
        print(f"{name:>5s}: median {statistics.median(ts):6.1f} s [{min(ts):.1f}, {max(ts):.1f}]")
    print(f"ray / local: median {statistics.median(ratios):.2f} [{min(ratios):.2f}, {max(ratios):.2f}]")
    ray.shutdown()


if __name__ == "__main__":
    main()

"""Share of a comparison's wall time spent in MLflow tracking (4 samplers x 3 seeds).

    python benchmarks/tracking_share.py
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from scorelab.compare import run_comparison
from scorelab.config import parse_comparison
from scorelab.plugins import host
from scorelab.tracking import Tracker

CONFIG = {
    "name": "tracking-share",
    "target": {"name": "gmm", "weights": [0.8, 0.2], "means": [[-5, -5], [5, 5]], "stds": [1, 1]},
    "budget": 2000,
    "chains": 4000,
    "seeds": [0, 1, 2],
    "checkpoints": 12,
    "cost_weights": {"vjp": 3, "jvp": 4},
    "init": {"distribution": "uniform", "scale": 8.0},
    "metrics": ["mode_weight_error", "sliced_wasserstein", "mean_error", "covariance_error"],
    "samplers": [{"name": "langevin", "step_size": [0.05, 0.1, 0.2]}, {"name": "annealed_langevin", "sigma_max": 20}],
}


RUN_TIME = "With the defaults: about 25 s on a 2-core CPU (measured 2026-11-30)."


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=RUN_TIME).parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tracker = Tracker(f"sqlite:///{Path(tmp) / 'mlflow.db'}")
        tracker.experiment("warm-up")  # creating the database tables is a one-off, not per comparison
        tracker.seconds = 0.0
        result = run_comparison(parse_comparison(CONFIG, None, host()), tracker)
    share = result.tracking_seconds / result.total_seconds
    print(f"device {result.device}: {len(result.runs)} runs, {result.total_seconds:.1f} s in all, "
          f"{result.tracking_seconds:.2f} s tracking = {100 * share:.1f} %")


if __name__ == "__main__":
    main()

"""Wall time of one comparison config run eagerly and compiled, interleaved, in one process.

Each round runs the config once per mode (``compile: none``, then the others), each into a fresh
temporary MLflow store, and times the whole comparison: tuning, evaluation, metrics, tracking and
any compile time. Reports per mode the median wall time with its range, and the median over rounds
of each mode's time relative to ``none`` in the same round.

    python benchmarks/compile_modes.py configs/quickstart.yaml --modes none auto --rounds 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # before MLflow is imported: no schema-creation lines

import torch  # noqa: E402

from scorelab import compiled  # noqa: E402
from scorelab.compare import run_comparison  # noqa: E402
from scorelab.config import load_yaml, parse_comparison  # noqa: E402
from scorelab.device import device_name, resolve_device  # noqa: E402
from scorelab.tracking import Tracker  # noqa: E402

RUN_TIME = ("configs/quickstart.yaml, modes none and auto: about 1 minute a round on a 2-core CPU (3 rounds took "
            "3 minutes, 2026-11-30 13:08-13:11 UTC).")


def timed_run(raw: dict, file: str, mode: str) -> float:
    comp = parse_comparison({**raw, "compile": mode}, file)
    with tempfile.TemporaryDirectory() as store:
        tracker = Tracker(f"sqlite:///{Path(store) / 'mlflow.db'}")
        t0 = time.perf_counter()
        run_comparison(comp, tracker)
        return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=RUN_TIME)
    p.add_argument("config", help="a comparison config")
    p.add_argument("--modes", nargs="+", default=["none", "auto"], help="default: %(default)s ('none' is the baseline)")
    p.add_argument("--rounds", type=int, default=2, help="default: %(default)s")
    args = p.parse_args()
    modes = ["none"] + [m for m in args.modes if m != "none"]
    raw = load_yaml(args.config)
    print(f"{args.config} on {device_name(resolve_device(raw.get('device', 'auto')))}, torch {torch.__version__}")
    times: dict[str, list[float]] = {m: [] for m in modes}
    for r in range(args.rounds):
        for mode in modes:
            times[mode].append(timed_run(raw, args.config, mode))
            print(f"round {r + 1}: {mode:>10s} {times[mode][-1]:7.1f} s", flush=True)
    for mode in modes:
        ratios = [t / base for t, base in zip(times[mode], times["none"], strict=True)]
        print(f"{mode:>10s}: median {statistics.median(times[mode]):7.1f} s [{min(times[mode]):.1f}, "
              f"{max(times[mode]):.1f}]; / none: median {statistics.median(ratios):.2f} "
              f"[{min(ratios):.2f}, {max(ratios):.2f}]")
    for key, path in compiled._auto_choices.items():  # what auto kept, per sampler setting and chain shape
        print(f"auto kept {path} for {key[1]} on chains {list(key[2])}")


if __name__ == "__main__":
    main()

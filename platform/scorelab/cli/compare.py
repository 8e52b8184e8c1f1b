"""``scorelab compare CONFIG``: run a comparison and print its table."""

from __future__ import annotations

import sys
from pathlib import Path


def add(sub):
    p = sub.add_parser("compare", help="run a sampler comparison from a YAML config")
    p.add_argument("config", nargs="?", help="path to a comparison config (see configs/)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///runs/mlflow.db)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="run the child runs one after another here (local), or each as a Ray task (ray; "
                        "pip install 'scorelab[ray]')")
    p.add_argument("--resume", nargs="?", const="", metavar="RUN_ID",
                   help="finish a comparison that did not finish (killed, or failed), in its own parent run: its "
                        "children that ended are kept, those that never ended run again; RUN_ID is its parent "
                        "run (default: the latest comparison of the config's experiment)")
    p.add_argument("--ray-address", help="the Ray cluster to submit to (e.g. ray://head:10001 or auto; default: "
                                         "$RAY_ADDRESS, else a Ray runtime on this machine); with --executor ray")
    return p


def run(args) -> int:
    from tqdm import tqdm

    from scorelab.analysis import swept
    from scorelab.compare import run_comparison
    from scorelab.config import load_comparison
    from scorelab.plugins import host
    from scorelab.summary import text_table
    from scorelab.tracking import Tracker

    if args.resume and Path(args.resume).is_file() and not (args.config and Path(args.config).is_file()):
        args.config, args.resume = args.resume, args.config or ""  # `--resume CONFIG`: the flag took the config
    if args.config is None:
        print("scorelab compare: a comparison config is required (scorelab compare CONFIG)", file=sys.stderr)
        return 2
    comp = load_comparison(args.config)  # every config error before any work
    if comp.rng == "keyed" and comp.compile == "none":
        print("scorelab compare: rng: keyed with compile: none makes the keyed numbers eagerly, about ten times "
              "slower than torch's own (benchmarks/README.md); compile: auto or inductor makes them in the step",
              file=sys.stderr)
    executor = None
    if args.executor == "ray":
        from scorelab.executors import RayExecutor
        from scorelab.tracking import default_tracking_uri

        executor = RayExecutor(args.ray_address)
        executor.check(args.tracking_uri or default_tracking_uri())
    elif args.ray_address:
        print("scorelab compare: --ray-address needs --executor ray", file=sys.stderr)
        return 2
    if comp.score != "exact":  # a trained model lives in an existing store: look there, create nothing
        from scorelab.store import open_store
        from scorelab.tracking import default_tracking_uri

        open_store(args.tracking_uri or default_tracking_uri(), write=False)
    tracker = Tracker(args.tracking_uri)
    tuned = swept([s.name for s in comp.samplers])
    total = sum(len(comp.tuning_seeds) for s in comp.samplers if s.name in tuned) + len(comp.seeds) * len(
        {s.name for s in comp.samplers})
    with tqdm(total=total, desc=comp.name, unit="run", disable=args.quiet or not sys.stderr.isatty()) as bar:
        result = run_comparison(comp, tracker, plugins=host().listing(), progress=bar, executor=executor,
                                resume=None if args.resume is None else args.resume or comp.name)
    print(text_table(result.rows, result.study, result.skipped))
    w = result.cost_weights
    print(f"\ndevice {result.device}; cost = NFE + {w.vjp:.2f}·VJP + {w.jvp:.2f}·JVP + {w.curvature:.2f}·CURV; "
          f"{result.total_seconds:.1f} s in all, {result.tracking_seconds:.1f} s of it tracking")
    if result.resumed is not None:
        kept, ran = result.resumed
        print(f"resumed: {kept} children kept as they ended, {ran} run now")
    uri = f" --tracking-uri {args.tracking_uri}" if args.tracking_uri else ""
    print(f"MLflow: {tracker.uri}  experiment '{comp.name}', parent run {result.parent_run_id}")
    print(f"Browse it with: scorelab ui{uri}; rebuild the report with: scorelab report {result.parent_run_id}{uri}")
    return 0

"""``scorelab train CONFIG`` / ``scorelab train --resume RUN_ID``: train a score model, log it to MLflow."""

from __future__ import annotations

import sys


def add(sub):
    p = sub.add_parser("train", help="train a score model from a YAML config (or resume a killed run)")
    p.add_argument("config", nargs="?", help="path to a training config (see configs/train_*.yaml)")
    p.add_argument("--resume", metavar="RUN_ID", help="continue this killed training run from its last checkpoint")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///runs/mlflow.db)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="train here (local), or as one Ray task (ray; pip install 'scorelab[ray]'); a config only: "
                        "--resume runs here")
    p.add_argument("--ray-address", help="the Ray cluster to submit to (e.g. ray://head:10001 or auto; default: "
                                         "$RAY_ADDRESS, else a Ray runtime on this machine); with --executor ray")
    return p


def run(args) -> int:
    from scorelab.errors import ScorelabError
    from scorelab.tracking import Tracker
    from scorelab.training import load_training, resume, train

    if (args.config is None) == (args.resume is None):
        raise ScorelabError("give a config file, or --resume RUN_ID (not both)")
    if args.resume and args.executor == "ray":
        raise ScorelabError("--executor ray starts a training from a config; resume a run here, without --executor ray")
    if args.ray_address and args.executor != "ray":
        raise ScorelabError("--ray-address needs --executor ray")
    training = load_training(args.config) if args.config else None  # every config error before any work
    if args.resume:  # a run to resume must already be in a store: find it without creating one
        from scorelab.store import open_store
        from scorelab.tracking import default_tracking_uri

        open_store(args.tracking_uri or default_tracking_uri(), write=False)
    if args.executor == "ray":  # before the store is created: a cluster cannot use a sqlite file
        from scorelab.executors import RayExecutor
        from scorelab.tracking import default_tracking_uri

        RayExecutor(args.ray_address).check(args.tracking_uri or default_tracking_uri())
    tracker = Tracker(args.tracking_uri)
    progress = not args.quiet
    try:
        if args.executor == "ray":
            from scorelab.executors import RayExecutor

            result = RayExecutor(args.ray_address).train(training, tracker.uri)
        elif training:
            result = train(training, tracker, progress=progress)
        else:
            result = resume(args.resume, tracker, progress=progress)
    except (KeyboardInterrupt, Exception) as exc:
        run_id = getattr(exc, "scorelab_run_id", None)
        if run_id:
            print(f"\ntraining stopped; continue from its last checkpoint with: scorelab train --resume {run_id}"
                  + (f" --tracking-uri {args.tracking_uri}" if args.tracking_uri else ""), file=sys.stderr)
        raise
    esm = [v for k, v in result.final.items() if k.startswith("esm_relative/")]
    figures = f"loss {result.final['loss']:.4g}, held-out loss {result.final['eval_loss']:.4g}" + (
        f", relative ESM error {min(esm):.3g} to {max(esm):.3g} over {len(esm)} noise levels" if esm else "")
    resumed = (f" (resumed at step {result.resumed_from}; {result.total_seconds:.1f} s in all with the run's "
               "earlier sessions)") if result.resumed_from else ""
    print(f"trained {result.steps} steps in {result.seconds:.1f} s{resumed}: {figures}")
    print(f"model: {result.model_uri}" + (f"  (registered version {result.registered_version})"
                                          if result.registered_version else ""))
    print(f"use it in a comparison with  score: {result.model_uri}")
    print(f"MLflow: {tracker.uri}  run {result.run_id}")
    return 0

"""``scorelab study DIR``: run every comparison of a study, then write its document from MLflow."""

from __future__ import annotations

import sys
from pathlib import Path


def add(sub):
    p = sub.add_parser("study", help="run a study (a folder of comparison configs) and write its document")
    p.add_argument("folder", help="a folder with study.yaml and the comparison configs it names (configs/study)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke test: a fraction of each budget, few chains and seeds, no tuning "
                        "(experiments *-quick)")
    p.add_argument("--from-mlflow", action="store_true",
                   help="run nothing: rebuild the document from each comparison's latest run in MLflow")
    p.add_argument("--out", type=Path, help="the document to write (default: study.yaml's 'document'; with --quick, "
                                            "reports/<its name>-quick.md, so a smoke test never overwrites the study)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///runs/mlflow.db)")
    p.add_argument("--only", nargs="+", metavar="CONFIG",
                   help="run only these comparisons (config file names, e.g. banana.yaml); the document takes the "
                        "others' latest runs from MLflow")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args) -> int:
    from tqdm import tqdm

    from scorelab.compare import run_comparison
    from scorelab.plugins import host
    from scorelab.study import experiment_names, load_study, write_document
    from scorelab.tracking import Tracker
    from scorelab.training.run import train

    plan = load_study(args.folder, quick=args.quick)  # every config error before any work
    tracker = Tracker(args.tracking_uri)
    refs = experiment_names(plan)  # each comparison's latest run in MLflow, unless run now
    chosen = plan.select(args.only) if args.only else range(len(plan.entries))
    if not args.from_mlflow:
        for i in chosen:
            comp, training = plan.comparisons[i], plan.trainings[i]
            if training is not None:
                trained = train(training, tracker, progress=not args.quiet and sys.stderr.isatty())
                print(f"{training.name}: trained {trained.model_uri} in {trained.seconds:.0f} s")
                comp = plan.with_model(i, trained.model_uri)
            with tqdm(desc=comp.name, unit="run", disable=args.quiet or not sys.stderr.isatty()) as bar:
                result = run_comparison(comp, tracker, plugins=host().listing(), progress=bar)
            print(f"{comp.name}: parent run {result.parent_run_id}, {result.total_seconds:.0f} s")
            refs[i] = result.parent_run_id
    out = args.out
    if out is None and plan.quick is not None:
        out = Path("reports") / f"{Path(plan.spec.document).stem}-quick.md"
    document = write_document(plan, tracker.client, refs, out)
    print(f"wrote {document}")
    return 0

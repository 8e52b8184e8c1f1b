"""``scorelab report REF``: rebuild a comparison's report from MLflow alone (no rerun), optionally
re-priced with other cost weights from the call counts logged at every point of every curve."""

from __future__ import annotations

from pathlib import Path

WEIGHT_KINDS = ("vjp", "jvp", "curvature")


def add(sub):
    p = sub.add_parser("report", help="rebuild a comparison's report (table, plots) from MLflow into a folder")
    p.add_argument("ref", help="the comparison's parent run id, or an experiment name (its latest comparison)")
    p.add_argument("--out", type=Path, help="folder to write (default: reports/<experiment>-<run id>, and "
                   "-at-<weights> after it when re-priced)")
    p.add_argument("--cost-weights", metavar="vjp=W,jvp=W,curvature=W",
                   help="re-price every run with these weights (kinds not named keep the logged ones)")
    p.add_argument("--partial", action="store_true",
                   help="report a comparison that did not finish (killed, failed or still running), marked incomplete")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///runs/mlflow.db)")
    return p


def parse_weights(text: str, logged):
    """``vjp=3,jvp=4`` over the logged weights; a clear error for anything else."""
    import dataclasses

    from scorelab.errors import ScorelabError

    values = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in WEIGHT_KINDS:
            raise ScorelabError(f"--cost-weights: expected kind=weight with kind one of {', '.join(WEIGHT_KINDS)}, "
                                f"got {item!r}")
        try:
            values[key] = float(value)
        except ValueError:
            raise ScorelabError(f"--cost-weights: {key} must be a number, got {value!r}") from None
        if not values[key] > 0:
            raise ScorelabError(f"--cost-weights: {key} must be > 0, got {value}")
    return dataclasses.replace(logged, **values)


def run(args) -> int:
    from scorelab import reporting
    from scorelab.analysis import reprice
    from scorelab.errors import ScorelabError
    from scorelab.store import open_store
    from scorelab.summary import text_table
    from scorelab.tracking import default_tracking_uri

    client = open_store(args.tracking_uri or default_tracking_uri(), write=False)
    parent, study, records, weights = reporting.load_records(client, args.ref, partial=args.partial)
    problems = reporting.incomplete(parent, reporting.comparison_config(client, parent), records, study)
    warning = ("INCOMPLETE comparison (--partial): " + "; ".join(problems) + "; tables and plots from the "
               "children that ended\n") if problems else ""
    records = [r for r in records if r.status in ("FINISHED", "FAILED")]  # one killed is neither ok nor failed
    if args.cost_weights:
        weights = parse_weights(args.cost_weights, weights)
        try:
            records = reprice(records, weights, study.budget)
        except ValueError as exc:
            raise ScorelabError(str(exc)) from None
    rows, files = reporting.report_files(records, study, weights)
    files["summary.md"] = warning + files["summary.md"]
    experiment = client.get_experiment(parent.info.experiment_id).name
    # A re-priced report goes beside the as-run one, named by its weights, never over it.
    priced = f"-at-vjp{weights.vjp:g}-jvp{weights.jvp:g}-curvature{weights.curvature:g}" if args.cost_weights else ""
    out = args.out or Path("reports") / f"{experiment}-{parent.info.run_id[:8]}{priced}"
    report = reporting.write_report(out, files)
    print(warning + text_table(rows, study, reporting.skipped_samplers(records, study)))
    print(f"\ncost = NFE + {weights.vjp:.2f}·VJP + {weights.jvp:.2f}·JVP + {weights.curvature:.2f}·CURV"
          + (" (re-priced)" if args.cost_weights else " (as run)"))
    print(f"wrote {report} with {len(files) - 2} plots beside it")
    return 0

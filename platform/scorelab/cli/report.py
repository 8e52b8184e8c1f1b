"""``scorelab report REF``: rebuild a comparison's report from MLflow alone (no rerun)."""

from __future__ import annotations

from pathlib import Path


def add(sub):
    p = sub.add_parser("report", help="rebuild a comparison's report (table, plots) from MLflow into a folder")
    p.add_argument("ref", help="the comparison's parent run id, or an experiment name (its latest comparison)")
    p.add_argument("--out", type=Path, help="folder to write (default: reports/<experiment>-<run id>)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///runs/mlflow.db)")
    return p


def run(args) -> int:
    from mlflow.tracking import MlflowClient

    from scorelab.reporting import load_records, report_files, write_report
    from scorelab.summary import text_table
    from scorelab.tracking import default_tracking_uri

    client = MlflowClient(args.tracking_uri or default_tracking_uri())
    parent, study, records = load_records(client, args.ref)
    rows, files = report_files(records, study)
    experiment = client.get_experiment(parent.info.experiment_id).name
    out = args.out or Path("reports") / f"{experiment}-{parent.info.run_id[:8]}"
    report = write_report(out, files)
    print(text_table(rows, study))
    print(f"\nwrote {report} with {len(files) - 2} plots beside it")
    return 0

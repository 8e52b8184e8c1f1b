"""``scorelab ui``: serve the MLflow store with the MLflow UI on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def add(sub):
    p = sub.add_parser("ui", help="serve the MLflow UI for the store on 127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--tracking-uri", help="store to serve (default: $MLFLOW_TRACKING_URI or sqlite:///runs/mlflow.db)")
    return p


def run(args) -> int:
    from scorelab.store import artifact_root, open_store
    from scorelab.tracking import default_tracking_uri

    uri = args.tracking_uri or default_tracking_uri()
    if uri.startswith(("http://", "https://")):
        print(f"{uri} is already a server: open it in a browser")
        return 0
    client = open_store(uri, write=False)  # a moved project's artifact paths are set before the UI reads them
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
           "--host", "127.0.0.1", "--port", str(args.port), "--workers", "1"]
    if artifact_root(uri):
        cmd += ["--default-artifact-root", artifact_root(uri)]
    home = f"http://127.0.0.1:{args.port}"
    print(f"Serving {uri} — open {home} (Ctrl-C stops)", flush=True)
    latest = latest_comparison(client)
    if latest is not None:
        for what, url in comparison_urls(home, latest).items():
            print(f"{what}: {url}", flush=True)
    return serve(cmd)


def serve(cmd: list[str]) -> int:
    """Run the server ``cmd`` until it ends or scorelab is stopped (Ctrl-C, SIGTERM, a closed terminal),
    then stop it and its workers with SIGTERM, their clean shutdown (SIGKILL after 15 s). The server
    runs in a session of its own so that Ctrl-C reaches scorelab alone: MLflow's workers print a
    traceback each when they get the SIGINT, and not every MLflow passes a SIGTERM on to them."""
    server = subprocess.Popen(cmd, start_new_session=True)
    stops = [getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)]

    def stop(signum, frame):
        raise KeyboardInterrupt

    for sig in stops[1:]:
        signal.signal(sig, stop)
    try:
        return server.wait()
    except KeyboardInterrupt:
        for sig in stops:  # a second Ctrl-C must not leave the server running
            signal.signal(sig, signal.SIG_IGN)
        _signal_session(server, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            _signal_session(server, getattr(signal, "SIGKILL", signal.SIGTERM))
        return 0


def _signal_session(server: subprocess.Popen, sig: int) -> None:
    """Send ``sig`` to the server and every process of its session (its workers)."""
    try:
        os.killpg(server.pid, sig) if hasattr(os, "killpg") else server.send_signal(sig)
    except ProcessLookupError:  # gone already
        pass


#: MLflow 3's UI opens an experiment on the view of its "workflow type", GenAI (traces) unless told.
MODEL_TRAINING = "workflowType=machine_learning"


def comparison_urls(home: str, parent) -> dict[str, str]:
    """Where a comparison's answer (its parent run's page) and its runs table are in the UI."""
    experiment = f"{home}/#/experiments/{parent.info.experiment_id}"
    return {"Latest comparison": f"{experiment}/runs/{parent.info.run_id}?{MODEL_TRAINING}",
            "Its experiment's runs": f"{experiment}/runs?{MODEL_TRAINING}"}


def latest_comparison(client):
    """The parent run of the most recent comparison in the store, or None."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, "tags.`scorelab.role` = 'comparison'",
                              order_by=["attributes.start_time DESC"], max_results=1) if experiments else []
    return runs[0] if runs else None

"""``scorelab study DIR``: run every comparison of a study, then write its document from MLflow."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def add(sub):
    p = sub.add_parser("study", help="run a study (a folder of comparison configs) and write its document")
    p.add_argument("folder", help="a folder with study.yaml and the comparison configs it names (configs/study)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke test: a fraction of each budget, few chains and seeds, no tuning "
                        "(experiments *-quick)")
    p.add_argument("--from-mlflow", action="store_true",
                   help="run nothing: rebuild the document from each comparison's latest finished run in MLflow")
    p.add_argument("--out", type=Path, help="the document to write (default: study.yaml's 'document'; with --quick, "
                                            "reports/<its name>-quick.md, so a smoke test never overwrites the study)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///runs/mlflow.db)")
    p.add_argument("--only", nargs="+", metavar="CONFIG",
                   help="run only these comparisons (config file names, e.g. banana.yaml); the document takes the "
                        "others' latest runs from MLflow")
    p.add_argument("--resume", action="store_true",
                   help="finish a study that was stopped: a comparison whose latest run finished is taken from "
                        "MLflow, one that did not finish is resumed in its own parent run (scorelab compare "
                        "--resume), one never run is run")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="run N comparisons at once, each in its own process (comparisons use one CPU thread "
                        "each, so N = the number of cores is the fastest on a CPU); default 1")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--record", type=Path, help=argparse.SUPPRESS)  # for --jobs: where a worker writes its run ids
    return p


def run(args) -> int:
    from scorelab.errors import ConfigError
    from scorelab.study import experiment_names, load_study, write_document
    from scorelab.tracking import Tracker

    if args.jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {args.jobs}")
    plan = load_study(args.folder, quick=args.quick)  # every config error before any work
    tracker = Tracker(args.tracking_uri)
    refs = experiment_names(plan)  # each comparison's latest finished run in MLflow, unless run now
    chosen = plan.select(args.only) if args.only else list(range(len(plan.entries)))
    if not args.from_mlflow:
        if args.jobs > 1 and len(chosen) > 1:
            tracker.client.search_experiments(max_results=1)  # create the store once, before the workers
            ran = _in_processes(args, [plan.entries[i].config for i in chosen], min(args.jobs, len(chosen)))
        else:
            ran = {i: _run_one(plan, i, tracker, progress=not args.quiet and sys.stderr.isatty(), resume=args.resume)
                   for i in chosen}
        refs = [ran.get(i, ref) for i, ref in enumerate(refs)]
        if args.record:
            args.record.write_text(json.dumps(ran))
            return 0
    out = args.out
    if out is None and plan.quick is not None:
        out = Path("reports") / f"{Path(plan.spec.document).stem}-quick.md"
    document, unmeasured = write_document(plan, tracker.client, refs, out)
    print(f"wrote {document}" + (f"; not measured (no finished run in MLflow): {', '.join(unmeasured)}"
                                  if unmeasured else ""))
    return 0


def _run_one(plan, i: int, tracker, progress: bool, resume: bool = False) -> str:
    """Comparison ``i`` of the study (its model trained first where it has one): its parent run id. With
    ``resume``, its latest run if that finished, else that run finished (with the model it ran with)."""
    from tqdm import tqdm

    from scorelab.compare import run_comparison
    from scorelab.plugins import host
    from scorelab.training.run import train

    comp, latest = _latest_run(plan, i, tracker.client) if resume else (plan.comparisons[i], None)
    if latest is not None and latest.info.status == "FINISHED":
        print(f"{comp.name}: finished already, parent run {latest.info.run_id}", flush=True)
        return latest.info.run_id
    training = plan.trainings[i]
    if latest is None and training is not None:
        trained = train(training, tracker, progress=progress)
        print(f"{training.name}: trained {trained.model_uri} in {trained.seconds:.0f} s", flush=True)
        comp = plan.with_model(i, trained.model_uri)
    with tqdm(desc=comp.name, unit="run", disable=not progress) as bar:
        result = run_comparison(comp, tracker, plugins=host().listing(), progress=bar,
                                resume=latest.info.run_id if latest is not None else None)
    print(f"{comp.name}: parent run {result.parent_run_id}, {result.total_seconds:.0f} s", flush=True)
    return result.parent_run_id


def _latest_run(plan, i: int, client) -> tuple:
    """Comparison ``i`` as its latest run in MLflow ran (with the model that run compared, whose training
    is not checked), and that run; or the comparison and None where there is no run, or the config now
    differs from the run's (said in a line: it is run anew)."""
    from scorelab.compare import config_now
    from scorelab.device import resolve_device
    from scorelab.oracle import CostWeights
    from scorelab.reporting import comparison_config, find_parent
    from scorelab.resume import differences

    comp = plan.comparisons[i]
    latest = find_parent(client, comp.name)
    if latest is None:
        return comp, None
    logged = comparison_config(client, latest)
    ran = plan.with_model(i, logged["score"]) if plan.trainings[i] is not None else comp
    changed = differences(logged, config_now(ran, CostWeights(**logged["cost_weights"]), resolve_device(ran.device)))
    if changed:
        print(f"{comp.name}: its config differs from its latest run's in {', '.join(changed)}: run anew", flush=True)
        return comp, None
    return ran, latest


def _in_processes(args, configs: list[str], jobs: int) -> dict[int, str]:
    """Each config's comparison in a ``scorelab study --only CONFIG`` process, ``jobs`` at a time, in
    study order. A failed one stops the study after the running ones end (what they logged is kept);
    an interrupt ends every worker as Ctrl-C would, so their runs are marked KILLED."""
    from scorelab.errors import ScorelabError

    base = [sys.executable, "-m", "scorelab", "study", str(args.folder), "--quiet"]
    base += ["--quick"] * args.quick + ["--resume"] * args.resume
    base += ["--tracking-uri", args.tracking_uri] if args.tracking_uri else []
    pending, running, ran, failed = list(configs), {}, {}, []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            while (pending and not failed) or running:
                while pending and len(running) < jobs and not failed:
                    config = pending.pop(0)
                    record = Path(tmp) / f"{config}.json"
                    print(f"started {config}", flush=True)
                    running[config] = (subprocess.Popen([*base, "--only", config, "--record", str(record)]), record)
                time.sleep(0.5)
                for config, (proc, record) in list(running.items()):
                    if proc.poll() is not None:
                        del running[config]
                        if proc.returncode == 0:
                            ran.update({int(k): v for k, v in json.loads(record.read_text()).items()})
                        else:
                            failed.append(config)
        except KeyboardInterrupt:
            _end_workers([proc for proc, _ in running.values()])
            raise
    if failed:
        raise ScorelabError(f"comparison(s) failed: {', '.join(failed)} (their output is above); rerun them with "
                            f"--only {' '.join(failed)} and the document takes the rest from MLflow")
    return ran


def _end_workers(procs: list, grace_s: float = 5.0) -> None:
    """Ctrl-C reaches the workers too (one process group) and they end on their own, marking their runs
    KILLED; a SIGTERM sent to this process alone does not, so whoever is still running after a grace
    period is sent one. A second signal during a worker's own clean-up could cut it short, hence the wait."""
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait()

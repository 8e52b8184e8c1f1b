"""Resuming a comparison that did not finish (``scorelab compare CONFIG --resume``), in its own parent run.

What the killed comparison measured stands: its cost weights, quality floors and every child that
ended are kept as logged, FAILED ones too (a sampler that raised, or a Ray worker that died, is an
outcome of the comparison; run it without ``--resume`` to run every child afresh). A child that
never ended (KILLED, or RUNNING when its process died) is run again from its start, as a new child;
the old one stays in the store, tagged ``scorelab.superseded``, and reports read past it. Only the
same comparison is resumed: its resolved config (weights as measured then) must be the one now.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .analysis import RunRecord
from .errors import ConfigError, ScorelabError
from .oracle import CostWeights
from .reporting import SUPERSEDED_TAG, children, comparison_config, find_parent, load_records
from .store import HOST_TAG, PID_TAG, orphaned, process_tags
from .tracking import Tracker


@dataclass
class Resumed:
    """What a resumed comparison starts from."""

    parent_id: str
    experiment_id: str
    config: dict  # the resolved config the comparison logged
    weights: CostWeights
    floors: dict[str, float]
    kept: list[RunRecord]  # children that ended, in their order
    rerun: list[RunRecord]  # children that never ended: run again
    order: int  # the next child's number


def unfinished(client, ref: str, name: str, uri: str) -> Resumed:
    """The comparison to resume: ``ref`` is a parent run id, or ``name`` (the config's experiment) for its
    latest comparison, in the store at ``uri``. Refused with one line where there is none, it finished,
    or it runs still."""
    parent = find_parent(client, ref)
    if parent is None:
        raise ScorelabError(f"no comparison to resume: {_not_a_comparison(client, ref)} (tracking URI {uri})")
    run_id, status = parent.info.run_id, parent.info.status
    experiment = client.get_experiment(parent.info.experiment_id).name
    if experiment != name:
        raise ScorelabError(f"comparison {run_id} is in experiment '{experiment}', and the config's name is '{name}'")
    if status == "FINISHED":
        earlier = client.search_runs([parent.info.experiment_id], "tags.`scorelab.role` = 'comparison' and "
                                     "attributes.status != 'FINISHED' and attributes.start_time < "
                                     f"{parent.info.start_time}", order_by=["attributes.start_time DESC"],
                                     max_results=1)
        others = "".join(f"; an earlier one did not finish: {r.info.run_id} ({r.info.status}), --resume "
                         f"{r.info.run_id} finishes it" for r in earlier)
        raise ScorelabError(f"comparison {run_id} ('{name}') finished; nothing to resume (run it without --resume "
                            f"for a new one){others}")
    tags = parent.data.tags
    if status == "RUNNING" and not orphaned(tags):  # a tracking server's runs are not reaped as a sqlite store's
        raise ScorelabError(f"comparison {run_id} ('{name}') is still running (process {tags.get(PID_TAG)} on "
                            f"{tags.get(HOST_TAG)}); stop it first")
    from mlflow.exceptions import MlflowException  # imported when needed, as everywhere in scorelab

    try:
        _, study, records, weights = load_records(client, run_id, partial=True)
    except MlflowException:  # killed within its first second, before its config was logged
        raise ScorelabError(f"comparison {run_id} ('{name}') was stopped before it logged its config; nothing to "
                            "resume (run it without --resume)") from None
    kept = [r for r in records if r.status in ("FINISHED", "FAILED")]
    orders = [int(r.data.tags.get("scorelab.order", 0)) for r in children(client, parent)]  # superseded ones too
    return Resumed(run_id, parent.info.experiment_id, comparison_config(client, parent), weights, study.floors,
                   kept, [r for r in records if r.status not in ("FINISHED", "FAILED")], max(orders, default=-1) + 1)


def _not_a_comparison(client, ref: str) -> str:
    """Why ``ref`` names no comparison: a child run's parent is named."""
    from mlflow.exceptions import MlflowException

    try:
        parent = client.get_run(ref).data.tags.get("mlflow.parentRunId")
    except MlflowException:
        parent = None
    if parent is not None:
        return f"run {ref} is a child run of comparison {parent}; pass that"
    return f"'{ref}' is neither a comparison's parent run id nor an experiment with one"


def check_same(resumed: Resumed, now: dict, file: str | None) -> None:
    """ConfigError unless ``now`` (the config as it would run, :func:`scorelab.compare.resolved_config`)
    is the one the comparison logged; the error names the keys that differ."""
    differ = differences(resumed.config, now)
    if differ:
        raise ConfigError(f"comparison {resumed.parent_id} ran another config; it differs in "
                          f"{', '.join(differ)}. Resume it with the config it ran (config.yaml in its artifacts), "
                          "or run this one without --resume", file=file, key=differ[0])


def differences(logged: dict, now: dict) -> list[str]:
    """The top-level keys in which two resolved configs differ, the config file's path apart."""
    logged, now = (_plain({k: v for k, v in c.items() if k != "source_file"}) for c in (logged, now))
    return sorted(k for k in logged.keys() | now.keys() if logged.get(k) != now.get(k))


def _plain(value: Any) -> Any:
    """``value`` as YAML gives it back (tuples as lists), so a logged config compares with a fresh one."""
    return json.loads(json.dumps(value, default=str))


def reopen(tracker: Tracker, resumed: Resumed, environment: dict) -> None:
    """The parent running again in this process, and the children that never ended superseded (and
    ended, where a dead process left them RUNNING). Resumed in another environment
    (``environment.json`` of the parent), a notice says so: the wall times of the children run before
    and after are not comparable."""
    client = tracker.client
    for record in resumed.rerun:
        tracker.set_tags(record.run_id, {SUPERSEDED_TAG: "never ended; run again by a resume of its comparison"})
        if record.status == "RUNNING":
            tracker.end(record.run_id, "KILLED")
        else:
            tracker.flush(record.run_id)
    parent = client.get_run(resumed.parent_id)
    logged = _logged_environment(client, resumed.parent_id)
    changed = sorted(k for k in environment if logged is not None and logged.get(k) != environment[k])
    if changed:
        print(f"scorelab: resuming comparison {resumed.parent_id} in another environment than it ran in "
              f"({', '.join(f'{k} {logged.get(k)} -> {environment[k]}' for k in changed)}): wall times of its "
              "children before and after are not comparable", file=sys.stderr)
    # This process's id first, then RUNNING: another command that finds the run RUNNING sees a live process.
    tracker.set_tags(resumed.parent_id, {**process_tags(), "scorelab.status": "running",
                                         "scorelab.resumed_after": parent.data.tags.get("scorelab.status", "unknown"),
                                         "scorelab.resumed_kept": len(resumed.kept),
                                         "scorelab.resumed_rerun": len(resumed.rerun),
                                         **({"scorelab.resumed_in": json.dumps({k: environment[k] for k in changed})}
                                            if changed else {})})
    tracker.flush(resumed.parent_id)
    client.update_run(resumed.parent_id, status="RUNNING")
    tracker.open.add(resumed.parent_id)


def _logged_environment(client, run_id: str) -> dict | None:
    try:
        return json.loads(Path(client.download_artifacts(run_id, "environment.json")).read_text())
    except Exception:  # an older comparison without one: nothing to compare with
        return None

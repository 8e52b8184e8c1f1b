"""A fixed-seed mutation fuzzer over every shipped config: a broken config is refused, never a crash.

Each config under ``configs/`` (comparisons, training configs, and the study's ``study.yaml``) is
mutated :data:`MUTATIONS` times: a key deleted or misspelled, a value set to NaN, an infinity, -1, 0,
10^18, a string, a list, a mapping or null, a value nested one level too deep, a key put under the
wrong parent, a key that is not a string. Each mutant is parsed (parsing validates everything before
work; nothing runs) under a time guard, and must either parse or raise a one-line
:class:`ConfigError` naming its file.
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
import shutil
import signal
import traceback
from pathlib import Path

import pytest
import yaml

import scorelab.study
from scorelab.config import load_yaml, parse_comparison
from scorelab.errors import ConfigError
from scorelab.study import load_study
from scorelab.training.spec import parse_training

CONFIGS = Path(__file__).parents[2] / "configs"
MUTATIONS = 50
SECONDS = 5.0  # per parse: a healthy parse takes milliseconds; a hang (a 10^18-element list) never ends

NUMBERS = [math.nan, math.inf, -math.inf, -1, 0, 10**18, 1e18]
VALUES = [*NUMBERS, "x", [1, 2], None, True, {}, {"a": 1}]
SHAPES = ["delete", "value", "misspell", "nest", "wrap", "move", "odd_key"]


def _shipped() -> list[Path]:
    return sorted(CONFIGS.rglob("*.yaml"))


def _paths(node, prefix=()):
    """Every key path in a config tree: a mapping's keys and a list's positions, depth first."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        yield (*prefix, k), v
        yield from _paths(v, (*prefix, k))


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def mutate(config: dict, rng: random.Random) -> tuple[dict, str]:
    """One random mutation of ``config`` (a copy) and what it did, for the failure message. Half of them
    set a number to an absurd one (where checks have most often been missing), half change the shape."""
    config = copy.deepcopy(config)
    paths = list(_paths(config))
    numbers = [p for p, v in paths if _is_number(v)]
    if numbers and rng.random() < 0.5:
        path, kind = rng.choice(numbers), "number"
    else:
        path, kind = rng.choice(paths)[0], rng.choice(SHAPES)
    parent = config
    for k in path[:-1]:
        parent = parent[k]
    key, where = path[-1], ".".join(map(str, path))
    if kind in ("number", "value"):
        parent[key] = copy.deepcopy(rng.choice(NUMBERS if kind == "number" else VALUES))
        return config, f"{where} = {parent[key]!r}"
    if kind == "delete":
        del parent[key]
    elif kind == "misspell" and isinstance(parent, dict):
        parent[key[:-1] if len(str(key)) > 1 and rng.random() < 0.5 else f"{key}s"] = parent.pop(key)
    elif kind == "nest":
        parent[key] = {"value": parent[key]}
    elif kind == "wrap":
        parent[key] = [parent[key]]
    elif kind == "move":  # a key under the wrong parent: a top-level key moved into another mapping
        other = rng.choice([k for k, v in config.items() if isinstance(v, dict)] or [None])
        if other is not None and path[0] != other:
            config[other][path[0]] = config.pop(path[0])
    elif kind == "odd_key" and isinstance(parent, dict):
        parent[rng.choice([3, None, 1.5, True])] = parent[key]
    else:  # a shape change that does not apply to a list item
        parent[key] = None
    return config, f"{kind} at {where}"


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_guard(seconds: float):
    """Raise :class:`Hang` in a parse that runs longer than ``seconds`` (POSIX; unguarded elsewhere)."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def stop(signum, frame):
        raise Hang(f"no answer after {seconds} s")

    before = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)


def _check_all(config: dict, parse, file: str, seed: str) -> None:
    """Parse ``MUTATIONS`` mutants of ``config``; fail on anything but success or a one-line ConfigError."""
    rng = random.Random(seed)
    problems = []
    for i in range(MUTATIONS):
        mutant, what = mutate(config, rng)
        try:
            with time_guard(SECONDS):
                parse(mutant)
        except ConfigError as exc:
            if not exc.file or "\n" in str(exc):
                problems.append(f"#{i} {what}: a ConfigError without its file, or on several lines: {exc!r}")
        except Exception as exc:  # anything else is the bug this test looks for (a Hang included)
            where = "".join(traceback.format_exception(exc)[-3:])
            problems.append(f"#{i} {what}: {type(exc).__name__}: {exc}\n{where}")
    assert not problems, f"{file}: {len(problems)} of {MUTATIONS} mutants escaped:\n" + "\n".join(problems)


def _is_training(config: dict) -> bool:
    return "model" in config and "objective" in config


@pytest.mark.parametrize("path", [p for p in _shipped() if p.name != "study.yaml"],
                         ids=lambda p: str(p.relative_to(CONFIGS)))
def test_mutated_config_parses_or_is_refused(path, host):
    config, file = load_yaml(path), str(path)
    parse = parse_training if _is_training(config) else parse_comparison
    parse(config, file=file, host=host)  # the shipped config itself is valid
    _check_all(config, lambda raw: parse(raw, file=file, host=host), file, path.name)


def _memo(parse):
    """``parse`` remembered by (config, file): a study re-parses the same comparisons for every mutant
    of study.yaml, and those are fuzzed on their own above."""
    seen: dict = {}

    def remembered(raw, file=None, host=None):
        key = (repr(raw), file)
        if key not in seen:
            try:
                seen[key] = (parse(raw, file=file, host=host), None)
            except ConfigError as exc:
                seen[key] = (None, exc)
        result, error = seen[key]
        if error is not None:
            raise error
        return result

    return remembered


@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
def test_mutated_study_parses_or_is_refused(tmp_path, monkeypatch, host, quick):
    folder = CONFIGS / "study"
    for path in folder.glob("*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    monkeypatch.setattr(scorelab.study, "parse_comparison", _memo(scorelab.study.parse_comparison))
    monkeypatch.setattr(scorelab.study, "parse_training", _memo(scorelab.study.parse_training))
    load_study(tmp_path, quick=quick, host=host)  # the shipped study itself is valid
    study = load_yaml(folder / "study.yaml")

    def parse(raw):
        (tmp_path / "study.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True))
        load_study(tmp_path, quick=quick, host=host)

    _check_all(study, parse, str(tmp_path / "study.yaml"), f"study.yaml quick={quick}")


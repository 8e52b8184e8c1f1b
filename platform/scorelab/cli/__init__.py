"""The ``scorelab`` command. Each subcommand lives in its own module with ``add(subparsers)`` and
``run(args) -> int``; heavy imports (torch, MLflow, plugins) happen inside ``run`` only, so
``scorelab --help`` is instant."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading

from scorelab import __version__
from scorelab.errors import ScorelabError

COMMANDS = ["compare", "study", "report", "train", "plugins", "describe", "ui", "new-plugin", "check-plugin"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scorelab", description="Compare samplers for score-based models at equal, honestly counted cost.")
    parser.add_argument("--version", action="version", version=f"scorelab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"scorelab.cli.{name.replace('-', '_')}")
        module.add(sub).set_defaults(_run=module.run)
    return parser


def _interrupt_on_sigterm():
    """SIGTERM (what ``kill``, ``timeout``, Slurm and ``docker stop`` send) ends a command as Ctrl-C
    does: open runs are marked KILLED with what they had logged. Returns the handler it replaced (None
    off the main thread, where Python delivers no signals)."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is threading.main_thread():
        return signal.signal(signal.SIGTERM, interrupt)
    return None


def _quiet_mlflow() -> None:
    """MLflow's INFO lines (schema creation) and artifact download bars say nothing a user needs; its
    warnings still show. Set before MLflow is imported; a user's own setting wins."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # On a tracking server MLflow prints two "View run" lines per run it ends: dozens per comparison (Ray's
    # workers inherit this too). The command prints the parent run and how to browse it once, at the end.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def main(argv: list[str] | None = None) -> int:
    _quiet_mlflow()
    args = build_parser().parse_args(argv)
    previous = _interrupt_on_sigterm()
    try:
        return args._run(args) or 0
    except ScorelabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print("\ninterrupted: open runs are marked KILLED in MLflow with what they had logged", file=sys.stderr)
        for note in getattr(exc, "__notes__", ()):  # what to do next, where the command knows (compare.py)
            print(note, file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())

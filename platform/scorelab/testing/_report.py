"""What a conformance check returns: a readable report, never a traceback.

A check is a named step run under :meth:`Report.check`: an assertion it makes (:class:`Fail`) or an
exception the plugin raises becomes one failure line, with the place in the plugin's own code where
it happened. Later steps that need an earlier one to have worked are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from dataclasses import dataclass, field

import torch

_TORCH_DIR = os.path.dirname(torch.__file__)
_KIT_DIR = os.path.dirname(__file__)


class Fail(Exception):
    """Raised inside a check with the message a plugin author should read."""


@dataclass
class Failure:
    check: str
    message: str


@dataclass
class Report:
    """The outcome of one ``check_*`` call: which checks passed, which failed and why, what was skipped.

    ``bool(report)`` is ``report.ok``; ``report.assert_ok()`` raises an AssertionError whose message
    is the whole report, which is what a plugin's own test wants.
    """

    kind: str
    label: str
    passed: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def __bool__(self) -> bool:
        return self.ok

    def assert_ok(self) -> Report:
        if not self.ok:
            raise AssertionError("\n" + str(self))
        return self

    def fail(self, check: str, message: str) -> None:
        self.failures.append(Failure(check, message))

    def skip(self, check: str, why: str) -> None:
        self.skipped.append(f"{check}: {why}")

    @contextlib.contextmanager
    def check(self, name: str):
        """Run the body as the check ``name``; a :class:`Fail` or any exception is recorded as its failure."""
        try:
            yield
        except Fail as exc:
            self.fail(name, str(exc))
        except Exception as exc:
            self.fail(name, describe_exception(exc))
        else:
            self.passed.append(name)

    def __str__(self) -> str:
        verdict = "passes" if self.ok else "FAILS"
        lines = [f"{self.kind} {self.label} {verdict} the scorelab conformance checks "
                 f"({len(self.passed)} passed, {len(self.failures)} failed, {len(self.skipped)} skipped)"]
        for f in self.failures:
            body = f.message.replace("\n", "\n      ")
            lines.append(f"  FAIL {f.check}: {body}")
        for s in self.skipped:
            lines.append(f"  skipped {s}")
        return "\n".join(lines)


def describe_exception(exc: BaseException) -> str:
    """'step raised ValueError: ... (at sampler.py:42, in step)': the innermost frame outside torch and the kit."""
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    own = [f for f in frames if not f.filename.startswith((_TORCH_DIR, _KIT_DIR))]
    where = f" (at {own[-1].filename}:{own[-1].lineno}, in {own[-1].name})" if own else ""
    return f"raised {type(exc).__name__}: {exc}{where}"


def call(what: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``; an exception becomes a Fail saying which call raised it and where."""
    try:
        return fn(*args, **kwargs)
    except Fail:
        raise
    except Exception as exc:
        raise Fail(f"{what} {describe_exception(exc)}") from exc

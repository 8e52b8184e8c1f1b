"""What every kind's check starts with: the class against its contract, its hyperparameters, an instance."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

import torch

from scorelab.contracts import contract_problems, declared_name, trait_problems, traits
from scorelab.params import _MISSING, coerce, fields_of, type_name

from ._report import Fail, Report, call, describe_exception


def single_threaded(check):
    """Run a check with one CPU thread, restoring the setting after. The kit's tensors are small: a
    thread pool gains nothing on them, and on a busy machine its threads mostly wait for each other
    (ten times slower on two shared cores)."""

    @functools.wraps(check)
    def wrapper(*args, **kwargs):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return check(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return wrapper


def class_and_params(plugin: Any, params: dict | None) -> tuple[type, dict]:
    """A check accepts a class (built with its defaults, or ``params``) or an instance (rebuilt from
    its fields, so every run starts from a fresh one)."""
    if isinstance(plugin, type):
        return plugin, dict(params or {})
    if dataclasses.is_dataclass(plugin):
        fields = {f.name: getattr(plugin, f.name) for f in dataclasses.fields(plugin) if f.init}
        return type(plugin), {**fields, **(params or {})}
    return type(plugin), dict(params or {})


def label(kind: str, cls: type) -> str:
    name = declared_name(kind, cls)
    return f"'{name}' ({cls.__name__})" if name else cls.__name__


def new_report(kind: str, cls: type) -> Report:
    return Report(kind, label(kind, cls))


def kit_devices(requested: Sequence[str | torch.device] | None) -> list[torch.device]:
    """The CPU, and CUDA when present (or exactly the devices asked for)."""
    if requested is not None:
        return [torch.device(d) for d in requested]
    return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])


def check_contract(report: Report, kind: str, cls: type, params: dict) -> Callable[[], Any] | None:
    """The static part of every kind's check. Returns a factory of fresh instances, or None when the
    class cannot be built (the report then says why: a failure, or a skip for required fields)."""
    with report.check("contract"):
        problems = contract_problems(kind, cls)  # the traits declared on the class included
        if problems:
            raise Fail("; ".join(problems))
    if not report.ok:
        return None

    params = {**traits(kind, cls).example_params, **params}  # what the author vouches for, then what the caller asks
    with report.check("typed hyperparameters"):
        _check_fields(cls, params)
    if not report.ok:
        return None
    required = [k for k, (_, default) in fields_of(cls).items() if default is _MISSING]
    if any(k not in params for k in required):
        report.skip("building and running it", f"its fields {required} have no defaults: pass params= to the "
                    "check, or declare example values in a class attribute example_params = {...}")
        return None

    def make():
        return cls(**params)

    with report.check("builds from its hyperparameters"):
        obj = call(f"{cls.__name__}(**{params})", make)
        _check_built(kind, obj)
    return make if report.ok else None


def _check_built(kind: str, obj: Any) -> None:
    """Its fields read back as plain values, and the traits the instance declares (they may follow its
    hyperparameters, as ``requires`` does for a sampler whose options need more of the score)."""
    try:
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.init}
    except Exception as exc:
        raise Fail(f"its fields cannot be read back for logging: {describe_exception(exc)}") from None
    for key, value in fields.items():
        if not isinstance(value, int | float | str | bool | list | tuple | dict | type(None)):
            raise Fail(f"field '{key}' holds a {type(value).__name__} after construction; hyperparameters "
                       "are logged to MLflow as plain values: keep derived objects in non-field attributes")
    problems = trait_problems(kind, obj)
    if problems:
        raise Fail("with these hyperparameters: " + "; ".join(problems))


def _check_fields(cls: type, params: dict) -> None:
    try:
        schema = fields_of(cls)
    except Exception as exc:
        raise Fail(f"its field types cannot be resolved ({type(exc).__name__}: {exc}); "
                   "annotate fields with types importable at run time (float, int, bool, str, Literal, list)") from None
    problems = []
    for key, (tp, default) in schema.items():
        if tp is Any:
            continue
        if not _config_can_give(tp):
            problems.append(f"field '{key}' has type {type_name(tp)}, which a YAML config cannot give "
                            "(use float, int, bool, str, Literal[...], list[...] or X | None)")
            continue
        if default is _MISSING and key not in params:
            continue  # check_contract says what to do about it
        value = params.get(key, default)
        try:
            coerce(value, tp)
        except TypeError as exc:
            problems.append(f"field '{key}': {exc} ({'given' if key in params else 'default'} value)")
    unknown = set(params) - set(schema)
    if unknown:
        problems.append(f"params {sorted(unknown)} are not fields of {cls.__name__} (fields: {sorted(schema)})")
    if problems:
        raise Fail("; ".join(problems))


def _config_can_give(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp in (int, float, bool, str, type(None)) or origin is typing.Literal:
        return True
    if origin in (list, typing.Union, types.UnionType):
        return all(_config_can_give(a) for a in typing.get_args(tp)) if typing.get_args(tp) else True
    if tp in (list, dict) or origin is dict:
        return True
    return False


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.equal(a, b))


def fields_of_record(record: Any) -> dict[str, Any] | None:
    """A dataclass's or NamedTuple's fields as a dict; None for anything else."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    if isinstance(record, tuple) and hasattr(record, "_fields"):
        return dict(zip(record._fields, record, strict=True))
    return None

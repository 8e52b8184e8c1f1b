"""Turning a config entry into a plugin instance: names, keys and types checked against the class.

A plugin's dataclass fields are its schema. An entry is ``{name: ..., <field>: <value>, ...}`` (or
just the name). Unknown keys, missing required fields and wrong types are errors naming the key
path; a ``ValueError`` from the class's own checks is reported at the entry's path too.

Every number a config gives is checked before any work: floats must be finite and ints must fit
torch's int64, whichever class they are for, so a third-party plugin gets that for free; ranges are
checked with :func:`check_range`, which refuses NaN (``x <= 0`` lets it through: NaN fails every
comparison).
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import operator
import re
import types
import typing
from typing import Any, Literal, Union

from .contracts import trait_problems
from .errors import ConfigError, unknown_choice

_MISSING = object()

#: Integers a config may give: what torch's int64 holds (a larger one overflows where it is used).
INT_LIMIT = 2**63

#: Seeds lie in [0, SEED_LIMIT): torch's generators take seeds below 2^64, and scorelab adds offsets
#: of up to 2^32 to a config's seeds (tuning seeds, initial chains drawn from the target).
SEED_LIMIT = 2**63


def join(path: str, key: str) -> str:
    """Key paths as a user writes them: ``samplers[1].step_size``."""
    return f"{path}.{key}" if path else key


def type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(tp))
    if origin is list:
        (inner,) = typing.get_args(tp) or (Any,)
        return f"list of {type_name(inner)}"
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any) -> Any:
    """``value`` as type ``tp`` (ints accepted for floats), or raise TypeError with what was expected."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if tp is type(None):
        if value is None:
            return None
    elif origin is Literal:
        if value in typing.get_args(tp):
            return value
    elif origin in (Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return coerce(value, option)
            except TypeError:
                pass
    elif origin is list:
        (inner,) = typing.get_args(tp) or (Any,)
        if isinstance(value, list):
            return [coerce(v, inner) for v in value]
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(tp, type):
        if isinstance(value, tp):
            return value
    else:
        return value
    raise TypeError(f"expected {type_name(tp)}, got {value!r}")


def fields_of(cls: type) -> dict[str, tuple[Any, Any]]:
    """{field: (type, default or _MISSING)} for a plugin dataclass."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else _MISSING
        )
        out[f.name] = (hints.get(f.name, Any), default)
    return out


def split_entry(entry: Any, path: str, file: str | None) -> tuple[str, dict]:
    """(name, other keys) of an entry given as ``name`` or ``{name: ..., ...}``."""
    if isinstance(entry, str):
        return entry, {}
    if not isinstance(entry, dict):
        raise ConfigError(f"expected a name or a mapping with 'name', got {entry!r}", file=file, key=path)
    if "name" not in entry:
        raise ConfigError("missing key 'name'", file=file, key=path)
    if not isinstance(entry["name"], str):
        raise ConfigError(f"'name' must be a string, got {entry['name']!r}", file=file, key=join(path, 'name'))
    rest = {k: v for k, v in entry.items() if k != "name"}
    return entry["name"], rest


def name_key(entry: Any, path: str) -> str:
    """The key path of an entry's name: the entry's own when it is given as a bare name."""
    return path if isinstance(entry, str) else join(path, "name")


def resolve(host, kind: str, name: str, key: str, file: str | None):
    """The host's entry for ``name`` (found at ``key``): the class and the name it is registered under."""
    try:
        return host.entry(kind, name)
    except KeyError as exc:
        raise ConfigError(exc.args[0], file=file, key=key) from None
    except Exception as exc:  # e.g. a name two plugins claim
        raise ConfigError(str(exc), file=file, key=key) from None


def check_params(cls: type, params: dict, path: str, file: str | None, *, sweep: bool = False,
                 name: str | None = None, entry_keys: tuple[str, ...] = ()) -> list[dict]:
    """Check ``params`` against ``cls``'s fields (``name``: the plugin's registered name, for errors;
    ``entry_keys``: the keys its entry takes besides them, such as 'name', listed as valid too); with
    ``sweep``, a list given for a non-list field is a sweep. Returns the settings (one dict, or the
    cartesian product of the sweeps)."""
    schema = fields_of(cls)
    choices, axes = {}, {}
    for key, value in params.items():
        if key not in schema:
            key = str(key)  # YAML allows keys such as 3 or null
            valid = sorted({*schema, *entry_keys})
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f"; did you mean '{close[0]}'? " if close else ". "
            where = f"for {name}" if name else f"in '{path}'" if path else "at the top level"
            raise ConfigError(f"unknown key '{key}' {where}{hint}Valid keys: {', '.join(valid) or '(none)'}",
                              file=file, key=join(path, key))
        tp = schema[key][0]
        values = value if sweep and isinstance(value, list) and not _accepts_list(tp) else None
        if values is not None and not values:
            raise ConfigError("an empty list sweeps over nothing", file=file, key=join(path, key))
        try:
            if values is None:
                choices[key] = coerce(value, tp)
            else:
                axes[key] = [coerce(v, tp) for v in values]
        except TypeError as exc:
            raise ConfigError(str(exc), file=file, key=join(path, key)) from None
        _check_numbers(choices[key] if values is None else axes[key], join(path, key), file)
    missing = [k for k, (_, default) in schema.items() if default is _MISSING and k not in params]
    if missing:
        raise ConfigError(f"missing required key(s) {', '.join(missing)}", file=file, key=path)
    return [{**choices, **dict(zip(axes, combo, strict=True))} for combo in itertools.product(*axes.values())]


def instantiate(cls: type, params: dict, path: str, file: str | None, *, kind: str | None = None,
                name: str | None = None) -> Any:
    """``cls(**params)``, with the class's own value checks reported at ``path``, and so is a size too
    large to allocate (a class that builds tensors from its fields). For a plugin of ``kind`` (registered
    as ``name``), the traits the instance declares are checked too: they may follow its hyperparameters."""
    name = name or cls.__name__
    try:
        obj = cls(**params)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"invalid {name}: {exc}", file=file, key=path) from None
    except (MemoryError, RuntimeError) as exc:
        if not too_large(exc):
            raise
        raise ConfigError(f"{name} is too large to build with these values ({_first_line(exc)})",
                          file=file, key=path) from None
    problems = trait_problems(kind, obj) if kind is not None else []
    if problems:
        raise ConfigError(f"{kind} {name} with these values: " + "; ".join(problems)
                          + " (a fault of the plugin, not of the config)", file=file, key=path)
    return obj


def too_large(exc: BaseException) -> bool:
    """Whether ``exc`` says memory ran out or a size overflowed (torch raises RuntimeError for both)."""
    return isinstance(exc, MemoryError) or bool(re.search(r"allocat|overflow|out of memory", str(exc), re.I))


def check_range(value: float, key: str, file: str | None, *, above: float | None = None,
                at_least: float | None = None, below: float | None = None, at_most: float | None = None,
                why: str = "") -> None:
    """Refuse ``value`` unless it is finite and within the bounds given (``why`` is added to the message).

    >>> check_range(0.5, "x", None, above=0, at_most=1)
    >>> check_range(float("nan"), "x", None, above=0)
    Traceback (most recent call last):
    scorelab.errors.ConfigError: x: must be a finite number > 0, got nan
    """
    bounds = [(op, b) for op, b in ((">", above), (">=", at_least), ("<", below), ("<=", at_most)) if b is not None]
    if math.isfinite(value) and all(_COMPARE[op](value, b) for op, b in bounds):
        return
    finite = "" if math.isfinite(value) else "a finite number "
    because = f" ({why})" if why else ""
    raise ConfigError(f"must be {finite}{_interval(bounds)}{because}, got {_show(value)}", file=file, key=key)


def check_seed(value: int, key: str, file: str | None) -> None:
    if not 0 <= value < SEED_LIMIT:
        raise ConfigError(f"a seed must be in [0, 2^63), got {value}", file=file, key=key)


_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


def _interval(bounds: list[tuple[str, float]]) -> str:
    """'> 0', '>= 1', 'in (0, 0.5]': the bounds as a reader writes them."""
    if len(bounds) == 2:
        (low_op, low), (high_op, high) = bounds
        return f"in {'(' if low_op == '>' else '['}{_show(low)}, {_show(high)}{')' if high_op == '<' else ']'}"
    return " ".join(f"{op} {_show(b)}" for op, b in bounds)


def _show(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


def _check_numbers(value: Any, key: str, file: str | None) -> None:
    """Floats finite and ints within int64, in a value and in the lists it holds (a mapping inside is
    another entry, checked against its own schema)."""
    if isinstance(value, list):
        for v in value:
            _check_numbers(v, key, file)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"must be a finite number, got {value}", file=file, key=key)
    elif isinstance(value, int) and not isinstance(value, bool) and not -INT_LIMIT <= value < INT_LIMIT:
        raise ConfigError(f"integers must lie in [-2^63, 2^63), got {value}", file=file, key=key)


def build(host, kind: str, entry: Any, path: str, file: str | None) -> tuple[str, Any]:
    """(registered name, plugin instance) from a config entry (no sweeps)."""
    name, params = split_entry(entry, path, file)
    found = resolve(host, kind, name, name_key(entry, path), file)
    (setting,) = check_params(found.cls, params, path, file, name=found.name, entry_keys=("name",))
    return found.name, instantiate(found.cls, setting, path, file, kind=kind, name=found.name)


def _accepts_list(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin is list or tp is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(_accepts_list(a) for a in typing.get_args(tp))
    return False


__all__ = ["build", "check_params", "check_range", "check_seed", "coerce", "instantiate", "name_key", "resolve",
           "split_entry", "too_large", "unknown_choice"]

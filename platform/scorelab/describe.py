"""What a plugin's hyperparameters are: name, type, default and one line of meaning each.

A plugin is a dataclass, so its fields are its hyperparameters. The meaning of a field is, first, its
``metadata["help"]`` (``field(default=..., metadata={"help": "..."})``), else the comment after it on
its line (``step_size: float = 0.1  # the step h``), read from the class's source and from its bases'.
Third-party plugins are described the same way as the built-ins, with nothing to register.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import re
import tokenize
import typing
from dataclasses import dataclass


@dataclass
class Parameter:
    name: str
    type: str
    default: str
    meaning: str


def parameters(cls: type) -> list[Parameter]:
    """Every settable field of the plugin class ``cls``, in declaration order."""
    comments = _field_comments(cls)
    hints = _hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        out.append(Parameter(f.name, _type_name(hints.get(f.name, f.type)), _default(f),
                             f.metadata.get("help") or comments.get(f.name, "")))
    return out


def summary(cls: type) -> str:
    """The first paragraph of the class's docstring, or else its module's."""
    doc = inspect.getdoc(cls)
    if not doc or doc == inspect.getdoc(object) or doc.startswith(f"{cls.__name__}("):  # dataclass's generated one
        doc = inspect.getdoc(inspect.getmodule(cls)) or ""
    first = " ".join(doc.split("\n\n")[0].split())
    return re.sub(r"^``\w+``:\s*", "", first)  # the built-ins open with their own name


def _field_comments(cls: type) -> dict[str, str]:
    """{field: trailing comment} from the source of ``cls`` and its bases (a subclass's comment wins)."""
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):  # defined in a REPL or built dynamically: no comments to read
            continue
        found.update(_comments_in(source))
    return found


def _comments_in(source: str) -> dict[str, str]:
    lines = inspect.cleandoc("\n" + source).splitlines() if source.startswith(" ") else source.splitlines()
    out = {}
    tokens = tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline)
    first_name: dict[int, str] = {}
    depth_at: dict[int, int] = {}
    depth = 0
    for tok in tokens:
        if tok.type == tokenize.INDENT:
            depth += 1
        elif tok.type == tokenize.DEDENT:
            depth -= 1
        elif tok.type == tokenize.NAME and tok.start[0] not in first_name:
            first_name[tok.start[0]], depth_at[tok.start[0]] = tok.string, depth
        elif tok.type == tokenize.COMMENT and depth_at.get(tok.start[0]) == 1:
            line = lines[tok.start[0] - 1]
            if ":" in line.split("#")[0]:  # a field declaration, not a statement with a comment
                out[first_name[tok.start[0]]] = tok.string.lstrip("#").strip()
    return out


def _hints(cls: type) -> dict:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation naming something not importable here: show it as written
        return {}


def _type_name(tp) -> str:
    if isinstance(tp, str):
        return tp
    if typing.get_origin(tp) is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return repr(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return repr(f.default_factory())
    return "(required)"

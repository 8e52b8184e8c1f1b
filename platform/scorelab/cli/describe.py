"""``scorelab describe NAME``: a plugin's purpose and every hyperparameter, with type, default and meaning."""

from __future__ import annotations

import dataclasses
import json


def add(sub):
    p = sub.add_parser("describe", help="a plugin's hyperparameters: type, default and meaning of each")
    p.add_argument("name", help="a registered name, e.g. mala or gaussian (see: scorelab plugins)")
    p.add_argument("--kind", help="sampler, objective, model, target or metric: needed when two kinds share a name")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    return p


def run(args) -> int:
    from scorelab.describe import parameters, summary
    from scorelab.errors import ScorelabError, unknown_choice
    from scorelab.plugins import KINDS, host, normalise

    h = host()
    if args.kind is not None and args.kind not in KINDS:
        raise ScorelabError(unknown_choice("kind", args.kind, KINDS, "Kinds"))
    kinds = [args.kind] if args.kind else KINDS
    found = [(k, h.entry(k, args.name)) for k in kinds if normalise(args.name) in h.names(k)]
    if not found:
        every = {n for k in kinds for n in h.names(k)}
        raise ScorelabError(unknown_choice("name", args.name, every))
    if len(found) > 1:
        raise ScorelabError(f"'{args.name}' is a {' and a '.join(k for k, _ in found)}: pass --kind")
    kind, entry = found[0]
    params = parameters(entry.cls)
    if args.json:
        print(json.dumps({"name": entry.name, "kind": kind, "plugin": entry.plugin.name, "summary": summary(entry.cls),
                          "parameters": [dataclasses.asdict(p) for p in params]}, indent=2))
        return 0
    print(f"{entry.name} ({kind}, from {entry.plugin.provider})\n  {summary(entry.cls)}\n")
    if not params:
        print("  no hyperparameters")
        return 0
    rows = [("parameter", "type", "default", "meaning")] + [(p.name, p.type, p.default, p.meaning or "-")
                                                           for p in params]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3])
    return 0

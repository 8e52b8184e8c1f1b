"""``scorelab check-plugin NAME``: run the conformance kit (scorelab.testing) on an installed plugin.

NAME is the plugin's entry point name or its package name, as ``scorelab plugins`` lists them. Every
class the plugin registers is checked by the kit of its kind; a load error (an import failure, a
class rejected at registration, a name clash) fails the plugin too. Exit status 0 when everything
passes, 1 otherwise.
"""

from __future__ import annotations

import json


def add(sub):
    p = sub.add_parser("check-plugin", help="run the conformance checks on an installed plugin's classes")
    p.add_argument("name", help="the plugin's entry point or package name (see: scorelab plugins)")
    p.add_argument("--only", metavar="NAME", action="append",
                   help="check only this registered class (by its registered name); repeatable")
    p.add_argument("--params", metavar="JSON", default=None,
                   help='hyperparameters for the checked class, e.g. \'{"step_size": 0.05}\' (with one --only; none '
                        'needed when the plugin registers one class)')
    p.add_argument("--quick", action="store_true", help="samplers: skip the moment checks on Gaussians (the slow part)")
    return p


def run(args) -> int:
    from scorelab.errors import ScorelabError
    from scorelab.plugins import PluginHost, normalise

    params = None
    if args.params is not None:
        if args.only and len(args.only) != 1:
            raise ScorelabError("--params applies to one class: name one with --only")
        try:
            params = json.loads(args.params)
        except json.JSONDecodeError as exc:
            raise ScorelabError(f"--params is not valid JSON: {exc}") from None
        if not isinstance(params, dict):
            raise ScorelabError(f"--params must be a JSON object of hyperparameters, got {args.params}")

    host = PluginHost().load_entry_points()
    wanted = normalise(args.name)
    found = [p for p in host.plugins if wanted in (normalise(p.name), normalise(p.package or ""))]
    if not found:
        listed = ", ".join(sorted(p.name for p in host.plugins)) or "(none installed)"
        raise ScorelabError(f"no installed plugin '{args.name}'. Installed plugins: {listed}")
    classes = sorted(n for info in found for names in info.registered.values() for n in names)
    if params is not None and not args.only and len(classes) > 1:
        raise ScorelabError(f"--params applies to one class, and '{args.name}' registers {', '.join(classes)}: "
                            "name one with --only")
    ok = True
    for info in found:
        ok &= check_plugin(host, info, only=args.only, params=params, quick=args.quick)
    return 0 if ok else 1


def check_plugin(host, info, *, only=None, params=None, quick=False, out=print) -> bool:
    """Check every class ``info`` registered; print one report per class. True when all pass."""
    from scorelab.plugins import normalise

    version = f" {info.version}" if info.version else ""
    out(f"plugin {info.name} ({info.package or 'no package'}{version})")
    ok = not info.errors
    for err in info.errors:
        out(f"  LOAD ERROR: {err}")
    wanted = {normalise(n) for n in only} if only else None
    checked = 0
    for kind, names in info.registered.items():
        for name in names:
            if wanted is not None and name not in wanted:
                continue
            report = check_entry(host, kind, name, params=params, quick=quick)
            checked += 1
            ok &= report.ok
            out("  " + str(report).replace("\n", "\n  "))
    if wanted is not None and checked < len(wanted):
        registered = sorted(n for names in info.registered.values() for n in names)
        out(f"  ERROR: --only names no class of this plugin; it registers: {', '.join(registered) or 'nothing'}")
        ok = False
    elif checked == 0 and not info.errors:
        out("  it registers nothing: does it implement a register_* hook? (SCORELAB_TRACE_PLUGINS=1 shows "
            "the hook calls)")
        ok = False
    out(f"{'PASS' if ok else 'FAIL'}: {info.name}")
    return ok


def check_entry(host, kind: str, name: str, *, params=None, quick=False):
    """The kit's report on one registered class."""
    from scorelab.testing import CHECKS

    entry = host.entry(kind, name)
    quick_args = {"gaussian": False} if kind == "sampler" and quick else {}
    report = CHECKS[kind](entry.cls, params=params, **quick_args)
    report.label = f"'{entry.name}' ({entry.cls.__name__})"  # the host keeps the registered name, not the class
    return report

"""``scorelab plugins``: every plugin, its package and version, what it registers, load errors.
Exits 1 when any plugin has an error, so a script or CI step can check an installation."""

from __future__ import annotations

import json


def add(sub):
    p = sub.add_parser("plugins", help="list installed plugins, what they register, and load errors")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    return p


def run(args) -> int:
    from scorelab.plugins import host

    listing = host().listing()
    failed = 1 if any(p["errors"] for p in listing) else 0
    if args.json:
        print(json.dumps(listing, indent=2))
        return failed
    for p in listing:
        version = f" {p['version']}" if p["version"] else ""
        print(f"{p['name']}  ({p['package'] or 'no package'}{version})")
        for kind, names in p["registers"].items():
            print(f"  {kind}s: {', '.join(names)}")
        for err in p["errors"]:
            print(f"  ERROR: {err}")
    if not listing:
        print("no plugins installed (is scorelab installed with pip?)")
    return failed

"""``scorelab plugins``: every plugin, its package and version, what it registers, load errors."""

from __future__ import annotations

import json


def add(sub):
    p = sub.add_parser("plugins", help="list installed plugins, what they register, and load errors")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    return p


def run(args) -> int:
    from scorelab.plugins import host

    listing = host().listing()
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    for p in listing:
        version = f" {p['version']}" if p["version"] else ""
        print(f"{p['name']}  ({p['package'] or 'no package'}{version})")
        for kind, names in p["registers"].items():
            print(f"  {kind}s: {', '.join(names)}")
        for err in p["errors"]:
            print(f"  ERROR: {err}")
    if not listing:
        print("no plugins installed (is scorelab installed with pip?)")
    return 0

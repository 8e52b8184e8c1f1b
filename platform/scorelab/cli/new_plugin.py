"""``scorelab new-plugin NAME``: write a ready plugin package (pyproject, module, tests, README)."""

from __future__ import annotations

KINDS = ("sampler", "objective", "model", "target", "metric")  # as scorelab.scaffold.KINDS, kept light for --help


def add(sub):
    p = sub.add_parser("new-plugin", help="write a new plugin package that installs and passes its own tests")
    p.add_argument("name", help="the plugin's name, e.g. my-sampler (package scorelab-my-sampler)")
    p.add_argument("--kind", choices=KINDS, default="sampler", help="what the plugin registers (default: sampler)")
    p.add_argument("--dir", default=".", help="where to create the package directory (default: here)")
    return p


def run(args) -> int:
    from scorelab.errors import ScorelabError
    from scorelab.scaffold import Names, write_package

    try:
        names = Names.from_name(args.name)
        root, written = write_package(args.name, args.kind, args.dir)
    except (ValueError, FileExistsError) as exc:
        raise ScorelabError(str(exc)) from None
    print(f"Created {root}/ : the {args.kind} '{names.plugin}' (class {names.cls} in {names.module})")
    for path in written:
        print(f"  {path.relative_to(root)}")
    print("Next:")
    print(f"  pip install -e '{root}[test]'    # [test]: pytest, for its tests")
    print(f"  scorelab plugins                      # lists {names.plugin}")
    # From inside: "python -m pytest" beside a clone named scorelab/ would import the clone instead.
    print(f"  (cd {root} && python -m pytest)    # its own tests: the conformance kit, registration")
    print(f"  scorelab check-plugin {names.plugin}")
    return 0

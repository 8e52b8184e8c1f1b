"""The layers of platform/scorelab, lowest first: a module imports from its own layer and those below,
never from one above. Imports are read with ``ast`` (nothing runs), function-level imports included:
an import deferred to keep start-up cheap is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "platform" / "scorelab"

#: Each layer names the top-level modules and subpackages of ``scorelab`` it holds ("scorelab": the
#: package's own ``__init__``, which only defines ``__version__`` and names imported on first use).
LAYERS = [
    ("declarations", {"scorelab", "errors", "hookspecs", "contracts", "params", "describe"}),
    ("runtime", {"device", "rng", "oracle", "sources", "targets", "schedules", "store", "tracking", "plugins"}),
    ("measurement", {"chain", "stepping", "compiled", "compiled_linear", "compiled_math", "cost", "crossing", "ess",
                     "efficiency", "floors", "plots", "analysis", "summary", "reporting", "testing"}),
    ("config", {"config"}),
    ("training", {"training"}),
    ("comparison", {"compare", "child", "executors", "resume", "study"}),
    ("interface", {"cli", "scaffold", "__main__"}),
]
LEVEL = {unit: i for i, (_, units) in enumerate(LAYERS) for unit in units}


def _unit(module: str) -> str:
    """The layer unit of a dotted module name inside scorelab: its top-level module or subpackage."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LEVEL else "scorelab"


def _module_name(path: Path) -> tuple[str, str]:
    """(the module's dotted name, the package its relative imports start from)."""
    parts = ("scorelab", *path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), ".".join(parts[:-1])
    return ".".join(parts), ".".join(parts[:-1])


def imported(source: str, package: str) -> list[tuple[int, str]]:
    """(line, dotted module) for every import of a scorelab module in ``source``; ``from X import y``
    counts as an import of ``X.y`` too, since y may be a submodule."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "scorelab"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] == "scorelab":
                found += [(node.lineno, f"{module}.{a.name}") for a in node.names]
    return found


def upward_imports(path: Path) -> list[str]:
    name, package = _module_name(path)
    here = LEVEL[_unit(name)]
    problems = []
    for line, module in imported(path.read_text(), package):
        there = LEVEL[_unit(module)]
        if there > here:
            problems.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {name} ({LAYERS[here][0]}) imports "
                            f"{module} ({LAYERS[there][0]})")
    return problems


def test_every_module_has_a_layer():
    units = {path.relative_to(PACKAGE).parts[0].removesuffix(".py") for path in PACKAGE.rglob("*.py")}
    units = {"scorelab" if u == "__init__" else u for u in units}
    assert units - LEVEL.keys() == set(), "place each new module in LAYERS"


def test_no_module_imports_from_a_higher_layer():
    problems = [p for path in sorted(PACKAGE.rglob("*.py")) for p in upward_imports(path)]
    assert not problems, "\n".join(problems)


def test_an_upward_import_is_found_wherever_it_is_written():
    source = "from . import errors\n\ndef f():\n    from .compare import run_comparison\n    import scorelab.cli\n"
    modules = [m for _, m in imported(source, "scorelab")]
    assert modules == ["scorelab.errors", "scorelab.compare.run_comparison", "scorelab.cli"]
    assert [LEVEL[_unit(m)] > LEVEL["config"] for m in modules] == [False, True, True]
    relative = [m for _, m in imported("from ..config import load_yaml\n", "scorelab.training")]
    assert relative == ["scorelab.config.load_yaml"]

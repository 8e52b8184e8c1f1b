"""Writing a new plugin package from the templates in ``templates/`` (``scorelab new-plugin``).

The package is complete: pyproject with the ``scorelab`` entry point, a module registering one
working example class of the chosen kind, tests that run the conformance kit, a README. It installs
with ``pip install -e`` and its tests pass as written; the author then replaces the example class.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from string import Template

KINDS = ("sampler", "objective", "model", "target", "metric")

_USAGE = {
    "sampler": "Name it in a comparison config's `samplers:` list, with any hyperparameters (a list is a sweep):\n\n"
               "```yaml\nsamplers:\n  - name: langevin\n  - name: ${plugin}\n    step_size: [0.01, 0.05]\n```\n\n"
               "then `scorelab compare my_config.yaml`.",
    "target": "Name it as a comparison config's target:\n\n```yaml\ntarget: {name: ${plugin}, dim: 2}\n```",
    "metric": "Name it in a comparison config's `metrics:` list:\n\n"
              "```yaml\nmetrics: [${plugin}, sliced_wasserstein]\n```",
    "objective": "Name it as the objective of a training config (`scorelab train`): `objective: {name: ${plugin}}`.",
    "model": "Name it as the model of a training config (`scorelab train`): `model: {name: ${plugin}}`.",
}


@dataclass(frozen=True)
class Names:
    """Every name a package derives from the one the author gives (``my-sampler``)."""

    plugin: str  # registered name and entry point name: my_sampler
    dist: str  # distribution: scorelab-my-sampler
    module: str  # import name: scorelab_my_sampler
    cls: str  # class: MySampler

    @classmethod
    def from_name(cls, name: str) -> Names:
        base = re.sub(r"[\s\-]+", "_", name.strip()).lower()
        base = base.removeprefix("scorelab_")
        if not re.fullmatch(r"[a-z][a-z0-9_]*", base) or base.endswith("_"):
            raise ValueError(f"'{name}' is not a usable plugin name: use letters, digits, '-' or '_', starting "
                             "with a letter (e.g. my-sampler)")
        camel = "".join(part.capitalize() for part in base.split("_") if part)
        return cls(base, "scorelab-" + base.replace("_", "-"), "scorelab_" + base, camel)


def render(name: str, kind: str) -> dict[str, str]:
    """{relative path: content} of the package for plugin ``name`` of ``kind``."""
    from scorelab import __version__
    from scorelab.hookspecs import API_VERSION

    if kind not in KINDS:
        raise ValueError(f"unknown plugin kind '{kind}'; choose one of {', '.join(KINDS)}")
    n = Names.from_name(name)
    values = {"plugin": n.plugin, "dist": n.dist, "module": n.module, "cls": n.cls, "kind": kind,
              "api_version": str(API_VERSION), "scorelab_version": __version__}
    values["usage"] = Template(_USAGE[kind]).substitute(values)
    templates = files(__name__) / "templates"

    def fill(template: str) -> str:
        return Template((templates / template).read_text(encoding="utf-8")).substitute(values)

    return {
        "pyproject.toml": fill("pyproject.toml.tmpl"),
        "README.md": fill("README.md.tmpl"),
        f"src/{n.module}/__init__.py": fill("__init__.py.tmpl"),
        f"src/{n.module}/{kind}.py": fill(f"{kind}.py.tmpl"),
        f"tests/test_{n.plugin}.py": fill("test.py.tmpl"),
    }


def write_package(name: str, kind: str, directory: str | Path = ".") -> tuple[Path, list[Path]]:
    """Write the package into ``directory/<dist>``; refuses to touch a directory that exists."""
    n = Names.from_name(name)
    root = Path(directory) / n.dist
    if root.exists():
        raise FileExistsError(f"{root} already exists: choose another name or directory, or remove it")
    written = []
    for rel, text in render(name, kind).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return root, written

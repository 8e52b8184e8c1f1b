"""``scorelab new-plugin``: the package it writes, for every kind, installs with pip into a scratch
virtual environment and passes its own tests unchanged; names, refusals, and that the templates ship."""

from __future__ import annotations

import fnmatch
import importlib.metadata
import os
import subprocess
import sys
import sysconfig
import tomllib
from importlib.resources import files
from pathlib import Path

import pytest

from scorelab.cli import main
from scorelab.scaffold import KINDS, Names, render

ROOT = Path(__file__).resolve().parents[2]


def scratch_venv(path: Path) -> Path:
    """A virtual environment that sees this one's packages (scorelab, torch, pytest) through a .pth
    file, so a package installed into it stays out of the test environment. Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # Processed after the venv's own .pth files ('_' sorts after '__editable__'), so its installs win.
    Path(site, "_parent_environment.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    return python


def pip_install_editable(python: Path, *packages: Path) -> None:
    args = [str(python), "-m", "pip", "install", "--quiet", "--no-deps"]
    if _setuptools_major() >= 77:
        args.append("--no-build-isolation")  # offline; else pip fetches setuptools>=77 to build
    for package in packages:
        args += ["-e", str(package)]
    subprocess.run(args, check=True, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})


def _setuptools_major() -> int:
    try:
        return int(importlib.metadata.version("setuptools").split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        return 0


def test_names_derive_from_the_one_given():
    n = Names.from_name("My-Sampler")
    assert (n.plugin, n.dist, n.module, n.cls) == ("my_sampler", "scorelab-my-sampler", "scorelab_my_sampler",
                                                   "MySampler")
    assert Names.from_name("scorelab-fancy_ode") == Names.from_name("fancy-ode")
    for bad in ("9lives", "", "a b!", "trailing-"):
        with pytest.raises(ValueError, match="not a usable plugin name"):
            Names.from_name(bad)


@pytest.mark.parametrize("kind", KINDS)
def test_rendered_package_is_complete_and_lint_clean(kind, tmp_path):
    files_ = render("demo", kind)
    assert set(files_) == {"pyproject.toml", "README.md", "src/scorelab_demo/__init__.py",
                           f"src/scorelab_demo/{kind}.py", "tests/test_demo.py"}
    for path, text in files_.items():
        assert "${" not in text and "$plugin" not in text, path
    project = tomllib.loads(files_["pyproject.toml"])
    assert project["project"]["entry-points"]["scorelab"] == {"demo": "scorelab_demo"}
    assert f"def register_{kind}s(register):" in files_["src/scorelab_demo/__init__.py"]
    for path, text in files_.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    # ruff's defaults, as the author's own checkout would have them (not this repository's config)
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--select", "E,F,W,I,B,UP",
                           "--line-length", "120", "--target-version", "py311", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_new_plugin_command_writes_and_refuses(tmp_path, capsys):
    assert main(["new-plugin", "my-metric", "--kind", "metric", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"Created {tmp_path / 'scorelab-my-metric'}/ : the metric 'my_metric'" in out
    assert "scorelab check-plugin my_metric" in out
    assert (tmp_path / "scorelab-my-metric" / "src" / "scorelab_my_metric" / "metric.py").is_file()
    assert main(["new-plugin", "my-metric", "--dir", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["new-plugin", "9lives", "--dir", str(tmp_path)]) == 2
    assert "not a usable plugin name" in capsys.readouterr().err


def test_every_kind_installs_and_passes_its_own_tests(tmp_path):
    packages = []
    for kind in KINDS:
        assert main(["new-plugin", f"scaffolded-{kind}", "--kind", kind, "--dir", str(tmp_path)]) == 0
        packages.append(tmp_path / f"scorelab-scaffolded-{kind}")
    python = scratch_venv(tmp_path / "venv")
    pip_install_editable(python, *packages)
    tests = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *map(str, packages)],
                           capture_output=True, text=True, cwd=tmp_path)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    assert f"{3 * len(KINDS)} passed" in tests.stdout


def test_templates_ship_with_the_package():
    """Without package data a wheel of scorelab would hold no templates (an editable install hides it)."""
    templates = files("scorelab.scaffold") / "templates"
    names = sorted(t.name for t in templates.iterdir() if t.name.endswith(".tmpl"))
    assert len(names) == 4 + len(KINDS)
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config.get("tool", {}).get("setuptools", {}).get("package-data", {}).get("scorelab", [])
    unshipped = [n for n in names if not any(fnmatch.fnmatch(f"scaffold/templates/{n}", p) for p in patterns)]
    assert not unshipped, (f"pyproject.toml's [tool.setuptools.package-data] does not ship {unshipped}: add "
                           'scorelab = ["scaffold/templates/*.tmpl"]')

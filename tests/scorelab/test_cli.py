"""The command line: cheap help, plugin listing, clean errors."""

from __future__ import annotations

import subprocess
import sys

from scorelab.cli import main


def test_help_imports_neither_torch_nor_plugins():
    code = ("import sys; from scorelab.cli import build_parser; build_parser().format_help(); "
            "heavy = [m for m in ('torch', 'mlflow', 'scorelab_builtins') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_plugins_text_listing(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "builtins  (scorelab" in out and "samplers:" in out and "langevin" in out


def test_config_error_is_one_readable_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntarget: gaussian\nbudget: 10\nmetrics: [mmd]\nsamplers: [langevn]\n")
    assert main(["compare", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: ") and "samplers[0].name" in err and "did you mean 'langevin'" in err


def test_ui_command_knows_its_options():
    from scorelab.cli import build_parser

    args = build_parser().parse_args(["ui", "--port", "5123"])
    assert args.port == 5123

"""docs/plugins.md runs: every code block is executed or checked, in order, so the guide cannot go stale.

How each block is run (its info string says which it is; any other block fails the test):

- ``<lang> file=scorelab-kinetic-langevin/PATH``: the file's full text, which must equal
  examples/scorelab-kinetic-langevin/PATH (the tutorial's finished result is the example package).
- ``text tree=scorelab-kinetic-langevin``: the package layout; its paths must be exactly the example's files.
- ``python``: executed, all blocks in one module namespace, in a scratch working directory.
- ``pycon``: a doctest in that same namespace (ELLIPSIS and NORMALIZE_WHITESPACE).
- ``console``: ``$ command`` lines, each followed by lines its output must contain, in order (``...``
  stands for anything). Commands run in the scratch directory, where ``scorelab-kinetic-langevin`` is a
  link to the example. ``scorelab ...`` runs in-process and must exit with 0; ``python ...`` runs as a
  subprocess; ``pip install -e ./scorelab-kinetic-langevin`` makes sure the example is installed in this
  environment from that directory (the README's test command installs it; if it is not, the command is
  run, with --no-deps and, given setuptools >= 77, --no-build-isolation, so it works offline);
  ``console long-running`` blocks start the command, wait for the expected output and stop it.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.metadata
import json
import os
import re
import shlex
import signal
import site
import subprocess
import sys
import sysconfig
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

import scorelab.plugins
from scorelab.cli import main
from scorelab.contracts import CAPABILITIES
from scorelab.hookspecs import hookspec

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "plugins.md"
EXAMPLE = ROOT / "examples" / "scorelab-kinetic-langevin"
PACKAGE = "scorelab-kinetic-langevin"
_IGNORED_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache"}


@dataclass
class Block:
    info: str
    text: str
    line: int  # of the opening fence, 1-based

    @property
    def lang(self) -> str:
        return self.info.split()[0] if self.info else ""

    def attr(self, key: str) -> str | None:
        for word in self.info.split()[1:]:
            if word.startswith(key + "="):
                return word.split("=", 1)[1]
        return None

    @property
    def flags(self) -> set[str]:
        return {w for w in self.info.split()[1:] if "=" not in w}


def blocks(text: str) -> list[Block]:
    out, lines, i = [], text.splitlines(keepends=True), 0
    while i < len(lines):
        m = re.match(r"^```(.*)$", lines[i].rstrip("\n"))
        if m:
            start, body = i, []
            i += 1
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            out.append(Block(m.group(1).strip(), "".join(body), start + 1))
        i += 1
    return out


def example_files() -> set[str]:
    found = set()
    for path in EXAMPLE.rglob("*"):
        rel = path.relative_to(EXAMPLE)
        if path.is_file() and not (set(rel.parts) & _IGNORED_PARTS) and not any(
                p.endswith(".egg-info") for p in rel.parts):
            found.add(rel.as_posix())
    return found


def _example_path(block: Block, value: str) -> str:
    prefix = "scorelab-kinetic-langevin"
    assert value == prefix or value.startswith(prefix + "/"), (
        f"docs/plugins.md:{block.line}: files must belong to the example package {prefix}/, got {value}")
    return value[len(prefix) + 1:]


def matches(pattern: str, line: str) -> bool:
    """Whether ``line`` contains ``pattern``'s pieces, in order; '...' in the pattern stands for anything."""
    pos = 0
    for piece in pattern.split("..."):
        found = line.find(piece, pos)
        if found < 0:
            return False
        pos = found + len(piece)
    return True


def expect(output: str, expected: list[str], where: str) -> None:
    lines = output.splitlines()
    i = 0
    for pattern in (p.strip() for p in expected):
        if not pattern or pattern == "...":
            continue
        while i < len(lines) and not matches(pattern, lines[i]):
            i += 1
        assert i < len(lines), f"{where}: no output line matching {pattern!r} (in order) in:\n{output}"
        i += 1


def commands(block: Block) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            out.append((line[2:], []))
        else:
            assert out, f"docs/plugins.md:{block.line}: console output before any '$ ' command"
            out[-1][1].append(line)
    return out


class Runner:
    def __init__(self, workspace: Path, monkeypatch, capsys):
        self.workspace, self.monkeypatch, self.capsys = workspace, monkeypatch, capsys
        self.module = types.ModuleType("plugins_md")
        self.module.__file__ = str(GUIDE)

    # -- file and layout blocks ------------------------------------------------------------------
    def file(self, block: Block) -> None:
        rel = _example_path(block, block.attr("file"))
        path = EXAMPLE / rel
        assert path.is_file(), f"docs/plugins.md:{block.line}: the example has no file {rel}"
        assert block.text == path.read_text(), (
            f"docs/plugins.md:{block.line} shows {rel}, which differs from {path}: the tutorial and the "
            "example package must stay the same, file for file")

    def tree(self, block: Block) -> None:
        _example_path(block, block.attr("tree"))
        listed = {line.split()[0] for line in block.text.splitlines() if line.strip()}
        assert listed == example_files(), (
            f"docs/plugins.md:{block.line}: the layout lists {sorted(listed)}, the example has "
            f"{sorted(example_files())}")

    # -- code --------------------------------------------------------------------------------------
    def python(self, block: Block) -> None:
        code = compile("\n" * (block.line) + block.text, str(GUIDE), "exec")
        exec(code, self.module.__dict__)

    def pycon(self, block: Block) -> None:
        parser = doctest.DocTestParser()
        test = parser.get_doctest(block.text, self.module.__dict__, f"plugins.md:{block.line}", str(GUIDE),
                                  block.line)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        out: list[str] = []
        runner.run(test, out=out.append, clear_globs=False)
        assert runner.failures == 0, "".join(out)

    def console(self, block: Block) -> None:
        for command, expected in commands(block):
            where = f"docs/plugins.md:{block.line}: $ {command}"
            if "long-running" in block.flags:
                self.long_running(command, expected, where)
            else:
                expect(self.run(command, where), expected, where)

    def run(self, command: str, where: str) -> str:
        words = shlex.split(command)
        env = {}
        while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
            key, value = words.pop(0).split("=", 1)
            env[key] = value
        if words[0] == "scorelab":
            with self.monkeypatch.context() as m:
                for key, value in env.items():
                    m.setenv(key, value)
                m.setattr(scorelab.plugins, "_HOST", None)  # `scorelab plugins` loads afresh
                self.capsys.readouterr()
                code = main(words[1:])
                captured = self.capsys.readouterr()
            assert code == 0, f"{where}: exit status {code}\n{captured.out}\n{captured.err}"
            return captured.err + captured.out
        if words[:3] == ["pip", "install", "-e"]:
            assert env == {} and len(words) == 4, where
            ensure_example_installed(self.workspace / re.sub(r"\[[\w,]+\]$", "", words[3]))  # extras: pip's
            return ""
        cwd = self.workspace
        if words[0] == "cd" and words[2] == "&&":
            cwd, words = self.workspace / words[1], words[3:]
        if words[0] == "python":
            proc = subprocess.run([sys.executable, *words[1:]], cwd=cwd, capture_output=True, text=True,
                                  env={**os.environ, **env}, timeout=300)
            assert proc.returncode == 0, f"{where}: exit status {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            return proc.stdout + proc.stderr
        raise AssertionError(f"{where}: the test does not know how to run this command")

    def long_running(self, command: str, expected: list[str], where: str) -> None:
        words = shlex.split(command)
        assert words[0] == "scorelab", where
        code = "import sys; from scorelab.cli import main; sys.exit(main())"
        proc = subprocess.Popen([sys.executable, "-c", code, *words[1:]], cwd=self.workspace, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            first = proc.stdout.readline()  # the command says what it serves before it starts serving
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        expect(first, expected, where)


def ensure_example_installed(package_dir: Path) -> None:
    assert package_dir.resolve() == EXAMPLE.resolve(), f"the tutorial installs {package_dir}, not the example"
    try:
        url = json.loads(importlib.metadata.distribution(PACKAGE).read_text("direct_url.json") or "{}").get("url")
    except importlib.metadata.PackageNotFoundError:
        url = None
    if url and Path(url.removeprefix("file://")).resolve() == EXAMPLE.resolve():
        return  # installed from the example, editable: what the command does
    args = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(EXAMPLE)]
    try:
        if int(importlib.metadata.version("setuptools").split(".")[0]) >= 77:
            args.insert(5, "--no-build-isolation")
    except importlib.metadata.PackageNotFoundError:
        pass
    subprocess.run(args, check=True)
    site.addsitedir(sysconfig.get_paths()["purelib"])  # this process sees the new .pth too
    importlib.invalidate_caches()


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    (tmp_path / "scorelab-kinetic-langevin").symlink_to(EXAMPLE, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the guide uses the default store, runs/ here
    for key in ("SCORELAB_LOAD_PLUGINS", "SCORELAB_TRACE_PLUGINS"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path


def test_every_block_of_the_guide_runs(workspace, monkeypatch, capsys):
    runner = Runner(workspace, monkeypatch, capsys)
    monkeypatch.setitem(sys.modules, "plugins_md", runner.module)  # so dataclasses and type hints resolve
    handlers = {"python": runner.python, "pycon": runner.pycon, "console": runner.console}
    seen = set()
    for block in blocks(GUIDE.read_text()):
        if block.attr("file") is not None:
            runner.file(block)
            seen.add(_example_path(block, block.attr("file")))
        elif block.attr("tree") is not None:
            runner.tree(block)
        elif block.lang in handlers:
            handlers[block.lang](block)
        else:
            raise AssertionError(f"docs/plugins.md:{block.line}: a ```{block.info} block that the test cannot run; "
                                 "give it file=, tree=, or a runnable language")
    # Every file of the example is shown whole in the tutorial, except its README.
    assert seen == example_files() - {"README.md"}, sorted(example_files() - {"README.md"} - seen)


def test_reference_tables_match_the_code():
    text = GUIDE.read_text()
    caps = set(re.findall(r"^\| `(\w+)` \| [^|]+ \|$", text, flags=re.M))
    assert caps == set(CAPABILITIES), f"the capability table differs from CAPABILITIES: {caps ^ set(CAPABILITIES)}"
    import scorelab.hookspecs as specs

    hooks = {name for name, fn in vars(specs).items() if callable(fn) and name.startswith("register_")}
    documented = set(re.findall(r"^\| `(register_\w+)\(register\)` \|", text, flags=re.M))
    assert documented == hooks and hookspec is not None
    assert f"(currently {specs.API_VERSION})" in text
    assert re.search(rf"^\| {specs.API_VERSION} \| ", text, flags=re.M), "the version table lacks the current version"

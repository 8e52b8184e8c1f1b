"""The MLflow UI, in a real browser: a comparison's experiment opens on its runs (not MLflow 3's GenAI
overview) and lists the parent with its children. Skipped where Chromium is absent (.ci/run installs it)."""

from __future__ import annotations

import html
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)")

TINY = {"name": "tiny", "target": {"name": "gaussian", "dim": 2}, "budget": 100, "chains": 64, "seeds": [0, 1],
        "checkpoints": 4, "metrics": ["mean_error"], "cost_weights": {"vjp": 3, "jvp": 4},
        "samplers": [{"name": "langevin", "step_size": [0.05, 0.1]}, {"name": "mala", "warmup": 0}]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _page_text(url: str) -> str:
    """The page's visible text after its scripts ran (Chromium headless, DOM dumped)."""
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=30000",
                          "--dump-dom", url], capture_output=True, text=True, timeout=180).stdout
    text = re.sub(r"<script.*?</script>|<style.*?</style>", " ", dom, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)))


@pytest.fixture
def served(tmp_path):
    """A store with one small comparison, served by MLflow on the loopback; stopped after the test."""
    from mlflow.tracking import MlflowClient

    from scorelab.cli import main
    from scorelab.cli.ui import comparison_urls, latest_comparison

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["compare", str(config), "--quiet", "--tracking-uri", uri]) == 0
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host",
                               "127.0.0.1", "--port", str(port), "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
                break
            except OSError:
                time.sleep(1)
        client = MlflowClient(uri)
        parent = latest_comparison(client)
        children = client.search_runs([parent.info.experiment_id],
                                      f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
        yield comparison_urls(f"http://127.0.0.1:{port}", parent), parent, children
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_experiment_opens_on_its_runs_with_the_parent_and_its_children(served):
    urls, parent, children = served
    text = _page_text(urls["Its experiment's runs"])
    assert "Run Name" in text and "compare tiny" in text  # the runs table, with the parent
    assert "Token Usage" not in text and "Traces 0" not in text  # not the GenAI overview
    # The children sit under the collapsed parent: the table counts them with it.
    assert f"{1 + len(children)} matching runs" in text and len(children) == 8

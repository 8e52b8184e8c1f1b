"""The third-party example, installed with pip (the README's test command does it), used by name."""

from __future__ import annotations

import importlib.metadata
import json

import pytest
from mlflow.tracking import MlflowClient

from scorelab.cli import main
from scorelab.plugins import PluginHost

PACKAGE = "scorelab-kinetic-langevin"


@pytest.fixture(scope="module")
def installed():
    try:
        importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"{PACKAGE} is not installed: run the README's test command, which pip-installs "
                    "./examples/scorelab-kinetic-langevin before the tests")


def test_plugins_command_lists_the_example(installed, capsys):
    assert main(["plugins", "--json"]) == 0
    listing = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    example = listing["kinetic_langevin"]
    assert example["package"] == PACKAGE and example["version"] == "0.1.0"
    assert example["registers"] == {"sampler": ["kinetic_langevin"]} and example["errors"] == []
    assert listing["builtins"]["package"] == "scorelab"


def test_comparison_config_uses_the_example_by_name(installed, tmp_path, tracking_uri, capsys):
    config = tmp_path / "with_example.yaml"
    config.write_text(
        "name: example\n"
        "target: {name: gaussian, dim: 2, condition_number: 4}\n"
        "budget: 80\nchains: 300\nseeds: [0]\ncheckpoints: 3\n"
        "cost_weights: {vjp: 3, jvp: 4}\n"
        "metrics: [covariance_error]\n"
        "samplers:\n  - {name: langevin, step_size: 0.1}\n  - {name: kinetic_langevin, step_size: [0.2, 0.5]}\n"
    )
    assert main(["compare", str(config), "--tracking-uri", tracking_uri, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "kinetic_langevin[step_size=0.5]" in out and "MLflow:" in out
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("example").experiment_id],
                              "tags.`scorelab.sampler` = 'kinetic_langevin'")
    # two settings tuned on seed 1000, then the better one evaluated on seed 0
    roles = sorted(r.data.tags["scorelab.role"] for r in runs)
    assert roles == ["evaluation", "tuning", "tuning"] and all(r.info.status == "FINISHED" for r in runs)
    assert all(r.data.metrics["calls.nfe"] == 80 for r in runs)


def test_entry_point_loads_through_a_fresh_host(installed):
    host = PluginHost().load_entry_points({"kinetic_langevin"})
    assert host.names("sampler") == ["kinetic_langevin"]

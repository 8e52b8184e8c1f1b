"""Numbers and requirements a config can get wrong: each refused at parse time, naming file and key.

NaN fails every comparison, so a range check written as ``x <= 0`` lets it through; infinities and
absurd sizes pass type checks and crash, hang or run forever later. Each case here was accepted (or
crashed with a traceback) before parsing checked it.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import pytest
import torch

from scorelab import device as D
from scorelab import params as P
from scorelab.config import load_comparison, load_yaml, parse_comparison
from scorelab.errors import ConfigError
from scorelab.training.spec import parse_training

FILE = "cfg.yaml"
NAN, INF, HUGE = math.nan, math.inf, 10**18

COMPARISON = {
    "name": "values",
    "target": {"name": "gmm", "weights": [0.8, 0.2], "means": [[-5.0, -5.0], [5.0, 5.0]], "stds": [1.0, 1.0]},
    "budget": 100,
    "chains": 50,
    "seeds": [0, 1],
    "metrics": ["sliced_wasserstein"],
    "samplers": [{"name": "langevin", "step_size": 0.1}, {"name": "annealed_langevin", "levels": 5}],
    "device": "cpu",
}

TRAINING = {
    "name": "values",
    "target": {"name": "gmm", "weights": [0.8, 0.2], "means": [[-5.0, -5.0], [5.0, 5.0]], "stds": [1.0, 1.0]},
    "model": {"name": "mlp", "noise_conditional": True, "hidden": 16, "layers": 2},
    "objective": {"name": "dsm_multi", "sigma_max": 2.0, "sigma_min": 0.1, "levels": 4},
    "steps": 20,
    "batch_size": 64,
    "device": "cpu",
}


def _with(base: dict, path: str, value) -> dict:
    """``base`` with the value at ``path`` (``a.b``, ``a[1]``) replaced."""
    raw = copy.deepcopy(base)
    keys = [int(k) if k.isdigit() else k for k in path.replace("[", ".").replace("]", "").split(".")]
    node = raw
    for k in keys[:-1]:
        node = node.setdefault(k, {}) if isinstance(node, dict) else node[k]
    node[keys[-1]] = value
    return raw


def _refused(parse, raw, host, key: str, *words: str) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        parse(raw, file=FILE, host=host)
    assert err.value.file == FILE, err.value
    assert err.value.key == key, err.value
    for w in words:
        assert w in str(err.value), err.value
    return err.value


def test_the_base_configs_parse(host):
    assert parse_comparison(COMPARISON, file=FILE, host=host).budget == 100
    assert parse_training(TRAINING, file=FILE, host=host).steps == 20


COMPARISON_VALUES = [
    # (key path set, value, key path named, words)
    ("init.scale", NAN, "init.scale", "finite"),
    ("init.scale", INF, "init.scale", "finite"),
    ("init.center", NAN, "init.center", "finite"),
    ("init.center", -INF, "init.center", "finite"),
    ("quality_multiple", NAN, "quality_multiple", "finite"),
    ("quality_multiple", INF, "quality_multiple", "finite"),
    ("cost_weights", {"vjp": NAN, "jvp": 2.0}, "cost_weights.vjp", "finite"),
    ("cost_weights", {"vjp": 2.0, "jvp": INF}, "cost_weights.jvp", "finite"),
    ("cost_weights", {"vjp": 2.0, "jvp": 2.0, "curvature": NAN}, "cost_weights.curvature", "finite"),
    ("budget", INF, "budget", "finite"),
    ("budget", NAN, "budget", "finite"),
    ("cost_resolution", NAN, "cost_resolution", "finite"),
    ("target.weights", [NAN, 0.2], "target.weights", "finite"),
    ("target.means", [[NAN, -5.0], [5.0, 5.0]], "target.means", "finite"),
    ("target.means", [[-5.0, -5.0], [5.0, INF]], "target.means", "finite"),
    ("target.stds", [1.0, NAN], "target.stds", "finite"),
    ("target.means", [[-5.0, -5.0], [5.0, 5.0, 5.0]], "target", "means"),
    ("samplers[0].step_size", NAN, "samplers[0].step_size", "finite"),
    ("samplers[0].step_size", [0.1, INF], "samplers[0].step_size", "finite"),
    ("seeds", [0, -1], "seeds", "must be in [0, 2^63)"),
    ("seeds", [0, 2**70], "seeds", "seed"),
    ("reference_seed", 2**70, "reference_seed", "seed"),
    ("checkpoints", HUGE, "checkpoints", "checkpoints"),
    ("cpu_threads", HUGE, "cpu_threads", "cpu_threads"),
    ("chain_block", 0, "chain_block", "auto"),
    ("chain_block", -4, "chain_block", ">= 1"),
    ("chain_block", "most", "chain_block", "'auto' | int"),
    ("chain_block", 2.5, "chain_block", "'auto' | int"),
]


@pytest.mark.parametrize("path, value, key, words", COMPARISON_VALUES,
                         ids=[f"{c[0]}={c[1]!r}"[:40] for c in COMPARISON_VALUES])
def test_comparison_numbers_are_finite_and_in_range(host, path, value, key, words):
    _refused(parse_comparison, _with(COMPARISON, path, value), host, key, words)


TRAINING_VALUES = [
    ("optimizer", {"lr": INF}, "optimizer.lr", "finite"),
    ("optimizer", {"lr": NAN}, "optimizer.lr", "finite"),
    ("optimizer", {"weight_decay": NAN}, "optimizer.weight_decay", "finite"),
    ("optimizer", {"betas": [0.9, NAN]}, "optimizer.betas", "finite"),
    ("optimizer", {"name": "sgd", "momentum": NAN}, "optimizer.momentum", "finite"),
    ("schedule", {"name": "cosine", "final": NAN}, "schedule.final", "finite"),
    ("ema", NAN, "ema", "finite"),
    ("grad_clip", INF, "grad_clip", "finite"),
    ("seed", 2**70, "seed", "seed"),
    ("target.means", [[NAN, -5.0], [5.0, 5.0]], "target.means", "finite"),
    ("target.stds", [NAN, 1.0], "target.stds", "finite"),
    ("target.means", [[-5.0, -5.0], [5.0]], "target", "means"),
    ("objective.sigma_max", INF, "objective.sigma_max", "finite"),
]


@pytest.mark.parametrize("path, value, key, words", TRAINING_VALUES,
                         ids=[f"{c[0]}={c[1]!r}"[:40] for c in TRAINING_VALUES])
def test_training_numbers_are_finite_and_in_range(host, path, value, key, words):
    _refused(parse_training, _with(TRAINING, path, value), host, key, words)


# Sizes that used to allocate exabytes, build a 10^18-element list, or loop for ever while parsing.
@pytest.mark.parametrize("path, key", [
    ("objective.levels", "objective"),
    ("model.layers", "model"),
    ("model.hidden", "model"),
])
def test_absurd_training_sizes_are_refused_at_once(host, path, key):
    _refused(parse_training, _with(TRAINING, path, HUGE), host, key)


def test_a_huge_conv_is_refused_at_once(host):
    raw = {**TRAINING, "target": {"name": "digits"}, "model": {"name": "conv", "blocks": HUGE},
           "objective": {"name": "dsm_multi", "sigma_max": 2.0, "sigma_min": 0.1, "levels": 4}}
    _refused(parse_training, raw, host, "model")


@pytest.mark.parametrize("raw", [
    {"name": "gaussian", "dim": HUGE},
    {"name": "gaussian", "dim": 50_000, "rotate": True},
    {"name": "two_moons", "size": HUGE},
    {"name": "rings", "rings": HUGE},
], ids=lambda r: ",".join(f"{k}={v}" for k, v in r.items()))
def test_absurd_target_sizes_are_refused_at_once(host, raw):
    _refused(parse_comparison, {**COMPARISON, "target": raw, "samplers": ["langevin"]}, host, "target")


def test_chains_beyond_memory_are_refused_with_the_estimate(host):
    _refused(parse_comparison, _with(COMPARISON, "chains", HUGE), host, "chains", "needs about", "lower 'chains'")


def test_a_batch_beyond_memory_is_refused_with_the_estimate(host):
    _refused(parse_training, _with(TRAINING, "batch_size", HUGE), host, "batch_size", "needs about",
             "lower 'batch_size'")


def test_memory_estimate_counts_chains_dimension_and_dtype():
    small = D.run_memory(1000, 10, "float32")
    assert D.run_memory(2000, 10, "float32") == 2 * small == D.run_memory(1000, 10, "float64")


def test_annealed_levels_above_the_budget_are_refused_before_work(host):
    raw = _with(_with(COMPARISON, "samplers[1].levels", 500), "budget", 100)
    _refused(parse_comparison, raw, host, "samplers[1]", "budget", "500 levels")


def test_a_sweep_names_the_setting_the_budget_cannot_run(host):
    raw = _with(COMPARISON, "samplers[1].levels", [5, 500])
    _refused(parse_comparison, raw, host, "samplers[1]", "500 levels")


def test_an_ensemble_too_small_for_its_covariance_is_refused_before_work(host):
    raw = {**COMPARISON, "target": {"name": "gaussian", "dim": 10}, "chains": 8,
           "samplers": [{"name": "ensemble_langevin", "covariance": "dense", "jitter": 0.0}]}
    _refused(parse_comparison, raw, host, "samplers[0]", "chains")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("parse, base", [(parse_comparison, COMPARISON), (parse_training, TRAINING)])
def test_cuda_without_cuda_is_a_config_error(host, parse, base):
    _refused(parse, {**base, "device": "cuda"}, host, "device", "no CUDA device", "auto", "cpu")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_mps_without_mps_is_a_config_error(host):
    _refused(parse_comparison, {**COMPARISON, "device": "mps"}, host, "device", "no MPS device", "auto", "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_index_beyond_the_devices_is_a_config_error(host):
    _refused(parse_comparison, {**COMPARISON, "device": f"cuda:{torch.cuda.device_count()}"}, host, "device")


def test_an_unavailable_device_is_a_config_error_at_resolve_time_too():
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            D.resolve_device("cuda")
    if not torch.backends.mps.is_available():
        with pytest.raises(ConfigError, match="no MPS device"):
            D.resolve_device("mps")


@pytest.mark.parametrize("content", [
    "name: t\nbudget: 10\n".encode("utf-16"),
    bytes(range(256)) * 4,
    b"name: t\x00\x01\x02\n",
], ids=["utf-16", "binary", "control-bytes"])
def test_a_config_that_is_not_utf8_text_is_one_line_naming_the_file(tmp_path, host, content):
    path = tmp_path / "cfg.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        load_comparison(path, host)
    assert err.value.file == str(path) and "\n" not in str(err.value)


def test_a_config_nested_beyond_reason_is_a_config_error(tmp_path, host):
    path = tmp_path / "cfg.yaml"
    path.write_text("name: " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply") as err:
        load_comparison(path, host)
    assert err.value.file == str(path)


def test_a_utf8_config_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_bytes("name: tëst\n".encode("utf-8-sig"))
    assert load_yaml(path) == {"name": "tëst"}


def test_a_non_string_key_is_a_config_error(host):
    _refused(parse_comparison, {**COMPARISON, 3: "x"}, host, "3", "unknown key")


# A third-party plugin gets the finiteness checks without writing any.
@dataclass
class Knob:
    gain: float = 1.0
    gains: list[float] | None = None
    count: int = 1

    name = "knob"


@pytest.mark.parametrize("params, key", [
    ({"gain": NAN}, "p.gain"),
    ({"gain": -INF}, "p.gain"),
    ({"gains": [1.0, NAN]}, "p.gains"),
    ({"count": 2**64}, "p.count"),
])
def test_plugin_fields_are_checked_for_finiteness_generically(params, key):
    with pytest.raises(ConfigError) as err:
        P.check_params(Knob, params, "p", FILE)
    assert err.value.key == key


def test_a_plugin_that_runs_out_of_memory_while_built_is_a_config_error():
    @dataclass
    class Greedy:
        size: int = 1

        name = "greedy"

        def __post_init__(self):
            torch.empty(self.size, self.size)

    with pytest.raises(ConfigError, match="too large") as err:
        P.instantiate(Greedy, {"size": HUGE}, "target", FILE)
    assert err.value.key == "target"


def test_check_range_refuses_nan_that_a_comparison_would_let_through():
    P.check_range(0.5, "x", FILE, above=0, at_most=1)
    for bad in (NAN, INF, 0.0, 1.5):
        with pytest.raises(ConfigError, match="x"):
            P.check_range(bad, "x", FILE, above=0, at_most=1)

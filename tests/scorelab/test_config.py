"""Broken configs: each is refused before any work, naming the file, the key path and the choices."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from scorelab.config import load_comparison
from scorelab.errors import ConfigError

GOOD = """\
name: t
target: {name: gmm, weights: [0.8, 0.2], means: [[-5, -5], [5, 5]], stds: [1, 1]}
budget: 100
chains: 50
seeds: [0, 1]
metrics: [sliced_wasserstein, mode_weight_error]
samplers:
  - name: langevin
    step_size: [0.05, 0.2]
  - name: annealed_langevin
    levels: 5
"""


def _write(tmp_path, text):
    path = tmp_path / "cfg.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_good_config_parses_with_sweep(tmp_path, host):
    comp = load_comparison(_write(tmp_path, GOOD), host)
    assert [s.label for s in comp.samplers] == [
        "langevin[step_size=0.05]", "langevin[step_size=0.2]", "annealed_langevin"]
    assert comp.tuning_seeds == [1000, 1001] and comp.primary == "sliced_wasserstein" and comp.baseline == "langevin"
    assert comp.budget == 100.0 and comp.seeds == [0, 1]


BROKEN = [
    # (replace this, with that, expected key path, expected words in the message)
    ("name: langevin\n", "name: langevn\n", "samplers[0].name",
     "did you mean 'langevin'? Registered samplers: "),
    ("step_size: [0.05, 0.2]", "step_size: fast", "samplers[0].step_size", "expected float, got 'fast'"),
    ("step_size: [0.05, 0.2]", "stepsize: 0.1", "samplers[0].stepsize",
     "did you mean 'step_size'? Valid keys: as, name, step_size"),
    ("step_size: [0.05, 0.2]", "step_size: -1", "samplers[0]", "step_size must be > 0, got -1.0"),
    ("step_size: [0.05, 0.2]", "step_size: []", "samplers[0].step_size", "empty list"),
    ("budget: 100\n", "", "", "missing required key(s) budget"),
    ("budget: 100", "budget: -5", "budget", "must be > 0"),
    ("budget: 100", "budget: lots", "budget", "expected float, got 'lots'"),
    ("chains: 50", "chains: 2.5", "chains", "expected int, got 2.5"),
    ("metrics: [sliced_wasserstein, mode_weight_error]", "metrics: [sliced_wasserstein, fid]", "metrics[1]",
     "unknown metric 'fid'"),
    ("metrics: [sliced_wasserstein, mode_weight_error]", "metrics: []", "metrics", "non-empty list of metrics"),
    ("name: gmm, weights: [0.8, 0.2], means: [[-5, -5], [5, 5]], stds: [1, 1]", "name: gaussian, dim: 2",
     "metrics[1]", "mode_weight_error requires mixture, which target 'gaussian' does not provide"),
    ("weights: [0.8, 0.2]", "weights: [0.8, 0.3]", "target", "weights must sum to 1"),
    ("name: gmm, ", "", "target", "missing key 'name'"),
    ("seeds: [0, 1]", "seeds: [0, 0]", "seeds", "seeds repeat"),
    ("seeds: [0, 1]", "seeds: 3", "seeds", "expected list of int, got 3"),
    ("chains: 50", "chains: 50\ndevice: gpu", "device", "expected auto, cpu, cuda, cuda:N or mps"),
    ("chains: 50", "chains: 50\nchain: 4", "chain", "did you mean 'chains'?"),
    ("chains: 50", "chains: 50\nscore: runs:/abc", "score", "unknown score source"),
    ("chains: 50", "chains: 50\ninit: {distribution: cauchy}", "init.distribution", "expected 'gaussian' | 'uniform'"),
    ("chains: 50", "chains: 50\ncost_weights: {vjp: 0, jvp: 2}", "cost_weights.vjp", "must be > 0"),
    ("levels: 5", "levels: 0", "samplers[1]", "levels must be >= 1"),
    ("  - name: annealed_langevin\n    levels: 5",
     "  - name: hessian_diag_langevin\n    curvature: learned", "samplers[1]",
     "hessian_diag_langevin requires second_order_head, which the exact score of target 'gmm' does not provide"),
    ("chains: 50", "chains: 50\ntuning_seeds: [1, 2]", "tuning_seeds",
     "must differ from evaluation seeds; both have [1]"),
    ("chains: 50", "chains: 50\ntuning_seeds: []", "tuning_seeds", "a sweep needs tuning seeds"),
    ("chains: 50", "chains: 50\nprimary_metric: mmd", "primary_metric",
     "unknown primary metric 'mmd'. This config's metrics: mode_weight_error, sliced_wasserstein"),
    ("chains: 50", "chains: 50\nbaseline: mala", "baseline",
     "unknown baseline row 'mala'. This comparison's rows: annealed_langevin, langevin"),
    ("chains: 50", "chains: 50\nquality_multiple: 0.5", "quality_multiple", "must be >= 1"),
    ("  - name: langevin\n", "  - langevin: {}\n", "samplers[0]", "missing key 'name'"),
    ("    levels: 5", "    levels: 5\n    as: langevin", "samplers[1].as",
     "row 'langevin' already holds sampler 'langevin'"),
    ("    levels: 5", "    levels: 5\n    as: mala", "samplers[1].as", "'mala' is another sampler plugin's name"),
    ("    levels: 5", "    levels: 5\n    as: 3", "samplers[1].as", "expected a row name"),
    ("  - name: annealed_langevin\n    levels: 5", "  - name: langevin\n    step_size: 0.3", "samplers[1]",
     "row 'langevin' is made by samplers[0] already. Compare this entry as a row of its own with 'as: NAME'"),
]


@pytest.mark.parametrize("old, new, key, words", BROKEN, ids=[b[2] or b[3] for b in BROKEN])
def test_broken_config_names_file_key_and_choices(tmp_path, host, old, new, key, words):
    assert old in GOOD, old
    path = _write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_comparison(path, host)
    assert err.value.file == str(path)
    assert (err.value.key or "") == key
    assert words in str(err.value)
    assert str(err.value).startswith(f"{path}: ")


def test_one_plugin_compared_as_two_rows(tmp_path, host):
    text = GOOD.replace("    levels: 5", "    levels: 5\n  - name: annealed_langevin\n    as: annealed_fine\n"
                        "    levels: [20, 40]")
    comp = load_comparison(_write(tmp_path, text), host)
    assert [(s.name, s.plugin, s.label) for s in comp.samplers[2:]] == [
        ("annealed_langevin", "annealed_langevin", "annealed_langevin"),
        ("annealed_fine", "annealed_langevin", "annealed_fine[levels=20]"),
        ("annealed_fine", "annealed_langevin", "annealed_fine[levels=40]")]


def test_bad_yaml_names_the_line(tmp_path, host):
    path = _write(tmp_path, GOOD + "samplers: [unclosed\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line 13"):
        load_comparison(path, host)


def test_missing_file(tmp_path, host):
    with pytest.raises(ConfigError, match="no such config file"):
        load_comparison(tmp_path / "nope.yaml", host)


def test_top_level_must_be_a_mapping(tmp_path, host):
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_comparison(_write(tmp_path, "- a\n- b\n"), host)


def test_every_shipped_config_is_valid(host):
    from pathlib import Path

    for path in sorted(Path(__file__).parents[2].joinpath("configs").glob("*.yaml")):
        text = path.read_text()
        if "samplers:" in text:  # comparison configs
            load_comparison(path, host)


def test_configs_copy_deepcopy_and_pickle(tmp_path, host):
    """A comparison and a training travel to other processes (an executor's workers) whole: the reads
    through to the spec must not send copy or pickle into endless recursion."""
    import copy
    import pickle

    from scorelab.training import parse_training

    comp = load_comparison(_write(tmp_path, GOOD), host)
    training = parse_training({"name": "t", "target": {"name": "gaussian", "dim": 2}, "model": {"name": "mlp"},
                               "objective": {"name": "dsm"}, "steps": 3}, None, host)
    for config in (comp, training):
        for twin in (copy.copy(config), copy.deepcopy(config), pickle.loads(pickle.dumps(config))):
            assert type(twin) is type(config) and twin.spec == config.spec and twin.raw == config.raw
    assert pickle.loads(pickle.dumps(comp)).budget == comp.budget == 100
    assert [s.label for s in pickle.loads(pickle.dumps(comp)).samplers] == [s.label for s in comp.samplers]
    assert not hasattr(comp, "_private") and not hasattr(comp, "__missing_dunder__")  # never read through


def test_a_config_of_the_other_kind_or_a_directory_says_what_to_run_or_open(tmp_path, host):
    from scorelab.training import parse_training

    with pytest.raises(ConfigError, match="this is a training config .* run it with `scorelab train`"):
        load_comparison(_write(tmp_path, "name: t\ntarget: gmm\nmodel: mlp\nobjective: dsm\nsteps: 5\n"), host)
    with pytest.raises(ConfigError, match="this is a comparison config .* run it with `scorelab compare`"):
        parse_training(yaml.safe_load(GOOD), "cfg.yaml", host)
    with pytest.raises(ConfigError, match=r"a directory, not a config file \(its .yaml files: cfg.yaml\)"):
        load_comparison(tmp_path, host)

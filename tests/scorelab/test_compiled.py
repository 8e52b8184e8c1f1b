"""Compiled steps (``compile: inductor | auto``) keep every guarantee of the eager loop: the same
counts and cost, the same random stream (so the same chains, to rounding), divergence at the same
step; a step that cannot be compiled runs eagerly with a notice; a mode the device cannot run is a
config error."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from scorelab import compiled, stepping
from scorelab.chain import run_chain
from scorelab.config import parse_comparison
from scorelab.errors import ConfigError
from scorelab.ess import Tracer
from scorelab.oracle import ScoreOracle
from scorelab.sources import ExactScore
from scorelab_builtins.samplers import Langevin, Mala, ProbabilityFlowODE
from scorelab_builtins.targets import Gaussian
from tests.helpers import SAMPLERS, several_a_call, short_chain

# One of each kind of step: fused ULA, Metropolis with a step adapted on device scalars, a curvature
# refresh every few steps (a Python branch), per-chain error control with Brownian memory; split into
# draw and advance (DrawsFirst) or not, with a secant step size and with an ensemble's metric.
KINDS = ["langevin", "mala[warmup]", "hessian_diag[hutchinson,vjp]", "annealed[adaptive]", "curvature_step[secant]",
         "ensemble_mala"]


@pytest.mark.slow
@pytest.mark.parametrize("name", KINDS)
def test_a_compiled_step_gives_the_eager_counts_and_chains(name):
    eager, eager_counts = short_chain(name, "none")
    fused, fused_counts = short_chain(name, "inductor")
    assert (fused.steps, fused_counts, fused.cost) == (eager.steps, eager_counts, eager.cost)
    # The same noise from the same generator; only the rounding of fused arithmetic may differ (float64).
    torch.testing.assert_close(fused.state.x, eager.state.x, rtol=1e-9, atol=1e-12)
    again, _ = short_chain(name, "inductor")
    assert torch.equal(again.state.x, fused.state.x)  # a mode reproduces itself per seed


def test_a_compiled_runs_wall_time_leaves_out_its_compiling():
    """The first run of a sampler compiles its step (seconds on the CPU); its wall time is sampling's,
    the compiling logged apart, so a comparison's first seed is timed as the others."""
    import time

    torch._dynamo.reset()  # so that this run compiles, whatever ran before
    target = Gaussian(dim=2).to(dtype=torch.float32)
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))

    def run(compile):
        t0 = time.perf_counter()
        result = run_chain(Langevin(step_size=0.1), ScoreOracle(ExactScore(target)), x0, 20,
                           torch.Generator().manual_seed(0), checkpoints=[5, 10], compile=compile)
        return result, time.perf_counter() - t0

    (compiled_run, elapsed), (eager, _) = run("inductor"), run("none")
    assert compiled_run.compile_seconds > 0 and compiled_run.compile_seconds + compiled_run.wall_time < elapsed
    # Tracing alone (inductor's code may come from its disk cache) is far longer than 20 steps of 64 chains.
    assert compiled_run.wall_time < 0.5 * compiled_run.compile_seconds
    assert eager.compile_seconds == 0.0


def test_recording_a_cuda_graph_counts_as_compiling_not_sampling(monkeypatch):
    """Dynamo times a CUDA graph's recording (at the graph's second call) under its own key, outside
    its compiling; both are the making of a compiled step, so a run's sampling clock leaves out both."""
    from torch._dynamo import utils

    tally = {"_compile.compile_inner": [2.0, 0.5], "CUDAGraphNode.record": [0.25], "other": [7.0]}
    monkeypatch.setattr(utils, "compilation_time_metrics", tally)
    assert compiled.seconds_compiling() == 2.75


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_a_runs_graph_recordings_are_tallied_as_compiling():
    """Dynamo still times CUDA graph recordings under the key :func:`compiled.seconds_compiling` reads,
    and a ``cuda_graph`` run's compile seconds take them in."""
    from torch._dynamo.utils import compilation_time_metrics

    torch._dynamo.reset()
    target = Gaussian(dim=2).to("cuda", torch.float32)
    x0 = torch.randn(64, 2, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    recorded = sum(compilation_time_metrics.get("CUDAGraphNode.record", ()))
    result = run_chain(Langevin(step_size=0.1), ScoreOracle(ExactScore(target)), x0, 40,
                       torch.Generator("cuda").manual_seed(0), checkpoints=[20], compile="cuda_graph")
    recording = sum(compilation_time_metrics.get("CUDAGraphNode.record", ())) - recorded
    assert recording > 0 and result.compile_seconds >= recording


@pytest.mark.slow
def test_divergence_is_detected_at_the_same_step(monkeypatch):
    several_a_call(monkeypatch)  # it diverges inside the first call of several steps
    target = Gaussian(dim=3, condition_number=10.0)
    x0 = torch.randn(16, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    results = [run_chain(Langevin(step_size=5.0), ScoreOracle(ExactScore(target)), x0, 200,
                         torch.Generator().manual_seed(1), [100, 200], bound=1e6, compile=mode)
               for mode in ("none", "inductor")]
    assert results[0].diverged_at is not None
    assert results[1].diverged_at == results[0].diverged_at


def _counting_calls_of_several_steps(monkeypatch) -> list[int]:
    """Has the step loop's multi-step functions count their calls in the returned list."""
    calls = []
    real = stepping.multi_step_function

    def counted(*args, **kwargs):
        many = real(*args, **kwargs)
        if many is None:
            return None

        def run(*a):
            calls.append(1)
            return many(*a)

        return run

    monkeypatch.setattr(stepping, "multi_step_function", counted)
    return calls


@pytest.mark.slow
@pytest.mark.parametrize("name", ["langevin", "mala[warmup]"])
def test_several_steps_a_call_keep_each_checkpoint_its_info_and_every_steps_trace(name, monkeypatch):
    several_a_call(monkeypatch)
    calls = _counting_calls_of_several_steps(monkeypatch)
    target = Gaussian(dim=4, condition_number=10.0)
    x0 = torch.randn(32, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    runs = {}
    for mode in ("none", "inductor"):
        kept, tracer, oracle = [], Tracer(4, chains=8), ScoreOracle(ExactScore(target))
        # checkpoints 1 and 4 steps apart, and one a call's steps would pass: calls stop short of each
        result = run_chain(SAMPLERS[name](), oracle, x0, 100, torch.Generator().manual_seed(1), [13, 50, 51, 55],
                           kept.append, trace=tracer, compile=mode)
        runs[mode] = result, oracle.counts, kept, tracer.trace(0.0)
    (eager, eager_counts, eager_kept, eager_trace), (fused, fused_counts, fused_kept, fused_trace) = runs.values()
    # 1 NFE a step: a single step, then calls of 8 where their first 7 stay below the next checkpoint:
    # 1 before 13, 4 before 50, none before 51 or 55, 5 before the budget
    assert len(calls) == 10
    assert (fused.steps, fused_counts, fused.cost) == (eager.steps, eager_counts, eager.cost)
    assert [(cp.cost, cp.steps) for cp in fused_kept] == [(cp.cost, cp.steps) for cp in eager_kept]
    for a, b in zip(eager_kept, fused_kept, strict=True):
        assert a.info.keys() == b.info.keys()
        assert all(b.info[k] == pytest.approx(a.info[k], rel=1e-9, abs=1e-12) for k in a.info)
    assert eager_trace.shape == fused_trace.shape == (8, eager.steps, 4)
    torch.testing.assert_close(torch.from_numpy(fused_trace), torch.from_numpy(eager_trace), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(fused.state.x, eager.state.x, rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_a_sampler_whose_calls_change_between_steps_goes_on_in_single_steps(monkeypatch):
    # a curvature refresh every 3 steps: the first call of several steps makes more calls than the step
    # before it did, and then the loop takes single steps, with the eager counts and chains
    several_a_call(monkeypatch)
    calls = _counting_calls_of_several_steps(monkeypatch)
    eager, eager_counts = short_chain("curvature_step[power]", "none")
    fused, fused_counts = short_chain("curvature_step[power]", "inductor")
    assert len(calls) == 1
    assert (fused.steps, fused_counts, fused.cost) == (eager.steps, eager_counts, eager.cost)
    torch.testing.assert_close(fused.state.x, eager.state.x, rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_a_compiled_run_takes_as_many_steps_a_call_as_its_device_says_and_reproduces_itself(monkeypatch):
    calls = _counting_calls_of_several_steps(monkeypatch)
    single, _ = short_chain("langevin", "inductor", budget=100)
    assert calls == []  # one step a call, as the suite runs compiled CPU steps (tests/conftest.py)
    several_a_call(monkeypatch)
    runs = [short_chain("langevin", "inductor", budget=100)[0] for _ in range(2)]
    # a single step (its calls), then calls of 8 until the next would pass the budget before its last step
    assert len(calls) == 2 * ((99 - 1) // 8)
    assert torch.equal(runs[0].state.x, runs[1].state.x) and runs[0].steps == single.steps
    torch.testing.assert_close(runs[0].state.x, single.state.x, rtol=1e-9, atol=1e-12)


class _DrawingAsItGoes:
    """MALA's step as one method, as a sampler that does not split it into draw and advance has it."""

    def __init__(self, mala):
        self.mala, self.init = mala, mala.init

    def step(self, state, oracle, generator):
        return self.mala.step(state, oracle, generator)


@pytest.mark.slow
def test_a_step_that_draws_first_is_captured_without_a_break():
    target = Gaussian(dim=3, condition_number=10.0)
    x0 = torch.randn(16, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    breaks = {}
    for sampler in (Mala(step_size=0.05, warmup=0), _DrawingAsItGoes(Mala(step_size=0.05, warmup=0))):
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        run_chain(sampler, ScoreOracle(ExactScore(target)), x0, 10, torch.Generator().manual_seed(1),
                  compile="inductor")
        breaks[type(sampler).__name__] = sum(torch._dynamo.utils.counters["graph_break"].values())
    torch._dynamo.reset()
    assert breaks["Mala"] == 0  # advance, whole; draw runs eagerly before it
    assert breaks["_DrawingAsItGoes"] >= 2  # at each draw (the proposal's uniform pairs, the acceptance's uniforms)


def test_auto_stays_eager_when_compiling_cannot_pay(monkeypatch):
    monkeypatch.setattr(compiled, "_auto_choices", {})
    eager, eager_counts = short_chain("langevin", "none")
    auto, auto_counts = short_chain("langevin", "auto")  # 60 steps of microseconds each
    assert (auto_counts, auto.steps) == (eager_counts, eager.steps) and torch.equal(auto.state.x, eager.state.x)
    assert compiled._auto_choices == {}  # a short run's verdict would bind longer runs of the setting: not kept


@pytest.mark.slow
@pytest.mark.parametrize("steps_a_call", [1, 4])  # the suite's, and scorelab's CPU default
def test_auto_times_both_paths_when_compiling_may_pay(steps_a_call, monkeypatch):
    several_a_call(monkeypatch, steps_a_call)
    monkeypatch.setattr(compiled, "_auto_choices", {})
    monkeypatch.setattr(compiled, "WORTH_COMPILING", 0.0)
    eager, eager_counts = short_chain("langevin", "none")
    auto, auto_counts = short_chain("langevin", "auto")
    assert (auto_counts, auto.steps) == (eager_counts, eager.steps)
    torch.testing.assert_close(auto.state.x, eager.state.x, rtol=1e-9, atol=1e-12)
    ((key, path),) = compiled._auto_choices.items()
    assert path in ("compiled", "eager") and key[2] == (32, 4)
    again, _ = short_chain("langevin", "auto")  # the choice is reused from the first step: no timing, one path
    same_path, _ = short_chain("langevin", "none" if path == "eager" else "inductor")
    assert compiled._auto_choices == {key: path} and torch.equal(again.state.x, same_path.state.x)
    x = torch.zeros(32, 4, dtype=torch.float64)  # a replay of a segment steps as the run settled
    assert compiled.settled_mode(Langevin(0.05), "auto", x) == ("none" if path == "eager" else "inductor")
    assert compiled.settled_mode(Langevin(0.07), "auto", x) == "none"  # a setting auto never saw


def test_a_step_the_compiler_fails_on_runs_eagerly_with_one_notice(monkeypatch, capsys):
    import torch._inductor.compile_fx as fx

    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(fx, "compile_fx", broken)
    monkeypatch.setattr(compiled, "_told", set())
    torch._dynamo.reset()  # nothing compiled earlier in this process may be reused
    eager, eager_counts = short_chain("rmsprop", "none")
    fallen, fallen_counts = short_chain("rmsprop", "inductor")
    torch._dynamo.reset()
    assert fallen_counts == eager_counts and torch.equal(fallen.state.x, eager.state.x)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("scorelab:")]
    assert lines == ["scorelab: RmspropLangevin.step could not be compiled (RuntimeError: no compiler here); "
                     "running it eagerly"]


def test_a_sampler_that_is_not_compilable_runs_eagerly():
    ode = ProbabilityFlowODE()
    assert compiled.step_function(ode, "inductor", torch.device("cpu")) == ode.step


def test_a_mode_the_device_cannot_run_is_a_config_error(host):
    config = {"name": "c", "target": {"name": "gaussian", "dim": 2}, "samplers": [{"name": "langevin"}],
              "budget": 10, "metrics": ["energy_distance"], "device": "cpu"}
    with pytest.raises(ConfigError, match="cuda_graph needs a CUDA device") as err:
        parse_comparison({**config, "compile": "cuda_graph"}, host=host)
    assert err.value.key == "compile"
    with pytest.raises(ConfigError, match="inductor") as err:
        parse_comparison({**config, "compile": "fast"}, host=host)
    assert err.value.key == "compile"
    assert parse_comparison({**config, "compile": "auto"}, host=host).compile == "auto"


@dataclass
class _PathState:
    x: torch.Tensor
    k: int


class _ManyPaths:
    """A Langevin step whose Python takes another path on each step (``k % 5`` unrolled updates), so
    each of its first five steps is a graph of its own."""

    name = "many_paths"

    def init(self, x0, oracle, budget):
        return _PathState(x0, 0)

    def step(self, state, oracle, generator):
        x = state.x
        for _ in range(state.k % 5):
            x = x + 1e-3 * oracle.score(x)
        return _PathState(x + 1e-2 * torch.randn(x.shape, generator=generator, dtype=x.dtype), state.k + 1), None


def test_a_step_past_its_graph_limit_runs_eagerly_with_one_notice(monkeypatch, capsys):
    monkeypatch.setattr(compiled, "RECOMPILE_LIMIT", 2)
    monkeypatch.setattr(compiled, "_told", set())
    torch._dynamo.reset()
    target = Gaussian(dim=2)
    x0 = torch.zeros(8, 2, dtype=torch.float64)

    def run(mode):
        oracle = ScoreOracle(ExactScore(target))
        return run_chain(_ManyPaths(), oracle, x0, 40, torch.Generator().manual_seed(0), compile=mode), oracle.counts

    (eager, eager_counts), (limited, limited_counts) = run("none"), run("inductor")
    torch._dynamo.reset()
    assert limited_counts == eager_counts
    torch.testing.assert_close(limited.state.x, eager.state.x, rtol=1e-9, atol=1e-12)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("scorelab:")]
    assert lines == ["scorelab: _ManyPaths.step hit Dynamo's recompile_limit (2): one compiled graph per path "
                     "its Python takes (refreshes, noise levels); its other paths run eagerly"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("mode", ["inductor", "cuda_graph", "auto"])
@pytest.mark.parametrize("sampler", [Langevin(step_size=0.05), Mala(step_size=0.05, warmup=20)], ids=repr)
def test_on_cuda_a_compiled_step_gives_the_eager_chains_and_keeps_what_outlives_a_step(mode, sampler, monkeypatch):
    """The eager counts, chains, Info means and traces on the GPU (8 steps a call between checkpoints,
    where a sampler draws first); under CUDA graphs, whose outputs the next replay overwrites, every
    checkpoint's state and the run's last state stay as they were when taken."""
    monkeypatch.setattr(compiled, "_auto_choices", {})
    monkeypatch.setattr(compiled, "WORTH_COMPILING", 0.0)  # auto compiles even this short run
    target = Gaussian(dim=4, condition_number=10.0).to("cuda", torch.float64)
    x0 = torch.randn(256, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64).cuda()

    def run(mode):
        kept, infos, tracer = [], [], Tracer(4, chains=16, device="cuda", dtype=torch.float64)
        oracle = ScoreOracle(ExactScore(target))

        def on_checkpoint(cp):
            kept.append((cp.state.x, cp.state.x.clone()))
            infos.append(cp.info)

        result = run_chain(sampler, oracle, x0, 120, torch.Generator("cuda").manual_seed(1), [30, 60, 90],
                           on_checkpoint, trace=tracer, compile=mode)
        return result, oracle.counts, kept, infos, torch.from_numpy(tracer.trace(0.0))

    (eager, eager_counts, _, eager_infos, eager_trace), (fused, fused_counts, kept, infos, trace) = \
        run("none"), run(mode)
    assert (fused.steps, fused_counts) == (eager.steps, eager_counts)
    torch.testing.assert_close(fused.state.x, eager.state.x, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(trace, eager_trace, rtol=1e-9, atol=1e-12)
    for a, b in zip(eager_infos, infos, strict=True):
        assert a.keys() == b.keys() and all(b[k] == pytest.approx(a[k], rel=1e-9, abs=1e-12) for k in a)
    last = fused.state.x.clone()
    run(mode)  # replays the same graphs
    assert all(torch.equal(x, copy) for x, copy in kept) and torch.equal(fused.state.x, last)

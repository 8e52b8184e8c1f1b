"""Chains run in blocks (``chain_block``, :func:`scorelab.chain.run_blocks`): one block is run_chain itself;
several are measured as one run (every checkpoint holds all chains, counts are one block's) and sample
the same law; a block that diverges ends the run; a comparison whose chains do not fit the device runs
in blocks instead of being refused, and a sampler whose chains interact is refused in blocks.
"""

from __future__ import annotations

import pytest
import torch
from mlflow.tracking import MlflowClient

from scorelab import config as C
from scorelab import device as D
from scorelab import stepping
from scorelab.chain import run_blocks, run_chain
from scorelab.compare import run_comparison
from scorelab.config import parse_comparison
from scorelab.errors import ConfigError
from scorelab.oracle import ScoreOracle
from scorelab.sources import ExactScore
from scorelab.tracking import Tracker
from scorelab_builtins.samplers import Langevin
from scorelab_builtins.targets import Gaussian
from tests.helpers import TWO_ROWS_THAT_REACH, assert_moments, stationary

H, BUDGET, CHECKPOINTS = 0.2, 60, [5, 20, 40]


def _target() -> Gaussian:
    """N(0.5, diag(1, 0.25)): ULA at h = 0.2 contracts by 0.8 a step along the wide axis."""
    return Gaussian(dim=2, condition_number=4.0, mean_value=0.5).to(dtype=torch.float64)


def _x0(n: int) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def _blocks(x0, block, *, step=H, bound=float("inf"), made=None):
    """run_blocks of Langevin on :func:`_target` from ``x0``: (result, the checkpoints called back)."""
    target, seen = _target(), []

    def sampler():
        if made is not None:
            made.append(1)
        return Langevin(step)

    result = run_blocks(sampler, lambda: ScoreOracle(ExactScore(target)), x0, block, BUDGET,
                        torch.Generator().manual_seed(1), CHECKPOINTS, seen.append, bound=bound)
    return result, seen


def _chain(x0, *, step=H, bound=float("inf")):
    seen = []
    result = run_chain(Langevin(step), ScoreOracle(ExactScore(_target())), x0, BUDGET,
                       torch.Generator().manual_seed(1), CHECKPOINTS, seen.append, bound=bound)
    return result, seen


def _same_checkpoints(a, b) -> None:
    assert len(a) == len(b)
    for p, q in zip(a, b, strict=True):
        assert (p.cost, p.steps, p.counts, p.info) == (q.cost, q.steps, q.counts, q.info)
        assert torch.equal(p.state.x, q.state.x)


@pytest.mark.parametrize("block", [300, 1000])
def test_one_block_is_run_chain_bitwise(block):
    x0 = _x0(300)
    (blocked, seen), (chain, expected) = _blocks(x0, block), _chain(x0)
    assert torch.equal(blocked.state.x, chain.state.x)
    assert (blocked.cost, blocked.steps, blocked.counts, blocked.diverged_at) == (
        chain.cost, chain.steps, chain.counts, chain.diverged_at)
    _same_checkpoints(seen, expected)


def test_blocks_are_one_run_of_all_chains_with_langevins_stationary_law():
    n, block = 3000, 700  # five blocks, the last of 200 chains
    x0 = _x0(n)
    result, seen = _blocks(x0, block)
    _, one = _chain(x0[:block])  # what one block's run makes at each checkpoint

    # Every checkpoint, in cost order, holds all chains, and is charged one block's calls, not five.
    assert [cp.cost for cp in seen] == [cp.cost for cp in one] == [1, 5, 20, 40, 60]
    assert all(cp.state.x.shape == (n, 2) for cp in seen)
    assert [(cp.steps, cp.counts) for cp in seen] == [(cp.steps, cp.counts) for cp in one]
    assert all(cp.info == ({} if cp.cost == 1 else {"step_size": pytest.approx(H)}) for cp in seen)
    assert [cp.wall_time for cp in seen] == sorted(cp.wall_time for cp in seen)
    assert seen[-1].wall_time == pytest.approx(result.wall_time)  # both summed over the blocks
    assert torch.equal(seen[0].state.x, x0) and torch.equal(seen[-1].state.x, result.state.x)
    assert (result.cost, result.steps, result.counts.nfe, result.diverged_at) == (BUDGET, BUDGET - 1, BUDGET, None)

    # One generator, drawn from block after block: the run is reproducible, a different draw from the run
    # unblocked, and its blocks independent. Blocks replaying one noise stream would be near copies (their
    # different starts shrink by 0.8^59): matching chains of two blocks must be uncorrelated within 5
    # standard errors (1 / sqrt(block)).
    x = result.state.x
    corr = torch.stack([torch.corrcoef(torch.stack([x[:block, i], x[block:2 * block, i]]))[0, 1] for i in range(2)])
    assert (corr.abs() < 5 / block**0.5).all(), corr
    assert torch.equal(_blocks(x0, block)[0].state.x, x)
    assert not torch.equal(_chain(x0)[0].state.x, x)

    # ULA on N(mu, C) with P = C^-1 is x <- A x + h P mu + N(0, 2h I), A = I - h P: mean mu, covariance
    # S = A S A + 2h I, checked entry by entry to 5 standard errors of n draws.
    target = _target()
    P = torch.linalg.inv(target.covariance.double())
    A = torch.eye(2, dtype=torch.float64) - H * P
    S = stationary(A, 2 * H * torch.eye(2, dtype=torch.float64), result.steps)
    assert_moments(x, target.mean.reshape(-1).double(), S)
    with pytest.raises(AssertionError):  # the check tells ULA's bias apart from the target at this n
        assert_moments(x, target.mean.reshape(-1).double(), target.covariance.double())


def test_auto_compile_judges_a_block_by_the_blocks_still_to_run(monkeypatch):
    """``auto`` compiles when the rest of the run would take long enough eagerly; in blocks, the rest is
    every block of the same size still to come (they reuse what the first compiled; a smaller last block
    is compiled for its own shape), each run to the blocks' budget."""
    horizons = []

    def step_function(sampler, mode, device, horizon):
        horizons.append((mode, horizon))
        return sampler.step

    monkeypatch.setattr(stepping, "step_function", step_function)
    target = _target()
    run_blocks(lambda: Langevin(H), lambda: ScoreOracle(ExactScore(target)), _x0(250), 100, BUDGET,
               torch.Generator().manual_seed(1), compile="auto")
    assert horizons == [("auto", 2 * BUDGET), ("auto", BUDGET), ("auto", BUDGET)]


def test_a_block_that_diverges_caps_the_run_at_the_checkpoints_before_it():
    # The second block starts at 1000, beyond the bound of 100: its first step (cost 2) is already out.
    x0 = _x0(300)
    x0[100:200] = 1000.0
    made = []
    result, seen = _blocks(x0, 100, bound=100.0, made=made)
    assert result.diverged_at == 2 and len(made) == 3  # the third block ran, only as far as cost 2
    assert result.cost == 5  # where the diverged block stopped: its first checkpoint read the divergence
    assert [cp.cost for cp in seen] == [1]  # only the start, before the divergence, with all chains
    assert torch.equal(seen[0].state.x, x0)


def test_a_later_block_that_diverges_sooner_sets_the_cost_of_divergence():
    """Diverged where the run unblocked would have been: the first block blows up slowly (h = 2.5 from
    N(0, 1)), the second at once (from 1e5), and blocks run after a divergence only as far as it."""
    x0 = _x0(200)
    x0[100:] = 1e5
    blocked, _ = _blocks(x0, 100, step=2.5, bound=1e6)
    first, _ = _chain(x0[:100], step=2.5, bound=1e6)
    unblocked, _ = _chain(x0, step=2.5, bound=1e6)
    assert first.diverged_at > unblocked.diverged_at  # the first block alone diverges later
    assert blocked.diverged_at == unblocked.diverged_at


def test_all_blocks_diverging_report_the_earliest():
    made = []
    result, seen = _blocks(_x0(300), 100, step=50.0, bound=1e6, made=made)
    first, _ = _chain(_x0(300)[:100], step=50.0, bound=1e6)  # the first block on its own
    assert result.diverged_at is not None and result.diverged_at <= first.diverged_at and len(made) == 3
    assert all(cp.cost < result.diverged_at for cp in seen)


# -- a comparison in blocks ---------------------------------------------------------------------------

CHAINS = 150
BASE = {**TWO_ROWS_THAT_REACH, "name": "blocks", "chains": CHAINS}


def _children(tracking_uri, result) -> dict:
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    return {r.data.tags["scorelab.sampler"]: r for r in runs}


def test_a_comparison_in_blocks_runs_and_logs_its_block(host, tracking_uri):
    comp = parse_comparison({**BASE, "chain_block": CHAINS // 3}, "blocks.yaml", host)
    assert comp.block == CHAINS // 3
    result = run_comparison(comp, Tracker(tracking_uri))
    children = _children(tracking_uri, result)
    assert set(children) == {"langevin", "annealed_langevin"}
    for run in children.values():
        assert run.info.status == "FINISHED" and run.data.tags["scorelab.status"] == "ok"
        assert run.data.params["chain_block"] == str(CHAINS // 3) and run.data.params["chains"] == str(CHAINS)
        assert run.data.metrics["calls.nfe"] <= 60  # one block's calls, not three blocks'
    # No replay in blocks: Langevin's crossing is resolved at checkpoints, annealed Langevin's by a ladder of
    # budgets, each rung run in blocks too.
    assert children["langevin"].data.tags["scorelab.resolution"] == "checkpoint (run in blocks: no replay)"
    assert children["annealed_langevin"].data.tags["scorelab.resolution"].startswith("budget ladder")
    assert "ess_per_1k_cost" not in children["langevin"].data.metrics


def test_a_block_as_large_as_the_chains_is_no_block(host):
    assert parse_comparison({**BASE, "chain_block": 10 * CHAINS}, None, host).block == CHAINS
    assert parse_comparison(BASE, None, host).block == CHAINS


@pytest.mark.parametrize("sampler", ["mala", "ensemble_langevin"])
def test_a_sampler_whose_chains_interact_is_refused_in_blocks(host, sampler):
    with pytest.raises(ConfigError) as err:
        parse_comparison({**BASE, "samplers": ["langevin", sampler], "chain_block": 50}, "blocks.yaml", host)
    assert (err.value.file, err.value.key) == ("blocks.yaml", "chain_block")
    assert sampler in str(err.value) and "interact" in str(err.value) and "at most 50 chains" in str(err.value)
    parse_comparison({**BASE, "samplers": ["langevin", sampler]}, "blocks.yaml", host)  # all at once: fine


@pytest.mark.parametrize("options", [{"step_rule": "snr"}, {"preconditioner": "rmsprop"}])
def test_annealed_langevin_whose_levels_use_all_chains_is_refused_in_blocks(host, options):
    annealed = {**BASE["samplers"][1], **options}
    with pytest.raises(ConfigError, match="interact") as err:
        parse_comparison({**BASE, "samplers": [annealed], "chain_block": 50}, "blocks.yaml", host)
    assert err.value.key == "chain_block"


def test_plain_mala_runs_in_blocks_and_adapting_mala_does_not(host):
    """MALA's chains interact only while its warm-up adapts the step on their mean acceptance."""
    mala = {"name": "mala", "step_size": 0.1}
    assert parse_comparison({**BASE, "samplers": [{**mala, "warmup": 0}], "chain_block": 50}, None, host).block == 50
    with pytest.raises(ConfigError, match="interact"):
        parse_comparison({**BASE, "samplers": [{**mala, "warmup": 10}], "chain_block": 50}, None, host)


def _memory(monkeypatch, chains: int) -> None:
    """The device (and host) memory made room for ``chains`` chains of BASE's target, by the estimate."""
    per_chain = D.run_memory(1, 2, "float32")
    monkeypatch.setattr(D, "memory_of", lambda name: per_chain * chains)


def test_chains_beyond_the_devices_memory_run_in_blocks_instead_of_refused(host, tracking_uri, monkeypatch):
    _memory(monkeypatch, 100)
    comp = parse_comparison({**BASE, "samplers": ["langevin"]}, "blocks.yaml", host)
    # Room for 100 chains' runs, less the tensors of all 150 chains that stay on the device (reference, ...).
    per_chain = D.run_memory(1, 2, "float32")
    assert comp.block == (100 * per_chain - C.FULL_SIZE_COPIES * CHAINS * 2 * 4) // per_chain == 62
    result = run_comparison(comp, Tracker(tracking_uri))
    run = _children(tracking_uri, result)["langevin"]
    assert run.info.status == "FINISHED" and run.data.params["chain_block"] == "62"

    with pytest.raises(ConfigError) as err:  # an interacting sampler: the key to lower is chains
        parse_comparison({**BASE, "samplers": ["mala"]}, "blocks.yaml", host)
    assert err.value.key == "chains" and "mala" in str(err.value) and "interact" in str(err.value)


def test_not_even_one_chain_fitting_is_refused_naming_chains(host, monkeypatch):
    monkeypatch.setattr(D, "memory_of", lambda name: D.run_memory(1, 2, "float32") - 1)
    with pytest.raises(ConfigError) as err:
        parse_comparison(BASE, "blocks.yaml", host)
    assert err.value.key == "chains" and "needs about" in str(err.value)


def test_a_block_beyond_the_devices_memory_is_refused_naming_chain_block(host, monkeypatch):
    _memory(monkeypatch, 100)
    with pytest.raises(ConfigError) as err:
        parse_comparison({**BASE, "chain_block": 120}, "blocks.yaml", host)
    assert err.value.key == "chain_block" and "needs about" in str(err.value)


def test_checkpoints_kept_on_the_host_must_fit_it(host, monkeypatch):
    _memory(monkeypatch, 100)  # a block of 100 fits; 150 chains at each of 1,000 checkpoints do not
    with pytest.raises(ConfigError) as err:
        parse_comparison({**BASE, "checkpoints": 1000}, "blocks.yaml", host)
    assert err.value.key == "chains" and "host" in str(err.value)


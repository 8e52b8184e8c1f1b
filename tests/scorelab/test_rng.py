"""Keyed streams (a comparison's ``rng: keyed``, ``scorelab.rng``): Philox's known answers, the
numbers' laws, the same numbers compiled and eager and on every device, which samplers get them, and
the kit's check of a sampler that declares them. A comparison on them: tests/scorelab/test_compare.py."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from scorelab import rng
from scorelab.chain import run_chain
from scorelab.contracts import DrawsFirst
from scorelab.oracle import ScoreOracle
from scorelab.sources import ExactScore
from scorelab.testing import check_sampler
from scorelab_builtins.samplers import AnnealedLangevin, Langevin, Mala
from scorelab_builtins.targets import Gaussian
from tests.helpers import short_chain

MASK = 0xFFFFFFFF
# Philox-4x32-10's published known answers (Random123's kat_vectors): (counter, key) -> output.
KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((MASK,) * 4, (MASK, MASK), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]
N = 400_000
Z = 5.0  # standard errors allowed per statistic: a false alarm with probability 6e-7 each


@pytest.mark.parametrize("counter, key, expected", KNOWN_ANSWERS)
def test_philox_gives_its_published_known_answers(counter, key, expected):
    words = rng.philox(tuple(torch.tensor([w]) for w in counter), torch.tensor(key[0]), torch.tensor(key[1]))
    assert tuple(int(w) for w in words) == expected


def _standardised_moments(z: torch.Tensor) -> dict[str, tuple[float, float]]:
    """Mean, variance - 1, skewness and excess kurtosis of ``z``, each with its standard error under N(0, 1)."""
    z, n = z.double().flatten(), z.numel()
    c = z - z.mean()
    return {"mean": (z.mean().item(), math.sqrt(1 / n)), "variance": (z.var().item() - 1, math.sqrt(2 / n)),
            "skewness": (c.pow(3).mean().item(), math.sqrt(6 / n)),
            "kurtosis": (c.pow(4).mean().item() - 3, math.sqrt(24 / n))}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_keyed_normals_are_standard_and_independent_between_draws_and_neighbours(dtype):
    stream = rng.KeyedStream(seed=3)
    a, b = (rng.normals(stream.ticket(), (N // 100, 100), dtype) for _ in range(2))
    assert a.dtype == dtype and a.shape == (N // 100, 100)
    for name, (value, se) in _standardised_moments(a).items():
        assert abs(value) < Z * se, (name, value, se)
    # Correlations between two draws, and between neighbouring numbers of one (one Box-Muller pair's and the
    # next group's), each with standard error 1 / sqrt(n).
    flat = a.double().flatten()
    for x, y in ((flat, b.double().flatten()), (flat[:-1], flat[1:]), (flat[:-4], flat[4:])):
        assert abs(torch.corrcoef(torch.stack((x, y)))[0, 1].item()) < Z / math.sqrt(len(x))
    assert not torch.equal(a, b)


@pytest.mark.parametrize("dtype, bits", [(torch.float32, 24), (torch.float64, 53)])
def test_keyed_uniforms_are_uniform_with_their_dtypes_bits(dtype, bits):
    u = rng.uniforms(rng.KeyedStream(seed=5).ticket(), (N,), dtype).double()
    assert 0 <= u.min() and u.max() < 1
    # Kolmogorov-Smirnov at level 1e-6: D > sqrt(log(2 / 1e-6) / 2) / sqrt(n) rejects.
    s, n = u.sort().values, len(u)
    grid = torch.arange(1, n + 1, dtype=torch.float64) / n
    d = torch.maximum(grid - s, s - (grid - 1 / n)).max().item()
    assert d < math.sqrt(math.log(2e6) / 2) / math.sqrt(n)
    scaled = u * 2.0 ** bits
    assert torch.equal(scaled, scaled.round())  # multiples of 2^-bits ...
    assert (scaled % 2 == 1).any()  # ... and not of 2^(1 - bits): every bit is random


def test_a_seeds_keyed_numbers_are_pinned():
    """Integers and uniforms are exact on every platform: a change of the key's derivation from the
    seed, the counter layout or the uniforms' construction shows here."""
    ticket = rng.KeyedStream(seed=0).ticket()
    assert ticket.tolist() == [2546248239, 3626093760, 0]
    assert (rng.uniforms(ticket, (4,), torch.float64) * 2.0 ** 53).tolist() == [
        6330770283946124, 4659463659321795, 3473907305561002, 4450351289478032]
    assert (rng.uniforms(ticket, (4,), torch.float32) * 2.0 ** 24).tolist() == [11791978, 8091683, 8678927, 1080944]


def test_a_tickets_normals_and_uniforms_come_from_different_counters():
    ticket = rng.KeyedStream(seed=0).ticket()
    normal_words, uniform_words = (torch.stack(rng._words(ticket, 64, kind)) for kind in (0, 1))
    assert not (normal_words == uniform_words).any()


def test_a_stream_hands_out_tickets_in_order_and_is_restored_from_its_state():
    stream = rng.KeyedStream(seed=9)
    first, second = stream.ticket(), stream.ticket()
    assert torch.equal(first[:2], second[:2]) and (first[2].item(), second[2].item()) == (0, 1)
    assert not torch.equal(rng.KeyedStream(seed=10).ticket()[:2], first[:2])  # a seed of its own, a key of its own
    copy = rng.fork(stream)
    assert torch.equal(copy.ticket(), stream.ticket())
    stream.set_state(first.clone())
    assert torch.equal(stream.ticket(), first)
    generator = torch.Generator().manual_seed(4)
    assert torch.equal(torch.rand(3, generator=rng.fork(generator)), torch.rand(3, generator=generator))


def test_only_samplers_that_declare_keyed_rng_get_a_keyed_stream():
    assert isinstance(rng.run_generator("keyed", Langevin, "cpu", 0), rng.KeyedStream)
    assert isinstance(rng.run_generator("keyed", AnnealedLangevin(), "cpu", 0), torch.Generator)
    assert isinstance(rng.run_generator("generator", Mala, "cpu", 0), torch.Generator)
    assert (rng.stream_of("keyed", Mala), rng.stream_of("keyed", AnnealedLangevin)) == ("keyed", "generator")
    with pytest.raises(ValueError, match="generator, keyed"):
        rng.run_generator("philox", Langevin, "cpu", 0)


@pytest.mark.slow
def test_a_ticket_gives_the_same_numbers_compiled_as_eagerly():
    """Philox's integers are exact either way; the normals differ by the rounding of log, sqrt, cos and
    sin. (float32 here; float64 in the compiled steps below. Each graph takes ~10 s to compile cold.)"""
    ticket, dtype = rng.KeyedStream(seed=2).ticket(), torch.float32
    shape = (1000, 37)  # not a multiple of a group: the last group's spare numbers are cut off
    normals = torch.compile(rng.normals, dynamic=False)(ticket, shape, dtype)
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(normals, rng.normals(ticket, shape, dtype), rtol=16 * eps, atol=16 * eps)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["langevin", "mala[fixed]"])  # normals; normals and uniforms
def test_on_a_keyed_stream_a_compiled_step_gives_the_eager_counts_and_chains(name):
    eager, eager_counts = short_chain(name, "none", rng="keyed")
    fused, fused_counts = short_chain(name, "inductor", rng="keyed")
    assert (fused.steps, fused_counts, fused.cost) == (eager.steps, eager_counts, eager.cost)
    torch.testing.assert_close(fused.state.x, eager.state.x, rtol=1e-9, atol=1e-12)
    generator, _ = short_chain(name, "none")
    assert not torch.allclose(generator.state.x, eager.state.x)  # another stream, other chains


@dataclass
class _State:
    x: torch.Tensor
    score: torch.Tensor


@dataclass
class _DrawsFromTorch(DrawsFirst):
    """ULA that declares keyed_rng but draws with torch's own function: the kit must refuse it."""

    step_size: float = 0.1
    keyed_rng = True

    def init(self, x0, oracle, budget):
        return _State(x0, oracle.score(x0))

    def draw(self, state, generator):
        return torch.randn(state.x.shape, generator=generator, dtype=state.x.dtype)

    def advance(self, state, oracle, z):
        x = state.x + self.step_size * state.score + math.sqrt(2 * self.step_size) * z
        return _State(x, oracle.score(x)), None


def test_the_kit_checks_a_sampler_that_declares_keyed_rng_on_a_keyed_stream():
    report = check_sampler(Langevin, params={"step_size": 0.1}, gaussian=False)
    assert report.ok and "draws from a keyed stream (it declares keyed_rng)" in str(report.passed)
    bad = check_sampler(_DrawsFromTorch, params={"step_size": 0.1}, gaussian=False)
    (failure,) = [f for f in bad.failures if "keyed" in f.check]
    assert "never with torch's random functions" in failure.message
    assert "keyed" not in str(check_sampler(AnnealedLangevin, gaussian=False))  # not its option: not a word of it


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_a_seed_gives_the_cpus_keyed_numbers():
    for counter, key, expected in KNOWN_ANSWERS:
        words = rng.philox(tuple(torch.tensor([w], device="cuda") for w in counter), *key)
        assert tuple(int(w) for w in words) == expected
    ticket = rng.KeyedStream(seed=2, device="cuda").ticket()
    assert torch.equal(ticket.cpu(), rng.KeyedStream(seed=2).ticket())
    for dtype in (torch.float32, torch.float64):
        assert torch.equal(rng.uniforms(ticket, (1000, 37), dtype).cpu(), rng.uniforms(ticket.cpu(), (1000, 37), dtype))
        eps = torch.finfo(dtype).eps
        torch.testing.assert_close(rng.normals(ticket, (1000, 37), dtype).cpu(),
                                   rng.normals(ticket.cpu(), (1000, 37), dtype), rtol=16 * eps, atol=16 * eps)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("sampler", [Langevin(step_size=0.05), Mala(step_size=0.05, warmup=0)], ids=repr)
def test_on_cuda_a_keyed_run_under_cuda_graphs_gives_the_eager_chains(sampler):
    """8 steps a call on the card, their tickets drawn first and their numbers made in one graph."""
    target = Gaussian(dim=4, condition_number=10.0).to("cuda", torch.float64)
    x0 = torch.randn(256, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64).cuda()

    def run(mode):
        oracle = ScoreOracle(ExactScore(target))
        result = run_chain(sampler, oracle, x0, 120, rng.KeyedStream(1, "cuda"), [30, 60, 90], compile=mode)
        return result, oracle.counts

    (eager, eager_counts), (fused, fused_counts) = run("none"), run("cuda_graph")
    assert (fused.steps, fused_counts) == (eager.steps, eager_counts)
    torch.testing.assert_close(fused.state.x, eager.state.x, rtol=1e-9, atol=1e-12)

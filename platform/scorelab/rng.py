"""A run's random numbers: a comparison's ``rng`` key.

- ``generator`` (the default): a ``torch.Generator`` seeded with the run's seed; a sampler draws from
  it with torch's own functions (``torch.randn(..., generator=generator)``).
- ``keyed``: a :class:`KeyedStream`, counter-based numbers (Philox-4x32-10, Salmon et al. 2011) keyed
  by the seed. A draw takes a *ticket*, a tiny tensor (key, count), and the numbers are a pure
  function of the ticket and their index, made where they are used (:func:`normals`,
  :func:`uniforms`). In a compiled step (:mod:`scorelab.compiled`) they are made inside the step's
  fused kernel, never written to memory and read back: the write and read of every step's noise
  are saved, and on the CPU no mt19937 runs (``benchmarks/fused_noise.py``). The numbers are the
  same in every compile mode and on every device (integers and uniforms exactly, normals to the
  rounding of log, sqrt, cos and sin). Eagerly they cost more than torch's: some 12 tensor
  operations a Philox round (22 in the first), ten rounds.

A sampler reaches a keyed stream only if it declares ``keyed_rng = True`` (a trait,
:mod:`scorelab.contracts`): it then draws through :func:`normal_draws` and :func:`uniform_draws`,
and turns their draws into numbers with :func:`normal_from` and :func:`uniform_from`. Every other
sampler gets the run's ``torch.Generator`` whatever the key says.

Philox is written with int64 tensor operations (torch has no unsigned 32-bit multiply a compiler
takes): each 32 x 32-bit product is one multiply by the multiplier less 2^32, which keeps it within
int64 (signed overflow is undefined in the C++ a compiled step becomes); the first round's, whose
words may be an index, split the multiplier in halves (:func:`_mulhilo_split`). Its output is checked
against the published known-answer vectors (``tests/scorelab/test_rng.py``). A ticket is used once:
its normals and its uniforms come from distinct counters, but two draws of normals from one ticket
are the same numbers.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .contracts import traits

MODES = ("generator", "keyed")
_MASK = 0xFFFFFFFF
# Philox-4x32-10's multipliers and key increments (Salmon et al. 2011, and Random123's known answers).
_MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)
_BUMPS = (0x9E3779B9, 0xBB67AE85)


class KeyedStream:
    """Counter-based random numbers for one run: a key of two 32-bit words and a count of draws, held in
    one int64 tensor ``[key0, key1, count]`` on the run's device. :meth:`ticket` hands out the current
    (key, count) and counts one on, as tensor operations (no host sync). Like a ``torch.Generator`` it
    has ``device``, ``get_state`` and ``set_state``, so a run can be replayed from a checkpoint."""

    def __init__(self, seed: int, device: torch.device | str = "cpu"):
        # The key from the seed on the host, so a seed's numbers are the same on every device.
        key = torch.randint(0, 2 ** 32, (2,), generator=torch.Generator().manual_seed(seed), dtype=torch.int64)
        self.device = torch.device(device)
        self._next = torch.cat((key, torch.zeros(1, dtype=torch.int64))).to(self.device)
        self._one = torch.tensor([0, 0, 1], dtype=torch.int64, device=self.device)

    def ticket(self) -> torch.Tensor:
        """The next draw's (key0, key1, count), a (3,) int64 tensor on the device."""
        ticket = self._next.clone()
        self._next.add_(self._one)
        return ticket

    def get_state(self) -> torch.Tensor:
        return self._next.clone()

    def set_state(self, state: torch.Tensor) -> None:
        self._next.copy_(state)

    def __repr__(self) -> str:
        return f"KeyedStream(device={self.device})"


def stream_of(rng: str, sampler: Any) -> str:
    """The random numbers a comparison whose ``rng`` key is ``rng`` gives ``sampler`` (a class or an
    instance): ``keyed`` where the sampler declares ``keyed_rng``, else ``generator``."""
    if rng not in MODES:
        raise ValueError(f"rng: expected one of {', '.join(MODES)}, got {rng!r}")
    return "keyed" if rng == "keyed" and traits("sampler", sampler).keyed_rng else "generator"


def run_generator(rng: str, sampler: Any, device: torch.device | str, seed: int) -> torch.Generator | KeyedStream:
    """What a run of ``sampler`` with ``seed`` draws from (:func:`stream_of`): a :class:`KeyedStream`,
    or a ``torch.Generator`` on ``device`` seeded with ``seed``."""
    if stream_of(rng, sampler) == "keyed":
        return KeyedStream(seed, device)
    return torch.Generator(device).manual_seed(seed)


def fork(generator: torch.Generator | KeyedStream) -> torch.Generator | KeyedStream:
    """A new generator or stream of the same kind, device and state as ``generator``: a replay's."""
    if isinstance(generator, KeyedStream):
        copy = KeyedStream(0, generator.device)
    else:
        copy = torch.Generator(generator.device)
    copy.set_state(generator.get_state())
    return copy


def is_ticket(draws: Any) -> bool:
    """Whether ``draws`` is a :class:`KeyedStream`'s ticket (an int64 tensor), not drawn numbers."""
    return isinstance(draws, torch.Tensor) and draws.dtype == torch.int64


def normal_draws(x: torch.Tensor, generator: torch.Generator | KeyedStream) -> torch.Tensor:
    """A step's draw of standard normals of x's shape: a ticket from a keyed stream, else the normals
    from ``generator``. :func:`normal_from` turns either into the normals."""
    if isinstance(generator, KeyedStream):
        return generator.ticket()
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def normal_from(draws: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Standard normals of x's shape and dtype from :func:`normal_draws`' draw."""
    return normals(draws, x.shape, x.dtype) if is_ticket(draws) else draws


def uniform_draws(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | KeyedStream) -> torch.Tensor:
    """A step's draw of uniforms in [0, 1) of ``shape``, in ``like``'s dtype and device: a ticket from a
    keyed stream, else the uniforms from ``generator``. :func:`uniform_from` turns either into them."""
    if isinstance(generator, KeyedStream):
        return generator.ticket()
    return torch.rand(shape, generator=generator, device=like.device, dtype=like.dtype)


def uniform_from(draws: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Uniforms in [0, 1) of ``shape`` and ``dtype`` from :func:`uniform_draws`' draw."""
    return uniforms(draws, shape, dtype) if is_ticket(draws) else draws


def philox(counter: tuple[torch.Tensor, ...], key0: torch.Tensor | int, key1: torch.Tensor | int) -> tuple:
    """Philox-4x32-10 of four counter words under the key (key0, key1): four words of 32 bits, each
    in an int64 tensor. Words broadcast against one another."""
    c0, c1, c2, c3 = counter
    for r in range(10):
        mulhilo = _mulhilo if r else _mulhilo_split
        hi0, lo0 = mulhilo(c0, _MULTIPLIERS[0])
        hi1, lo1 = mulhilo(c2, _MULTIPLIERS[1])
        c0, c1, c2, c3 = hi1 ^ c1 ^ key0, lo1, hi0 ^ c3 ^ key1, lo0
        key0, key1 = (key0 + _BUMPS[0]) & _MASK, (key1 + _BUMPS[1]) & _MASK
    return c0, c1, c2, c3


def _mulhilo(a: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The high and low 32 bits of a * m for 0 <= a < 2^32 and 2^31 < m < 2^32, in int64 with one multiply
    that cannot overflow: q = a (m - 2^32) lies in (-2^63, 0] (in (-2^62, 0] for Philox's multipliers,
    both above 3 2^30), and a m = q + a 2^32."""
    q = a * (m - 2 ** 32)
    return (q >> 32) + a, q & _MASK


def _mulhilo_split(a: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_mulhilo` with m split in 16-bit halves, for the first round, whose words may be an
    index (``arange``): inductor's CPU code turns index x constant into a vector ``arange`` whose
    lane offsets it computes in 32-bit ints, which a 32-bit multiplier overflows (torch 2.13)."""
    low = a * (m & 0xFFFF)
    t = a * (m >> 16) + (low >> 16)
    return t >> 16, ((t & 0xFFFF) << 16) | (low & 0xFFFF)


def _words(ticket: torch.Tensor, groups: int, kind: int) -> tuple[torch.Tensor, ...]:
    """Philox of counters (i, kind, count low, count high) for groups i = 0 .. groups - 1: 4 words a
    group; ``kind`` keeps a ticket's normals (0) and uniforms (1) apart."""
    i = torch.arange(groups, device=ticket.device, dtype=torch.int64)
    count = ticket[2]
    return philox((i, torch.full_like(i, kind), count & _MASK, (count >> 32) + torch.zeros_like(i)),
                  ticket[0], ticket[1])


def uniforms(ticket: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Uniforms in [0, 1) of ``shape`` for a ticket: 24 random bits each in float32 (four a Philox
    group), 53 in float64 (two words each, two a group)."""
    n = math.prod(shape)
    u = _unit(_words(ticket, -(-n // _per_group(dtype)), kind=1), dtype)
    return torch.stack(u, 1).reshape(-1)[:n].reshape(shape)


def normals(ticket: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Standard normals of ``shape`` for a ticket by the Box–Muller transform: from uniform pairs (u, v),
    r = sqrt(-2 log(1 - u)) and t = 2 pi v give r cos t and r sin t. The radius r is at most
    sqrt(2 log 2^24) = 5.8 in float32, 8.6 in float64 (as torch's float64 normals): in float32 the
    radius passes that with probability 2^-24 = 6e-8, a normal passes it with probability 8e-9."""
    n = math.prod(shape)
    u = _unit(_words(ticket, -(-n // _per_group(dtype)), kind=0), dtype)
    z = [w for a, b in zip(u[::2], u[1::2], strict=True) for w in box_muller_pair(a, b)]
    return torch.stack(z, 1).reshape(-1)[:n].reshape(shape)


def box_muller_pair(u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The independent normals (r cos t, r sin t), r = sqrt(-2 log(1 - u)) and t = 2 pi v, from
    uniforms u and v in [0, 1): whole-tensor operations a compiled step fuses."""
    r, t = torch.sqrt(-2.0 * torch.log1p(-u)), (2.0 * math.pi) * v
    return r * torch.cos(t), r * torch.sin(t)


def _per_group(dtype: torch.dtype) -> int:
    """Numbers one Philox group of four words gives in ``dtype`` (float32 or float64)."""
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"keyed numbers are made in float32 or float64, not {dtype}")
    return 2 if dtype == torch.float64 else 4


def _unit(words: tuple[torch.Tensor, ...], dtype: torch.dtype) -> list[torch.Tensor]:
    """Uniforms in [0, 1) from Philox words: one a word (its top 24 bits) in float32, one a
    pair of words (27 + 26 bits) in float64."""
    if dtype == torch.float64:
        return [((a >> 5) * 2 ** 26 + (b >> 6)).to(dtype) * 2.0 ** -53 for a, b in zip(words[::2], words[1::2],
                                                                                       strict=True)]
    return [(w >> 8).to(dtype) * 2.0 ** -24 for w in words]

"""Bulk effective sample size of traced chains, and the tracer that records them on the device.

The estimator is the rank-normalised split bulk ESS of Vehtari, Gelman, Simpson, Carpenter and
Buerkner (2021), "Rank-normalization, folding, and localization: An improved R-hat", Bayesian
Analysis 16(2). Splitting each chain in half makes a trend within a chain show up as disagreement
between chains; rank normalisation makes the estimate defined and stable for heavy tails (a Cauchy
has no variance, its normal scores do); the multi-chain variance estimate makes chains stuck in
different places count as few draws, which per-chain autocorrelations alone would not.

A whole state is too big to trace, so :class:`Tracer` keeps a few fixed random projections of a
subset of chains at every step; the smallest ESS over projections is the figure reported.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.fft import irfft, next_fast_len, rfft
from scipy.special import ndtri
from scipy.stats import rankdata


def _split(draws: np.ndarray) -> np.ndarray:
    """Each chain cut into its first and second half (the middle draw of an odd length is dropped)."""
    half = draws.shape[1] // 2
    return np.concatenate([draws[:, :half], draws[:, draws.shape[1] - half:]], axis=0)


def _rank_normalise(draws: np.ndarray) -> np.ndarray:
    """Normal scores of the pooled ranks: z = Phi^-1((r - 3/8) / (S + 1/4)), ties given their average rank."""
    ranks = rankdata(draws, method="average", axis=None).reshape(draws.shape)
    return ndtri((ranks - 0.375) / (draws.size + 0.25))


def _autocovariance(draws: np.ndarray) -> np.ndarray:
    """Per chain, the biased autocovariance (divided by N) at every lag, by FFT with zero padding."""
    n = draws.shape[1]
    centred = draws - draws.mean(axis=1, keepdims=True)
    size = next_fast_len(2 * n)
    spectrum = rfft(centred, n=size, axis=1)
    return irfft(spectrum * spectrum.conj(), n=size, axis=1)[:, :n] / n


def _autocorrelation(draws: np.ndarray) -> np.ndarray:
    """Multi-chain autocorrelation rho_t = 1 - (W - mean_m s_m^2 rho_{t,m}) / var+ (the paper's eq. 10)."""
    m, n = draws.shape
    acov = _autocovariance(draws)
    chain_var = acov[:, 0] * n / (n - 1)  # s_m^2
    within = chain_var.mean()  # W
    between = draws.mean(axis=1).var(ddof=1) if m > 1 else 0.0  # B / N
    var_plus = (n - 1) / n * within + between
    # s_m^2 rho_{t,m} = s_m^2 acov_m(t) / acov_m(0) = acov_m(t) n / (n - 1)
    return 1.0 - (within - (acov * n / (n - 1)).mean(axis=0)) / var_plus


def _geyer_tau(rho: np.ndarray) -> float:
    """Integrated autocorrelation time by Geyer's initial monotone sequence: sum the pairs
    P_k = rho_2k + rho_2k+1 while positive, each capped by the one before, tau = -1 + 2 sum P_k."""
    pairs = rho[: 2 * (len(rho) // 2)].reshape(-1, 2).sum(axis=1)
    nonpositive = np.flatnonzero(pairs <= 0)
    positive = pairs[: nonpositive[0] if nonpositive.size else len(pairs)]
    return -1.0 + 2.0 * float(np.minimum.accumulate(positive).sum())


def bulk_ess(draws: np.ndarray) -> float:
    """Rank-normalised split bulk ESS of one quantity, ``draws`` of shape (chains, draws).

    NaN when a draw is not finite (a diverged chain) or all are equal (no spread to measure). An
    antithetic sample can give more than chains x draws; tau is floored at 1 / log10(chains x draws),
    as Stan does, so it is bounded.
    """
    draws = np.asarray(draws, dtype=np.float64)
    if draws.ndim != 2 or draws.shape[1] < 4:
        raise ValueError(f"draws must have shape (chains, draws) with at least 4 draws, got {draws.shape}")
    if not np.all(np.isfinite(draws)):
        return math.nan
    if np.all(draws == draws.flat[0]):
        return math.nan
    z = _split(_rank_normalise(draws))
    total = z.size
    tau = max(_geyer_tau(_autocorrelation(z)), 1.0 / math.log10(total))
    return total / tau


def min_bulk_ess(trace: np.ndarray) -> float:
    """The smallest bulk ESS over projections of a trace of shape (chains, draws, projections): the
    least-mixed direction is the honest figure. NaN if any projection's is undefined."""
    trace = np.asarray(trace)
    if trace.ndim != 3:
        raise ValueError(f"trace must have shape (chains, draws, projections), got {trace.shape}")
    return float(np.min([bulk_ess(trace[:, :, j]) for j in range(trace.shape[2])]))


class Tracer:
    """Fixed random projections of the first ``chains`` chains, recorded at every step on the device.

    ``P`` (dim, projections) has unit-norm Gaussian columns drawn from ``seed``, so every run and
    sampler of a comparison is traced along the same directions (P is drawn on the CPU, so on any
    device). :meth:`record` (or the step loop, by :meth:`project` and :meth:`keep`) queues a small
    matrix product on the chains' device and keeps the result in a buffer there: it never waits for
    the device. The host sees the trace only in :meth:`trace`, after the run. Give ``device`` and
    ``dtype`` to copy P there at once; otherwise the first :meth:`project` copies it, a
    host-to-device transfer that waits on a GPU.
    """

    def __init__(self, dim: int, projections: int = 4, chains: int = 64, seed: int = 0, *,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        if dim < 1 or projections < 1 or chains < 1:
            raise ValueError(f"dim, projections and chains must be >= 1, got {dim}, {projections}, {chains}")
        g = torch.Generator().manual_seed(seed)
        P = torch.randn(dim, projections, generator=g, dtype=torch.float64)
        self.projection = P / P.norm(dim=0, keepdim=True)
        self.chains = chains
        # Draws go into one preallocated buffer, doubled when full: a list of many small results
        # fragmented the host heap around the step's large temporaries (RSS grew by ~x's size per step).
        self._buffer: torch.Tensor | None = None
        self._n = 0
        # the projection on the chains' device and dtype
        self._P = self.projection.to(device, dtype) if device is not None and dtype is not None else None

    def __len__(self) -> int:
        return self._n

    def record(self, x: torch.Tensor) -> None:
        """Store x[:chains], flattened per chain, times P: (chains, projections), left on x's device."""
        self.keep(self.project(x)[None])

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """x[:chains], flattened per chain, times P: (chains, projections), on x's device. Tensor work
        alone, so compiled steps can take it into their graph (the step loop's ``trace``)."""
        if self._P is None or self._P.device != x.device or self._P.dtype != x.dtype:
            self._P = self.projection.to(x.device, x.dtype)
        return x.detach()[: self.chains].reshape(min(len(x), self.chains), -1) @ self._P

    def keep(self, records: torch.Tensor) -> None:
        """Store consecutive steps' projections, (steps, chains, projections), on their device."""
        k = len(records)
        if self._buffer is None or self._n + k > len(self._buffer) or self._buffer.shape[1:] != records.shape[1:]:
            grown = records.new_empty((max(1024, 2 * (self._n + k)), *records.shape[1:]))
            if self._buffer is not None:
                grown[: self._n] = self._buffer[: self._n]
            self._buffer = grown
        self._buffer[self._n : self._n + k] = records
        self._n += k

    def trace(self, start_fraction: float = 0.5) -> np.ndarray:
        """(chains, draws, projections) on the host, in float64, the first ``start_fraction`` of draws
        dropped as burn-in."""
        if not 0 <= start_fraction < 1:
            raise ValueError(f"start_fraction must be in [0, 1), got {start_fraction}")
        if not self._n:
            raise ValueError("nothing was recorded")
        start = int(start_fraction * self._n)
        return self._buffer[start : self._n].transpose(0, 1).to("cpu", torch.float64).numpy()

    def ess(self, start_fraction: float = 0.5) -> float:
        """The smallest bulk ESS over projections of the traced chains after burn-in."""
        return min_bulk_ess(self.trace(start_fraction))

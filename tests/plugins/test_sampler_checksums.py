"""Every built-in sampler gives bitwise the same chains for the same seed as when this file's
checksums were pinned: a refactor of the samplers' numerics must not change a single bit.

The checksums depend on the floating-point kernels of the machine and torch build they were taken on
(vector width, fused multiply-add), so they are kept with that platform and the test skips on another.
Re-pin only after a deliberate change of behaviour: ``python tests/plugins/test_sampler_checksums.py --pin``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path

import pytest
import torch

from scorelab.chain import run_chain
from scorelab.oracle import ScoreOracle
from scorelab.sources import ExactScore
from scorelab_builtins.samplers import (
    AdaptiveLangevin,
    AnnealedLangevin,
    CurvatureStepLangevin,
    EnsembleLangevin,
    EnsembleMala,
    HessianDiagLangevin,
    Langevin,
    LowRankLangevin,
    Mala,
    OzakiLangevin,
    ProbabilityFlowODE,
    RmspropLangevin,
)
from scorelab_builtins.targets import Gaussian

PINNED = Path(__file__).parent / "data" / "chain_checksums.json"

#: A short chain of each sampler and of each code path its options select.
SAMPLERS = {
    "langevin": lambda: Langevin(0.05),
    "mala[warmup]": lambda: Mala(warmup=10),
    "mala[fixed]": lambda: Mala(step_size=0.2, warmup=0),
    "rmsprop": lambda: RmspropLangevin(0.01),
    "rmsprop[gamma:hutchinson]": lambda: RmspropLangevin(0.01, correction="hutchinson", probes=2),
    "rmsprop[gamma:exact]": lambda: RmspropLangevin(0.01, correction="exact"),
    "hessian_diag[hutchinson,vjp]": lambda: HessianDiagLangevin(0.1, probes=2, refresh_every=3, ema=0.5),
    "hessian_diag[hutchinson,jvp]": lambda: HessianDiagLangevin(0.1, probe="jvp", refresh_every=3),
    "hessian_diag[exact]": lambda: HessianDiagLangevin(0.1, curvature="exact", refresh_every=3),
    "hessian_diag[learned]": lambda: HessianDiagLangevin(0.1, curvature="learned", refresh_every=3),
    "ozaki[hutchinson]": lambda: OzakiLangevin(0.5, refresh_every=2),
    "ozaki[exact]": lambda: OzakiLangevin(0.5, curvature="exact", refresh_every=2),
    "adaptive": lambda: AdaptiveLangevin(),
    "curvature_step[secant]": lambda: CurvatureStepLangevin(),
    "curvature_step[power]": lambda: CurvatureStepLangevin(method="power", power_iterations=2, refresh_every=3),
    "lowrank[dense]": lambda: LowRankLangevin(refresh_every=5),
    "lowrank[nystrom]": lambda: LowRankLangevin(rank=2, refresh_every=5),
    "lowrank[dense,adjusted]": lambda: LowRankLangevin(adjust=True, refresh_every=5),
    "lowrank[learned,shared]": lambda: LowRankLangevin(curvature="learned", shared=True, refresh_every=5),
    "ensemble[dense]": lambda: EnsembleLangevin(0.1),
    "ensemble[diagonal,uncorrected]": lambda: EnsembleLangevin(0.1, covariance="diagonal", correction=False),
    "ensemble_mala": lambda: EnsembleMala(warmup=20, adapt_every=5),
    "ensemble_mala[diagonal,fixed]": lambda: EnsembleMala(warmup=0, covariance="diagonal"),
    "probability_flow_ode": lambda: ProbabilityFlowODE(sigma_max=5.0, rtol=1e-3, atol=1e-3),
    "annealed[ncsn]": lambda: AnnealedLangevin(levels=3, steps_per_level=5),
    "annealed[snr]": lambda: AnnealedLangevin(levels=3, steps_per_level=5, step_rule="snr"),
    "annealed[secant,rmsprop]": lambda: AnnealedLangevin(levels=3, steps_per_level=5, step_rule="secant",
                                                         preconditioner="rmsprop"),
    "annealed[secant,hessian_diag]": lambda: AnnealedLangevin(levels=3, steps_per_level=5, step_rule="secant",
                                                              preconditioner="hessian_diag", refresh_every=2),
    "annealed[adaptive]": lambda: AnnealedLangevin(levels=3, steps_per_level=5, step_rule="adaptive", denoise=False),
    "annealed[power,hessian_diag:exact]": lambda: AnnealedLangevin(
        levels=3, steps_per_level=5, step_rule="power", preconditioner="hessian_diag", curvature="exact",
        step_scale=0.3),
    "annealed[constant,hessian_diag:hutchinson]": lambda: AnnealedLangevin(
        levels=3, steps_per_level=4, step_rule="constant", epsilon=0.1, preconditioner="hessian_diag", probes=2,
        refresh_every=2, ema=0.5),
    "annealed[adaptive,hessian_diag:learned]": lambda: AnnealedLangevin(
        levels=2, steps_per_level=5, step_rule="adaptive", preconditioner="hessian_diag", curvature="learned",
        denoise=False),
}


class _Learned(ExactScore):
    """The exact score playing a model with a second-order head (score and diagonal in one call)."""

    def __init__(self, target):
        super().__init__(target)
        self.provides = self.provides | {"second_order_head"}

    def score_and_diag(self, x, sigma=None):
        return self.score(x, sigma), self.hess_diag(x, sigma)


def _platform() -> str:
    return f"{platform.machine()} torch {torch.__version__.split('+')[0]}"


def checksum(name: str) -> str:
    """sha256 of the final chains (float64 bytes) and the oracle's counts after a 60-unit budget."""
    torch.manual_seed(0)  # nothing may draw from the global generator; this makes a leak reproducible too
    target = Gaussian(dim=4, condition_number=10.0, rotate=True, mean_value=0.5)
    oracle = ScoreOracle(_Learned(target))
    x0 = torch.randn(32, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    result = run_chain(SAMPLERS[name](), oracle, x0, 60, torch.Generator().manual_seed(1))
    digest = hashlib.sha256(result.state.x.contiguous().numpy().tobytes())
    digest.update(repr((result.steps, oracle.counts)).encode())
    return digest.hexdigest()[:16]


def _pinned() -> dict:
    return json.loads(PINNED.read_text())


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_the_same_seed_gives_bitwise_the_same_chains(name):
    pinned = _pinned()
    if pinned["platform"] != _platform():
        pytest.skip(f"checksums pinned on {pinned['platform']}, this is {_platform()}")
    assert checksum(name) == pinned["checksums"][name]


def test_every_builtin_sampler_is_pinned(host):
    pinned = {name.split("[")[0] for name in _pinned()["checksums"]}
    aliases = {"mala": "mala", "rmsprop": "rmsprop_langevin", "hessian_diag": "hessian_diag_langevin",
               "ozaki": "ozaki_langevin", "adaptive": "adaptive_langevin", "curvature_step": "curvature_step_langevin",
               "lowrank": "lowrank_langevin", "ensemble": "ensemble_langevin", "annealed": "annealed_langevin"}
    assert {aliases.get(n, n) for n in pinned} >= set(host.names("sampler"))


if __name__ == "__main__" and sys.argv[1:] == ["--pin"]:
    torch.set_num_threads(1)
    PINNED.write_text(json.dumps({"platform": _platform(),
                                  "checksums": {name: checksum(name) for name in SAMPLERS}}, indent=1) + "\n")
    print(f"pinned {len(SAMPLERS)} checksums on {_platform()} in {PINNED}")

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

from tests.helpers import SAMPLERS, short_chain

PINNED = Path(__file__).parent / "data" / "chain_checksums.json"


def _platform() -> str:
    return f"{platform.machine()} torch {torch.__version__.split('+')[0]}"


def checksum(name: str) -> str:
    """sha256 of the final chains (float64 bytes) and the oracle's counts after a 60-unit budget."""
    torch.manual_seed(0)  # nothing may draw from the global generator; this makes a leak reproducible too
    result, counts = short_chain(name)
    digest = hashlib.sha256(result.state.x.contiguous().numpy().tobytes())
    digest.update(repr((result.steps, counts)).encode())
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

"""Every built-in sampler gives bitwise the same chains for the same seed as when this file's
checksums were pinned: a refactor of the samplers' numerics must not change a single bit.

The checksums depend on the floating-point kernels of the machine and torch build they were taken on
(vector width, fused multiply-add, and the CPU's vendor, whose math libraries take paths of their
own), so they are kept per platform and the test skips on one not pinned. Pin a new platform, or
re-pin after a deliberate change of behaviour: ``python tests/plugins/test_sampler_checksums.py --pin``
(the platform it runs on; after a change of behaviour the other platforms' pins are stale: delete
them, and they skip until pinned on their machines again). The AMD pins were taken before the key
named the vendor and vector capability: their key is written by hand from what that machine was.
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
    """The machine, CPU vendor, the vector instructions torch's kernels use, and torch's version."""
    return (f"{platform.machine()} {_vendor()} {torch.backends.cpu.get_cpu_capability()} "
            f"torch {torch.__version__.split('+')[0]}")


def _vendor() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    return next((line.split(":")[1].strip() for line in info.splitlines() if line.startswith("vendor_id")), "unknown")


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
    pinned = _pinned()["platforms"]
    if _platform() not in pinned:
        pytest.skip(f"checksums pinned on {', '.join(pinned)}; this is {_platform()}")
    assert checksum(name) == pinned[_platform()][name]


def test_every_builtin_sampler_is_pinned(host):
    platforms = _pinned()["platforms"]
    assert all(set(checksums) == set(SAMPLERS) for checksums in platforms.values())
    pinned = {name.split("[")[0] for name in SAMPLERS}
    aliases = {"mala": "mala", "rmsprop": "rmsprop_langevin", "hessian_diag": "hessian_diag_langevin",
               "ozaki": "ozaki_langevin", "adaptive": "adaptive_langevin", "curvature_step": "curvature_step_langevin",
               "lowrank": "lowrank_langevin", "ensemble": "ensemble_langevin", "annealed": "annealed_langevin"}
    assert {aliases.get(n, n) for n in pinned} >= set(host.names("sampler"))


if __name__ == "__main__" and sys.argv[1:] == ["--pin"]:
    torch.set_num_threads(1)
    platforms = _pinned()["platforms"] | {_platform(): {name: checksum(name) for name in SAMPLERS}}
    PINNED.write_text(json.dumps({"platforms": platforms}, indent=1) + "\n")
    print(f"pinned {len(SAMPLERS)} checksums on {_platform()} in {PINNED}")
